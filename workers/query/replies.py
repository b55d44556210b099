"""The replies of the query worker as pydantic models: the source of their OpenAPI schemas, and what
tests validate real replies against (``workers.query.openapi``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["ComplementGroup", "ErrorBody", "ErrorReply", "Explanation", "FacetCount", "Facets", "Hit", "Look",
           "LookItem", "LookReply", "Page", "Product", "ProductReply", "SearchReply"]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Explanation(_Reply):
    """``explain: true``: the parts that add up to the hit's score, and the raw signals behind them.

    Parts: ``visual`` (cosine to the photo or product), ``dense`` / ``bm25`` (their RRF shares, or their
    weighted normalised scores, in hybrid text search), ``colour`` (the colour vector's weighted share
    when a modifier keeps the colour), ``attribute_match`` (a text query's named values the hit has),
    ``category_fusion`` (the predicted category's bonus), ``unexplained`` (what the sub-searches run
    alone did not account for; absent when they account for all of it)."""

    parts: dict[str, float]
    signals: dict[str, float]  # e.g. bm25_rank, bm25_score, dense_rank, dense_score


class FacetCount(_Reply):
    value: str
    count: int
    min: float | None = None  # price bands only
    max: float | None = None  # price bands only; None for the top band


class Facets(_Reply):
    """Counts per value over what the filters match (``exact``), or over the relevant set when more
    products match than ``VITRINE_FACET_SCAN_LIMIT`` (``exact: false``)."""

    exact: bool
    counted_over: int
    over: str  # filters, relevant_set
    counts: dict[str, list[FacetCount]]


class Page(_Reply):
    offset: int
    k: int
    sort: str
    relevant: int  # hits in the relevant set (VITRINE_QUERY_RELEVANT_SET at most)
    more: bool  # a next page has hits


class Hit(_Reply):
    product_id: str
    score: float  # larger = more similar
    title: str | None = None
    brand: str | None = None
    price: float | None = None
    currency: str | None = None
    in_stock: bool | None = None
    category: str | None = None
    article_type: str | None = None
    colour: str | None = None
    gender: str | None = None
    image_uri: str | None = None  # the best-matching image (photo searches), else the first
    image_index: int | None = None  # its place in the product's images (0 = the first)
    version: int | None = None
    explain: Explanation | None = None


class SearchReply(_Reply):
    """200 for ``similar``, ``image``, ``text`` and ``image_text``."""

    request_id: str | None
    ok: bool
    kind: str
    took_ms: float
    model_version: str
    results: list[Hit]
    page: Page
    facets: Facets | None = None
    parsed: dict[str, str] | None = None  # attribute values the text named
    understood: dict[str, Any] | None = None  # what filtered, what was relaxed, what was kept or changed
    predicted_category: dict[str, Any] | None = None
    regions: list[dict[str, Any]] | None = None


class LookItem(_Reply):
    """A garment of the look: the product asked about, or a garment the detector found in the photo."""

    category: str
    product_id: str | None = None  # a product_id query
    box: list[int] | None = None  # a photo query: x0, y0, x1, y1 pixels of the decoded photo
    score: float | None = None  # the detector's confidence (0 for a whole-image fallback)


class Look(_Reply):
    items: list[LookItem]
    categories: list[str]  # the categories searched, in the order of ``complements``
    defaulted: bool  # true when the request named none: those that complete the look's categories


class ComplementGroup(_Reply):
    """The most compatible items of one category, best first: ``score`` is their mean type-aware
    compatibility with the look's garments (larger = goes better; comparable across the groups)."""

    category: str
    results: list[Hit]


class LookReply(_Reply):
    """200 for ``complete_look``."""

    request_id: str | None
    ok: bool
    kind: str
    took_ms: float
    model_version: str
    look: Look
    complements: list[ComplementGroup]


class Product(_Reply):
    """What the index holds for one product (never its vectors)."""

    product_id: str
    version: int
    title: str | None = None
    description: str | None = None
    brand: str | None = None
    price: float | None = None
    currency: str | None = None
    in_stock: bool | None = None
    category: str | None = None
    article_type: str | None = None
    colour: str | None = None
    gender: str | None = None
    usage: str | None = None
    season: str | None = None
    attributes: dict[str, Any] | None = None  # {"merchant": {...}, "model": {group: {value, confidence}}}
    model_version: str | None = None
    image_uri: str | None = None
    images: list[str] | None = None  # every image, in the event's order
    image_count: int | None = None
    event_time: float | None = None
    indexed_at: float | None = None


class ProductReply(_Reply):
    """200 for the ``get`` kind and ``GET /products/{product_id}``."""

    request_id: str | None
    ok: bool
    kind: str
    took_ms: float
    model_version: str
    product: Product


class ErrorBody(_Reply):
    code: str  # invalid_request, not_found, bad_image, image_store_unavailable, model_mismatch, unavailable, ...
    message: str
    field: str | None = None


class ErrorReply(_Reply):
    """Every failure: 400, 401, 404, 422, 501, 503 or 500 (the table in ``workers.query.service``)."""

    request_id: str | None
    ok: bool
    error: ErrorBody
