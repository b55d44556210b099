"""``vitrine demo``: the embedded stack end to end on the bundled CC0 sample catalogue.

Publishes every sample product (plus two poison events, to show the dead-letter path), waits until
each event is indexed or dead-lettered, runs photo and text queries over Kafka and HTTP, prints the
results and the figures, and ends with one JSON line:
``{"published", "indexed", "dlq", "queries", "events_per_s", "freshness_p50_s", "freshness_p99_s"}``.
Freshness here is event time -> row written (``indexed_at`` in Milvus), per product.
"""

from __future__ import annotations

import base64
import csv
import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"


def load_sample(limit: int = 0) -> list[dict[str, str]]:
    rows = list(csv.DictReader((SAMPLE_DIR / "catalog.csv").open()))
    np.random.default_rng(11).shuffle(rows)  # interleave categories, so a --limit run still has them all
    return rows[:limit] if limit else rows


def count_topic(bootstrap: str, topic: str) -> int:
    """Records on ``topic`` (all partitions), read from the beginning."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=500)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        return sum(1 for _ in c)
    finally:
        c.close()


def http_search(base: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"{base}/search", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def publish_sample(bootstrap: str, topic: str, rows: list[dict[str, str]]) -> int:
    from streams.publisher import CatalogPublisher

    pub = CatalogPublisher(bootstrap, topic).start()
    rng = np.random.default_rng(7)
    for r in rows:
        pub.upsert(r["product_id"], 1, title=r["title"], description=f"{r['label']}, photographed at home",
                   brand="sample", price=float(rng.integers(10, 120)), images=[f"file://{SAMPLE_DIR / r['image']}"],
                   attributes={"category": r["category"]})
    pub.send_raw("poison-json", b'{"schema_version": 1, "type": "upsert", "product_id": ')  # malformed JSON
    pub.upsert("poison-image", 1, title="missing photo", price=1.0, images=[f"file://{SAMPLE_DIR}/no-such.jpg"])
    pub.flush()
    pub.close()
    return len(rows) + 2


def _show(title: str, reply: dict[str, Any]) -> None:
    print(f"\n{title}")
    if not reply.get("ok"):
        print(f"  error: {reply.get('error')}")
        return
    for hit in reply["results"]:
        print(f"  {hit['score']:.3f}  {hit['product_id']:12s} {hit.get('category', ''):10s} {hit.get('title', '')}")


def run_demo(data_dir: Path, *, limit: int = 0, json_path: str | None = None, env: dict[str, str]) -> int:
    from indexer.store import ProductIndex
    from streams.query_client import QueryClient
    from vitrine_tools.devstack.stack import LocalStack
    from workers.runtime.wiring import layout_for
    from workers.settings import Settings
    from workers.vision.factory import production_pipeline

    shutil.rmtree(data_dir, ignore_errors=True)
    rows = load_sample(limit)
    t_start = time.time()
    stack = LocalStack(data_dir, env=env)
    print("starting tansu, the Milvus Lite server and the ingest, index and query workers ...")
    with stack:
        print(f"stack up in {time.time() - t_start:.1f}s")
        settings = Settings(kafka_bootstrap=stack.kafka_bootstrap, milvus_uri=stack.milvus_uri, partitions=stack.partitions)
        topics = settings.topics
        t_pub = time.time()
        published = publish_sample(stack.kafka_bootstrap, topics.events, rows)
        print(f"published {published} events in {time.time() - t_pub:.2f}s")
        index = ProductIndex(stack.milvus_uri, layout_for(settings, production_pipeline())).start(create=False)
        indexed = dlq = 0
        deadline = time.time() + 600
        while time.time() < deadline:
            indexed, dlq = index.count(), count_topic(stack.kafka_bootstrap, topics.dlq)
            if indexed + dlq >= published:
                break
            time.sleep(0.5)
        rows_db = index._call("query", index.collection, filter="deleted == false",
                              output_fields=["event_time", "indexed_at"], limit=16384)
        fresh = np.array([r["indexed_at"] - r["event_time"] for r in rows_db]) if rows_db else np.zeros(1)
        span = (max(r["indexed_at"] for r in rows_db) - t_pub) if rows_db else 1.0
        print(f"indexed {indexed}, dead-lettered {dlq}, of {published} published")

        client = QueryClient(stack.kafka_bootstrap, topics.requests, topics.responses).start()
        queries = 0
        for text in ("black shoes", "a summer dress", "warm winter jacket", "baseball cap"):
            _show(f"text query over Kafka: {text!r}", client.search({"kind": "text", "text": text, "k": 5}))
            queries += 1
        http = stack.workers["query"].http
        for r in rows[:: max(len(rows) // 3, 1)][:3]:
            b64 = base64.b64encode((SAMPLE_DIR / r["image"]).read_bytes()).decode()
            status, reply = http_search(http, {"request_id": f"photo-{r['product_id']}", "kind": "image",
                                               "image": {"b64": b64}, "k": 5})
            _show(f"photo query over HTTP ({status}): a {r['category']} photo ({r['product_id']})", reply)
            queries += 1
        r = rows[0]
        _show(f"similar to {r['product_id']} ({r['category']}), in stock, under 100",
              client.search({"kind": "similar", "product_id": r["product_id"], "k": 5,
                             "filters": {"in_stock": True, "price_max": 100}}))
        status, reply = http_search(http, {"request_id": "bad", "kind": "text", "k": 5})
        print(f"\na bad query gets an error reply ({status}): {reply['error']}")
        queries += 2
        client.close()
        index.close()
    figures = {
        "published": published, "indexed": indexed, "dlq": dlq, "queries": queries,
        "events_per_s": round(indexed / span, 2) if span > 0 else 0.0,
        "freshness_p50_s": round(float(np.percentile(fresh, 50)), 3),
        "freshness_p99_s": round(float(np.percentile(fresh, 99)), 3),
    }
    print(f"\nfreshness p50 {figures['freshness_p50_s']}s, p99 {figures['freshness_p99_s']}s; "
          f"{figures['events_per_s']} events/s (CPU, first batch includes model warm-up)")
    line = json.dumps(figures)
    if json_path:
        Path(json_path).write_text(line + "\n")
    print(line)
    return 0 if indexed + dlq == published else 1
