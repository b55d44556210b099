"""The OpenAPI 3 document of the query worker, generated from the pydantic models that validate
requests (``streams.schema``) and describe replies (``workers.query.replies``), so it cannot drift
from the code. Served at ``GET /openapi.json``; ``vitrine openapi`` prints it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from streams.schema import SearchRequest
from workers.query.replies import ErrorReply, LookReply, ProductReply, SearchReply

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
ERROR_STATUSES = {"400": "a bad request (the field is named)", "401": "a bearer token is required",
                  "404": "an unknown or deleted product", "422": "an image that cannot be fetched or decoded",
                  "500": "an unexpected failure (the message is its type only)",
                  "501": "complete_look on models without a style head (code style_unavailable)",
                  "503": "a dependency is away (the index, the object store, another model version): retry"}


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=_REF)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF.format(model=ref)}}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {c: _json("ErrorReply", ERROR_STATUSES[c]) for c in codes}


def openapi_document(version: str = "0.1.0") -> dict[str, Any]:
    search = {"post": {
        "summary": "Search by product, photo, text or photo + text modifier; get a product (kind get); "
                   "complete a look (kind complete_look: items of other categories that go with a product "
                   "or with the garments of a photo, k per category)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": _REF.format(
            model="SearchRequest")}}}},
        "responses": {"200": {"description": "the results (for kind get, the product; for complete_look, "
                                             "the complements per category)", "content": {
            "application/json": {"schema": {"oneOf": [{"$ref": _REF.format(model="SearchReply")},
                                                      {"$ref": _REF.format(model="ProductReply")},
                                                      {"$ref": _REF.format(model="LookReply")}]}}}},
                      **_errors("400", "401", "404", "422", "500", "501", "503")},
        "security": [{}, {"bearer": []}]}}
    product = {"get": {
        "summary": "What the index holds for a product (never its vectors)",
        "parameters": [{"name": "product_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": _json("ProductReply", "the product"), **_errors("401", "404", "500", "503")},
        "security": [{}, {"bearer": []}]}}
    plain = {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "vitrine query API", "version": version,
                 "description": "The same JSON goes on search.requests (replies on search.responses, keyed by "
                                "request_id). Scores: larger = more similar."},
        "paths": {
            "/search": search,
            "/products/{product_id}": product,
            "/healthz": {"get": {"summary": "ready or not", "responses": {
                "200": {"description": "ready", "content": {"application/json": {"schema": {"type": "object"}}}},
                "503": {"description": "not ready yet"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": plain}}},
            "/openapi.json": {"get": {"summary": "this document", "responses": {"200": {
                "description": "OpenAPI 3", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": _schemas(SearchRequest, SearchReply, ProductReply, LookReply, ErrorReply),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
