"""The ingest pipeline acknowledges events in offset order, whatever their outcome.

Found by the chaos run: superseded and invalid events were acknowledged at once, ahead of upserts
still in the model. Faust's consumer, which read the events then, committed past one unacknowledged
offset, so it committed past an upsert in flight, and a SIGKILL lost it: the delete that followed it
never reached the index. The workers now read with ``streams.source.BatchSource``, which commits only
a partition's acknowledged prefix: the first test checks that, on the tracker the workers' acks reach;
the others that every event, whatever it becomes, is acknowledged in offset order, and only after the
emit stage handed it out.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from streams.codecs import SourceRef
from tests.workers.pipeline_run import run_pipeline
from workers.fetch import FetchPolicy, ImageFetcher
from workers.ingest.pipeline import IngestPipeline, Work, triage
from workers.vision.fakes import fake_pipeline


def test_the_source_commits_only_past_acknowledged_offsets() -> None:
    """What Faust's ``Consumer._new_offset`` got wrong (offset 10 in flight, 11 and 12 acknowledged:
    it committed 13), on what the workers use now: ``BatchSource``'s partition tracker, acknowledged
    through the ``Work`` the ingest worker makes of each record."""
    from streams.source import Record, _Partition

    part = _Partition(10)
    works = [Work.of(Record("events", 0, o, None, b"{}", part.add(o))) for o in (10, 11, 12)]
    works[1].ack()
    works[2].ack()
    assert part.committable() == 10  # not past offset 10, still in flight
    works[0].ack()
    assert part.committable() == 13


def _jpeg(path: Path) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 48, 3), 120, np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return f"file://{path}"


def _run_checking_acks(root: Path, raws: list[Any], emit: Callable[[Any], Awaitable[None]], handed: set[int], *,
                       vision: Any, versions: dict[str, int], timeout_s: float = 30, **options: Any) -> list[tuple[int, bool]]:
    """Like ``run_pipeline``, but each acknowledgement records whether ``emit`` had handed its event
    out (``handed``) before it: an event acknowledged ahead of its turn shows, whatever the timing."""
    acks: list[tuple[int, bool]] = []

    async def main() -> None:
        all_acked = asyncio.Event()

        def ack(offset: int) -> None:
            acks.append((offset, offset in handed))
            if len(acks) == len(raws):
                all_acked.set()

        fetcher = ImageFetcher(FetchPolicy(allow_file=True, file_root=root))
        await fetcher.start()
        pipeline = IngestPipeline(vision, fetcher, emit, **options)
        pipeline.start()
        try:
            for offset, doc in enumerate(raws):
                raw = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
                await pipeline.put(triage(Work(raw, SourceRef("events", 0, offset), None,
                                               lambda o=offset: ack(o)), versions))
            await asyncio.wait_for(all_acked.wait(), timeout_s)
        finally:
            await pipeline.stop()
            await fetcher.close()

    asyncio.run(main())
    return acks


def test_every_outcome_is_acknowledged_in_offset_order(tmp_path: Path) -> None:
    uri = _jpeg(tmp_path / "a.jpg")
    upsert = {"schema_version": 1, "occurred_at": 1.0, "type": "upsert", "title": "t", "price": 1.0, "images": [uri]}
    raws = [
        {**upsert, "product_id": "a", "version": 5},
        {**upsert, "product_id": "b", "version": 1},
        {"schema_version": 1, "occurred_at": 1.0, "type": "patch", "product_id": "a", "version": 6, "fields": {"price": 2.0}},
        {"schema_version": 1, "occurred_at": 1.0, "type": "delete", "product_id": "b", "version": 2},
        {**upsert, "product_id": "b", "version": 1},  # replayed after the delete: superseded, nothing to emit
        "not json",  # invalid: to the DLQ
    ]
    emitted: list[tuple[int, str]] = []
    handed: set[int] = set()
    versions: dict[str, int] = {}

    async def emit(out: Any) -> None:
        for work, rec in out:
            kind = "dlq" if work.error else "skip" if work.skip else rec.op
            emitted.append((work.source.offset, kind))
            handed.add(work.source.offset)
            work.ack()

    acks = _run_checking_acks(tmp_path, raws, emit, handed, vision=fake_pipeline(), versions=versions,
                              max_batch=2, max_wait_s=0.005)
    # every acknowledgement in offset order, each only once the emit stage had handed its event out
    assert acks == [(offset, True) for offset in range(len(raws))]
    assert emitted == [(0, "upsert"), (1, "upsert"), (2, "patch"), (3, "delete"), (4, "skip"), (5, "dlq")]
    assert versions == {"b": 2}  # only deletes are remembered (see workers.ingest.pipeline.triage)


class _FirstBatchWaitsForTheSecond:
    """The fake models, but the first call returns only once the second one has: with two model
    workers the second batch finishes first (``overlapped``), without the timing of a sleep."""

    def __init__(self) -> None:
        self._vision = fake_pipeline()
        self.calls = 0
        self.finished: list[int] = []  # call numbers, in the order the calls returned
        self.overlapped: bool | None = None  # whether the second call finished while the first waited
        self._second_done = threading.Event()
        self._lock = threading.Lock()

    def analyse(self, images: Any) -> Any:
        with self._lock:
            self.calls += 1
            call = self.calls
        if call == 1:  # bounded: a pipeline that never runs two batches at once fails, does not hang
            self.overlapped = self._second_done.wait(timeout=10)
        out = self._vision.analyse(images)
        with self._lock:
            self.finished.append(call)
        if call == 2:
            self._second_done.set()
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vision, name)


def test_two_model_workers_emit_and_acknowledge_in_formation_order(tmp_path: Path) -> None:
    """Batch 2 leaves the model before batch 1; it is still emitted and acknowledged after it."""
    uri = _jpeg(tmp_path / "a.jpg")
    upsert = {"schema_version": 1, "occurred_at": 1.0, "type": "upsert", "title": "t", "price": 1.0, "images": [uri]}
    emitted: list[int] = []
    vision = _FirstBatchWaitsForTheSecond()

    async def emit(out: Any) -> None:
        for work, _ in out:
            emitted.append(work.source.offset)
            work.ack()

    raws = [{**upsert, "product_id": f"p{offset}", "version": 1} for offset in range(6)]
    acked = run_pipeline(tmp_path, raws, emit, vision=vision, max_batch=2, max_wait_s=0.005, model_workers=2,
                         timeout_s=30)
    assert vision.overlapped and vision.finished[0] == 2  # a later batch left the model first
    assert emitted == acked == list(range(6))


def test_recent_deletes_keeps_the_newest_deletes_up_to_its_capacity() -> None:
    from workers.ingest.pipeline import RecentDeletes

    deletes = RecentDeletes(capacity=3)
    for pid, version in (("a", 1), ("b", 1), ("c", 1), ("a", 2), ("d", 1)):
        deletes[pid] = version
    assert deletes == {"c": 1, "a": 2, "d": 1}  # "b" was the oldest delete; "a" was deleted again since
