"""Regression test for a bug the chaos test found: in Milvus Lite 3.2.2 a partial upsert (a patch)
that overlaps a flush can merge into a stale copy of the row, undoing the full upsert written just
before it (the row ends at the patch's version with an older upsert's fields and vectors).

The index writer now never flushes while it writes (its version-guard read included). Here its flush
loop spins (interval 0) while it writes upsert/patch pairs through the real ``ProductIndex`` on the
Milvus Lite server; every row must hold the newest upsert's fields at the patch's version. Without
the writer's lock the same loop saw about one stale row in six pairs. (A read that overlaps a flush
may itself see the row one write behind, so the checks read between flushes too.)
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
import pytest

from indexer.schema import IndexLayout
from indexer.store import ProductIndex
from streams.codecs import IndexRecord, SourceRef, encode_record
from workers.dlq import Delivery
from workers.index.writer import IndexWriter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _items(records: list[IndexRecord]) -> list[Delivery]:
    return [Delivery(encode_record(r), SourceRef("t", 0, i), r.product_id, lambda: None) for i, r in enumerate(records)]


async def _no_dead_letters(*_: Any) -> None:
    raise AssertionError("nothing here should be dead-lettered")


def test_patches_never_merge_into_a_stale_row_while_flushes_run(milvus: Any) -> None:
    layout = IndexLayout("m@1", {"image_vec": 4}, index_type="FLAT", alias=f"race_{uuid.uuid4().hex[:8]}")
    index = ProductIndex(milvus.address, layout).start()
    writer = IndexWriter(index, _no_dead_letters, flush_interval_s=0.0)  # type: ignore[arg-type]
    pids = [f"p{i}" for i in range(5)]
    stale: list[str] = []
    flushed = 0  # flushes the writer's flush loop ran (through the real ProductIndex.flush)
    real_flush = index.flush

    def counting_flush() -> None:
        nonlocal flushed
        real_flush()
        flushed += 1

    index.flush = counting_flush  # type: ignore[method-assign]

    async def main() -> tuple[int, int, int]:
        """Returns (pairs written, rows checked, pairs during which a flush ran)."""
        pairs = checked = pairs_with_flush = 0
        flushes = asyncio.ensure_future(writer._flush_loop())
        try:
            for v in range(1, 121, 2):
                flushed_before = flushed
                await writer.write(_items([IndexRecord("upsert", p, v, 1.0, {"title": f"t{v}", "price": 1.0},
                                                       {"image_vec": np.ones(4, np.float32)}, "m@1") for p in pids]))
                await writer.write(_items([IndexRecord("patch", p, v + 1, 1.0, {"price": float(v)}) for p in pids]))
                for p in pids:
                    async with writer._milvus_lock:
                        row = await asyncio.to_thread(index.get, p)
                    checked += 1
                    if row is None or (row["version"], row["title"]) != (v + 1, f"t{v}"):
                        stale.append(f"{p} after t{v}+patch: {row and (row['version'], row['title'])}")
                pairs += 1
                pairs_with_flush += flushed > flushed_before
                if flushes.done():  # the flush loop died: what follows would test writes without flushes
                    flushes.result()
                    raise AssertionError("the flush loop ended")
            return pairs, checked, pairs_with_flush
        finally:
            flushes.cancel()

    try:
        pairs, checked, pairs_with_flush = asyncio.run(main())
    finally:
        index.close()
    assert not stale, stale[:5]
    assert (pairs, checked) == (60, 60 * len(pids))  # every pair written, every row read back
    # the race was really run: flushes went on between (and, unlocked, during) the writes of most pairs
    assert pairs_with_flush >= pairs // 2, (pairs_with_flush, flushed)


def test_a_patch_is_dead_lettered_as_unknown_only_after_a_confirming_re_read(milvus: Any) -> None:
    """The chaos run dead-lettered a few patches as ``patch_of_unknown_product`` although their
    upserts were acknowledged: a read that missed rows. ``apply`` now re-reads before that verdict.
    Here the upsert lands right after the guard's first read (what a missed read looks like to it)."""
    layout = IndexLayout("m@1", {"image_vec": 4}, index_type="FLAT", alias=f"miss_{uuid.uuid4().hex[:8]}")
    other = ProductIndex(milvus.address, layout).start()
    upsert = IndexRecord("upsert", "late", 1, 1.0, {"title": "t1", "price": 1.0}, {"image_vec": np.ones(4, np.float32)}, "m@1")

    class WriteAfterFirstRead(ProductIndex):
        reads = 0

        def held(self, product_ids: Any) -> Any:
            out = super().held(product_ids)
            self.reads += 1
            if self.reads == 1:
                other.apply([upsert])
            return out

    index = WriteAfterFirstRead(milvus.address, layout).start()
    try:
        outcomes = index.apply([IndexRecord("patch", "late", 2, 1.0, {"price": 5.0}),
                                IndexRecord("patch", "never", 2, 1.0, {"price": 5.0})])
        assert [o.result for o in outcomes] == ["indexed", "patch_of_unknown_product"]
        assert index.read_misses == 1
        row = index.get("late")
        assert row is not None and (row["version"], row["price"], row["title"]) == (2, 5.0, "t1")
    finally:
        index.close()
        other.close()
