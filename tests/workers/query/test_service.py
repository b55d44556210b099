"""``QueryService.handle`` and its error table, as a unit: a fake vision pipeline and plain doubles of
the index and the fetcher (the integration and chaos tests run the same service against real Milvus).

Every reply is ``{"ok": false, "error": {"code", "message", "field"}}`` with an HTTP status from the
one table (``workers.query.service.ERRORS``): the caller's fault is 4xx, a dependency that is away is
503 (retry), anything unexpected is 500 and says no more than the exception's type.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

from indexer.exceptions import IndexUnavailable, ModelMismatch
from indexer.store import ProductIndex, SearchHit
from workers.exceptions import FetchError
from workers.fetch import ImageFetcher
from workers.query.service import QueryService
from workers.vision.fakes import fake_pipeline

MAX_IMAGE_BYTES = 100_000


def _png(colour: tuple[int, int, int] = (200, 30, 30), size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


def _hit(pid: str, score: float) -> SearchHit:
    return SearchHit(pid, score, {"title": f"product {pid}", "category": "apparel", "version": 1})


class StubIndex:
    """The reads of ``ProductIndex`` that the service calls; records them, or raises ``fail``."""

    def __init__(self, rows: dict[str, dict[str, Any]] | None = None, fail: BaseException | None = None) -> None:
        self.rows = rows or {}
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def _answer(self, name: str, detail: Any) -> list[SearchHit]:
        self.calls.append((name, detail))
        if self.fail is not None:
            raise self.fail
        return [_hit("p1", 0.9), _hit("p2", 0.8)]

    def get(self, product_id: str, *, with_vectors: bool = False) -> dict[str, Any] | None:
        self.calls.append(("get", product_id))
        if self.fail is not None:
            raise self.fail
        return self.rows.get(product_id)

    def search(self, vector: np.ndarray, field: str, filters: Any, k: int, *,
               exclude_ids: tuple[str, ...] = ()) -> list[SearchHit]:
        return self._answer("search", (field, k, exclude_ids))

    def search_multi(self, vectors: dict[str, np.ndarray], weights: dict[str, float], filters: Any,
                     k: int) -> list[SearchHit]:
        return self._answer("search_multi", (tuple(sorted(vectors)), k))

    def search_text(self, text: str, vector: np.ndarray, filters: Any, k: int, *, fusion: Any,
                    exclude_ids: tuple[str, ...] = ()) -> list[SearchHit]:
        self.filters = filters
        hits = self._answer("search_text", (text, k))
        return [SearchHit(h.product_id, h.score, h.fields, {"fused": h.score}) for h in hits]

    def text_requests(self, text: str, vector: np.ndarray, fusion: Any) -> list[Any]:
        return ProductIndex.text_requests(self, text, vector, fusion)  # type: ignore[arg-type]

    def score_parts(self, subs: Any, filters: Any, pool: int, method: str, *, rrf_k: int = 60,
                    exclude_ids: tuple[str, ...] = ()) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
        self.calls.append(("score_parts", (tuple(s.name for s in subs), pool, method)))
        return {"p1": ({"bm25": 0.5, "dense": 0.4}, {"bm25_rank": 1.0, "dense_rank": 1.0})}

    @staticmethod
    def multi_pool(k: int) -> int:
        return ProductIndex.multi_pool(k)

    def facet_rows(self, filters: Any, fields: Any, limit: int) -> list[dict[str, Any]] | None:
        self.calls.append(("facet_rows", (tuple(fields), limit)))
        return [{"colour": "red", "price": 9.5}, {"colour": "blue", "price": 30.0}]


class StubFetcher:
    """``ImageFetcher.fetch``: the given bytes, or the given error; records the URIs asked for."""

    def __init__(self, data: bytes = PNG, fail: BaseException | None = None) -> None:
        self.data = data
        self.fail = fail
        self.uris: list[str] = []

    async def fetch(self, uri: str) -> bytes:
        self.uris.append(uri)
        if self.fail is not None:
            raise self.fail
        return self.data


@pytest.mark.parametrize("double, real, names", [
    (StubIndex, ProductIndex, ("get", "search", "search_multi", "search_text", "text_requests", "score_parts",
                               "multi_pool", "facet_rows")),
    (StubFetcher, ImageFetcher, ("fetch",)),
])
def test_the_doubles_keep_the_real_signatures(double: type, real: type, names: tuple[str, ...]) -> None:
    for name in names:
        mine, theirs = inspect.signature(getattr(double, name)), inspect.signature(getattr(real, name))
        assert [(p.name, p.kind) for p in mine.parameters.values()] == \
            [(p.name, p.kind) for p in theirs.parameters.values()], name
        assert inspect.iscoroutinefunction(getattr(double, name)) == inspect.iscoroutinefunction(getattr(real, name))


def _service(index: StubIndex | None = None, fetcher: StubFetcher | None = None, *, ready: bool = True) -> QueryService:
    svc = QueryService(fake_pipeline(), index or StubIndex(), fetcher or StubFetcher(),  # type: ignore[arg-type]
                       max_pixels=1_000_000, max_image_bytes=MAX_IMAGE_BYTES)
    svc.ready = ready
    return svc


def _ask(svc: QueryService, raw: bytes | dict[str, Any], transport: str = "http") -> tuple[dict[str, Any], int]:
    return asyncio.run(svc.handle(raw, transport))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------ answers


def test_text_query_answers_with_hits_and_the_model_version() -> None:
    index = StubIndex()
    reply, status = _ask(_service(index), {"request_id": "t1", "kind": "text", "text": "red shirt", "k": 2})
    assert status == 200 and reply["ok"] and reply["request_id"] == "t1" and reply["kind"] == "text"
    assert [h["product_id"] for h in reply["results"]] == ["p1", "p2"]
    assert reply["model_version"] == fake_pipeline().model_version
    assert index.calls[0][0] == "search_text" and index.calls[0][1][0] == "red shirt"
    assert index.filters.colour == "red" and index.filters.article_type == "shirts"  # what the text names
    assert reply["understood"]["filters"]["colour"] == "red" and reply["parsed"]["article_type"] == "shirts"


def test_image_query_by_uri_goes_through_the_fetcher() -> None:
    fetcher = StubFetcher()
    reply, status = _ask(_service(fetcher=fetcher),
                         {"request_id": "i1", "kind": "image", "image": {"uri": "s3://bucket/a.png"}, "k": 1})
    assert status == 200 and reply["ok"], reply
    assert fetcher.uris == ["s3://bucket/a.png"] and len(reply["results"]) == 1


def test_image_text_query_searches_the_photo_under_the_change() -> None:
    index = StubIndex()
    reply, status = _ask(_service(index), {"request_id": "it", "kind": "image_text", "text": "in blue",
                                           "image": {"b64": _b64(PNG)}})
    assert status == 200 and reply["ok"], reply
    assert reply["understood"]["changes"] == {"colour": "blue"}
    # the neighbourhood (for the reference's attributes), then under the change; the stub has only 2 of
    # the 10 hits asked for, so the change is relaxed too rather than an empty page
    assert [c[0] for c in index.calls] == ["search", "search", "search"]
    assert reply["understood"]["relaxed"] == ["colour"] and len(reply["results"]) == 2


def test_similar_query_excludes_the_product_itself() -> None:
    index = StubIndex(rows={"p0": {"image_vec": [1.0] * 32, "deleted": False}})
    reply, status = _ask(_service(index), {"request_id": "s1", "kind": "similar", "product_id": "p0", "k": 5})
    assert status == 200 and reply["ok"], reply
    assert index.calls[-1] == ("search", ("image_vec", 200, ("p0",)))  # the relevant set, then the page of 5


# ------------------------------------------------------------------ the error table


def _error(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"] is False and set(reply["error"]) == {"code", "message", "field"}, reply
    return reply["error"]


@pytest.mark.parametrize("raw, field", [
    (b"{not json", None),
    (b"[1, 2]", None),
    (json.dumps({"request_id": "x", "kind": "teleport"}).encode(), "kind"),
    ({"request_id": "x", "kind": "text"}, "text"),
    ({"request_id": "x", "kind": "similar"}, "product_id"),
    ({"request_id": "x", "kind": "image"}, "image"),
    ({"request_id": "x", "kind": "image", "image": {"uri": "s3://b/k", "b64": _b64(PNG)}}, "image"),
    ({"request_id": "x", "kind": "text", "text": "shoes", "k": 100_000}, "k"),
    ({"request_id": "x", "kind": "image", "image": {"b64": "!!not base64!!"}}, "image.b64"),
    ({"request_id": "x", "kind": "image", "image": {"b64": _b64(b"x" * (MAX_IMAGE_BYTES + 1))}}, "image.b64"),
], ids=["bad JSON", "not an object", "unknown kind", "missing text", "missing product_id", "missing image",
        "uri and b64", "huge k", "bad base64", "oversized image"])
def test_a_bad_request_is_a_400_naming_the_field(raw: Any, field: str | None) -> None:
    reply, status = _ask(_service(), raw)
    err = _error(reply)
    assert (status, err["code"]) == (400, "invalid_request"), reply
    assert err["field"] == field and err["message"]


def test_the_request_id_is_echoed_on_an_error_when_it_could_be_read() -> None:
    reply, _ = _ask(_service(), {"request_id": "echo-me", "kind": "teleport"})
    assert reply["request_id"] == "echo-me"


def test_an_unknown_product_is_a_404() -> None:
    reply, status = _ask(_service(StubIndex(rows={"gone": {"deleted": True, "image_vec": [0.0] * 32}})),
                         {"request_id": "x", "kind": "similar", "product_id": "gone"})
    assert (status, _error(reply)["code"], reply["error"]["field"]) == (404, "not_found", "product_id")


@pytest.mark.parametrize("data", [b"not an image at all", _png()[:40]], ids=["not an image", "truncated"])
def test_an_undecodable_image_is_a_422(data: bytes) -> None:
    reply, status = _ask(_service(), {"request_id": "x", "kind": "image", "image": {"b64": _b64(data)}})
    assert (status, _error(reply)["code"]) == (422, "bad_image"), reply


@pytest.mark.parametrize("error", [
    FetchError("forbidden_address", "10.0.0.1 is not a public address"),
    FetchError("forbidden_path", "/etc/passwd is outside the allowed root"),
    FetchError("http_404", "http://example.com/x.jpg: HTTP 404"),
    FetchError("s3_nosuchkey", "s3://b/k: NoSuchKey"),
], ids=lambda e: e.reason)
def test_a_permanent_fetch_error_is_a_422(error: FetchError) -> None:
    reply, status = _ask(_service(fetcher=StubFetcher(fail=error)),
                         {"request_id": "x", "kind": "image", "image": {"uri": "s3://b/k"}})
    err = _error(reply)
    assert (status, err["code"]) == (422, "bad_image"), reply
    assert str(error) in err["message"]


@pytest.mark.parametrize("error", [
    FetchError("s3_unavailable", "object store unavailable: connection refused", transient=True),
    FetchError("s3_serviceunavailable", "s3://b/k: ServiceUnavailable", transient=True),
    FetchError("http_503", "http://example.com/x.jpg: HTTP 503", transient=True),
], ids=lambda e: e.reason)
@pytest.mark.parametrize("kind", ["image", "image_text"])
def test_a_transient_fetch_error_is_a_503_not_a_bad_image(error: FetchError, kind: str) -> None:
    """An object store that is away is not the caller's fault: 503, retry later."""
    reply, status = _ask(_service(fetcher=StubFetcher(fail=error)),
                         {"request_id": "x", "kind": kind, "text": "blue", "image": {"uri": "s3://b/k"}})
    err = _error(reply)
    assert (status, err["code"]) == (503, "image_store_unavailable"), reply
    assert "retry" in err["message"] and str(error) in err["message"]


