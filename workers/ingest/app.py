"""``vitrine-ingest``: ``catalog.events`` -> ``IngestPipeline`` -> ``index.enriched.<model key>`` / ``catalog.dlq``.

One consumer group per model (``streams.topics.ingest_group``): a new model's ingest reads the
compacted catalogue from the start while the live model's keeps going (``vitrine reindex``).

Thin wiring: ``handle`` triages each record and hands it to the pipeline; ``emit`` sends what a batch
made straight to the producer, waits until the broker acknowledged every output, and only then
acknowledges the events they cover (guarantee 1: offsets are committed only after the write).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from streams.codecs import IndexRecord, encode_record
from streams.source import Record
from streams.topics import index_group, ingest_group
from workers import metrics as m
from workers.dlq import DeadLetterWatch, dead_letter_record
from workers.fetch import ImageFetcher
from workers.ingest.pipeline import IngestPipeline, RecentDeletes, Work, triage
from workers.metrics import watch_group_lag
from workers.runtime.app import worker_app
from workers.runtime.group_lag import GroupLagProbe, run_probe
from workers.runtime.reading import batch_source, exit_tempfail, read_topic
from workers.runtime.wiring import fetch_policy, layout_for, s3_client
from workers.settings import Settings
from workers.vision.pipeline import VisionPipeline

__all__ = ["IngestOutput", "build_ingest_app"]

#: How often the index groups' lag is read from the broker (a Prometheus scrape interval).
_GROUP_LAG_EVERY_S = 5.0


class IngestOutput:
    """Where a batch's results go: enriched records to ``index.enriched``, errors to ``catalog.dlq``.

    ``producer`` is anything with aiokafka's ``send(topic, key, value, ...)`` returning a future of
    the broker's acknowledgement; ``emit`` acknowledges the events only once every send of the
    batch was acknowledged, so a failed send leaves them unacknowledged (replayed after a restart).
    """

    def __init__(self, producer: Any, enriched_topic: str, dlq_topic: str) -> None:
        self.producer = producer
        self.enriched_topic = enriched_topic
        self.dlq_topic = dlq_topic
        self.watch = DeadLetterWatch("ingest")

    async def emit(self, out: Sequence[tuple[Work, IndexRecord | None]]) -> None:
        # Straight to the producer: Faust's per-topic send buffer hands messages over one at a time,
        # which capped a batch of patches at a few hundred per second.
        futures = []
        for work, rec in out:
            if rec is None:
                if work.error is not None:  # else superseded: nothing to emit
                    err = work.error
                    self.watch.dead_lettered(err.reason)
                    m.EVENTS_DLQ.labels("ingest", err.stage, err.reason).inc()
                    value = dead_letter_record(work, err, "ingest", work.event.product_id if work.event else None)
                    futures.append(await self.producer.send(self.dlq_topic, (work.key or "").encode(), value,
                                                            None, None, None))
                else:
                    self.watch.passed()
            else:
                self.watch.passed()
                futures.append(await self.producer.send(self.enriched_topic, rec.product_id.encode(),
                                                        encode_record(rec), None, None, None))
        await asyncio.gather(*futures)  # the broker acknowledged every output ...
        for work, _ in out:
            work.ack()  # ... so the events they cover may be committed


def build_ingest_app(settings: Settings, vision: VisionPipeline) -> Any:
    app = worker_app(settings, "ingest")
    layout = layout_for(settings, vision)
    key = layout.model_key
    topics = settings.topics.for_model(key)  # this model's feature log (streams.topics)
    dlq_spec = topics.spec(topics.dlq)  # partitions and replication from the settings (streams.topics)
    app.topic(dlq_spec.name, partitions=dlq_spec.partitions, replicas=dlq_spec.replication)
    deletes = RecentDeletes(settings.ingest_deletes_remembered)
    fetcher = ImageFetcher(fetch_policy(settings), s3_client(settings))
    output = IngestOutput(None, topics.enriched, topics.dlq)

    pipeline = IngestPipeline(
        vision, fetcher, output.emit, max_batch=settings.batch_max_size, max_wait_s=settings.batch_max_wait_s,
        max_pixels=settings.fetch_max_pixels, decode_workers=settings.decode_workers,
        model_workers=settings.model_threads(), on_failure=exit_tempfail,
    )

    async def handle(rec: Record) -> None:
        work = triage(Work.of(rec), deletes)
        m.EVENTS_CONSUMED.labels("ingest", work.event.type if work.event else "invalid").inc()
        await pipeline.put(work)  # invalid and superseded too: acknowledged in offset order

    source = batch_source(settings, topics.events, ingest_group(key), handle)
    # the index groups of this model (one per collection, ``<alias>_<model key>_...``) read what this worker
    # writes: their lag is exported from here too, so an index worker that is down or stalled is still seen
    downstream = GroupLagProbe(settings.kafka_bootstrap, topics.enriched, index_group(f"{layout.alias}_{key}_"),
                               **settings.kafka_options())
    watch_group_lag(downstream)

    @app.task
    async def export_downstream_lag() -> None:
        await run_probe(downstream, _GROUP_LAG_EVERY_S)

    @app.task
    async def run_pipeline() -> None:
        output.producer = app.producer
        await fetcher.start()
        pipeline.start()
        await read_topic(app, source, settings)

    return app
