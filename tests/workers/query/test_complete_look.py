"""``complete_look`` in ``QueryService``, as a unit: the shipped compatibility head (the real
``StyleEmbedder`` over ``workers/vision/weights/compat.*``) on the fake pipeline, and an in-memory
double of ``ProductIndex.search_style`` that ranks its rows by inner product as Milvus does (the
integration tests run the same query on the real query worker and Milvus Lite)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import numpy as np
import pytest

from indexer.exceptions import NoStyleVectors
from indexer.store import ProductIndex, SearchHit
from streams.schema import Filters
from tests.workers.query.test_service import StubFetcher
from workers.query.replies import LookReply
from workers.query.service import QueryService
from workers.vision.fakes import fake_pipeline
from workers.vision.style import StyleEmbedder
from workers.vision.trained import WEIGHTS_DIR


def _unit(rng: np.random.Generator, dim: int = 128) -> list[float]:
    v = rng.normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32).tolist()


def _catalogue(seed: int = 0) -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, Any]] = {}
    for i, cat in enumerate(["top", "pants", "shoes", "bag", "outerwear", "skirt", "dress"] * 4):
        rows[f"{cat}{i}"] = {"product_id": f"{cat}{i}", "category": cat, "deleted": False, "in_stock": i % 2 == 0,
                             "price": 10.0 * (i + 1), "version": 1, "model_version": "m", "style_vec": _unit(rng)}
    return rows


class LookIndex:
    """``get`` and ``search_style`` over in-memory rows: category, stock and price filters, inner product."""

    def __init__(self, rows: dict[str, dict[str, Any]], *, style: bool = True) -> None:
        self.rows, self.style = rows, style
        self.calls: list[tuple[str, Any]] = []

    def get(self, product_id: str, *, with_vectors: bool = False) -> dict[str, Any] | None:
        return self.rows.get(product_id)

    def search_style(self, vector: np.ndarray, category: str, filters: Filters, k: int, *,
                     exclude_ids: tuple[str, ...] = ()) -> list[SearchHit]:
        self.calls.append(("search_style", (category, filters, k, exclude_ids, np.asarray(vector))))
        if not self.style:
            raise NoStyleVectors("collection c holds no style vectors")
        ok = [r for r in self.rows.values() if r["category"] == category and r["product_id"] not in exclude_ids
              and (filters.in_stock is None or r["in_stock"] == filters.in_stock)
              and (filters.price_max is None or r["price"] <= filters.price_max)]
        scored = sorted(((float(np.dot(vector, r["style_vec"])), r) for r in ok), key=lambda t: -t[0])[:k]
        return [SearchHit(r["product_id"], s, {"category": r["category"], "price": r["price"], "version": 1},
                          {"style": s}) for s, r in scored]


def test_the_double_keeps_the_real_signature() -> None:
    for name in ("get", "search_style"):
        mine, theirs = inspect.signature(getattr(LookIndex, name)), inspect.signature(getattr(ProductIndex, name))
        assert [(p.name, p.kind) for p in mine.parameters.values()] == \
            [(p.name, p.kind) for p in theirs.parameters.values()], name


@pytest.fixture(scope="module")
def style() -> StyleEmbedder:
    s = StyleEmbedder(WEIGHTS_DIR)
    s.load()
    return s


def _service(index: LookIndex, style: StyleEmbedder | None) -> QueryService:
    vision = fake_pipeline()
    vision.style = style
    svc = QueryService(vision, index, StubFetcher(), max_pixels=1_000_000,  # type: ignore[arg-type]
                       max_image_bytes=100_000)
    svc.ready = True
    return svc


def _ask(svc: QueryService, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    return asyncio.run(svc.handle({"request_id": "look", "kind": "complete_look", **body}, "http"))


def test_a_product_gets_the_categories_that_complete_it_ranked_by_compatibility(style: StyleEmbedder) -> None:
    rows = _catalogue()
    index = LookIndex(rows)
    reply, status = _ask(_service(index, style), {"product_id": "top0", "k": 3})
    assert status == 200 and reply["ok"], reply
    LookReply.model_validate(reply)  # the OpenAPI reply model
    wanted = style.complements(["top"])
    assert wanted and "top" not in wanted
    assert reply["look"] == {"items": [{"product_id": "top0", "category": "top"}], "categories": wanted,
                             "defaulted": True}
    assert [g["category"] for g in reply["complements"]] == wanted
    query_of = {c: style.query([("top", np.asarray(rows["top0"]["style_vec"]))], c) for c in wanted}
    for group in reply["complements"]:
        cat = group["category"]
        hits = group["results"]
        assert len(hits) == 3 and all(rows[h["product_id"]]["category"] == cat for h in hits)
        # the best by w[top, cat] ⊙ f(top0) · f(b) over every row of that category, in order
        best = sorted((r for r in rows.values() if r["category"] == cat),
                      key=lambda r: -float(np.dot(query_of[cat], r["style_vec"])))[:3]
        assert [h["product_id"] for h in hits] == [r["product_id"] for r in best]
        assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert all(call[1][3] == ("top0",) for call in index.calls)  # the product itself never among them


def test_the_categories_asked_for_are_the_ones_answered_under_the_filters(style: StyleEmbedder) -> None:
    rows = _catalogue()
    index = LookIndex(rows)
    reply, status = _ask(_service(index, style), {"product_id": "dress6", "k": 5, "categories": ["bag", "shoes"],
                                                  "filters": {"in_stock": True, "price_max": 200}})
    assert status == 200 and reply["ok"], reply
    assert [g["category"] for g in reply["complements"]] == ["bag", "shoes"] and not reply["look"]["defaulted"]
    for group in reply["complements"]:
        assert group["results"]
        for h in group["results"]:
            r = rows[h["product_id"]]
            assert r["category"] == group["category"] and r["in_stock"] and r["price"] <= 200
    assert {c[1][1].in_stock for c in index.calls} == {True}


def test_an_unknown_category_is_a_400_naming_the_field(style: StyleEmbedder) -> None:
    reply, status = _ask(_service(LookIndex(_catalogue()), style), {"product_id": "top0", "categories": ["spaceships"]})
    assert status == 400 and reply["error"]["field"] == "categories" and "spaceships" in reply["error"]["message"]


@pytest.mark.parametrize("body, field", [
    ({}, "product_id"),
    ({"product_id": "top0", "image": {"uri": "s3://b/k.png"}}, "product_id"),
    ({"product_id": "top0", "categories": ["shoes", "shoes"]}, "categories"),
    ({"product_id": "top0", "categories": ["Shoes!"]}, "categories.0"),
])
def test_a_malformed_look_request_is_a_400(style: StyleEmbedder, body: dict[str, Any], field: str) -> None:
    reply, status = _ask(_service(LookIndex(_catalogue()), style), body)
    assert status == 400 and reply["error"]["field"] == field, reply


def test_categories_belong_to_complete_look_only(style: StyleEmbedder) -> None:
    svc = _service(LookIndex(_catalogue()), style)
    reply, status = asyncio.run(svc.handle({"request_id": "x", "kind": "text", "text": "red", "categories": ["bag"]},
                                           "http"))
    assert status == 400 and reply["error"]["field"] == "categories"


def test_an_unknown_product_is_a_404(style: StyleEmbedder) -> None:
    reply, status = _ask(_service(LookIndex(_catalogue()), style), {"product_id": "nope"})
    assert status == 404 and reply["error"]["code"] == "not_found"


def test_a_product_without_a_style_vector_is_a_501(style: StyleEmbedder) -> None:
    rows = _catalogue()
    rows["top0"] = {**rows["top0"], "style_vec": None}  # indexed by a model without the style head
    svc = _service(LookIndex(rows), style)
    reply, status = _ask(svc, {"product_id": "top0"})
    assert status == 501 and reply["error"]["code"] == "style_unavailable" and "top0" in reply["error"]["message"]


@pytest.mark.parametrize("body", [{"product_id": "top0"}, {"image": {"uri": "s3://b/k.png"}}])
def test_models_or_a_collection_without_style_are_a_501(style: StyleEmbedder, body: dict[str, Any]) -> None:
    reply, status = _ask(_service(LookIndex(_catalogue()), None), body)  # the baseline models: no style head
    assert status == 501 and reply["error"]["code"] == "style_unavailable", reply
    reply, status = _ask(_service(LookIndex(_catalogue(), style=False), style), {"product_id": "top0"})
    assert status == 501 and reply["error"]["code"] == "style_unavailable", reply
