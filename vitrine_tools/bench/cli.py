"""``vitrine bench ingest|query|text|images|reindex|look``: benchmarks that print figures and write JSON (+ PNG) reports."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from vitrine_tools.paths import shared_data
from workers.settings import MODEL_DTYPES


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="ingest and query benchmarks")
    which = bench.add_subparsers(dest="bench", required=True)
    ing = which.add_parser("ingest", help="real pipeline vs naive pipeline vs model alone")
    ing.add_argument("--events", type=int, default=600)
    ing.add_argument("--data", default=str(shared_data()))
    ing.add_argument("--kafka", default=None,
                     help="bootstrap of a running broker (default: Apache Kafka from infra/kafka/libs, else tansu)")
    ing.add_argument("--device", default="cpu")
    ing.add_argument("--dtype", choices=MODEL_DTYPES, default="auto",
                     help="the backbone's dtype in every run (model alone, naive, workers); auto as the workers default")
    ing.add_argument("--rates", default="0.25,0.5,0.75,1.0",
                     help="fixed publish rates as fractions of the measured maximum (1.0 = paced at it)")
    ing.add_argument("--rate-seconds", type=float, default=20.0)
    ing.add_argument("--naive-events", type=int, default=60)
    ing.add_argument("--patches", type=int, default=3000)
    ing.add_argument("--work-dir", default=".vitrine/bench-ingest")
    ing.add_argument("--json", default="bench-ingest.json")
    ing.add_argument("--plot", default="bench-ingest.png")
    ing.set_defaults(func=_ingest)
    q = which.add_parser("query", help="filtered vector search latency and recall at scale")
    q.add_argument("--milvus-uri", default=None, help="a running Milvus (default: start a Milvus Lite server)")
    q.add_argument("--sizes", default="10000,100000", help="comma-separated item counts, e.g. 10000,100000,1000000")
    q.add_argument("--dim", type=int, default=256)
    q.add_argument("--queries", type=int, default=200)
    q.add_argument("--index-type", default="HNSW")
    q.add_argument("--partition-key", action="store_true", help="category as the partition key")
    q.add_argument("--efs", default="16,32,64,128,256,512,1024", help="HNSW ef values to sweep")
    q.add_argument("--m", type=int, default=16, help="HNSW M")
    q.add_argument("--index-types", default=None,
                   help="compare index types on the same vectors instead of the ef sweep, e.g. "
                        "HNSW,IVF_SQ8,HNSW_SQ,HNSW_PQ,IVF_RABITQ,BIN_IVF_FLAT: recall@10 vs exact, p50/p99, memory "
                        "per 1M vectors; unsupported types are reported, not fatal. Without --milvus-uri each "
                        "type gets a Milvus Lite server of its own (so its RSS is that type's)")
    q.add_argument("--rerank", default="100,1000",
                   help="with --index-types: binary (BIN_*) candidates re-ranked by the float vectors, comma list "
                        "of candidate counts ('' for none)")
    q.add_argument("--server-data-dir", default=None,
                   help="with --index-types and --milvus-uri: the server's data dir, to measure its index files")
    q.add_argument("--json", default="bench-query.json")
    q.add_argument("--plot", default="bench-query.png")
    q.set_defaults(func=_query)
    tq = which.add_parser("text", help="hybrid (BM25 + dense) against dense-only text search latency at scale")
    tq.add_argument("--milvus-uri", default=None, help="a running Milvus 2.5+ (default: start a Milvus Lite server)")
    tq.add_argument("--items", type=int, default=100_000)
    tq.add_argument("--queries", type=int, default=200)
    tq.add_argument("--json", default="bench-text.json")
    tq.set_defaults(func=_text)
    im = which.add_parser("images", help="every image of a product against one image per product: rows, writes, search")
    im.add_argument("--products", type=int, default=20_000)
    im.add_argument("--images", type=int, default=3, help="images per product in the second collection")
    im.add_argument("--queries", type=int, default=200)
    im.add_argument("--milvus-uri", help="a running Milvus (default: start a Milvus Lite server)")
    im.add_argument("--json", default="bench-images.json")
    im.set_defaults(func=_images)
    lk = which.add_parser("look", help="complete_look latency at scale against a similar query, same run")
    lk.add_argument("--milvus-uri", default=None, help="a running Milvus 2.4+ (default: start a Milvus Lite server)")
    lk.add_argument("--items", type=int, default=100_000)
    lk.add_argument("--queries", type=int, default=200)
    lk.add_argument("--k", type=int, default=10, help="items per category")
    lk.add_argument("--json", default="bench-look.json")
    lk.set_defaults(func=_look)
    rx = which.add_parser("reindex", help="vitrine reindex build from the feature log: rate, catch-up, canary")
    rx.add_argument("--records", type=int, default=20_000)
    rx.add_argument("--index-type", default="IVF_SQ8", help="the first rebuild's index type")
    rx.add_argument("--live-rate", type=float, default=50.0, help="live records/s during the second rebuild")
    rx.add_argument("--probes", type=int, default=200)
    rx.add_argument("--json", default="bench-reindex.json")
    rx.set_defaults(func=_reindex)


def _ingest(args: argparse.Namespace) -> int:
    from vitrine_tools.bench import ingest
    from vitrine_tools.devstack.services import KAFKA_LIBS_DIR, ServiceStartError, start_kafka

    data = Path(args.data)
    broker, kafka = None, args.kafka
    if kafka is None:
        import shutil

        shutil.rmtree(args.work_dir + "-kafka", ignore_errors=True)  # a fresh broker for every run
        try:  # tansu holds fetches for their full max wait: it would measure tansu, not vitrine
            broker = start_kafka(Path(args.work_dir + "-kafka"))
            kafka = broker.address
            print(f"broker: Apache Kafka from {KAFKA_LIBS_DIR} at {kafka}")
        except ServiceStartError as exc:
            print(f"broker: tansu (no Apache Kafka: {exc}); freshness then includes tansu's fetch wait")
    try:
        report = ingest.run(events=args.events, data_dir=data if data.is_dir() else None,
                            work_dir=Path(args.work_dir), kafka=kafka, device=args.device, dtype=args.dtype,
                            rates=tuple(float(r) for r in args.rates.split(",")),
                            rate_seconds=args.rate_seconds, naive_events=args.naive_events, patches=args.patches,
                            kafka_pid=broker.pid if broker else None)
    finally:
        if broker is not None:
            broker.stop()
    report["broker"] = "apache-kafka" if broker or args.kafka else "tansu"
    Path(args.json).write_text(json.dumps(report, indent=1))
    ingest.plot(report, Path(args.plot))
    print(json.dumps(report["summary"]))
    return 0


@contextlib.contextmanager
def _milvus(uri: str | None) -> Iterator[str]:
    """``uri``, or a Milvus Lite server started for the run and stopped after it."""
    if uri is not None:
        yield uri
        return
    import tempfile

    from vitrine_tools.devstack.services import start_milvus_lite

    svc = start_milvus_lite(Path(tempfile.mkdtemp(prefix="bench-milvus-")))
    try:
        yield svc.address
    finally:
        svc.stop()


def _lite_port(lo: int = 21000, hi: int = 22000) -> int | None:
    """A free loopback port in [lo, hi) for a per-index-type Milvus Lite server (None: let it pick)."""
    import random
    import socket

    for port in random.sample(range(lo, hi), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return None


def _index_servers(uri: str | None, data_dir: str | None) -> Callable[[str], contextlib.AbstractContextManager]:
    """The server each index type is measured on: ``uri`` (shared; its pid found by its port), or a
    fresh Milvus Lite server per type, stopped after it."""
    from vitrine_tools.bench import query

    if uri is not None:
        shared = query.Server(uri, pid=query.listening_pid(uri), data_dir=Path(data_dir) if data_dir else None)

        @contextlib.contextmanager
        def same(_index_type: str) -> Iterator[query.Server]:
            yield shared

        return same

    @contextlib.contextmanager
    def fresh(index_type: str) -> Iterator[query.Server]:
        import shutil
        import tempfile

        from vitrine_tools.devstack.services import start_milvus_lite

        work = Path(tempfile.mkdtemp(prefix=f"bench-milvus-{index_type.lower()}-"))
        svc = start_milvus_lite(work, port=_lite_port())
        try:
            yield query.Server(svc.address, pid=svc.pid, data_dir=work / "db", fresh=True)
        finally:
            svc.stop()
            shutil.rmtree(work, ignore_errors=True)

    return fresh


def _query(args: argparse.Namespace) -> int:
    from vitrine_tools.bench import query

    if args.index_types:
        types = tuple(t.strip().upper() for t in args.index_types.split(",") if t.strip())
        report = query.compare_indexes(_index_servers(args.milvus_uri, args.server_data_dir),
                                       tuple(int(s) for s in args.sizes.split(",")), types, dim=args.dim,
                                       queries=args.queries, m=args.m,
                                       rerank=tuple(int(r) for r in args.rerank.split(",") if r.strip()))
        Path(args.json).write_text(json.dumps(report, indent=1))
        query.plot_compare(report, Path(args.plot))
        return 0
    with _milvus(args.milvus_uri) as uri:
        report = query.run(uri, tuple(int(s) for s in args.sizes.split(",")), dim=args.dim, queries=args.queries,
                           index_type=args.index_type, partition_key=args.partition_key,
                           efs=tuple(int(e) for e in args.efs.split(",")),
                           params={"M": args.m, "efConstruction": 200} if args.index_type == "HNSW" else {})
    Path(args.json).write_text(json.dumps(report, indent=1))
    query.plot(report, Path(args.plot))
    return 0


def _images(args: argparse.Namespace) -> int:
    from vitrine_tools.bench import image_rows

    with _milvus(args.milvus_uri) as uri:
        report = image_rows.run(uri, args.products, args.images, args.queries)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0


def _reindex(args: argparse.Namespace) -> int:
    from vitrine_tools.bench import reindex

    return reindex.main(["--records", str(args.records), "--index-type", args.index_type, "--live-rate",
                         str(args.live_rate), "--probes", str(args.probes), "--json", args.json])


def _on_milvus(args: argparse.Namespace, run: Callable[[str], dict]) -> int:
    """``run(uri)`` on ``--milvus-uri`` or a Milvus Lite server of its own; the report printed and written."""
    with _milvus(args.milvus_uri) as uri:
        report = run(uri)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0


def _text(args: argparse.Namespace) -> int:
    from vitrine_tools.bench import text_query

    return _on_milvus(args, lambda uri: text_query.run(uri, args.items, args.queries))


def _look(args: argparse.Namespace) -> int:
    from vitrine_tools.bench import look

    return _on_milvus(args, lambda uri: look.run(uri, args.items, args.queries, args.k))
