"""The index writer while Milvus is away: it acknowledges nothing it has not written, retries with
capped backoff, and after its retry budget gives up (the process exits 75 and is restarted) with
the batch still unacknowledged, so the restart replays it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from indexer.exceptions import IndexUnavailable
from indexer.guard import INDEXED, Outcome
from streams.codecs import IndexRecord, SourceRef, encode_record
from workers.dlq import Delivery
from workers.index.writer import IndexWriter


class FlakyIndex:
    """Fails ``failures`` times, recording whether anything was acknowledged meanwhile."""

    def __init__(self, failures: int, acks: list[int]) -> None:
        self.failures = failures
        self.acks = acks
        self.acked_during_outage = False
        self.calls = 0
        self.reconnects = 0
        self.read_misses = 0

    def apply(self, records: list[IndexRecord]) -> list[Outcome]:
        self.calls += 1
        if self.calls <= self.failures:
            self.acked_during_outage |= bool(self.acks)
            raise IndexUnavailable("Milvus upsert failed: connection refused")
        return [Outcome(r, INDEXED) for r in records]

    def close(self) -> None:
        pass

    def start(self, **_: Any) -> FlakyIndex:
        self.reconnects += 1
        return self

    def flush(self) -> None:
        pass


def items(n: int, acks: list[int]) -> list[Delivery]:
    out = []
    for i in range(n):
        rec = IndexRecord("upsert", f"p{i}", 1, 1.0, {"title": "t", "price": 1.0}, {"image_vec": np.ones(4, np.float32)},
                          "m", SourceRef("e", 0, i))
        out.append(Delivery(encode_record(rec), SourceRef("x.index.enriched", 0, i), f"p{i}", lambda i=i: acks.append(i)))
    return out


async def _no_dead_letters(*_: Any) -> None:
    raise AssertionError("nothing here should be dead-lettered")


def test_outage_acknowledges_nothing_until_written_then_everything():
    acks: list[int] = []
    index = FlakyIndex(failures=4, acks=acks)
    writer = IndexWriter(index, _no_dead_letters, max_backoff_s=0.05, retry_budget_s=30)  # type: ignore[arg-type]
    asyncio.run(writer.write(items(5, acks)))
    assert index.calls == 5 and index.reconnects == 4
    assert not index.acked_during_outage
    assert acks == [0, 1, 2, 3, 4]


def test_after_the_retry_budget_the_writer_gives_up_unacknowledged():
    acks: list[int] = []
    given_up: list[BaseException] = []
    index = FlakyIndex(failures=10**9, acks=acks)
    writer = IndexWriter(index, _no_dead_letters, max_backoff_s=0.05, retry_budget_s=0.5,  # type: ignore[arg-type]
                         on_give_up=given_up.append)

    async def main() -> None:
        writer.start()
        for it in items(3, acks):
            await writer.put(it)
        await asyncio.wait_for(asyncio.gather(*writer._tasks[:1]), 10)

    with pytest.raises(IndexUnavailable):
        asyncio.run(main())
    assert len(given_up) == 1 and isinstance(given_up[0], IndexUnavailable)
    assert acks == [] and index.calls > 2


def test_flushes_follow_the_rows_written_not_the_clock():
    """A flush holds writes back, so it runs after ``flush_rows`` records, or ``flush_interval_s``
    after the last one when fewer were written; never while nothing was."""
    index = FlakyIndex(0, [])
    flushes: list[float] = []
    index.flush = lambda: flushes.append(time.monotonic())  # type: ignore[attr-defined]

    async def main() -> tuple[int, int, int]:
        writer = IndexWriter(index, _no_dead_letters, flush_rows=5, flush_interval_s=1.0)  # type: ignore[arg-type]
        writer.start()
        try:
            await writer.write(items(4, []))
            await asyncio.sleep(0.6)
            below = len(flushes)  # 4 < 5 rows and under a second: no flush yet
            await writer.write(items(2, []))
            await asyncio.sleep(0.6)
            at_rows = len(flushes)  # 6 >= 5 rows: flushed
            await writer.write(items(1, []))
            await asyncio.sleep(1.6)
            after_interval = len(flushes)  # 1 row, a second later: flushed; then nothing more to flush
            return below, at_rows, after_interval
        finally:
            await writer.stop()

    assert asyncio.run(main()) == (0, 1, 2)
