"""The index writer while Milvus is away: it acknowledges nothing it has not written, retries with
capped backoff, and after its retry budget gives up (the process exits 75 and is restarted) with
the batch still unacknowledged, so the restart replays it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from indexer.exceptions import IndexUnavailable
from indexer.guard import INDEXED, Outcome
from streams.codecs import IndexRecord, SourceRef, encode_record
from workers.dlq import Delivery
from workers.index import writer as writer_module
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


class _TickCountingWriter(IndexWriter):
    """The writer, counting its flush loop's decisions: each one reads ``_flush_rows`` once (the write
    path never does), so a test can wait for the loop to have looked instead of sleeping."""

    ticks = 0

    @property  # type: ignore[override]
    def _flush_rows(self) -> int:
        self.ticks += 1
        return self._rows

    @_flush_rows.setter
    def _flush_rows(self, value: int) -> None:
        self._rows = value


class _Clock:
    """The writer's monotonic clock, moved by the test (asyncio keeps the real one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def _until(cond: Callable[[], Any], what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_flushes_follow_the_rows_written_not_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush holds writes back, so it runs after ``flush_rows`` records, or ``flush_interval_s``
    after the last one when fewer were written; never while nothing was. The writer's clock is the
    test's, and each "no flush" is checked after the flush loop decided twice since the last step."""
    clock = _Clock()
    monkeypatch.setattr(writer_module, "time", SimpleNamespace(monotonic=clock.monotonic, time=time.time,
                                                               perf_counter=time.perf_counter))
    index = FlakyIndex(0, [])
    flushes: list[float] = []  # the writer's clock at each flush
    index.flush = lambda: flushes.append(clock.now)  # type: ignore[attr-defined]

    async def main() -> None:
        writer = _TickCountingWriter(index, _no_dead_letters, flush_rows=5, flush_interval_s=1.0)  # type: ignore[arg-type]

        async def decided_twice() -> None:  # the first decision may have begun before the step: wait for two
            target = writer.ticks + 2
            await _until(lambda: writer.ticks >= target, "two decisions of the flush loop")

        writer.start()
        try:
            await decided_twice()
            assert flushes == []  # nothing written: no flush
            await writer.write(items(4, []))
            await decided_twice()
            assert flushes == []  # 4 < 5 rows, under a second since the start: no flush yet
            clock.now += 0.5
            await writer.write(items(2, []))
            await _until(lambda: flushes, "a flush after 6 >= 5 rows")
            assert flushes == [1000.5]  # by the rows alone, half a second in
            await decided_twice()  # the flush is over (its time recorded) before the clock moves
            assert flushes == [1000.5]  # nothing new written: no second flush
            await writer.write(items(1, []))
            clock.now += 0.9
            await decided_twice()
            assert flushes == [1000.5]  # 1 row, 0.9 s after the last flush (1.4 s after the start): not yet
            clock.now += 0.1
            await _until(lambda: len(flushes) == 2, "a flush a second after the last one")
            assert flushes == [1000.5, 1001.5]
            clock.now += 60
            await decided_twice()
            assert flushes == [1000.5, 1001.5]  # nothing more to flush, however late
        finally:
            await writer.stop()

    asyncio.run(main())
