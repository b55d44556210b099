"""Each real local service answers its protocol (vitrine_tools/devstack/services/), and the Milvus Lite features
the indexer relies on work against the server mode (two vector fields, upsert, partial upsert,
flush, filtered search, query by id, delete by id, aliases, HNSW, consistency levels)."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import require_local_kafka
from vitrine_tools.devstack import services
from vitrine_tools.devstack.services import process as service_process

# --------------------------------------------------------------------------------------------
# helpers


def _round_trip(bootstrap: str, topic: str, group: str, records: list[tuple[bytes, bytes]]) -> list[Any]:
    """Create ``topic`` with one partition (tansu auto-creates four), produce, consume as ``group``."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value).get(timeout=30)
    finally:
        producer.close()
    return _consume(bootstrap, topic, group, len(records))


def _consume(bootstrap: str, topic: str, group: str, count: int, timeout: float = 30) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # tansu holds a JoinGroup for a fraction of the session timeout; keep it short.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(batch)
        if got:
            consumer.commit()
    finally:
        consumer.close()
    return got


# --------------------------------------------------------------------------------------------
# process management (no services needed)


def test_free_port_is_below_ephemeral_range_and_unique() -> None:
    ports = [services.free_port() for _ in range(20)]
    assert all(1024 < p < 32768 for p in ports)
    assert len(set(ports)) == len(ports)


def test_start_error_carries_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "dies.log"
    process, log_file = service_process._spawn(
        "dies", [sys.executable, "-c", "print('boom: bad config', flush=True); raise SystemExit(3)"], log
    )
    with pytest.raises(services.ServiceStartError, match="exited with code 3") as info:
        services.wait_for_port("127.0.0.1", services.free_port(), 10, process, log, name="dies")
    log_file.close()
    assert "boom: bad config" in info.value.log_tail


def test_stop_kills_the_process_group(tmp_path: Path) -> None:
    # A child that ignores SIGTERM and has a grandchild: stop() must end both.
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "stubborn.log"
    process, log_file = service_process._spawn("stubborn", [sys.executable, "-c", script], log)
    service = services.Service("stubborn", process, "127.0.0.1:1", log, _log_file=log_file)
    deadline = time.monotonic() + 10
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(log.read_text().split()[0])
    service.stop(timeout=0.5)
    assert not service.alive
    deadline = time.monotonic() + 5
    while Path(f"/proc/{grandchild}").exists() and time.monotonic() < deadline:
        subprocess.run(["true"])  # let the reaper (init) collect it
        time.sleep(0.05)
    status = Path(f"/proc/{grandchild}/status")
    assert not status.exists() or "zombie" in status.read_text()


# --------------------------------------------------------------------------------------------
# Kafka and tansu


@pytest.mark.integration
def test_kafka_round_trip(kafka: Any, unique_name: Callable[..., str]) -> None:
    records = [(f"p{i}".encode(), f"v{i}".encode()) for i in range(5)]
    got = _round_trip(kafka.address, unique_name("topic"), unique_name("group"), records)
    assert [(r.key, r.value) for r in got] == records


@pytest.mark.integration
def test_tansu_round_trip(tansu: services.Service, unique_name: Callable[..., str]) -> None:
    records = [(f"p{i}".encode(), f"v{i}".encode()) for i in range(5)]
    got = _round_trip(tansu.address, unique_name("topic"), unique_name("group"), records)
    assert [(r.key, r.value) for r in got] == records


@pytest.mark.integration
@pytest.mark.slow
def test_kafka_restart_keeps_log_dir(tmp_path: Path, unique_name: Callable[..., str]) -> None:
    require_local_kafka()
    topic, group = unique_name("topic"), unique_name("group")
    broker = services.start_kafka(tmp_path / "kafka")
    try:
        first = _round_trip(broker.address, topic, group, [(b"k1", b"before-restart")])
        assert [r.value for r in first] == [b"before-restart"]
        address = broker.address
    finally:
        broker.stop()
    assert not broker.alive

    broker = services.start_kafka(tmp_path / "kafka")  # same directory: no format, same port
    try:
        assert broker.address == address
        # The record survived, read by a new group from the start ...
        again = _consume(broker.address, topic, unique_name("fresh"), 1)
        assert [(r.key, r.value, r.offset) for r in again] == [(b"k1", b"before-restart", 0)]
        # ... and the first group's committed offset survived too: it sees only the new record.
        after = _round_trip(broker.address, topic, group, [(b"k2", b"after-restart")])
        assert [r.value for r in after] == [b"after-restart"]
    finally:
        broker.stop()


