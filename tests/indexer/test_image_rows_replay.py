"""Image rows on the real Milvus Lite server when a write died half way: an upsert's image rows were
written, its product row was not (the worker was killed), and the replayed batch folds that upsert into
a newer delete. The delete must remove those image rows, though the index never held the product."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from indexer.guard import plan_writes
from indexer.schema import IndexLayout, image_row_id
from indexer.store import ProductIndex
from streams.codecs import IndexRecord

pytestmark = pytest.mark.integration
DIMS = {"image_vec": 8, "colour_vec": 4, "text_vec": 8}


def _unit(rng: np.random.Generator, d: int) -> np.ndarray:
    v = rng.standard_normal(d).astype(np.float32)
    return v / np.linalg.norm(v)


def test_a_replayed_delete_removes_the_image_rows_of_an_interrupted_upsert(milvus: Any) -> None:
    rng = np.random.default_rng(3)
    layout = IndexLayout("m@img", DIMS, alias=f"img_{uuid.uuid4().hex[:6]}")
    index = ProductIndex(milvus.address, layout).start(create=True)
    try:
        extra = tuple((f"s3://b/a-{i}", {"image_vec": _unit(rng, 8), "colour_vec": _unit(rng, 4)}) for i in (1, 2))
        three = IndexRecord("upsert", "a", 24, 24.0, {"title": "a", "category": "shoes", "image_uri": "s3://b/a-0",
                                                       "price": 1.0},
                            {k: _unit(rng, d) for k, d in DIMS.items()}, "m@img", extra_images=extra)
        # the attempt that died: its image rows written, its product row never
        first = plan_writes([three], {}, layout.full_row, layout.scalar_update, layout.refusal)
        index._write_images(first.full_rows, first.partial_rows, {}, first.images_seen)
        rows = index._c().get(index.collection, ids=[image_row_id("a", 1), image_row_id("a", 2)])
        assert len(rows) == 2  # the orphans-to-be are there
        index.apply([three, IndexRecord("delete", "a", 25, 25.0)])  # the replay, folded into one batch
        assert index._c().get(index.collection, ids=[image_row_id("a", 1), image_row_id("a", 2)]) == []
        assert index.get("a")["deleted"] is True
    finally:
        index._c().drop_collection(index.collection)
        index.close()
