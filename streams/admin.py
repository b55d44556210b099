"""Create the topic set on a broker (idempotent): used by the embedded stack, tests and deployments."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
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


def ensure_topics(bootstrap: str, topics: TopicSet, *, client_options: Mapping[str, Any] | None = None,
                  timeout: float = 60.0) -> list[str]:
    """Create every topic of ``topics`` that does not exist yet; return the names created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    quiet_client_debug_logs()
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_options or {}))
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        have = set(admin.list_topics())
        new = [NewTopic(s.name, s.partitions, 1) for s in topics.specs() if s.name not in have]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in new]
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
    are absent)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **dict(client_options or {}))
    try:
        return {tp.partition: meta.offset for tp, meta in group_offsets(admin, group).items()
                if tp.topic == topic and meta.offset >= 0}
    finally:
        admin.close()


def group_offsets(admin: Any, group: str) -> dict[Any, Any]:
    """Committed offsets of consumer ``group`` through a kafka-python ``KafkaAdminClient``
    (kafka-python 3 renamed the call; 2.x had ``list_consumer_group_offsets``)."""
    if hasattr(admin, "list_group_offsets"):
        return dict(admin.list_group_offsets({group: None}).get(group, {}))
    return dict(admin.list_consumer_group_offsets(group))
