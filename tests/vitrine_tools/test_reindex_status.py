"""``vitrine reindex status`` on the real Milvus Lite server and Apache Kafka: every collection behind
the alias with its model version, sizes and index, the live one first, and the feeding groups' lag."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from indexer.schema import IndexLayout
from indexer.store import ProductIndex
from streams.admin import ensure_topics
from streams.codecs import IndexRecord
from streams.topics import TopicSet
from vitrine_tools.reindex import status

pytestmark = pytest.mark.integration
DIMS = {"image_vec": 8, "colour_vec": 4, "text_vec": 8}


def _record(pid: str, model: str, images: int = 1) -> IndexRecord:
    rng = np.random.default_rng(abs(hash(pid)) % 2**32)

    def unit(d: int) -> np.ndarray:
        v = rng.standard_normal(d).astype(np.float32)
        return v / np.linalg.norm(v)

    extra = tuple((f"s3://b/{pid}-{i}", {"image_vec": unit(8), "colour_vec": unit(4)}) for i in range(1, images))
    return IndexRecord("upsert", pid, 1, 1.0, {"title": pid, "category": "shoes", "image_uri": f"s3://b/{pid}-0"},
                       {k: unit(d) for k, d in DIMS.items()}, model, extra_images=extra)


def test_status_lists_the_collections_the_live_one_and_the_lag(milvus: Any, kafka: Any) -> None:
    alias = f"st_{uuid.uuid4().hex[:6]}"
    old = ProductIndex(milvus.address, IndexLayout("model@1", DIMS, alias=alias)).start(create=True)
    old.apply([_record(f"p{i}", "model@1", images=2) for i in range(5)])
    new = ProductIndex(milvus.address, IndexLayout("model@2", DIMS, alias=alias, index_type="FLAT")).start(create=True)
    new.apply([_record(f"p{i}", "model@2") for i in range(3)])

    topics = TopicSet(f"st{uuid.uuid4().hex[:6]}", 2)
    ensure_topics(kafka.address, topics)
    producer = KafkaProducer(bootstrap_servers=kafka.address, acks="all")
    for i in range(6):
        producer.send(topics.enriched, key=b"k", value=b"x", partition=i % 2)
    producer.flush()
    producer.close()
    committer = KafkaConsumer(bootstrap_servers=kafka.address, group_id="vitrine-index", enable_auto_commit=False)
    committer.commit({TopicPartition(topics.enriched, 0): OffsetAndMetadata(2, "", -1)})
    committer.close()

    report = status(milvus.address, alias, kafka.address, topics)
    assert report["live"] == old.collection  # the first model version took the alias; the second waits
    first, second = report["collections"]
    assert (first["collection"], first["live"], first["model_version"]) == (old.collection, True, "model@1")
    assert (first["products"], first["rows"]) == (5, 10)  # two images a product
    assert first["image_index"]["index_type"] == "HNSW" and first["lexical"]
    assert (second["model_version"], second["products"], second["image_index"]["index_type"]) == ("model@2", 3, "FLAT")
    lag = {g["group"]: g for g in report["consumer_lag"]}
    assert lag["vitrine-index"]["partitions"] == {"0": 1, "1": 3} and lag["vitrine-index"]["lag"] == 4
    assert lag["vitrine-ingest"]["lag"] == 0  # nothing on catalog.events
    old.close()
    new.close()
