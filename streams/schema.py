"""Event and query schemas, version ``SCHEMA_VERSION``, shared by every producer and consumer.

Contract:
- Every record carries ``schema_version``; a consumer rejects a version it does not know
  (``InvalidEvent(reason="unknown_schema_version")``) rather than guessing.
- ``version`` is monotonic per product and shared by upserts, patches and deletes of that
  product: the index converges to the highest version seen, whatever the arrival order.
- ``occurred_at`` is the event time in seconds since the epoch (UTC); ISO-8601 strings are
  accepted and converted. Index freshness is measured from it.
- Validation errors name the offending field (``InvalidEvent.field``).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from streams.exceptions import InvalidEvent, InvalidQuery

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 1_000_000
MAX_QUERY_BYTES = 16_000_000  # a base64 query photo fits; the image itself is limited again when decoded

ProductId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
ImageUri = Annotated[str, Field(min_length=1, max_length=2048)]
AttrKey = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
AttrValue = Annotated[str, Field(max_length=256)]

#: Merchant attributes that the index keeps as scalar fields (fast filters); the rest stay in a JSON field.
HOT_ATTRIBUTES = ("category", "article_type", "colour", "gender", "usage", "season")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _epoch(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise ValueError("must be epoch seconds or an ISO-8601 time") from exc
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, int | float) and not math.isfinite(value):
        raise ValueError("must be finite")
    return value


class _EventBase(_Model):
    schema_version: Literal[1]
    product_id: ProductId
    version: Annotated[int, Field(ge=0, le=2**62)]
    occurred_at: Annotated[float, Field(ge=0)]

    _check_time = field_validator("occurred_at", mode="before")(_epoch)


class UpsertEvent(_EventBase):
    """A full product: replaces whatever the index holds for ``product_id`` if ``version`` is newer."""

    type: Literal["upsert"]
    title: Annotated[str, Field(min_length=1, max_length=512)]
    description: Annotated[str, Field(max_length=8192)] = ""
    brand: Annotated[str, Field(max_length=128)] = ""
    price: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    in_stock: bool = True
    attributes: Annotated[dict[AttrKey, AttrValue], Field(max_length=64)] = {}
    images: Annotated[list[ImageUri], Field(min_length=1, max_length=16)]

    @field_validator("images")
    @classmethod
    def _schemes(cls, images: list[str]) -> list[str]:
        for uri in images:
            if not uri.split("://", 1)[0].lower() in ("s3", "http", "https", "file") or "://" not in uri:
                raise ValueError(f"unsupported image URI scheme in {uri[:80]!r} (s3, http, https or file)")
        return images


class PatchFields(_Model):
    """Scalar fields a patch may change; vectors are never recomputed for a patch."""

    title: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    description: Annotated[str, Field(max_length=8192)] | None = None
    brand: Annotated[str, Field(max_length=128)] | None = None
    price: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    in_stock: bool | None = None


class PatchEvent(_EventBase):
    """Changes scalar fields of an indexed product (price, stock, title, ...), no GPU work."""

    type: Literal["patch"]
    fields: PatchFields

    @field_validator("fields")
    @classmethod
    def _not_empty(cls, fields: PatchFields) -> PatchFields:
        if not fields.model_dump(exclude_none=True):
            raise ValueError("a patch must change at least one field")
        return fields


class DeleteEvent(_EventBase):
    """Removes a product; the index keeps a tombstone ``version`` so older upserts cannot resurrect it."""

    type: Literal["delete"]


Event = UpsertEvent | PatchEvent | DeleteEvent
_EVENT_TYPES: dict[str, type[_EventBase]] = {"upsert": UpsertEvent, "patch": PatchEvent, "delete": DeleteEvent}
#: Parses and validates JSON bytes in one pass (pydantic-core), for events that are valid.
_EVENT_JSON = TypeAdapter(Annotated[Event, Field(discriminator="type")])


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    return field or "", err["msg"]


def parse_event(data: bytes | str | dict[str, Any]) -> Event:
    """Decode and validate one catalogue event; raise ``InvalidEvent`` naming the field on any problem."""
    if isinstance(data, bytes | str):
        if len(data) > MAX_EVENT_BYTES:
            raise InvalidEvent("too_large", f"event is {len(data)} bytes, the limit is {MAX_EVENT_BYTES}")
        try:  # the fast path (22 -> 15 µs a patch): a valid event in one pass; anything else is
            return _EVENT_JSON.validate_json(data)  # parsed again below, which names what is wrong
        except ValueError:  # pydantic's ValidationError included
            pass
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidEvent("malformed_json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent("malformed_json", "an event must be a JSON object")
    sv = data.get("schema_version")
    if sv is None:
        raise InvalidEvent("missing_field", "field required", "schema_version")
    if sv != SCHEMA_VERSION:
        raise InvalidEvent("unknown_schema_version", f"unsupported schema_version {sv!r}", "schema_version")
    kind = data.get("type")
    if kind not in _EVENT_TYPES:
        raise InvalidEvent("unknown_type", f"must be one of {sorted(_EVENT_TYPES)}, got {kind!r}"[:200], "type")
    try:
        return _EVENT_TYPES[kind].model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        field, msg = _first_error(exc)
        reason = "missing_field" if msg == "Field required" else "invalid_field"
        raise InvalidEvent(reason, msg, field) from None


# --------------------------------------------------------------------------- queries

QueryKind = Literal["similar", "image", "text", "image_text", "get", "complete_look"]
#: A coarse category name as a look asks for it ("shoes", "bag"); the query worker checks it is one it knows.
CategoryName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_ -]*$")]
#: ``relevance`` (default), or the relevant set re-ordered by price or with in-stock items first
#: (ties keep their relevance order): ``workers.query.page``.
SortOrder = Literal["relevance", "price_asc", "price_desc", "in_stock_first"]
FacetName = Literal["category", "article_type", "colour", "gender", "usage", "season", "brand", "price"]


class Filters(_Model):
    """Attribute filters; every value is matched exactly (strings are escaped, never spliced)."""

    category: Annotated[str, Field(max_length=64)] | None = None
    article_type: Annotated[str, Field(max_length=64)] | None = None
    colour: Annotated[str, Field(max_length=64)] | None = None
    gender: Annotated[str, Field(max_length=64)] | None = None
    usage: Annotated[str, Field(max_length=64)] | None = None
    season: Annotated[str, Field(max_length=64)] | None = None
    brand: Annotated[str, Field(max_length=128)] | None = None
    attributes: Annotated[dict[AttrKey, AttrValue], Field(max_length=16)] = {}
    price_min: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    price_max: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    in_stock: bool | None = None


class QueryImage(_Model):
    uri: ImageUri | None = None
    b64: Annotated[str, Field(max_length=MAX_QUERY_BYTES)] | None = None


class SearchRequest(_Model):
    """One search. ``kind`` picks the query vector: a product's own (``similar``), a photo, text, or both."""

    schema_version: Literal[1] = 1
    request_id: Annotated[str, Field(min_length=1, max_length=128)]
    kind: QueryKind
    product_id: ProductId | None = None
    image: QueryImage | None = None
    text: Annotated[str, Field(max_length=1024)] | None = None
    filters: Filters = Filters()
    k: Annotated[int, Field(ge=1, le=200)] = 10
    offset: Annotated[int, Field(ge=0, le=16_000)] = 0  # hits of the relevant set skipped (paging)
    sort: SortOrder = "relevance"
    facets: Annotated[list[FacetName], Field(max_length=8)] = []
    explain: bool = False  # each hit's score split into its parts
    all_regions: bool = False
    # complete_look: the categories wanted (default: those that complete the item's or the photo's
    # look); ``k`` is then the number of items per category
    categories: Annotated[list[CategoryName], Field(max_length=16)] = []

    @field_validator("facets", "categories")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("each name at most once")
        return names


