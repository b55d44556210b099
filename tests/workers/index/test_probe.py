"""The searchable probe against a fake of the index's read: what it observes and counts, its sampling,
one probe in flight at most, Milvus errors survived, and a writer that never waits for it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from indexer.guard import INDEXED, Outcome
from streams.codecs import IndexRecord, SourceRef, encode_record
from workers.dlq import Delivery
from workers.index.probe import ERROR, SEEN, TIMEOUT, SearchableProbe
from workers.index.writer import IndexWriter


class FakeClock:
    """Wall time that moves only when the probe sleeps (or the test says so)."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class FakeReads:
    """Stands in for ``IndexReader``: the version Milvus shows after ``hidden_for`` reads (None before)."""

    def __init__(self, version: int | None, hidden_for: int = 0, fail: BaseException | None = None) -> None:
        self.version, self.hidden_for, self.fail = version, hidden_for, fail
        self.reads: list[str] = []

    def __call__(self, product_id: str) -> int | None:
        self.reads.append(product_id)
        if self.fail is not None:
            raise self.fail
        return self.version if len(self.reads) > self.hidden_for else None


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counts() -> dict[str, float]:
    return {o: sample("vitrine_searchable_probe_total", outcome=o) for o in (SEEN, TIMEOUT, ERROR)}


def record(pid: str = "p1", version: int = 3, occurred_at: float = 990.0) -> IndexRecord:
    return IndexRecord("upsert", pid, version, occurred_at, {"title": "t"}, {"image_vec": np.ones(4, np.float32)}, "m@1")


def test_a_write_seen_after_three_reads_observes_event_time_to_that_read() -> None:
    clock, reads = FakeClock(), FakeReads(version=3, hidden_for=3)
    probe = SearchableProbe(reads, poll_s=0.05, timeout_s=30, clock=clock, sleep=clock.sleep)
    before, hist = counts(), sample("vitrine_searchable_freshness_seconds_sum")
    n = sample("vitrine_searchable_freshness_seconds_count")

    outcome = asyncio.run(probe.probe("p1", 3, occurred_at=990.0))

    assert outcome == SEEN and reads.reads == ["p1"] * 4
    assert sample("vitrine_searchable_freshness_seconds_count") == n + 1
    # the event at 990, the probe from 1000, seen by the 4th read after 3 polls of 50 ms
    assert sample("vitrine_searchable_freshness_seconds_sum") - hist == pytest.approx(10.15)
    assert counts()[SEEN] == before[SEEN] + 1 and counts()[TIMEOUT] == before[TIMEOUT]


def test_an_older_version_is_not_seen_a_newer_one_is() -> None:
    clock = FakeClock()
    older = SearchableProbe(FakeReads(version=2), poll_s=1.0, timeout_s=5, clock=clock, sleep=clock.sleep)
    newer = SearchableProbe(FakeReads(version=9), clock=clock, sleep=clock.sleep)
    assert asyncio.run(older.probe("p1", 3, 990.0)) == TIMEOUT
    assert asyncio.run(newer.probe("p1", 3, 990.0)) == SEEN  # a newer version (a delete's tombstone too) covers it


def test_a_write_never_seen_times_out_and_observes_nothing() -> None:
    clock, reads = FakeClock(), FakeReads(version=None)
    probe = SearchableProbe(reads, poll_s=0.1, timeout_s=2.0, clock=clock, sleep=clock.sleep)
    before, n = counts(), sample("vitrine_searchable_freshness_seconds_count")

    assert asyncio.run(probe.probe("p1", 3, 990.0)) == TIMEOUT

    assert clock.now == pytest.approx(1002.0, abs=0.15) and 20 <= len(reads.reads) <= 22  # ~every 100 ms for 2 s
    assert sample("vitrine_searchable_freshness_seconds_count") == n
    assert counts()[TIMEOUT] == before[TIMEOUT] + 1


def test_a_milvus_error_is_counted_and_the_next_offer_probes_again() -> None:
    clock, reads = FakeClock(), FakeReads(version=3, fail=RuntimeError("Milvus query failed: unavailable"))
    probe = SearchableProbe(reads, every_s=5.0, clock=clock, sleep=clock.sleep)
    before = counts()

    async def main() -> None:
        assert probe.offer(record())
        assert await probe.in_flight == ERROR  # type: ignore[misc]
        reads.fail = None
        clock.now += 5.0
        assert probe.offer(record())
        assert await probe.in_flight == SEEN  # type: ignore[misc]

    asyncio.run(main())
    assert counts()[ERROR] == before[ERROR] + 1 and counts()[SEEN] == before[SEEN] + 1


def test_offers_are_sampled_at_most_every_n_seconds_one_in_flight() -> None:
    clock = FakeClock()
    release = threading.Event()

    def slow_read(product_id: str) -> int:
        assert release.wait(10)
        return 3

    probe = SearchableProbe(slow_read, every_s=5.0, clock=clock, sleep=clock.sleep)

    async def main() -> None:
        assert probe.offer(record("a"))
        task = probe.in_flight
        assert task is not None
        clock.now += 1.0
        assert not probe.offer(record("b"))  # too soon
        clock.now += 10.0
        assert not probe.offer(record("c"))  # due, but one is in flight
        release.set()
        assert await task == SEEN
        assert probe.offer(record("d"))  # due and none in flight
        assert not probe.offer(record("e"))
        await probe.in_flight  # type: ignore[misc]
        await probe.stop()

    asyncio.run(main())


def test_the_writer_offers_its_last_write_after_acknowledging_and_never_waits_for_the_probe() -> None:
    """A probe whose read hangs holds nothing of the writer: batches keep being written and acknowledged."""
    hang = threading.Event()

    class Index:
        read_misses = 0

        def apply(self, records: list[IndexRecord]) -> list[Outcome]:
            return [Outcome(r, INDEXED) for r in records]

    def hung_read(product_id: str) -> int:
        hang.wait(10)
        return 1

    async def no_dead_letters(*_: Any) -> None:
        raise AssertionError("nothing is dead-lettered here")

    acks: list[str] = []

    def delivery(pid: str, version: int) -> Delivery:
        return Delivery(encode_record(record(pid, version)), SourceRef("x.index.enriched", 0, version), pid,
                        lambda: acks.append(f"{pid}@{version}"))

    offered: list[tuple[str, int]] = []
    probe = SearchableProbe(hung_read, every_s=0.0)

    def offer(rec: IndexRecord) -> bool:
        offered.append((rec.product_id, rec.version))
        return probe.offer(rec)

    async def main() -> None:
        writer = IndexWriter(Index(), no_dead_letters, on_indexed=offer)  # type: ignore[arg-type]
        await writer.write([delivery("a", 1), delivery("b", 1)])
        assert probe.in_flight is not None  # started on "b", now hung in its read
        for v in range(2, 6):
            await asyncio.wait_for(writer.write([delivery("a", v)]), 2)
        assert probe.in_flight is not None
        hang.set()
        await probe.stop()

    asyncio.run(main())
    assert acks == ["a@1", "b@1", "a@2", "a@3", "a@4", "a@5"]
    assert offered == [("b", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 5)]
