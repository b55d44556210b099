"""The ingest pipeline acknowledges events in offset order, whatever their outcome.

Found by the chaos run: superseded and invalid events were acknowledged at once, ahead of upserts
still in the model. Faust (``Consumer._new_offset``) commits the first run of consecutive
acknowledged offsets and lets one unacknowledged offset before it pass (and checks nothing before a
partition's first commit), so it committed past an upsert in flight, and a SIGKILL lost it: the
delete that followed it never reached the index. The first test shows that Faust behaviour (it
fails if a faust-streaming upgrade fixes it, and the note can go); the second that every event,
whatever it becomes, is acknowledged in offset order.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from tests.workers.pipeline_run import run_pipeline
from workers.vision.fakes import fake_pipeline


def test_faust_commits_past_one_unacknowledged_offset() -> None:
    from faust.transport.consumer import Consumer
    from faust.types import TP

    tp = TP("events", 0)
    # only the offset bookkeeping that _new_offset reads; offset 10, the next to read, is in flight
    state = SimpleNamespace(_acked={tp: [11, 12]}, _acked_index={tp: {11, 12}}, _gap={tp: None},
                            _committed_offset={tp: 10})
    assert Consumer._new_offset(state, tp) == 13  # type: ignore[arg-type]  # commits past offset 10


def _jpeg(path: Path) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 48, 3), 120, np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return f"file://{path}"


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
    acked: list[int] = []
    emitted: list[tuple[int, str]] = []
    versions: dict[str, int] = {}

    async def emit(out: Any) -> None:
        await asyncio.sleep(0.01)
        for work, rec in out:
            kind = "dlq" if work.error else "skip" if work.skip else rec.op
            emitted.append((work.source.offset, kind))
            work.ack()

    acked = run_pipeline(tmp_path, raws, emit, vision=fake_pipeline(), versions=versions,
                         max_batch=2, max_wait_s=0.005)
    assert acked == list(range(len(raws)))
    assert emitted == [(0, "upsert"), (1, "upsert"), (2, "patch"), (3, "delete"), (4, "skip"), (5, "dlq")]
    assert versions == {"b": 2}  # only deletes are remembered (see workers.ingest.pipeline.triage)


class _SlowFirstBatch:
    """The fake models, but the first batch takes 0.3 s: with two model workers it finishes last."""

    def __init__(self) -> None:
        self._vision = fake_pipeline()
        self.calls = 0
        self.finished: list[int] = []  # call numbers, in the order the calls returned

    def analyse(self, images: Any) -> Any:
        import time

        self.calls += 1
        call = self.calls
        if call == 1:
            time.sleep(0.3)
        out = self._vision.analyse(images)
        self.finished.append(call)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vision, name)


def test_two_model_workers_emit_and_acknowledge_in_formation_order(tmp_path: Path) -> None:
    """Batch 2 leaves the model before batch 1; it is still emitted and acknowledged after it."""
    uri = _jpeg(tmp_path / "a.jpg")
    upsert = {"schema_version": 1, "occurred_at": 1.0, "type": "upsert", "title": "t", "price": 1.0, "images": [uri]}
    emitted: list[int] = []
    vision = _SlowFirstBatch()

    async def emit(out: Any) -> None:
        for work, _ in out:
            emitted.append(work.source.offset)
            work.ack()

    raws = [{**upsert, "product_id": f"p{offset}", "version": 1} for offset in range(6)]
    acked = run_pipeline(tmp_path, raws, emit, vision=vision, max_batch=2, max_wait_s=0.005, model_workers=2)
    assert vision.finished[0] != 1  # the batches overlapped in the model: a later one finished first
    assert emitted == acked == list(range(6))


def test_recent_deletes_keeps_the_newest_deletes_up_to_its_capacity() -> None:
    from workers.ingest.pipeline import RecentDeletes

    deletes = RecentDeletes(capacity=3)
    for pid, version in (("a", 1), ("b", 1), ("c", 1), ("a", 2), ("d", 1)):
        deletes[pid] = version
    assert deletes == {"c": 1, "a": 2, "d": 1}  # "b" was the oldest delete; "a" was deleted again since
