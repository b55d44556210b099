"""Topics as data: names under a configurable prefix, partition counts, and what each carries.

Every topic is keyed by product id (requests and responses by request id), so one product's
events stay in order on one partition and a partition is the unit of parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    carries: str


@dataclass(frozen=True)
class TopicSet:
    """The five topics of one deployment, e.g. ``TopicSet("vitrine").events == "vitrine.catalog.events"``."""

    prefix: str = "vitrine"
    partitions: int = 4

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
        p = self.partitions
        return [
            TopicSpec(self.events, p, "product_id", "catalogue events (upsert, patch, delete): the source of truth"),
            TopicSpec(self.dlq, 1, "product_id", "events that cannot be processed, with original bytes, stage, reason"),
            TopicSpec(self.enriched, p, "product_id", "features, attributes and model version, ready for the index"),
            TopicSpec(self.requests, p, "request_id", "search requests"),
            TopicSpec(self.responses, p, "request_id", "search replies, matched to requests by request_id"),
        ]
