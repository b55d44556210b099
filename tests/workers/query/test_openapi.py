"""The OpenAPI document: generated from the request and reply models, every reference resolves, every
request field is described, and the service's real replies validate against the reply models."""

from __future__ import annotations

import json
from typing import Any

from test_service import PNG, StubIndex, _ask, _b64, _service

from streams.schema import Filters, SearchRequest
from workers.query.openapi import openapi_document
from workers.query.replies import ErrorReply, ProductReply, SearchReply


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_the_document_is_openapi_3_and_every_reference_resolves() -> None:
    doc = json.loads(json.dumps(openapi_document()))  # plain JSON, as served
    assert doc["openapi"].startswith("3.") and {"/search", "/products/{product_id}", "/openapi.json"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    refs = _refs(doc)
    assert refs and all(r.startswith("#/components/schemas/") and r.rsplit("/", 1)[1] in schemas for r in refs)


def test_every_request_field_is_described() -> None:
    schemas = openapi_document()["components"]["schemas"]
    assert set(SearchRequest.model_fields) <= set(schemas["SearchRequest"]["properties"])
    assert set(Filters.model_fields) <= set(schemas["Filters"]["properties"])
    assert "get" in json.dumps(schemas["SearchRequest"]["properties"]["kind"])


ROW = {"product_id": "p0", "version": 3, "title": "Red shirt", "deleted": False, "price": 9.5, "colour": "red",
       "attributes": {"merchant": {"colour": "red"}, "model": {}}, "model_version": "m", "indexed_at": 1.0,
       "image_vec": [0.1] * 32}


def test_real_replies_validate_against_the_reply_models() -> None:
    index = StubIndex(rows={"p0": ROW})
    for body in ({"request_id": "t", "kind": "text", "text": "red shirt"},
                 {"request_id": "e", "kind": "text", "text": "red shirt", "explain": True, "facets": ["colour", "price"],
                  "sort": "price_asc", "offset": 1, "k": 1},
                 {"request_id": "i", "kind": "image_text", "text": "in blue", "image": {"b64": _b64(PNG)}},
                 {"request_id": "r", "kind": "image", "image": {"b64": _b64(PNG)}, "all_regions": True},
                 {"request_id": "s", "kind": "similar", "product_id": "p0"}):
        reply, status = _ask(_service(index), body)
        assert status == 200, reply
        SearchReply.model_validate(reply)
        assert body["kind"] != "image" or reply["regions"], reply  # every optional part is covered
    reply, status = _ask(_service(index), {"request_id": "g", "kind": "get", "product_id": "p0"})
    assert status == 200 and ProductReply.model_validate(reply).product.version == 3
    assert "image_vec" not in reply["product"]  # never the vectors
    reply, status = _ask(_service(index), {"request_id": "x", "kind": "nope"})
    assert status == 400 and ErrorReply.model_validate(reply).error.code == "invalid_request"