# --------------------------------------------------------------------------------------------
# Milvus Lite (server mode)

DIM_APP, DIM_COL = 8, 4


@pytest.fixture
def collection(milvus: Any, unique_name: Callable[..., str]) -> Iterator[tuple[Any, str, dict[str, Any]]]:
    """A loaded collection with two vector fields, a VARCHAR pk and scalar filters; 40 rows."""
    from pymilvus import DataType

    from indexer.store import connect

    client = connect(milvus.address)
    name = unique_name("coll")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("category", DataType.VARCHAR, max_length=32)
    schema.add_field("version", DataType.INT64)
    schema.add_field("app", DataType.FLOAT_VECTOR, dim=DIM_APP)
    schema.add_field("col", DataType.FLOAT_VECTOR, dim=DIM_COL)
    index = client.prepare_index_params()
    index.add_index("app", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 64})
    index.add_index("col", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")

    rng = np.random.default_rng(7)
    app = rng.normal(size=(40, DIM_APP)).astype(np.float32)  # (40, 8) float32
    col = rng.random((40, DIM_COL), dtype=np.float32)  # (40, 4) float32
    rows = [
        {"pk": f"p{i}", "category": ("shoe", "shirt")[i % 2], "version": 1, "app": app[i].tolist(),
         "col": col[i].tolist()}
        for i in range(40)
    ]
    assert client.insert(name, rows)["insert_count"] == 40
    client.flush(name)
    client.load_collection(name)
    try:
        yield client, name, {"app": app, "col": col, "rows": rows}
    finally:
        client.drop_collection(name)
        client.close()


@pytest.mark.integration
def test_milvus_search_with_filter_matches_brute_force(collection: tuple[Any, str, dict[str, Any]]) -> None:
    client, name, data = collection
    app = data["app"]
    query = app[3]
    shoes = [i for i in range(40) if i % 2 == 0]  # rows alternate shoe, shirt
    unit = app / np.linalg.norm(app, axis=1, keepdims=True)
    cosine = unit @ (query / np.linalg.norm(query))  # (40,) larger = more similar
    expected = [f"p{i}" for i in sorted(shoes, key=lambda i: -cosine[i])[:5]]

    hits = client.search(name, data=[query.tolist()], anns_field="app", filter='category == "shoe"', limit=5,
                         output_fields=["category"], search_params={"metric_type": "COSINE", "params": {"ef": 64}})[0]
    assert [h.id for h in hits] == expected
    assert all(h["entity"]["category"] == "shoe" for h in hits)

    hits = client.search(name, data=[data["col"][5].tolist()], anns_field="col", limit=1,
                         search_params={"metric_type": "L2"}, consistency_level="Strong")[0]
    assert hits[0].id == "p5"


@pytest.mark.integration
def test_milvus_upsert_query_delete(collection: tuple[Any, str, dict[str, Any]]) -> None:
    client, name, data = collection
    changed = {**data["rows"][0], "version": 2, "category": "bag"}
    assert client.upsert(name, [changed])["upsert_count"] == 1
    got = client.query(name, filter='pk in ["p0", "p1"]', output_fields=["pk", "version", "category"],
                       consistency_level="Session")
    assert sorted((r["pk"], r["version"], r["category"]) for r in got) == [("p0", 2, "bag"), ("p1", 1, "shirt")]
    assert [r["version"] for r in client.get(name, ids=["p0"], output_fields=["version"])] == [2]

    client.delete(name, ids=["p2", "p3"])
    assert client.query(name, filter='pk in ["p2", "p3"]', output_fields=["pk"]) == []
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 38


@pytest.mark.integration
def test_milvus_partial_upsert_keeps_other_fields(collection: tuple[Any, str, dict[str, Any]]) -> None:
    client, name, data = collection
    client.upsert(name, [{"pk": "p1", "version": 7}], partial_update=True)
    (row,) = client.query(name, filter='pk == "p1"', output_fields=["version", "category", "col"])
    assert row["version"] == 7
    assert row["category"] == "shirt"
    np.testing.assert_allclose(row["col"], data["col"][1], rtol=1e-6)


@pytest.mark.integration
def test_milvus_alias_swap(collection: tuple[Any, str, dict[str, Any]], unique_name: Callable[..., str]) -> None:
    from pymilvus import DataType

    client, name, _ = collection
    alias, other = unique_name("alias"), unique_name("coll")
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("app", DataType.FLOAT_VECTOR, dim=DIM_APP)
    index = client.prepare_index_params()
    index.add_index("app", index_type="HNSW", metric_type="COSINE", params={"M": 8, "efConstruction": 32})
    client.create_collection(other, schema=schema, index_params=index)
    try:
        client.create_alias(name, alias)
        assert client.describe_alias(alias)["collection_name"] == name
        assert len(client.query(alias, filter='pk == "p0"')) == 1
        client.alter_alias(other, alias)
        assert client.describe_alias(alias)["collection_name"] == other
        assert client.query(alias, filter='pk == "p0"') == []
        client.drop_alias(alias)
    finally:
        client.drop_collection(other)


# --------------------------------------------------------------------------------------------
# S3


@pytest.mark.integration
def test_s3_round_trip(s3: Any, unique_name: Callable[..., str]) -> None:
    from minio import Minio

    client = Minio(s3.address, access_key=s3.access_key, secret_key=s3.secret_key, secure=False)
    bucket = unique_name("b").lower().replace("_", "-")[:63]
    client.make_bucket(bucket)
    body = b"\xff\xd8\xff\xe0 not really a jpeg"
    client.put_object(bucket, "catalog/p1/0.jpg", io.BytesIO(body), len(body), content_type="image/jpeg")
    response = client.get_object(bucket, "catalog/p1/0.jpg")
    try:
        assert response.read() == body
    finally:
        response.close()
        response.release_conn()
    assert client.stat_object(bucket, "catalog/p1/0.jpg").content_type == "image/jpeg"
    assert [o.object_name for o in client.list_objects(bucket, prefix="catalog/", recursive=True)] == [
        "catalog/p1/0.jpg"
    ]


# --------------------------------------------------------------------------------------------
# Prometheus (Debian's package; optional)

INFRA_PROMETHEUS = Path(__file__).resolve().parents[1] / "infra" / "prometheus"


def test_prometheus_config_and_alert_rules_are_valid() -> None:
    import shutil

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool (Debian: apt-get install prometheus)")
    for argv in (["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([promtool, *argv], cwd=INFRA_PROMETHEUS, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
def test_prometheus_scrapes_a_worker_and_loads_the_alert_rules(tmp_path: Path) -> None:
    import json
    import urllib.parse
    import urllib.request

    from prometheus_client import CollectorRegistry, Counter, start_http_server

    registry = CollectorRegistry()
    consumed = Counter("vitrine_events_consumed", "events consumed", ["topic"], registry=registry)
    consumed.labels(topic="catalog.events").inc(3)
    metrics_port = services.free_port()
    server, thread = start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{INFRA_PROMETHEUS / 'alerts.yml'}']\n"
        "scrape_configs:\n"
        f"  - job_name: vitrine-ingest\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    prometheus = services.start_prometheus(config, data_dir=tmp_path / "prom")
    if prometheus is None:
        server.shutdown()
        pytest.skip("no prometheus binary (Debian: apt-get install prometheus)")

    def api(path: str, **params: str) -> Any:
        url = f"{prometheus.address}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)["data"]

    try:
        groups = api("rules")["groups"]
        assert {g["name"] for g in groups} == {"vitrine-availability", "vitrine-pipeline", "vitrine-quality"}
        deadline = time.monotonic() + 20
        result: list[Any] = []
        while not result and time.monotonic() < deadline:
            result = api("query", query='vitrine_events_consumed_total{job="vitrine-ingest"}')["result"]
            time.sleep(0.2)
        assert [float(r["value"][1]) for r in result] == [3.0]
    finally:
        prometheus.stop()
        server.shutdown()


def test_kafka_cluster_ids_never_look_like_an_option() -> None:
    # An id starting with "-" made the storage format tool fail (one fresh broker in 64).
    from vitrine_tools.devstack.services.kafka import _kafka_cluster_id

    ids = [_kafka_cluster_id() for _ in range(3000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
