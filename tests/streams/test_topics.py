"""Topic planning without a broker: partitions and replication of every topic come from the TopicSet
(the settings' VITRINE_PARTITIONS, VITRINE_REPLICATION_FACTOR, VITRINE_DLQ_PARTITIONS), the DLQ with its
own partition count, and ``spec(name)`` is the same plan ``specs()`` gives ``vitrine topics ensure``."""

from __future__ import annotations

from typing import Any

import pytest

from streams.topics import TopicSet


def test_every_topic_but_the_dlq_takes_the_partitions_and_every_topic_the_replication() -> None:
    topics = TopicSet("v", 12, 3, dlq_partitions=2).for_model("0123456789")
    specs = {s.name: s for s in topics.specs()}
    assert set(specs) == {topics.events, topics.enriched, topics.dlq, topics.requests, topics.responses}
    for name in (topics.events, topics.enriched, topics.requests, topics.responses):
        assert specs[name].partitions == 12, name
    assert specs[topics.dlq].partitions == 2
    assert {s.replication for s in specs.values()} == {3}


def test_the_dlq_has_one_partition_and_replication_one_by_default() -> None:
    dlq = TopicSet("v", 12).spec("v.catalog.dlq")
    assert (dlq.partitions, dlq.replication) == (1, 1)
    assert "min.insync.replicas" not in dlq.configs  # a single replica cannot require two


def test_replicated_durable_topics_require_two_in_sync_replicas_the_dlq_included() -> None:
    topics = TopicSet("v", 6, 3).for_model("0123456789")
    for name in (topics.events, topics.enriched, topics.dlq):
        assert topics.spec(name).configs["min.insync.replicas"] == "2", name


def test_spec_is_the_plan_of_specs_and_refuses_a_topic_that_is_not_planned() -> None:
    topics = TopicSet("v", 5, 2, dlq_partitions=3)
    assert [topics.spec(s.name) for s in topics.specs()] == topics.specs()
    with pytest.raises(KeyError, match="v.index.enriched"):
        topics.spec("v.index.enriched.abc")  # no model key: no feature log planned


def test_for_model_keeps_the_partitions_replication_and_dlq_partitions() -> None:
    topics = TopicSet("v", 7, 2, dlq_partitions=4).for_model("0123456789")
    assert (topics.partitions, topics.replication, topics.dlq_partitions) == (7, 2, 4)


@pytest.mark.parametrize("field", ["partitions", "replication", "dlq_partitions"])
def test_a_count_below_one_is_refused(field: str) -> None:
    zero: dict[str, Any] = {field: 0}
    with pytest.raises(ValueError, match=field):
        TopicSet("v", **zero)
