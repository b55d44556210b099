"""The three Faust apps: thin readers that decode, call the plain code, write, and acknowledge.

- ``vitrine-ingest``: ``catalog.events`` -> ``IngestPipeline`` -> ``index.enriched`` / ``catalog.dlq``
- ``vitrine-index``: ``index.enriched`` -> ``IndexWriter`` -> Milvus / ``catalog.dlq``
- ``vitrine-query``: ``search.requests`` -> ``QueryService`` -> ``search.responses``; ``POST /search``

Every app serves ``GET /metrics`` (Prometheus) and ``GET /healthz`` on ``http_host:http_port``.
The ingest and index workers read with ``streams.source.BatchSource`` (a Faust agent's per-message
cost capped patches at ~3,000/s) and acknowledge each event themselves once its output was
acknowledged downstream (see the module docstrings of ``workers.ingest`` and ``workers.index_writer``);
their consumer groups are ``vitrine-ingest`` and ``vitrine-index``, as before. The query worker is a
Faust agent (4 at once): a request is cheap to lose, and it is answered, not committed, per message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from indexer.exceptions import IndexUnavailable
from indexer.schema import IndexLayout
from indexer.store import ProductIndex
from streams.admin import quiet_client_debug_logs
from streams.app import make_app
from streams.codecs import SourceRef, decode_key, dumps, encode_record
from streams.source import BatchSource, Record
from workers import metrics as m
from workers.exceptions import DeadLetter
from workers.fetch import FetchPolicy, ImageFetcher
from workers.index_writer import IndexWriter, Item
from workers.ingest import IngestPipeline, RecentDeletes, Work, dead_letter_record, triage, work_of
from workers.query import QueryService
from workers.settings import Settings
from workers.stages import supervise

log = logging.getLogger("vitrine")


def _app(settings: Settings, name: str, *, consume: bool = False) -> Any:
    quiet_client_debug_logs()  # aiokafka's DEBUG records carry the SASL password
    app = make_app(
        f"vitrine-{name}", settings.kafka_bootstrap, web_host=settings.http_host, web_port=settings.http_port,
        data_dir=settings.data_dir, partitions=settings.partitions, session_timeout_s=settings.session_timeout_s,
        credentials=_credentials(settings), consume=consume,
    )
    ready = {"ok": False}

    @app.page("/metrics")
    async def metrics(self: Any, request: Any) -> Any:
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        return self.json({"worker": name, "ready": ready["ok"]}, status=200 if ready["ok"] else 503)

    app.vitrine_ready = ready
    return app


def _credentials(settings: Settings) -> Any:
    """Faust's credentials for the security protocol that ``settings.kafka_options()`` gives kafka-python.

    The protocol decides, not the mechanism; Faust's ``SASLCredentials`` means SASL_SSL only when
    given an SSL context (without one it is SASL_PLAINTEXT: a SASL_SSL setting would go out in clear).
    """
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    import ssl

    import faust

    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile) if protocol.endswith("SSL") else None
    if not protocol.startswith("SASL"):
        return faust.SSLCredentials(context)
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else ""
    return faust.SASLCredentials(username=settings.kafka_username, password=password,
                                 mechanism=settings.kafka_sasl_mechanism, ssl_context=context)


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        allowed_hosts=tuple(h.lower() for h in settings.fetch_allowed_hosts),
        allow_private=settings.fetch_allow_private, allow_file=settings.fetch_allow_file,
        file_root=settings.fetch_file_root, max_bytes=settings.fetch_max_bytes,
        timeout_s=settings.fetch_timeout_s, retries=settings.fetch_retries, concurrency=settings.fetch_concurrency,
        retry_budget_s=settings.fetch_retry_budget_s,
    )


def s3_client(settings: Settings) -> Any:
    from minio import Minio

    return Minio(settings.s3_endpoint, access_key=settings.s3_access_key.get_secret_value(),
                 secret_key=settings.s3_secret_key.get_secret_value(), secure=settings.s3_secure,
                 region=settings.s3_region)


def layout_for(settings: Settings, vision: Any) -> IndexLayout:
    return IndexLayout(
        model_version=vision.model_version, alias=settings.collection_alias, index_type=settings.index_type,
        dims={"image_vec": vision.image_dim, "colour_vec": vision.colour_dim, "text_vec": vision.text_dim},
    )


def _source(event: Any) -> tuple[bytes, SourceRef, str | None]:
    msg = event.message
    return msg.value or b"", SourceRef(msg.topic, msg.partition, msg.offset), decode_key(msg.key)


# ---------------------------------------------------------------------------- ingest

def build_ingest_app(settings: Settings, vision: Any) -> Any:
    app = _app(settings, "ingest")
    topics = settings.topics
    dlq = app.topic(topics.dlq, partitions=1)
    deletes = RecentDeletes(settings.ingest_deletes_remembered)
    fetcher = ImageFetcher(fetch_policy(settings), s3_client(settings))

    async def send_dead_letter(work: Work, err: DeadLetter) -> Any:
        m.EVENTS_DLQ.labels("ingest", err.stage, err.reason).inc()
        return await dlq.send(key=(work.key or "").encode(), value=dead_letter_record(work, err, "ingest"))

    async def emit(out: Any) -> None:
        # Straight to the producer: Faust's per-topic send buffer hands messages over one at a time,
        # which capped a batch of patches at a few hundred per second.
        futures = []
        for work, rec in out:
            if rec is None:
                if work.error is not None:  # else superseded: nothing to emit
                    futures.append(await send_dead_letter(work, work.error))
            else:
                futures.append(await app.producer.send(topics.enriched, rec.product_id.encode(), encode_record(rec),
                                                       None, None, None))
        await asyncio.gather(*futures)  # the broker acknowledged every output ...
        for work, _ in out:
            work.ack()  # ... so the events they cover may be committed

    pipeline = IngestPipeline(
        vision, fetcher, emit, max_batch=settings.batch_max_size, max_wait_s=settings.batch_max_wait_s,
        max_pixels=settings.fetch_max_pixels, decode_workers=settings.decode_workers,
        model_workers=settings.model_threads(), on_failure=_exit_tempfail,
    )

    async def handle(rec: Record) -> None:
        work = triage(work_of(rec), deletes)
        m.EVENTS_CONSUMED.labels("ingest", work.event.type if work.event else "invalid").inc()
        await pipeline.put(work)  # invalid and superseded too: acknowledged in offset order

    source = _batch_source(settings, topics.events, "vitrine-ingest", handle)

    @app.task
    async def run_pipeline() -> None:
        await fetcher.start()
        pipeline.start()
        await _run_source(app, source, settings)

    return app


# ---------------------------------------------------------------------------- index

def build_index_app(settings: Settings, layout: IndexLayout) -> Any:
    app = _app(settings, "index")
    topics = settings.topics
    dlq = app.topic(topics.dlq, partitions=1)
    index = ProductIndex(settings.milvus_uri, layout, token=settings.milvus_token.get_secret_value())

    async def dead_letter(item: Item, stage: str, reason: str, message: str) -> None:
        m.EVENTS_DLQ.labels("index", stage, reason).inc()
        work = Work(raw=item.raw, source=item.source, key=item.key, ack=item.ack)
        await (await dlq.send(key=(item.key or "").encode(),
                              value=dead_letter_record(work, DeadLetter(stage, reason, message), "index")))

    writer = IndexWriter(index, dead_letter, max_batch=settings.index_batch_max_size,
                         max_wait_s=settings.index_batch_max_wait_s, flush_rows=settings.flush_rows,
                         flush_interval_s=settings.flush_interval_s,
                         retry_budget_s=settings.index_retry_budget_s, on_give_up=_exit_tempfail)

    async def handle(rec: Record) -> None:
        m.EVENTS_CONSUMED.labels("index", "record").inc()
        await writer.put(Item(rec.value or b"", SourceRef(rec.topic, rec.partition, rec.offset), decode_key(rec.key),
                               rec.ack))

    source = _batch_source(settings, topics.enriched, "vitrine-index", handle)

    @app.task
    async def run_writer() -> None:
        await _start_index(index, create=True)
        writer.start()
        await _run_source(app, source, settings)

    return app


def _batch_source(settings: Settings, topic: str, group: str, handle: Any) -> BatchSource:
    return BatchSource(topic, settings.kafka_bootstrap, group, handle, session_timeout_s=settings.session_timeout_s,
                       commit_interval_s=settings.commit_interval_s, **settings.kafka_options())


async def _run_source(app: Any, source: BatchSource, settings: Settings) -> None:
    """Join the group and read until the worker stops; then commit what was acknowledged and leave.

    The group's first join is retried for ``kafka_wait_s`` (a broker restarting), then the worker exits
    with status 75. A read loop that dies takes the worker down (``workers.stages.supervise``).
    """
    async def join() -> None:
        try:
            await source.start()
        except Exception:
            await source.stop()  # a half-started consumer holds a connection
            raise

    await _with_retries(join, f"joining the {source.group} group on {source.topic}",
                        give_up_after_s=settings.kafka_wait_s)
    reader = supervise(source.read_loop, app.conf.id, _exit_tempfail)
    app.vitrine_ready["ok"] = True
    try:
        await asyncio.Future()  # until the worker stops: Faust cancels its tasks, then waits for them
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await source.stop()


def _exit_tempfail(exc: BaseException) -> None:
    """Exit at once with EX_TEMPFAIL (a stage gave up or died): nothing unwritten was acknowledged, so a
    restart replays it."""
    import os

    logging.shutdown()
    os._exit(75)


async def _start_index(index: ProductIndex, *, create: bool, via_alias: bool = False) -> None:
    await _with_retries(lambda: asyncio.to_thread(index.start, create=create, via_alias=via_alias),
                        "opening the Milvus collection", retry_on=IndexUnavailable)


async def _with_retries(attempt: Callable[[], Awaitable[None]], what: str, *,
                        retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
                        give_up_after_s: float | None = None) -> None:
    """Await ``attempt()`` until it succeeds, backing off from 0.5 s to 5 s; past ``give_up_after_s``
    (when given) the worker exits with status 75, EX_TEMPFAIL."""
    delay = 0.5
    give_up_at = None if give_up_after_s is None else time.monotonic() + give_up_after_s
    while True:
        try:
            await attempt()
            return
        except retry_on as exc:
            if give_up_at is not None and time.monotonic() + delay > give_up_at:
                log.critical("%s: gave up after %.0fs: %r", what, give_up_after_s, exc)
                _exit_tempfail(exc)
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


# ---------------------------------------------------------------------------- query

def build_query_app(settings: Settings, vision: Any, layout: IndexLayout) -> Any:
    import faust

    app = _app(settings, "query", consume=True)
    topics = settings.topics
    requests = app.topic(topics.requests, partitions=settings.partitions)
    responses = app.topic(topics.responses, partitions=settings.partitions)
    index = ProductIndex(settings.milvus_uri, layout, token=settings.milvus_token.get_secret_value())
    # a query must not wait out an object-store outage: its transient errors are retried briefly only
    fetcher = ImageFetcher(dataclasses.replace(fetch_policy(settings), retry_budget_s=0.0), s3_client(settings))
    service = QueryService(vision, index, fetcher, max_pixels=settings.fetch_max_pixels,
                           max_image_bytes=settings.fetch_max_bytes)
    token = settings.http_token.get_secret_value() if settings.http_token else None

    @app.task
    async def start_service() -> None:
        await fetcher.start()
        await _start_index(index, create=False, via_alias=True)
        service.ready = True
        app.vitrine_ready["ok"] = True

    @app.agent(requests, concurrency=4)
    async def answer(stream: Any) -> None:
        async for event in stream.events():
            raw, _, key = _source(event)
            reply, _ = await service.handle(raw, "kafka")
            rid = reply.get("request_id") or key or ""
            reply["request_id"] = rid
            await responses.send(key=str(rid).encode(), value=dumps(reply))

    class SearchView(faust.web.View):
        async def post(self, request: Any) -> Any:
            if token and request.headers.get("Authorization", "") != f"Bearer {token}":
                return self.json({"ok": False, "error": {"code": "unauthorized", "message": "bearer token required",
                                                         "field": None}}, status=401)
            body = await self.read_request_content(request)
            reply, status = await service.handle(body, "http")
            return self.json(reply, status=status)

    app.page("/search")(SearchView)
    return app
