"""The topic set on the real Apache Kafka broker: created with its partitions, replication and configs
(the catalogue and feature topics compacted), left alone when it already matches, drift reported and
not changed by a starting worker, and configs set and partitions grown by ``vitrine topics ensure``."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from streams.admin import _admin, describe_topics, ensure_topics
from streams.topics import DAY_MS, TopicSet

pytestmark = pytest.mark.integration


def _describe(address: str, topics: TopicSet) -> dict[str, dict[str, Any]]:
    admin = _admin(address, None, 30)
    try:
        return describe_topics(admin, [s.name for s in topics.specs()])
    finally:
        admin.close()


def test_topics_are_created_with_their_configs_and_the_catalogue_is_compacted(kafka: Any) -> None:
    topics = TopicSet(f"t{uuid.uuid4().hex[:6]}", 3).for_model("0123456789")
    report = ensure_topics(kafka.address, topics)
    assert sorted(report.created) == sorted(s.name for s in topics.specs()) and not report.drift
    held = _describe(kafka.address, topics)
    for name in (topics.events, topics.enriched):
        assert held[name]["partitions"] == 3 and held[name]["replication"] == 1
        assert held[name]["configs"]["cleanup.policy"] == "compact"
        assert held[name]["configs"]["min.compaction.lag.ms"] == str(DAY_MS)
    assert held[topics.dlq]["partitions"] == 1 and held[topics.dlq]["configs"]["cleanup.policy"] == "delete"
    assert held[topics.requests]["configs"]["retention.ms"] == "3600000"
    again = ensure_topics(kafka.address, topics)
    assert again.json() == {"created": [], "altered": {}, "grown": {}, "drift": {}}


def test_drift_is_reported_by_a_worker_and_fixed_by_ensure(kafka: Any) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    topics = TopicSet(f"d{uuid.uuid4().hex[:6]}", 2).for_model("0123456789")
    ensure_topics(kafka.address, topics)
    admin = _admin(kafka.address, None, 30)
    deadline = time.monotonic() + 30
    try:  # someone turned compaction off on the catalogue topic
        while True:
            try:  # kafka-python checks the config against a describe first: the new topic's may lag behind
                admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topics.events,
                                                    configs={"cleanup.policy": "delete"})])
                break
            except ValueError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        admin.close()
    while _describe(kafka.address, topics)[topics.events]["configs"]["cleanup.policy"] != "delete":
        assert time.monotonic() < deadline, "the altered config never showed in a describe"
        time.sleep(0.2)
    wider = TopicSet(topics.prefix, 3).for_model(topics.model_key)
    worker = ensure_topics(kafka.address, wider)  # what a starting worker does: report, change nothing
    assert "cleanup.policy='delete', spec 'compact'" in worker.drift[topics.events]
    assert "2 partitions, spec 3" in worker.drift[topics.enriched]
    assert _describe(kafka.address, topics)[topics.events]["configs"]["cleanup.policy"] == "delete"

    fixed = ensure_topics(kafka.address, wider, alter=True, grow_partitions=True)
    assert fixed.altered[topics.events]["cleanup.policy"] == "compact"  # (the lag too, where the broker dropped it)
    assert fixed.grown[topics.events] == (2, 3) and not fixed.drift
    held = _describe(kafka.address, wider)
    assert held[topics.events]["configs"]["cleanup.policy"] == "compact" and held[topics.events]["partitions"] == 3
    assert held[topics.events]["configs"]["min.compaction.lag.ms"] == str(DAY_MS)
    assert held[topics.dlq]["partitions"] == 1  # the DLQ keeps one partition
