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

**One feature log per model.** The ingest worker of a model writes ``index.enriched.<model key>``
(``TopicSet.features``; the key is ``indexer.schema.IndexLayout.model_key``, a digest of the model
version and its vector dimensions). Two models run side by side during a model rollout (``vitrine
reindex``), and on one shared compacted topic the newer record of a product, from either model, would
let compaction drop the other model's: each model's log would lose products. Consumer groups follow
the same rule: ``ingest_group(model key)`` per model, ``index_group(collection)`` per collection, so
that a collection has exactly one group of writers and a rebuild is a new group reading from offset 0.

tansu (the demo broker) has no compaction: it accepts the topics and keeps everything, so the demo
loses nothing but disk; a rebuild there replays the whole history instead of the newest per product
(the version guard makes the outcome the same).

**Partitions and replication are the deployment's** (``VITRINE_PARTITIONS``, ``VITRINE_REPLICATION_FACTOR``,
``VITRINE_DLQ_PARTITIONS``): every topic gets the replication factor, every topic but the DLQ the
partition count (the most workers of one kind that share the load), the DLQ its own count. The DLQ
takes one partition by default: dead letters are rare and nobody consumes them at the event rate, and
on one partition they keep the one order in which they were refused (``vitrine dlq list``). ``spec(name)`` is the one plan a
Faust app declares a topic from as well, so a topic a worker creates matches what ``vitrine topics
ensure`` would have created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    carries: str
    replication: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


def ingest_group(model_key: str) -> str:
    """The consumer group of the ingest workers of one model (``IndexLayout.model_key``) on ``catalog.events``."""
    return f"vitrine-ingest.{model_key}"


def index_group(collection: str) -> str:
    """The consumer group of the index writers of one collection on its model's feature log."""
    return f"vitrine-index.{collection}"


@dataclass(frozen=True)
class TopicSet:
    """The topics of one deployment, e.g. ``TopicSet("vitrine").events == "vitrine.catalog.events"``.

    ``model_key`` names the feature log a worker reads or writes (``enriched``); a TopicSet without one
    has no ``enriched`` topic (``vitrine topics ensure`` and the query worker need none)."""

    prefix: str = "vitrine"
    partitions: int = 4
    replication: int = 1
    model_key: str = ""
    dlq_partitions: int = 1

    def __post_init__(self) -> None:
        for name in ("partitions", "replication", "dlq_partitions"):
            if getattr(self, name) < 1:
                raise ValueError(f"TopicSet.{name} must be at least 1, got {getattr(self, name)}")

    def for_model(self, model_key: str) -> TopicSet:
        return replace(self, model_key=model_key)

    def features(self, model_key: str) -> str:
        """The feature log of one model: ``<prefix>.index.enriched.<model key>``."""
        if not model_key:
            raise ValueError("a feature log is per model: give its model key (IndexLayout.model_key)")
        return self._name(f"index.enriched.{model_key}")

    @property
    def features_prefix(self) -> str:
        return self._name("index.enriched.")

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
        """This TopicSet's model's feature log (``features(model_key)``)."""
        return self.features(self.model_key)

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
        specs = [
            TopicSpec(self.events, p, "product_id", "catalogue events (upsert, patch, delete): the source of truth",
                      r, log),
            TopicSpec(self.dlq, self.dlq_partitions, "product_id",
                      "events that cannot be processed, with original bytes, stage, reason", r, {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS), **durable}),
            TopicSpec(self.requests, p, "request_id", "search requests", r,
                      {"cleanup.policy": "delete", "retention.ms": str(3600 * 1000)}),
            TopicSpec(self.responses, p, "request_id", "search replies, matched to requests by request_id", r,
                      {"cleanup.policy": "delete", "retention.ms": str(3600 * 1000)}),
        ]
        if self.model_key:
            specs.insert(2, TopicSpec(self.enriched, p, "product_id",
                                      "one model's features, attributes and model version, ready for the index", r, log))
        return specs

    def spec(self, name: str) -> TopicSpec:
        """The planned spec of topic ``name`` (one of ``specs()``); ``KeyError`` for another name."""
        for s in self.specs():
            if s.name == name:
                return s
        raise KeyError(f"{name!r} is no topic of {self.prefix!r} (model key {self.model_key!r})")
