"""``vitrine-query``: ``search.requests`` -> ``QueryService`` -> ``search.responses``; ``POST /search``.

A Faust agent (4 requests at once) answers each request on the responses topic, keyed by its
``request_id``; a request is cheap to lose, so it is answered, not committed, per message. The same
``QueryService.handle`` serves ``POST /search`` and ``GET /products/{product_id}`` (a bearer token
when ``http_token`` is set); ``GET /openapi.json`` describes them (``workers.query.openapi``).

The worker follows the alias (``alias_refresh_s``): after ``vitrine reindex swap`` it serves the new
collection when it holds its model's vectors, and otherwise goes on answering from its own model's
collection with ``/healthz`` 503, so that a rolling replacement by the new model's workers drops no
request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any

from indexer.exceptions import IndexUnavailable
from indexer.schema import IndexLayout
from streams.codecs import decode_key, dumps
from workers import metrics as m
from workers.fetch import ImageFetcher
from workers.query.openapi import openapi_document
from workers.query.service import QueryService
from workers.runtime.app import worker_app
from workers.runtime.wiring import fetch_policy, open_index, product_index, s3_client, text_fusion
from workers.settings import Settings
from workers.vision.pipeline import VisionPipeline

__all__ = ["build_query_app"]

log = logging.getLogger("vitrine.query")

UNAUTHORIZED = {"ok": False, "error": {"code": "unauthorized", "message": "bearer token required", "field": None}}


def build_query_app(settings: Settings, vision: VisionPipeline, layout: IndexLayout) -> Any:
    import faust

    app = worker_app(settings, "query", consume=True)
    topics = settings.topics
    req, resp = topics.spec(topics.requests), topics.spec(topics.responses)  # partitions, replication: settings
    requests = app.topic(req.name, partitions=req.partitions, replicas=req.replication)
    responses = app.topic(resp.name, partitions=resp.partitions, replicas=resp.replication)
    index = product_index(settings, layout)
    # a query must not wait out an object-store outage: its transient errors are retried briefly only
    fetcher = ImageFetcher(dataclasses.replace(fetch_policy(settings), retry_budget_s=0.0), s3_client(settings))
    service = QueryService(vision, index, fetcher, max_pixels=settings.fetch_max_pixels,
                           max_image_bytes=settings.fetch_max_bytes, text_fusion=text_fusion(settings),
                           relevant_set=settings.query_relevant_set, facet_scan_limit=settings.facet_scan_limit,
                           price_bands=tuple(settings.facet_price_bands))
    token = settings.http_token.get_secret_value() if settings.http_token else None

    @app.task
    async def start_service() -> None:
        await fetcher.start()
        await open_index(index, create=False, via_alias=True)
        service.ready = True
        app.vitrine_ready["ok"] = index.live
        while True:  # follow the alias: a swap or a rollback needs no restart (ProductIndex.follow_alias)
            await asyncio.sleep(settings.alias_refresh_s)
            try:
                if await asyncio.to_thread(index.follow_alias):
                    log.info("now serving %s", index.collection)
            except IndexUnavailable as exc:  # Milvus away: keep serving what is served; searches report it
                log.warning("alias not read: %s", exc)
            m.SERVED_COLLECTION.clear()
            m.SERVED_COLLECTION.labels(index.collection, str(index.live).lower()).set(1)
            # ready only while serving the live collection: during a model rollout, the old model's
            # workers leave the load balancer once the alias moved to the new model, and answer meanwhile
            app.vitrine_ready["ok"] = index.live

    @app.agent(requests, concurrency=4)
    async def answer(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            reply, _ = await service.handle(msg.value or b"", "kafka")
            rid = reply.get("request_id") or decode_key(msg.key) or ""
            reply["request_id"] = rid
            await responses.send(key=str(rid).encode(), value=dumps(reply))

    class SearchView(faust.web.View):
        async def post(self, request: Any) -> Any:
            if token and request.headers.get("Authorization", "") != f"Bearer {token}":
                return self.json(UNAUTHORIZED, status=401)
            body = await self.read_request_content(request)
            reply, status = await service.handle(body, "http")
            return self.json(reply, status=status)

    class ProductView(faust.web.View):
        async def get(self, request: Any, product_id: str) -> Any:
            if token and request.headers.get("Authorization", "") != f"Bearer {token}":
                return self.json(UNAUTHORIZED, status=401)
            rid = request.headers.get("X-Request-Id") or f"get-{uuid.uuid4().hex[:12]}"
            reply, status = await service.handle({"request_id": rid,
                                                  "kind": "get", "product_id": product_id}, "http")
            return self.json(reply, status=status)

    document = openapi_document()

    class OpenAPIView(faust.web.View):
        async def get(self, request: Any) -> Any:
            return self.json(document)

    app.page("/search")(SearchView)
    app.page("/products/{product_id}")(ProductView)
    app.page("/openapi.json")(OpenAPIView)
    return app