def test_not_ready_is_a_503_and_touches_nothing() -> None:
    index, fetcher = StubIndex(), StubFetcher()
    reply, status = _ask(_service(index, fetcher, ready=False),
                         {"request_id": "x", "kind": "image", "image": {"uri": "s3://b/k"}})
    assert (status, _error(reply)["code"]) == (503, "unavailable")
    assert index.calls == [] and fetcher.uris == []


def test_a_milvus_outage_is_a_503() -> None:
    reply, status = _ask(_service(StubIndex(fail=IndexUnavailable("Milvus search failed: connection refused"))),
                         {"request_id": "x", "kind": "text", "text": "shoes"})
    assert (status, _error(reply)["code"]) == (503, "unavailable")


def test_a_model_mismatch_is_a_503() -> None:
    reply, status = _ask(_service(StubIndex(fail=ModelMismatch("collection built by another model"))),
                         {"request_id": "x", "kind": "text", "text": "shoes"})
    assert (status, _error(reply)["code"]) == (503, "model_mismatch")


def test_an_unexpected_error_is_a_500_that_says_only_its_type() -> None:
    reply, status = _ask(_service(StubIndex(fail=RuntimeError("secret internals: password=hunter2"))),
                         {"request_id": "x", "kind": "text", "text": "shoes"})
    err = _error(reply)
    assert (status, err["code"], err["message"]) == (500, "internal", "RuntimeError")


