"""Prometheus metrics of every worker (conventional names, ``vitrine_`` prefix, base units).

Counters end in ``_total``; durations are histograms in seconds. Index freshness is measured from
the event's ``occurred_at`` to the moment Milvus acknowledged the write (``vitrine_index_freshness_seconds``);
searchable freshness from the same ``occurred_at`` to the first read, as the query worker reads, that
shows the write (``vitrine_searchable_freshness_seconds``, sampled by ``workers.index.probe``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_FRESHNESS = (0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 30, 60, 300)

EVENTS_CONSUMED = Counter("vitrine_events_consumed_total", "Events read, by worker and event type", ["worker", "type"])
EVENTS_INDEXED = Counter("vitrine_events_indexed_total", "Records written to Milvus, by operation", ["op"])
EVENTS_SUPERSEDED = Counter("vitrine_events_superseded_total", "Events skipped as stale or duplicate", ["worker"])
EVENTS_DLQ = Counter("vitrine_events_dlq_total", "Events sent to the dead-letter topic", ["worker", "stage", "reason"])
STAGE_SECONDS = Histogram("vitrine_stage_seconds", "Time per pipeline stage and batch", ["stage"], buckets=_LATENCY)
BATCH_SIZE = Histogram("vitrine_batch_size", "Items per micro-batch", ["stage"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
FRESHNESS = Histogram("vitrine_index_freshness_seconds", "Event time to Milvus acknowledgement", buckets=_FRESHNESS)
SEARCHABLE_FRESHNESS = Histogram("vitrine_searchable_freshness_seconds", "Event time to the write first seen by "
                                 "the searchable probe (a read at the query path's consistency), sampled",
                                 buckets=_FRESHNESS)
SEARCHABLE_PROBES = Counter("vitrine_searchable_probe_total", "Searchable probes, by outcome: seen, timeout (not "
                            "visible within the probe's timeout), error (the read failed)", ["outcome"])
QUERIES = Counter("vitrine_queries_total", "Search requests, by kind, transport and outcome", ["kind", "transport", "outcome"])
QUERY_SECONDS = Histogram("vitrine_query_seconds", "Search latency by kind", ["kind"], buckets=_LATENCY)
ERRORS = Counter("vitrine_errors_total", "Unexpected errors, by worker and where", ["worker", "where"])
GUARD_READ_MISSES = Counter("vitrine_guard_read_misses_total",
                            "Rows a confirming re-read found that the version guard's first read missed")
SERVED_COLLECTION = Gauge("vitrine_query_collection", "1 for the collection a query worker serves; live: whether the "
                          "alias points at it", ["collection", "live"])
RETRIES = Counter("vitrine_retries_total", "Retries of a dependency, by dependency", ["dependency"])
INDEX_PRODUCTS = Gauge("vitrine_index_products", "Products searchable (not deleted) in the collection an index "
                       "writer writes, counted after a flush (at most every 30 s)", ["collection"])


class _SourceProgress:
    """Reads the ``BatchSource``s' progress at scrape time: each worker exports the lag of the partitions
    it owns (it knows its committed offsets and the log end from its own fetches, so no exporter
    process and no extra broker calls). A partition nobody owns, or owned by a stalled worker, is
    exported by nobody here: ``vitrine_consumer_group_lag`` (below, from the topic's writer) covers it.
    The query worker reads through a Faust agent: no lag here."""

    def __init__(self) -> None:
        self.sources: dict[int, tuple[Any, str]] = {}

    def collect(self) -> Any:
        lag = GaugeMetricFamily("vitrine_consumer_lag", "Records past the group's committed offset (not read, or "
                                "read and not acknowledged), per owned partition", labels=["group", "topic", "partition"])
        in_flight = GaugeMetricFamily("vitrine_in_flight_events", "Events read and not yet acknowledged",
                                      labels=["worker"])
        for source, worker in list(self.sources.values()):
            progress = source.progress()
            for p in progress:
                if p.lag is not None:
                    lag.add_metric([source.group, p.topic, str(p.partition)], p.lag)
            in_flight.add_metric([worker], sum(p.unacknowledged for p in progress))
        yield lag
        yield in_flight


_PROGRESS = _SourceProgress()
REGISTRY.register(_PROGRESS)


def watch_source(source: Any, worker: str) -> None:
    """Export ``vitrine_consumer_lag{group, topic, partition}`` and ``vitrine_in_flight_events{worker}``
    for ``source`` (a ``streams.source.BatchSource``) from now on."""
    _PROGRESS.sources[id(source)] = (source, worker)


class _TextCache:
    """Reads a text embedder's cache counters at scrape time (the vision package imports no metrics)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder

    def collect(self) -> Any:
        lookups = CounterMetricFamily("vitrine_text_cache_lookups", "Text vectors looked up, by result: hit (from "
                                      "the cache) or miss (the model ran)", labels=["result"])
        lookups.add_metric(["hit"], self.embedder.hits)
        lookups.add_metric(["miss"], self.embedder.misses)
        yield lookups
        yield GaugeMetricFamily("vitrine_text_cache_entries", "Text vectors held in the cache", value=self.embedder.cached)


def watch_text_cache(embedder: Any, registry: CollectorRegistry = REGISTRY) -> None:
    """Export ``vitrine_text_cache_lookups_total{result}`` and ``vitrine_text_cache_entries`` for ``embedder``."""
    registry.register(_TextCache(embedder))


class _GroupLag:
    """Reads ``workers.runtime.group_lag.GroupLagProbe``s at scrape time: the broker's view of the lag of
    the groups that read a topic this worker writes (the ingest worker: its model's index groups), so a
    reader that is down or stalled still has its backlog exported by someone."""

    def __init__(self) -> None:
        self.probes: dict[int, Any] = {}

    def collect(self) -> Any:
        lag = GaugeMetricFamily("vitrine_consumer_group_lag", "Records past a consumer group's committed offsets "
                                "on a topic, as the broker sees them (log end minus committed, summed over "
                                "partitions), exported by the topic's writer", labels=["group", "topic"])
        for probe in list(self.probes.values()):
            for group, value in sorted(probe.lag().items()):
                lag.add_metric([group, probe.topic], value)
        yield lag


_GROUP_LAG = _GroupLag()
REGISTRY.register(_GROUP_LAG)


def watch_group_lag(probe: Any) -> None:
    """Export ``vitrine_consumer_group_lag{group, topic}`` from ``probe`` (a ``GroupLagProbe``) from now on."""
    _GROUP_LAG.probes[id(probe)] = probe