def parse_search_request(data: bytes | str | dict[str, Any]) -> SearchRequest:
    """Validate a search request; raise ``InvalidQuery`` naming the field."""
    if isinstance(data, bytes | str):
        if len(data) > MAX_QUERY_BYTES:
            raise InvalidQuery(f"request is {len(data)} bytes, the limit is {MAX_QUERY_BYTES}")
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidQuery(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidQuery("a request must be a JSON object")
    try:
        req = SearchRequest.model_validate(data)
    except ValidationError as exc:
        field, msg = _first_error(exc)
        raise InvalidQuery(msg, field or None) from None
    needs = {"similar": ("product_id",), "image": ("image",), "text": ("text",), "image_text": ("image", "text"),
             "get": ("product_id",), "complete_look": ()}
    for name in needs[req.kind]:
        if not getattr(req, name):
            raise InvalidQuery(f"required for kind {req.kind!r}", name)
    if req.kind == "complete_look" and (req.product_id is None) == (req.image is None):
        raise InvalidQuery("complete_look takes exactly one of product_id or image", "product_id")
    if req.categories and req.kind != "complete_look":
        raise InvalidQuery(f"categories are for kind 'complete_look', not {req.kind!r}", "categories")
    if req.image is not None and (req.image.uri is None) == (req.image.b64 is None):
        raise InvalidQuery("give exactly one of uri or b64", "image")
    f = req.filters
    if f.price_min is not None and f.price_max is not None and f.price_min > f.price_max:
        raise InvalidQuery("price_min is above price_max", "filters.price_min")
    return req
