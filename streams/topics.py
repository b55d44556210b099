"""Topics as data: names under a configurable prefix, partitions, replication, configs, and what each
carries.

Every topic is keyed by product id (requests and responses by request id), so one product's
events stay in order on one partition and a partition is the unit of parallelism.

**The source of truth.** ``catalog.events`` and ``index.enriched`` are compacted (``cleanup.policy=
compact``): Kafka keeps at least the newest record of every product forever, so a rebuild that
replays either topic from the beginning sees every live product's newest state (``vitrine reindex``).
``min.compaction.lag.ms`` (one day) keeps every record uncompacted for a day, so a consumer that
lags less than that sees every event, not just the newest per product.

**Deletes stay delete events, never followed by a Kafka tombstone.** Compaction keeps a product's
newest record, and for a deleted product that is its delete event, with its version: a rebuild
replays it and the new collection gets the tombstone row that keeps a late older upsert from
bringing the product back (the version guard, ``indexer.guard``). A Kafka tombstone (null value)
would let compaction forget the product, and then a rebuild could not tell "deleted at version 7"
from "never existed", so an upsert of version 5 still in flight would resurrect it. The cost: one
small record per deleted product kept for good (about 300 bytes: 100k deletes are ~30 MB). A null
value on ``catalog.events`` goes to the DLQ as ``malformed_json``, like any other bad event.

tansu (the demo broker) has no compaction: it accepts the topics and keeps everything, so the demo
loses nothing but disk; a rebuild there replays the whole history instead of the newest per product
(the version guard makes the outcome the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    carries: str
    replication: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicSet:
    """The five topics of one deployment, e.g. ``TopicSet("vitrine").events == "vitrine.catalog.events"``."""

    prefix: str = "vitrine"
    partitions: int = 4
    replication: int = 1

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}" if self.prefix else suffix

    @property
    def events(self) -> str:
        return self._name("catalog.events")

    @property
    def dlq(self) -> str:
        return self._name("catalog.dlq")

    @property
    def enriched(self) -> str:
        return self._name("index.enriched")

    @property
    def requests(self) -> str:
        return self._name("search.requests")

    @property
    def responses(self) -> str:
        return self._name("search.responses")

    def specs(self) -> list[TopicSpec]:
        p, r = self.partitions, self.replication
        durable = {"min.insync.replicas": str(min(2, r))} if r > 1 else {}
        log = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(DAY_MS), **durable}
        return [
            TopicSpec(self.events, p, "product_id", "catalogue events (upsert, patch, delete): the source of truth",
                      r, log),
            TopicSpec(self.dlq, 1, "product_id", "events that cannot be processed, with original bytes, stage, reason",
                      r, {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS), **durable}),
            TopicSpec(self.enriched, p, "product_id", "features, attributes and model version, ready for the index",
                      r, log),
            TopicSpec(self.requests, p, "request_id", "search requests", r,
                      {"cleanup.policy": "delete", "retention.ms": str(3600 * 1000)}),
            TopicSpec(self.responses, p, "request_id", "search replies, matched to requests by request_id", r,
                      {"cleanup.policy": "delete", "retention.ms": str(3600 * 1000)}),
        ]