def test_kafka_and_http_get_the_same_reply() -> None:
    raw = {"request_id": "x", "kind": "image", "image": {"uri": "s3://b/k"}}
    fail = FetchError("s3_unavailable", "object store unavailable", transient=True)
    http = _ask(_service(fetcher=StubFetcher(fail=fail)), raw, "http")
    kafka = _ask(_service(fetcher=StubFetcher(fail=fail)), raw, "kafka")
    assert http == kafka


# ------------------------------------------------------------------ get by id

PRODUCT_ROW = {"product_id": "p0", "version": 3, "title": "Red shirt", "description": "cotton", "brand": "acme",
               "price": 9.5, "currency": "EUR", "in_stock": True, "category": "apparel", "colour": "red",
               "attributes": {"merchant": {"colour": "red"}, "model": {"gender": {"value": "men", "confidence": 0.9}}},
               "model_version": "m1", "image_uri": "s3://b/p0.jpg", "event_time": 1.5, "indexed_at": 2.5,
               "deleted": False, "image_vec": [0.1] * 32, "text_vec": [0.2] * 32, "colour_vec": [0.3] * 32}


def test_get_answers_what_the_index_holds_without_the_vectors() -> None:
    index = StubIndex(rows={"p0": PRODUCT_ROW})
    reply, status = _ask(_service(index), {"request_id": "g1", "kind": "get", "product_id": "p0"})
    assert status == 200 and reply["ok"] and (reply["request_id"], reply["kind"]) == ("g1", "get"), reply
    product = reply["product"]
    assert (product["version"], product["title"], product["event_time"]) == (3, "Red shirt", 1.5)
    assert product["attributes"]["merchant"] == {"colour": "red"}
    assert not any(name.endswith("_vec") for name in product) and "deleted" not in product
    assert index.calls == [("get", "p0")]


