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
        subprocess.run(["true"], check=False)  # let the reaper (init) collect it
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
# Prometheus (Debian's package, installed by `make prometheus`, which `make test` runs)

INFRA_PROMETHEUS = Path(__file__).resolve().parents[1] / "infra" / "prometheus"


def _require_binary(name: str) -> str:
    """The path of ``name``; fails (never skips) the test when it is not installed, saying what to run."""
    import shutil

    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: run `make prometheus` (infra/prometheus/install.sh, Debian's "
                    "prometheus package; `make test` runs it first)", pytrace=False)
    return path


def test_prometheus_config_and_alert_rules_are_valid() -> None:
    promtool = _require_binary("promtool")
    for argv in (["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([promtool, *argv], cwd=INFRA_PROMETHEUS, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def _metric_names(queries: list[str]) -> set[str]:
    """The ``vitrine_*`` series that PromQL ``queries`` read (histograms by their base name)."""
    import re

    names = {n for q in queries for n in re.findall(r"\b(vitrine_[a-z_]+)", q)}
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_prometheus_scrapes_the_workers_and_evaluates_the_alert_rules(
        kafka: Any, milvus: Any, tmp_path: Path, unique_name: Callable[..., str]) -> None:
    """A real Prometheus scrapes the three real workers (the job names of infra/prometheus/prometheus.yml)
    while they handle real events, and evaluates infra/prometheus/alerts.yml against what they export."""
    import json
    import urllib.parse
    import urllib.request

    from streams.publisher import CatalogPublisher
    from streams.topics import TopicSet
    from vitrine_tools.devstack.demo import SAMPLE_DIR, load_sample
    from vitrine_tools.devstack.stack import LocalStack

    _require_binary("prometheus")
    run = unique_name("prom")
    stack = LocalStack(tmp_path / "stack", kafka_bootstrap=kafka.address, milvus_uri=milvus.address,
                       topic_prefix=run, env={"VITRINE_COLLECTION_ALIAS": run, "VITRINE_FETCH_ALLOW_FILE": "true",
                                              "VITRINE_FETCH_FILE_ROOT": str(SAMPLE_DIR),
                                              "VITRINE_BATCH_MAX_WAIT_S": "0.02"}).start()
    prometheus = None
    try:
        jobs = {f"vitrine-{kind}": w.http.removeprefix("http://") for kind, w in stack.workers.items()}
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{INFRA_PROMETHEUS / 'alerts.yml'}']\n"
            "scrape_configs:\n"
            + "".join(f"  - job_name: {job}\n    static_configs: [{{targets: ['{target}']}}]\n"
                      for job, target in jobs.items())
        )
        prometheus = services.start_prometheus(config, data_dir=tmp_path / "prom")
        assert prometheus is not None, "prometheus is on PATH but start_prometheus found none"

        def api(path: str, **params: str) -> Any:
            url = f"{prometheus.address}/api/v1/{path}?{urllib.parse.urlencode(params)}"
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)["data"]

        def value(query: str) -> dict[str, float]:
            """job -> value of ``query`` now."""
            return {r["metric"].get("job", ""): float(r["value"][1]) for r in api("query", query=query)["result"]}

        def wait_for(what: str, cond: Callable[[], Any], timeout: float = 120) -> Any:
            deadline = time.monotonic() + timeout
            while not (got := cond()):
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
                time.sleep(0.2)
            return got

        wait_for("every worker scraped", lambda: value("up") == {job: 1.0 for job in jobs})
        rows = load_sample()[:3]
        pub = CatalogPublisher(stack.kafka_bootstrap, TopicSet(stack.topic_prefix, stack.partitions).events).start()
        for r in rows:
            pub.upsert(r["product_id"], 1, title=r["title"], price=10.0, images=[f"file://{SAMPLE_DIR / r['image']}"])
        pub.send_raw("poison", b'{"schema_version": 1, "type": ')  # malformed JSON: dead-lettered
        pub.flush()
        pub.close()

        # the workers' own series, with their own labels, as Prometheus stored them from the scrapes
        wait_for("3 upserts consumed by the ingest worker", lambda: value(
            'vitrine_events_consumed_total{worker="ingest",type="upsert"}') == {"vitrine-ingest": 3.0})
        wait_for("the malformed event dead-lettered", lambda: value(
            'vitrine_events_dlq_total{worker="ingest",stage="validate",reason="malformed_json"}') == {"vitrine-ingest": 1.0})
        wait_for("3 upserts written by the index worker", lambda: value(
            'vitrine_events_indexed_total{op="upsert"}') == {"vitrine-index": 3.0})
        # (every worker exports the unlabelled histogram; only the index worker observes it)
        wait_for("freshness observed", lambda: value("vitrine_index_freshness_seconds_count > 0") == {"vitrine-index": 3.0})

        # the alert rules: loaded, and every one evaluated without an error against these series
        def evaluated() -> list[dict[str, Any]]:
            rules = [r for g in api("rules")["groups"] for r in g["rules"]]
            return rules if all(r["health"] != "unknown" for r in rules) else []

        groups = api("rules")["groups"]
        assert {g["name"] for g in groups} == {"vitrine-availability", "vitrine-pipeline", "vitrine-quality", "vitrine-rollout"}
        rules = wait_for("every alert rule evaluated", evaluated, 60)
        assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
        firing = [a["labels"]["alertname"] for a in api("alerts")["alerts"]]
        assert firing == [], firing  # all three workers up and consuming: nothing pending or firing

        # every metric the rules read is one the workers export, the consumer lag included
        scraped = set(api("label/__name__/values"))
        missing = {n for n in _metric_names([r["query"] for r in rules])
                   if not any(s == n or s.startswith(n + "_") for s in scraped)}
        assert missing == set(), missing
        def caught_up() -> dict[str, float]:
            lag = value("sum by (job) (vitrine_consumer_lag)")
            return lag if set(lag) == {"vitrine-ingest", "vitrine-index"} and set(lag.values()) == {0.0} else {}

        wait_for("the ingest and index workers' lag exported, and caught up", caught_up)
    finally:
        if prometheus is not None:
            prometheus.stop()
        stack.stop()


def test_kafka_cluster_ids_never_look_like_an_option() -> None:
    # An id starting with "-" made the storage format tool fail (one fresh broker in 64).
    from vitrine_tools.devstack.services.kafka import _kafka_cluster_id

    ids = [_kafka_cluster_id() for _ in range(3000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
