"""``vitrine demo``: the embedded stack end to end on the bundled CC0 sample catalogue.

Publishes every sample product (plus two poison events, to show the dead-letter path), waits until
each event is indexed or dead-lettered, runs photo, text, similar and complete-the-look queries over
Kafka and HTTP, prints the
results and the figures, and ends with one JSON line:
``{"published", "indexed", "dlq", "queries", "queries_ok", "queries_failed", "events_per_s",
"freshness_p50_s", "freshness_p99_s"}``. Freshness here is event time -> row written (``indexed_at``
in Milvus), per product.

Each reply is judged (``judge_reply``): a query counts in ``queries_ok`` only when its reply is ok, of
its kind, not empty, and answers it (a text query's top hit is in the category it names, a photo's
top hit is the product photographed, a ``similar`` reply leaves the product out and keeps to its
filters; a ``complete_look`` reply, ``judge_look``, answers every category it says it completes
with items of that category, under the filters, never the product itself); the bad query must get
its error reply. ``queries_failed`` lists the others with why; the
demo exits 1 when any query failed or an event was neither indexed nor dead-lettered.
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
#: The text queries over Kafka, each with the sample category its top hit must be in.
TEXT_QUERIES = {"black shoes": "shoes", "a summer dress": "dress", "warm winter jacket": "outerwear",
                "baseball cap": "hat"}


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


def sample_prices(rows: list[dict[str, str]]) -> dict[str, float]:
    """The price each sample product is published at (seeded: the same every run)."""
    rng = np.random.default_rng(7)
    return {r["product_id"]: float(rng.integers(10, 120)) for r in rows}


def publish_sample(bootstrap: str, topic: str, rows: list[dict[str, str]]) -> int:
    from streams.publisher import CatalogPublisher
    from vitrine_tools.publish import publish_rows

    pub = CatalogPublisher(bootstrap, topic).start()
    prices = sample_prices(rows)
    events = [(n, {"type": "upsert", "product_id": r["product_id"], "version": 1, "title": r["title"],
                   "description": f"{r['label']}, photographed at home", "brand": "sample",
                   "price": prices[r["product_id"]], "images": [f"file://{SAMPLE_DIR / r['image']}"],
                   "attributes": {"category": r["category"]}}) for n, r in enumerate(rows, 1)]
    summary = publish_rows(pub, events, topic=topic)  # the path of `vitrine publish`
    if summary.error or summary.refused:
        raise RuntimeError(f"publishing the sample failed: {summary.to_json()}")
    pub.send_raw("poison-json", b'{"schema_version": 1, "type": "upsert", "product_id": ')  # malformed JSON
    pub.upsert("poison-image", 1, title="missing photo", price=1.0, images=[f"file://{SAMPLE_DIR}/no-such.jpg"])
    pub.flush()
    pub.close()
    return len(rows) + 2


def judge_reply(status: int, reply: dict[str, Any], kind: str, *, top_category: str | None = None,
                top_product: str | None = None, excluded: str | None = None, filters: dict[str, Any] | None = None,
                error_code: str | None = None) -> str | None:
    """Why ``reply`` (HTTP ``status``; 200 for a Kafka reply) does not answer its ``kind`` query; None
    when it does. With ``error_code``, the query is a bad one: the right answer is that error reply."""
    if error_code is not None:
        got = (reply.get("error") or {}).get("code")
        if status != 400 or reply.get("ok") is not False or got != error_code:
            return f"expected the error reply {error_code!r} (400), got {status} ok={reply.get('ok')} error={got!r}"
        return None
    if status != 200 or not reply.get("ok"):
        return f"error reply ({status}): {reply.get('error')}"
    if reply.get("kind") != kind:
        return f"a reply of kind {reply.get('kind')!r} to a {kind!r} query"
    hits = reply.get("results") or []
    if not hits:
        return "no results"
    top = hits[0]
    if top_category is not None and top.get("category") != top_category:
        return f"top hit {top.get('product_id')} is {top.get('category')!r}, not {top_category!r}"
    if top_product is not None and top.get("product_id") != top_product:
        return f"top hit is {top.get('product_id')}, not the product photographed ({top_product})"
    if excluded is not None and any(h.get("product_id") == excluded for h in hits):
        return f"{excluded} is among the products similar to itself"
    for name, value in (filters or {}).items():
        if name == "price_max":
            wrong = [h["product_id"] for h in hits if not h.get("price", float("inf")) <= value]
        else:
            wrong = [h["product_id"] for h in hits if h.get(name) != value]
        if wrong:
            return f"hits outside the filter {name}={value!r}: {wrong}"
    return None


def judge_look(status: int, reply: dict[str, Any], *, excluded: str | None = None,
               filters: dict[str, Any] | None = None) -> str | None:
    """Why ``reply`` does not answer a ``complete_look`` query; None when it does: every wanted
    category answered with items of that category, under the filters, never the query product."""
    if status != 200 or not reply.get("ok"):
        return f"error reply ({status}): {reply.get('error')}"
    groups = reply.get("complements") or []
    if not groups or not any(g["results"] for g in groups):
        return "no complements"
    if [g["category"] for g in groups] != reply["look"]["categories"]:
        return "the groups are not the categories the look says it completes"
    for g in groups:
        wrong = [h["product_id"] for h in g["results"] if h.get("category") != g["category"]]
        if wrong:
            return f"{g['category']} complements of other categories: {wrong}"
        if g["results"]:
            why = judge_reply(200, {"ok": True, "kind": "complete_look", "results": g["results"]}, "complete_look",
                              excluded=excluded, filters=filters)
            if why:
                return f"{g['category']}: {why}"
    return None


def _show_look(title: str, reply: dict[str, Any]) -> None:
    print(f"\n{title}")
    if not reply.get("ok"):
        print(f"  error: {reply.get('error')}")
        return
    items = ", ".join(i.get("product_id", i["category"]) for i in reply["look"]["items"])
    print(f"  the look: {items}; completed with {', '.join(reply['look']['categories'])}")
    for g in reply["complements"]:
        best = "; ".join(f"{h['product_id']} {h['score']:.3f}" for h in g["results"][:3])
        print(f"  {g['category']:10s} {best}")


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
        judged: list[tuple[str, str | None]] = []  # (query, why its reply does not answer it; None: it does)

        def record(title: str, why: str | None) -> None:
            judged.append((title, why))
            print(f"  -> {'answers the query' if why is None else 'DOES NOT ANSWER THE QUERY: ' + why}")

        for text, category in TEXT_QUERIES.items():
            title = f"text query over Kafka: {text!r}"
            reply = client.search({"kind": "text", "text": text, "k": 5})
            _show(title, reply)
            record(title, judge_reply(200, reply, "text", top_category=category))
        http = stack.workers["query"].http
        for r in rows[:: max(len(rows) // 3, 1)][:3]:
            b64 = base64.b64encode((SAMPLE_DIR / r["image"]).read_bytes()).decode()
            status, reply = http_search(http, {"request_id": f"photo-{r['product_id']}", "kind": "image",
                                               "image": {"b64": b64}, "k": 5})
            title = f"photo query over HTTP ({status}): a {r['category']} photo ({r['product_id']})"
            _show(title, reply)
            record(title, judge_reply(status, reply, "image", top_product=r["product_id"]))
        filters = {"in_stock": True, "price_max": 100}
        # a product that passes the filters itself: only ``similar`` may leave it out of the reply
        prices = sample_prices(rows)
        r = next(r for r in rows if prices[r["product_id"]] <= filters["price_max"])
        title = f"similar to {r['product_id']} ({r['category']}), in stock, under 100"
        reply = client.search({"kind": "similar", "product_id": r["product_id"], "k": 5, "filters": filters})
        _show(title, reply)
        record(title, judge_reply(200, reply, "similar", excluded=r["product_id"], filters=filters))
        # complete the look: of a top over Kafka (in stock, under 100), of a photo over HTTP
        top = next((r for r in rows if r["category"] == "top" and prices[r["product_id"]] <= 100), rows[0])
        title = f"complete the look of {top['product_id']} ({top['category']}) over Kafka, in stock, under 100"
        reply = client.search({"kind": "complete_look", "product_id": top["product_id"], "k": 3, "filters": filters})
        _show_look(title, reply)
        record(title, judge_look(200, reply, excluded=top["product_id"], filters=filters))
        pants = next((r for r in rows if r["category"] == "pants"), rows[-1])
        b64 = base64.b64encode((SAMPLE_DIR / pants["image"]).read_bytes()).decode()
        status, reply = http_search(http, {"request_id": "look-photo", "kind": "complete_look", "image": {"b64": b64},
                                           "k": 3})
        title = f"complete the look of a {pants['category']} photo over HTTP ({status})"
        _show_look(title, reply)
        record(title, judge_look(status, reply))
        status, reply = http_search(http, {"request_id": "bad", "kind": "text", "k": 5})
        print(f"\na bad query gets an error reply ({status}): {reply.get('error')}")
        record("a bad query (no text) over HTTP", judge_reply(status, reply, "text", error_code="invalid_request"))
        client.close()
        index.close()
    figures = {
        "published": published, "indexed": indexed, "dlq": dlq, "queries": len(judged),
        "queries_ok": sum(why is None for _, why in judged),
        "queries_failed": [f"{title}: {why}" for title, why in judged if why is not None],
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
    return 0 if indexed + dlq == published and not figures["queries_failed"] else 1
