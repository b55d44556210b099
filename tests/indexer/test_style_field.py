"""The ``style_vec`` field on the real Milvus Lite server: stored on the product row and its image rows,
searched by inner product within one category under the filters; a collection of a model without a
style head answers every other search and refuses ``search_style`` with ``NoStyleVectors``."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from indexer.exceptions import NoStyleVectors
from indexer.schema import IndexLayout
from indexer.store import ProductIndex
from streams.codecs import IndexRecord
from streams.schema import Filters

pytestmark = pytest.mark.integration
DIMS = {"image_vec": 8, "colour_vec": 4, "text_vec": 8}
CATS = ["shoes", "bag", "pants"]


def _unit(rng: np.random.Generator, d: int) -> np.ndarray:
    v = rng.standard_normal(d).astype(np.float32)
    return v / np.linalg.norm(v)


def _records(model: str, style: bool, n: int = 12) -> list[IndexRecord]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        vectors = {k: _unit(rng, d) for k, d in DIMS.items()}
        if style:
            vectors["style_vec"] = _unit(rng, 16)
        extra = ((f"s3://b/p{i}-1", {"image_vec": _unit(rng, 8), "colour_vec": _unit(rng, 4)}),)
        out.append(IndexRecord("upsert", f"p{i}", 1, 1.0,
                               {"title": f"p{i}", "category": CATS[i % 3], "image_uri": f"s3://b/p{i}-0",
                                "price": float(10 * i), "in_stock": i % 2 == 0}, vectors, model, extra_images=extra))
    return out


@pytest.fixture()
def indexes(milvus: Any) -> Any:
    run = uuid.uuid4().hex[:6]
    with_style = ProductIndex(milvus.address, IndexLayout("m@style", {**DIMS, "style_vec": 16},
                                                          alias=f"sty_{run}")).start(create=True)
    without = ProductIndex(milvus.address, IndexLayout("m@plain", DIMS, alias=f"pln_{run}")).start(create=True)
    yield with_style, without
    with_style.close()
    without.close()


def test_style_search_ranks_by_inner_product_within_the_category_and_filters(indexes: Any) -> None:
    index, _ = indexes
    records = _records("m@style", True)
    index.apply(records)
    q = np.random.default_rng(1).standard_normal(16).astype(np.float32) * 3  # a query is not unit length
    hits = index.search_style(q, "bag", Filters(in_stock=True), 10, exclude_ids=("p1",))
    bags = [r for r in records if r.fields["category"] == "bag" and r.fields["in_stock"] and r.product_id != "p1"]
    expected = sorted(bags, key=lambda r: -float(np.dot(q, r.vectors["style_vec"])))
    assert [h.product_id for h in hits] == [r.product_id for r in expected] and hits  # product rows only, once each
    for h, r in zip(hits, expected):
        assert h.score == pytest.approx(float(np.dot(q, r.vectors["style_vec"])), abs=1e-3)  # IP, not cosine
    row = index.get("p2", with_vectors=True)
    np.testing.assert_allclose(row["style_vec"], records[2].vectors["style_vec"], atol=1e-6)


def test_a_collection_without_style_vectors_refuses_a_look_and_answers_the_rest(indexes: Any) -> None:
    _, index = indexes
    index.apply(_records("m@plain", False))
    with pytest.raises(NoStyleVectors, match="no style vectors"):
        index.search_style(np.ones(16, np.float32), "bag", Filters(), 5)
    hits = index.search(_unit(np.random.default_rng(2), 8), "image_vec", Filters(category="bag"), 3)
    assert len(hits) == 3 and all(h.fields["category"] == "bag" for h in hits)
    assert "style_vec" not in index.get("p0", with_vectors=True)
