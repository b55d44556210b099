"""``vitrine reindex`` on the real Milvus Lite server and Apache Kafka: status, a build from the feature
log that converges to the live collection (and resumes), the canary, swap, rollback (also after a
swap killed half way), gc, and a query-side index that follows the alias."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from indexer.schema import IndexLayout
from indexer.store import ProductIndex, connect
from streams.admin import ensure_topics
from streams.codecs import IndexRecord, encode_record
from streams.topics import TopicSet, index_group, ingest_group
from vitrine_tools import reindex
from vitrine_tools.reindex import Builder, Thresholds, status
from workers.settings import Settings

pytestmark = pytest.mark.integration
DIMS = {"image_vec": 8, "colour_vec": 4, "text_vec": 8}


def _unit(rng: np.random.Generator, d: int) -> np.ndarray:
    v = rng.standard_normal(d).astype(np.float32)
    return v / np.linalg.norm(v)


def _record(pid: str, model: str, images: int = 1, version: int = 1, op: str = "upsert") -> IndexRecord:
    rng = np.random.default_rng(abs(hash(pid)) % 2**32)
    if op != "upsert":
        fields = {"price": float(version)} if op == "patch" else {}
        return IndexRecord(op, pid, version, float(version), fields, {}, model)
    extra = tuple((f"s3://b/{pid}-{i}", {"image_vec": _unit(rng, 8), "colour_vec": _unit(rng, 4)})
                  for i in range(1, images))
    return IndexRecord("upsert", pid, version, float(version),
                       {"title": pid, "category": "shoes", "image_uri": f"s3://b/{pid}-0", "price": 1.0},
                       {k: _unit(rng, d) for k, d in DIMS.items()}, model, extra_images=extra)


def test_status_lists_the_collections_the_live_one_and_the_lag(milvus: Any, kafka: Any) -> None:
    alias = f"st_{uuid.uuid4().hex[:6]}"
    old = ProductIndex(milvus.address, IndexLayout("model@1", DIMS, alias=alias)).start(create=True)
    old.apply([_record(f"p{i}", "model@1", images=2) for i in range(5)])
    new = ProductIndex(milvus.address, IndexLayout("model@2", DIMS, alias=alias, index_type="FLAT")).start(create=True)
    new.apply([_record(f"p{i}", "model@2") for i in range(3)])

    topics = TopicSet(f"st{uuid.uuid4().hex[:6]}", 2)
    features = topics.for_model(old.layout.model_key)
    ensure_topics(kafka.address, features)
    producer = KafkaProducer(bootstrap_servers=kafka.address, acks="all")
    for i in range(6):
        producer.send(features.enriched, key=b"k", value=b"x", partition=i % 2)
    producer.flush()
    producer.close()
    committer = KafkaConsumer(bootstrap_servers=kafka.address, group_id=index_group(old.collection),
                              enable_auto_commit=False)
    committer.commit({TopicPartition(features.enriched, 0): OffsetAndMetadata(2, "", -1)})
    committer.close()

    report = status(milvus.address, alias, kafka.address, topics)
    assert report["live"] == old.collection  # the first model version took the alias; the second waits
    first, second = report["collections"]
    assert (first["collection"], first["live"], first["model_version"]) == (old.collection, True, "model@1")
    assert first["model_key"] == old.layout.model_key and first["dims"] == DIMS
    assert (first["products"], first["rows"]) == (5, 10)  # two images a product
    assert first["image_index"]["index_type"] == "HNSW" and first["lexical"]
    assert (second["model_version"], second["products"], second["image_index"]["index_type"]) == ("model@2", 3, "FLAT")
    lag = {g["group"]: g for g in first["consumer_lag"]}
    index_lag = lag[index_group(old.collection)]
    assert index_lag["partitions"] == {"0": 1, "1": 3} and index_lag["lag"] == 4
    assert lag[ingest_group(old.layout.model_key)]["lag"] == 0  # nothing on catalog.events
    old.close()
    new.close()


def _rows(uri: str, collection: str) -> dict[str, tuple[int, bool, float]]:
    c = connect(uri)
    try:
        rows = c.query(collection, filter='product_id != ""', output_fields=["version", "deleted", "price"],
                       limit=16384)
    finally:
        c.close()
    return {r["product_id"]: (int(r["version"]), bool(r["deleted"]), float(r["price"])) for r in rows}


def test_build_from_features_converges_resumes_and_swaps(milvus: Any, kafka: Any) -> None:
    """The live collection is written as the index workers would (ProductIndex.apply); the feature log
    holds the same records. A build with another index layout converges to the same rows, resumes
    where it stopped with the live events written since, passes the canary, and swaps; a rollback,
    a swap killed half way and gc each leave the aliases right."""
    alias = f"rb_{uuid.uuid4().hex[:6]}"
    model = "model@1"
    live_layout = IndexLayout(model, DIMS, alias=alias)
    live = ProductIndex(milvus.address, live_layout).start(create=True)
    settings = Settings(kafka_bootstrap=kafka.address, milvus_uri=milvus.address, partitions=2,
                        topic_prefix=f"rb{uuid.uuid4().hex[:6]}", collection_alias=alias, commit_interval_s=0.2)
    topics = settings.topics.for_model(live_layout.model_key)
    ensure_topics(kafka.address, topics)
    producer = KafkaProducer(bootstrap_servers=kafka.address, acks="all")

    def publish(records: list[IndexRecord]) -> None:
        for r in records:
            producer.send(topics.enriched, key=r.product_id.encode(), value=encode_record(r))
        producer.flush()
        for r in records:  # the live collection's writers, one record at a time in log order
            live.apply([r])

    publish([_record(f"p{i}", model, images=1 + i % 3) for i in range(60)])
    publish([_record(f"p{i}", model, version=2, op="patch") for i in range(0, 60, 4)])
    publish([_record(f"p{i}", model, version=3, op="delete") for i in range(1, 60, 10)])

    built = IndexLayout(model, DIMS, alias=alias, index_params={"M": 8, "efConstruction": 64})
    assert built.collection != live.collection and built.same_model(live.collection)
    lines: list[dict[str, Any]] = []
    first = Builder(settings, built, report_every_s=0.5, out=lines.append).run()
    assert (first.resumed, first.replay_events, first.dead_lettered) == (False, 60 + 15 + 6, 0)
    assert first.catch_up_s is not None and first.final_lag == {index_group(built.collection): 0}
    assert _rows(milvus.address, built.collection) == _rows(milvus.address, live.collection)
    assert lines[0]["step"] == "start" and lines[-1]["step"] == "following"

    # live events while no build runs: the next run resumes from the group's offsets and converges
    publish([_record(f"p{i}", model, version=4, images=2) for i in range(50, 70)])
    again = Builder(settings, built, report_every_s=0.5, out=lines.append).run()
    assert (again.resumed, again.replay_events) == (True, 20)
    assert _rows(milvus.address, built.collection) == _rows(milvus.address, live.collection)

    client = connect(milvus.address)
    try:
        lag = reindex.lag_of(kafka.address, built.collection, alias, settings.topics)
        report = reindex.canary(client, alias, built.collection, probes=30, lag=lag)
        assert report["passed"], report["failures"]
        assert report["same_model"] and report["overlap@10"] >= 0.7 and report["recall_new"] >= 0.9
        assert report["products"]["new"] == report["products"]["live"] and report["lag"] == 0
        strict = reindex.canary(client, alias, built.collection, probes=30, lag=[{"lag": 500}],
                                thresholds=Thresholds(max_lag=100))
        assert not strict["passed"] and "lag 500 > 100" in strict["failures"][0]
        with pytest.raises(reindex.ReindexError, match="canary failed"):
            reindex.swap(client, alias, built.collection, strict)

        # a query-side index (another model's too) follows the alias
        reader = ProductIndex(milvus.address, live_layout).start(create=False, via_alias=True)
        other = IndexLayout("model@2", DIMS, alias=alias)
        ProductIndex(milvus.address, other).start(create=True).close()
        other_reader = ProductIndex(milvus.address, other).start(create=False, via_alias=True)
        assert reader.collection == live.collection and reader.live and not other_reader.live

        moved = reindex.swap(client, alias, built.collection, report)
        assert (moved["live"], moved["previous"], moved["moved"]) == (built.collection, live.collection, True)
        assert reader.follow_alias() and reader.collection == built.collection and reader.live
        assert reader.search_params()["params"] == {"ef": 512}
        assert not other_reader.follow_alias() and other_reader.collection == other.collection
        hit = reader.search(_record("p5", model).vectors["image_vec"], "image_vec", _no_filters(), 3)
        assert hit[0].product_id == "p5"
        assert reindex.swap(client, alias, built.collection, report)["moved"] is False  # again: a no-op

        back = reindex.rollback(client, alias)
        assert (back["live"], back["previous"]) == (live.collection, built.collection)
        assert reader.follow_alias() and reader.collection == live.collection

        # a swap killed after the live alias moved but before the previous one was recorded
        client.create_alias(live.collection, alias + reindex.LEAVING)
        client.alter_alias(built.collection, alias)
        done = reindex.rollback(client, alias)  # finishes the interrupted swap first, then rolls it back
        assert done["finished_interrupted"] is None  # finished by rollback's own finish_pending
        assert (done["live"], done["previous"]) == (live.collection, built.collection)
        assert alias + reindex.LEAVING not in client.list_aliases()["aliases"]

        st = status(milvus.address, alias, kafka.address, settings.topics)
        assert (st["live"], st["previous"], st["swap_in_progress"]) == (live.collection, built.collection, False)
        swept = reindex.gc(client, alias, kafka.address)
        assert swept["dropped"] == [other.collection] and not swept["refused"]
        assert client.has_collection(built.collection) and not client.has_collection(other.collection)
        swept = reindex.gc(client, alias, kafka.address, drop_previous=True)
        assert swept["dropped"] == [built.collection] and not client.has_collection(built.collection)
        with pytest.raises(reindex.ReindexError, match="nothing to roll back"):
            reindex.rollback(client, alias)
        reader.close()
        other_reader.close()
    finally:
        client.close()
        producer.close()
        live.close()


def _no_filters() -> Any:
    from streams.schema import Filters

    return Filters()
