"""``vitrine bench reindex``: what a rebuild from the feature log costs, on the real Apache Kafka
(``infra/kafka/libs``) and the Milvus Lite server.

1. ``--records`` synthetic products in the production dimensions (the trained models' 256 / 64 / 384)
   go to a model's feature log and, as the index workers would write them, into the live collection
   (HNSW, the default layout); then a tenth of them patched and 2% deleted.
2. ``vitrine reindex build --from features`` into another layout (``--index-type``), alone: the
   build rate in records/s.
3. The same into a third layout while ``--live-rate`` new records/s keep arriving (written to the
   live collection too): the time until the build has caught up.
4. The canary of each new collection against the live one: overlap@10, recall@10 against exact
   search, p50/p99 latency of each.

Prints one JSON document (and writes it with ``--json``). The ``--from catalog`` path's rate is the
ingest pipeline's (``vitrine bench ingest``): its models are the bottleneck, not the rebuild.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

DIMS = {"image_vec": 256, "colour_vec": 64, "text_vec": 384}
CATEGORIES = ("tshirt", "shirt", "dress", "pants", "shoes", "bag", "skirt", "outerwear")


def _records(start: int, n: int, model: str, rng: np.random.Generator, version: int = 1) -> list[Any]:
    from streams.codecs import IndexRecord

    centres = {k: rng.standard_normal((32, d)).astype(np.float32) for k, d in DIMS.items()}
    out = []
    for i in range(start, start + n):
        c = int(rng.integers(32))
        vecs = {}
        for k, d in DIMS.items():
            v = centres[k][c] + 0.5 * rng.standard_normal(d).astype(np.float32)
            vecs[k] = v / np.linalg.norm(v)
        fields = {"title": f"product {i}", "category": CATEGORIES[i % len(CATEGORIES)], "price": float(i % 200),
                  "in_stock": True, "image_uri": f"s3://bench/{i}.jpg"}
        out.append(IndexRecord("upsert", f"b{i:07d}", version, time.time(), fields, vecs, model))
    return out


def run(records: int = 20_000, index_type: str = "IVF_SQ8", live_rate: float = 50.0, probes: int = 200,
        data_dir: Path | None = None) -> dict[str, Any]:
    from kafka import KafkaProducer

    from indexer.schema import IndexLayout
    from indexer.store import ProductIndex, connect
    from streams.admin import ensure_topics
    from streams.codecs import IndexRecord, encode_record
    from vitrine_tools import reindex
    from vitrine_tools.devstack import services
    from workers.settings import Settings

    root = data_dir or Path(tempfile.mkdtemp(prefix="bench-reindex-"))
    kafka = services.start_kafka(root / "kafka")
    milvus = services.start_milvus_lite(root / "milvus")
    report: dict[str, Any] = {"records": records, "dims": DIMS, "live_rate": live_rate}
    try:
        alias = f"br_{uuid.uuid4().hex[:6]}"
        model = "bench-model@1"
        settings = Settings(kafka_bootstrap=kafka.address, milvus_uri=milvus.address, partitions=4,
                            topic_prefix=f"br{uuid.uuid4().hex[:6]}", collection_alias=alias)
        live_layout = IndexLayout(model, DIMS, alias=alias)
        topics = settings.topics.for_model(live_layout.model_key)
        ensure_topics(kafka.address, topics)
        live = ProductIndex(milvus.address, live_layout).start(create=True)
        producer = KafkaProducer(bootstrap_servers=kafka.address, acks="all", linger_ms=20,
                                 max_request_size=4_000_000)
        rng = np.random.default_rng(0)
        lock = threading.Lock()

        def publish(batch: list[IndexRecord]) -> None:
            for r in batch:
                producer.send(topics.enriched, key=r.product_id.encode(), value=encode_record(r))
            producer.flush()
            with lock:
                live.apply(batch)

        t0 = time.perf_counter()
        for start in range(0, records, 500):
            publish(_records(start, min(500, records - start), model, rng))
        patches = [IndexRecord("patch", f"b{i:07d}", 2, time.time(), {"price": 1.0}, {}, model)
                   for i in range(0, records, 10)]
        deletes = [IndexRecord("delete", f"b{i:07d}", 3, time.time(), {}, {}, model) for i in range(5, records, 50)]
        for part in (patches, deletes):
            for start in range(0, len(part), 500):
                publish(part[start:start + 500])
        live.flush()
        log_records = records + len(patches) + len(deletes)
        report["feature_log_records"] = log_records
        report["live_fill_s"] = round(time.perf_counter() - t0, 1)

        def build(layout: IndexLayout, label: str, then: Any = None) -> dict[str, Any]:
            t = time.perf_counter()
            b = reindex.Builder(settings, layout, report_every_s=0.5, out=lambda _doc: None).run()
            wall = round(time.perf_counter() - t, 1)
            if then is not None:
                then()  # the live load stops: the canary compares two collections at rest
            client = connect(milvus.address)
            try:
                client.flush(layout.collection)
                canary = reindex.canary(client, alias, layout.collection, probes=probes,
                                        lag=reindex.lag_of(kafka.address, layout.collection, alias, settings.topics))
            finally:
                client.close()
            canary.pop("thresholds", None)
            return {"label": label, "collection": layout.collection, "replay_events": b.replay_events,
                    "replay_s": b.replay_s, "events_per_s": b.events_per_s, "catch_up_s": b.catch_up_s,
                    "wall_s": wall, "canary": canary}

        alone = IndexLayout(model, DIMS, alias=alias, index_type=index_type)
        report["alone"] = build(alone, f"{index_type}, no live load")

        stop = threading.Event()
        live_sent = [0]

        def live_load() -> None:
            n = records
            while not stop.is_set():
                t = time.perf_counter()
                batch = _records(n, max(1, int(live_rate)), model, rng)
                publish(batch)
                n += len(batch)
                live_sent[0] += len(batch)
                stop.wait(max(0.0, 1.0 - (time.perf_counter() - t)))

        loader = threading.Thread(target=live_load, daemon=True)

        def stop_load() -> None:
            stop.set()
            loader.join(60)
            b = reindex.Builder(settings, under, report_every_s=0.5, out=lambda _doc: None)
            b.run()  # what arrived between the catch-up and the stop (the writers would keep following)

        loader.start()
        under = IndexLayout(model, DIMS, alias=alias, index_params={"M": 8, "efConstruction": 100})
        try:
            report["under_load"] = build(under, f"HNSW M=8, {live_rate:.0f} live records/s", stop_load)
        finally:
            stop.set()
            loader.join(60)
        report["under_load"]["live_records_sent"] = live_sent[0]
        producer.close()
        live.close()
    finally:
        milvus.stop()
        kafka.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vitrine bench reindex", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--index-type", default="IVF_SQ8", help="the first rebuild's index type")
    p.add_argument("--live-rate", type=float, default=50.0, help="live records/s during the second rebuild")
    p.add_argument("--probes", type=int, default=200)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    report = run(args.records, args.index_type, args.live_rate, args.probes)
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
