"""Create the topic set on a broker (idempotent): used by the embedded stack, tests and deployments."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.topics import TopicSet

#: Client-library loggers whose DEBUG records carry the Kafka password: kafka-python logs its whole
#: configuration (``sasl_plain_password``), and it and aiokafka log every SASL request with its PLAIN token.
CLIENT_LOGGERS = ("kafka", "aiokafka")


def quiet_client_debug_logs() -> None:
    """Keep the Kafka client libraries at INFO or above, whatever the process's level: their DEBUG
    records would put the SASL password in the log. Called before any client gets credentials."""
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


@dataclass
class TopicReport:
    """What ``ensure_topics`` found and did, per topic name."""

    created: list[str] = field(default_factory=list)
    altered: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> the configs set
    grown: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (partitions before, after)
    drift: dict[str, list[str]] = field(default_factory=dict)  # name -> what differs and was left alone

    def json(self) -> dict[str, Any]:
        return {"created": self.created, "altered": self.altered,
                "grown": {k: list(v) for k, v in self.grown.items()}, "drift": self.drift}


def _admin(bootstrap: str, client_options: Mapping[str, Any] | None, timeout: float) -> Any:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    quiet_client_debug_logs()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_options or {}))
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def describe_topics(admin: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """{name: {"partitions": n, "replication": r, "configs": {...}}} for the topics that exist
    (kafka-python 3's admin answers; ``configs`` holds the topic's own settings, not broker defaults)."""
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import UnknownTopicOrPartitionError

    out: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            metas = admin.describe_topics([name])
        except UnknownTopicOrPartitionError:
            continue
        for meta in metas:
            parts = meta.get("partitions") or []
            if meta.get("error_code", 0) != 0 or not parts:
                continue
            replicas = parts[0].get("replica_nodes", parts[0].get("replicas", []))
            out[meta.get("name", meta.get("topic"))] = {"partitions": len(parts), "replication": len(replicas),
                                                        "configs": {}}
    if out:
        answer = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in out])
        for name, entries in (answer.get("topic", {}) if isinstance(answer, dict) else {}).items():
            if name in out:
                out[name]["configs"] = {k: str(v.get("value")) for k, v in entries.items()}
    return out


def ensure_topics(bootstrap: str, topics: TopicSet, *, client_options: Mapping[str, Any] | None = None,
                  timeout: float = 60.0, alter: bool = False, grow_partitions: bool = False) -> TopicReport:
    """Create every topic of ``topics`` that does not exist, with its partitions, replication and configs.

    Topics that exist are compared with their specs. With ``alter`` their configs are set to the specs'
    (``vitrine topics ensure``); without it (a worker starting) a difference is only reported, as is a
    partition count below the spec unless ``grow_partitions``: adding partitions moves products to other
    partitions (the key's hash is taken modulo the count), so their old and new events are read in no
    common order; the version guard keeps the index right, but it is an operator's decision. Fewer
    partitions, or another replication factor, cannot be changed in place: reported as drift.
    """
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    report = TopicReport()
    specs = {s.name: s for s in topics.specs()}
    admin = _admin(bootstrap, client_options, timeout)
    try:
        have = describe_topics(admin, list(specs))
        new = [NewTopic(s.name, s.partitions, s.replication, topic_configs=dict(s.configs))
               for s in specs.values() if s.name not in have]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
            report.created = [t.name for t in new]
        for name, now in have.items():
            spec, drift = specs[name], []
            wrong = {k: v for k, v in spec.configs.items() if now["configs"].get(k) != v}
            if wrong and alter:
                # AlterConfigs sets the whole dynamic config of the topic: ours, and every other one it has
                admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=dict(spec.configs))])
                report.altered[name] = wrong
            elif wrong:
                drift += [f"{k}={now['configs'].get(k)!r}, spec {v!r}" for k, v in wrong.items()]
            if now["partitions"] < spec.partitions and grow_partitions:
                admin.create_partitions({name: NewPartitions(spec.partitions)})
                report.grown[name] = (now["partitions"], spec.partitions)
            elif now["partitions"] != spec.partitions:
                drift.append(f"{now['partitions']} partitions, spec {spec.partitions}")
            if now["replication"] != spec.replication:
                drift.append(f"replication {now['replication']}, spec {spec.replication}")
            if drift:
                report.drift[name] = drift
        return report
    finally:
        admin.close()


def wait_for_broker(bootstrap: str, timeout: float, *, client_options: Mapping[str, Any] | None = None) -> None:
    """Block until a broker at ``bootstrap`` accepts a connection and answers a metadata request,
    logging while it does not. Raises ``TimeoutError`` after ``timeout`` seconds."""
    from kafka.errors import KafkaError

    quiet_client_debug_logs()
    log = logging.getLogger("vitrine")
    deadline = time.monotonic() + timeout
    delay = 0.5
    addresses = [b.strip().rsplit(":", 1) for b in bootstrap.split(",")]
    while True:
        problem: Exception
        # kafka-python blocks ~30 s on a refused bootstrap: try a plain connection first
        if not any(accepts_connections(host, int(port)) for host, port in addresses):
            problem = ConnectionRefusedError(f"no broker accepts connections at {bootstrap}")
        else:
            try:
                answer_metadata(bootstrap, 5.0, client_options=client_options)
                return
            except (KafkaError, OSError) as exc:
                problem = exc
        if time.monotonic() + delay > deadline:
            raise TimeoutError(f"Kafka at {bootstrap} not reachable for {timeout:.0f}s: {problem!r}") from problem
        log.warning("Kafka at %s not reachable (%r): retrying in %.1fs", bootstrap, problem, delay)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def accepts_connections(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something listens on ``host:port`` (a TCP connect, nothing sent)."""
    import socket

    try:
        socket.create_connection((host, port), timeout_s).close()
        return True
    except OSError:
        return False


def answer_metadata(bootstrap: str, timeout_s: float = 5.0, *,
                    client_options: Mapping[str, Any] | None = None) -> None:
    """One metadata round trip to the broker at ``bootstrap``; raises the client's error if it fails."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000),
                             reconnect_backoff_max_ms=200, **dict(client_options or {}))
    try:
        consumer.topics()
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str, *,
                      client_options: Mapping[str, Any] | None = None) -> dict[int, int]:
    """{partition: committed offset} of consumer ``group`` on ``topic`` (partitions it never committed
    are absent). A broker that has no coordinator for the group yet (just started, or the group is new)
    is asked again for up to 30 s."""
    from kafka import KafkaAdminClient
    from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError
    from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

    @retry(retry=retry_if_exception_type((CoordinatorNotAvailableError, CoordinatorLoadInProgressError)),
           stop=stop_after_delay(30), wait=wait_exponential(0.1, max=2), reraise=True)
    def read() -> dict[int, int]:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **dict(client_options or {}))
        try:
            return {tp.partition: meta.offset for tp, meta in group_offsets(admin, group).items()
                    if tp.topic == topic and meta.offset >= 0}
        finally:
            admin.close()

    return read()


def group_offsets(admin: Any, group: str) -> dict[Any, Any]:
    """Committed offsets of consumer ``group`` through a kafka-python ``KafkaAdminClient``
    (kafka-python 3 renamed the call; 2.x had ``list_consumer_group_offsets``)."""
    if hasattr(admin, "list_group_offsets"):
        return dict(admin.list_group_offsets({group: None}).get(group, {}))
    return dict(admin.list_consumer_group_offsets(group))
