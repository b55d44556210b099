"""``vitrine-index``: ``index.enriched.<model key>`` -> ``IndexWriter`` -> Milvus / ``catalog.dlq``.

One consumer group per collection (``streams.topics.index_group``): the writers of a collection being
built (``vitrine reindex``) read the feature log from offset 0 while the live collection's keep going,
and after a swap each collection still has its own writers, so a rollback finds the old one current.

After each acknowledged batch the writer offers one record it wrote to the searchable probe
(``workers.index.probe``), which measures when the query path first sees it.

Thin wiring: every record goes to the writer as a ``Delivery``; what the writer refuses (a record that
does not decode, another model version, a patch of an unknown product, ...) is dead-lettered here
with its reason, and acknowledged only once the DLQ write was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from indexer.schema import IndexLayout
from streams.source import Record
from streams.topics import index_group
from workers import metrics as m
from workers.dlq import DeadLetterWatch, Delivery, dead_letter_record
from workers.exceptions import DeadLetter
from workers.index.probe import IndexReader, SearchableProbe
from workers.index.writer import IndexWriter
from workers.runtime.app import worker_app
from workers.runtime.reading import batch_source, exit_tempfail, read_topic
from workers.runtime.wiring import open_index, product_index
from workers.settings import Settings

__all__ = ["build_index_app"]

log = logging.getLogger("vitrine")

#: The most often ``vitrine_index_products`` is counted.
_COUNT_EVERY_S = 30.0


def build_index_app(settings: Settings, layout: IndexLayout) -> Any:
    app = worker_app(settings, "index")
    topics = settings.topics.for_model(layout.model_key)  # this model's feature log (streams.topics)
    dlq_spec = topics.spec(topics.dlq)  # partitions and replication from the settings (streams.topics)
    dlq = app.topic(dlq_spec.name, partitions=dlq_spec.partitions, replicas=dlq_spec.replication)
    index = product_index(settings, layout)

    watch = DeadLetterWatch("index")
    # publish -> searchable, sampled: reads as the query worker reads, on a connection of its own
    probe = SearchableProbe(IndexReader(lambda: product_index(settings, layout)))

    async def dead_letter(item: Delivery, stage: str, reason: str, message: str) -> None:
        watch.dead_lettered(reason)
        m.EVENTS_DLQ.labels("index", stage, reason).inc()
        await (await dlq.send(key=(item.key or "").encode(),
                              value=dead_letter_record(item, DeadLetter(stage, reason, message), "index")))

    writer = IndexWriter(index, dead_letter, max_batch=settings.index_batch_max_size,
                         max_wait_s=settings.index_batch_max_wait_s, flush_rows=settings.flush_rows,
                         flush_interval_s=settings.flush_interval_s,
                         retry_budget_s=settings.index_retry_budget_s, on_give_up=exit_tempfail,
                         watch=watch, on_indexed=probe.offer)

    async def handle(rec: Record) -> None:
        m.EVENTS_CONSUMED.labels("index", "record").inc()
        await writer.put(Delivery.of(rec))

    # a revoked partition is fenced before the group moves it (see workers.index.writer)
    source = batch_source(settings, topics.enriched, index_group(layout.collection), handle, on_revoke=writer.fence,
                          on_assign=writer.unfence)

    @app.task
    async def run_writer() -> None:
        await open_index(index, create=True)
        writer.start()
        await read_topic(app, source, settings)

    @app.task
    async def count_products() -> None:
        """``vitrine_index_products``: a count(*) when the writer wrote since the last, at most every
        ``_COUNT_EVERY_S`` (a filtered count scans: seconds on 100k rows in Milvus Lite, so not per batch)."""
        counted_at = -1
        while True:
            await asyncio.sleep(_COUNT_EVERY_S if counted_at >= 0 else 1.0)
            if not app.vitrine_ready["ok"] or writer.written == counted_at:
                continue
            written = writer.written
            try:
                m.INDEX_PRODUCTS.labels(layout.collection).set(await asyncio.to_thread(index.count))
                counted_at = written
            except Exception as exc:  # Milvus away: the writer's retries report it; count again later
                log.debug("counting products: %r", exc)

    return app
