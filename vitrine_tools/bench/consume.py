"""How fast can one process consume ``catalog.events``: Faust's per-message stream against a batch read.

``python -m vitrine_tools.bench.consume --bootstrap B --topic T --events N --mode M`` consumes N records
already on ``topic`` from the earliest offset in a fresh consumer group and prints one JSON line
with ``events_per_s`` (first record to the N-th):
  - ``faust``: a Faust agent built by ``workers.runtime.faust_app.make_app`` (the workers' settings) that only
    acknowledges each event: the ceiling of any per-message Faust agent on this machine;
  - ``faust-triage``: the same agent also validating and triaging each event as the ingest agent
    does (``workers.ingest.pipeline.triage``), without the pipeline and the producer;
  - ``aiokafka``: ``AIOKafkaConsumer.getmany`` in batches of up to 5,000 and a commit per batch,
    the read path below Faust;
  - ``source`` / ``source-triage``: ``streams.source.BatchSource`` (what the ingest and index workers
    read with: acknowledged-prefix commits every 0.5 s), acknowledging each record at once, or after
    validating and triaging it as the ingest worker does.
Says where the patch ceiling is; not a worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path


def _report(mode: str, n: int, t0: float, t1: float) -> None:
    print(json.dumps({"mode": mode, "events": n, "seconds": round(t1 - t0, 3),
                      "events_per_s": round((n - 1) / (t1 - t0), 1) if t1 > t0 else None}), flush=True)


def run_faust(bootstrap: str, topic: str, n: int, triage_events: bool, work_dir: Path) -> None:
    from streams.codecs import SourceRef
    from vitrine_tools.devstack.services import free_port
    from workers.ingest.pipeline import Work, triage
    from workers.runtime.faust_app import make_app

    app = make_app(f"bench-consume-{uuid.uuid4().hex[:8]}", bootstrap, web_port=free_port(), data_dir=work_dir)
    src = app.topic(topic)
    seen = {"n": 0, "t0": 0.0}
    versions: dict[str, int] = {}

    @app.agent(src)
    async def consume(stream):  # type: ignore[no-untyped-def]
        async for event in stream.noack().events():
            if seen["n"] == 0:
                seen["t0"] = time.perf_counter()
            if triage_events:
                msg = event.message
                triage(Work(raw=msg.value or b"", source=SourceRef(msg.topic, msg.partition, msg.offset),
                            key=None, ack=event.ack), versions)
            event.ack()
            seen["n"] += 1
            if seen["n"] >= n:
                _report("faust-triage" if triage_events else "faust", n, seen["t0"], time.perf_counter())
                sys.stdout.flush()
                os._exit(0)

    from faust import Worker

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


async def run_aiokafka(bootstrap: str, topic: str, n: int) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-consume-{uuid.uuid4().hex[:8]}",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        got, t0 = 0, 0.0
        while got < n:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                if records and got == 0:
                    t0 = time.perf_counter()
                got += len(records)
            if batches:
                await consumer.commit()
        _report("aiokafka", n, t0, time.perf_counter())
    finally:
        await consumer.stop()


async def run_source(bootstrap: str, topic: str, n: int, triage_events: bool) -> None:
    from streams.source import BatchSource, Record
    from workers.ingest.pipeline import RecentDeletes, Work, triage

    seen = {"n": 0, "t0": 0.0}
    done = asyncio.Event()
    deletes = RecentDeletes()

    async def handle(rec: Record) -> None:
        if seen["n"] == 0:
            seen["t0"] = time.perf_counter()
        if triage_events:
            triage(Work.of(rec), deletes)  # as the ingest worker's handler does
        rec.ack()
        seen["n"] += 1
        if seen["n"] >= n:
            done.set()

    source = BatchSource(topic, bootstrap, f"bench-consume-{uuid.uuid4().hex[:8]}", handle)
    await source.start()
    reader = asyncio.ensure_future(source.read_loop())
    try:
        await done.wait()
        _report("source-triage" if triage_events else "source", n, seen["t0"], time.perf_counter())
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await source.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--mode", choices=["faust", "faust-triage", "aiokafka", "source", "source-triage"], required=True)
    p.add_argument("--work-dir", default=".vitrine/bench-consume")
    a = p.parse_args(argv)
    if a.mode == "aiokafka":
        asyncio.run(run_aiokafka(a.bootstrap, a.topic, a.events))
    elif a.mode.startswith("source"):
        asyncio.run(run_source(a.bootstrap, a.topic, a.events, a.mode == "source-triage"))
    else:
        sys.argv = [sys.argv[0], "worker"]  # Faust's Worker reads its own command line
        run_faust(a.bootstrap, a.topic, a.events, a.mode == "faust-triage", Path(a.work_dir))


if __name__ == "__main__":
    main()
