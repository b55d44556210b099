"""Convergence across a rebalance: a revoked partition's write in flight ends before ``fence`` returns,
and nothing of a fenced partition is written afterwards.

The race is put at its exact point: the old owner's ``apply`` is held inside Milvus (between the
guard's read and its write) while the partition is revoked. Without the fence the revocation would
return at once and the new owner's newer write could then be overwritten by the old owner's."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from indexer.guard import INDEXED, Outcome
from streams.codecs import IndexRecord, SourceRef, encode_record
from workers.dlq import Delivery
from workers.index.writer import IndexWriter


class HeldIndex:
    """Stands in for ``ProductIndex``: ``apply`` blocks until ``release`` is set, then records the write."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.written: list[tuple[str, int]] = []
        self.read_misses = 0

    def apply(self, records: list[IndexRecord]) -> list[Outcome]:
        self.entered.set()
        assert self.release.wait(30), "the test never released the write"
        self.written += [(r.product_id, r.version) for r in records]
        return [Outcome(r, INDEXED) for r in records]

    def flush(self) -> None:
        pass


def delivery(pid: str, version: int, partition: int, acks: list[str]) -> Delivery:
    rec = IndexRecord("upsert", pid, version, 1.0, {"title": "t"}, {"image_vec": np.ones(4, np.float32)}, "m@1")
    return Delivery(encode_record(rec), SourceRef("x.index.enriched", partition, version), pid,
                    lambda: acks.append(f"{pid}@{version}"))


async def _no_dead_letters(*_: Any) -> None:
    raise AssertionError("nothing here should be dead-lettered")


async def _wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 30), "timed out"


def test_fence_waits_for_the_write_in_flight_then_leaves_the_partition_out() -> None:
    async def main() -> None:
        index = HeldIndex()
        acks: list[str] = []
        writer = IndexWriter(index, _no_dead_letters)  # type: ignore[arg-type]
        in_flight = asyncio.ensure_future(writer.write([delivery("a", 1, 0, acks)]))
        await _wait_for(index.entered)  # the old owner's write is inside Milvus now

        fence = asyncio.ensure_future(writer.fence({("x.index.enriched", 0)}))
        await asyncio.sleep(0)  # let the fence run up to its wait
        for _ in range(20):
            await asyncio.sleep(0)
        assert not fence.done(), "the fence returned while a write of its partition was still in flight"

        index.release.set()
        await asyncio.wait_for(asyncio.gather(in_flight, fence), 30)
        assert index.written == [("a", 1)] and acks == ["a@1"]

        # later records of the fenced partition are left out; another partition's are written
        await writer.write([delivery("b", 2, 0, acks), delivery("c", 3, 1, acks)])
        assert index.written == [("a", 1), ("c", 3)]
        assert writer.fenced == 1 and "b@2" not in acks

        writer.unfence({("x.index.enriched", 0)})  # assigned back: written again
        await writer.write([delivery("b", 4, 0, acks)])
        assert index.written[-1] == ("b", 4)

    asyncio.run(main())