def test_get_needs_a_product_id() -> None:
    reply, status = _ask(_service(), {"request_id": "g", "kind": "get"})
    assert (status, _error(reply)["code"], reply["error"]["field"]) == (400, "invalid_request", "product_id")


@pytest.mark.parametrize("pid", ["gone", "never-indexed"])
def test_get_of_an_unknown_or_deleted_product_is_a_404(pid: str) -> None:
    index = StubIndex(rows={"gone": {**PRODUCT_ROW, "product_id": "gone", "deleted": True}})
    reply, status = _ask(_service(index), {"request_id": "g", "kind": "get", "product_id": pid})
    assert (status, _error(reply)["code"], reply["error"]["field"]) == (404, "not_found", "product_id")
    assert reply["request_id"] == "g"


def test_explain_splits_the_fused_score_and_the_parts_add_up() -> None:
    index = StubIndex()
    reply, status = _ask(_service(index), {"request_id": "x", "kind": "text", "text": "shirt", "explain": True})
    assert status == 200, reply
    first, second = reply["results"]
    assert first["explain"]["parts"] == {"bm25": 0.5, "dense": 0.4} and first["explain"]["signals"]["bm25_rank"] == 1
    assert second["explain"]["parts"] == {"unexplained": 0.8}  # the sub-searches alone did not find it
    for hit in reply["results"]:
        assert sum(hit["explain"]["parts"].values()) == pytest.approx(hit["score"], abs=1e-4)
    assert ("score_parts", (("bm25", "dense"), 200, "rrf")) in index.calls
    reply, _ = _ask(_service(index), {"request_id": "y", "kind": "text", "text": "shirt"})
    assert "explain" not in reply["results"][0]  # only when asked: it costs two more searches


def test_pages_are_slices_of_one_relevant_set_and_facets_are_counted() -> None:
    index = StubIndex()
    pages = [_ask(_service(index), {"request_id": "p", "kind": "text", "text": "shirt", "k": 1, "offset": o,
                                    "facets": ["colour"]})[0] for o in (0, 1)]
    assert [p["results"][0]["product_id"] for p in pages] == ["p1", "p2"]
    assert pages[0]["page"] == {"offset": 0, "k": 1, "sort": "relevance", "relevant": 2, "more": True}
    assert pages[1]["page"]["more"] is False
    assert pages[0]["facets"]["exact"] and pages[0]["facets"]["counts"]["colour"] == [
        {"value": "blue", "count": 1}, {"value": "red", "count": 1}]
    reply, status = _ask(_service(index), {"request_id": "q", "kind": "text", "text": "shirt", "k": 10, "offset": 195})
    assert status == 400 and reply["error"]["field"] == "offset"


def test_facets_over_too_many_products_count_the_relevant_set_and_say_so() -> None:
    index = StubIndex()
    index.facet_rows = lambda filters, fields, limit: None  # type: ignore[method-assign]  # more than the limit
    reply, status = _ask(_service(index), {"request_id": "f", "kind": "text", "text": "shirt", "facets": ["category"]})
    assert status == 200, reply
    assert reply["facets"] == {"exact": False, "counted_over": 2, "over": "relevant_set",
                               "counts": {"category": [{"value": "apparel", "count": 2}]}}
