"""The Faust app factory: one place that fixes how every vitrine worker talks to Kafka.

Nothing is created at import (no app singleton); each worker process calls ``make_app`` with its
settings. The query worker's agent reads through Faust; the ingest and index workers read with
``streams.source.BatchSource`` (their apps start no Faust consumer: ``consume=False``). Either way
an offset is committed only for acknowledged events, and vitrine acknowledges an event only after
the write that covers it was acknowledged downstream, so a crash at any point replays what was not
finished (at-least-once; ARCHITECTURE.md guarantee 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_app(
    app_id: str,
    bootstrap: str,
    *,
    web_host: str = "127.0.0.1",
    web_port: int = 6066,
    data_dir: Path = Path(".vitrine"),
    partitions: int = 4,
    replication: int = 1,
    session_timeout_s: float = 10.0,
    credentials: Any = None,
    commit_interval_s: float = 0.5,
    consume: bool = True,
) -> Any:
    """A Faust app; ``consume=False`` starts no Faust consumer (the app only produces and serves HTTP:
    its worker reads its input with ``streams.source.BatchSource``). Faust's consumer with no agent
    would fail to subscribe to nothing. ``partitions`` and ``replication`` are what Faust declares a
    topic with when none is given (its own default replication is 1, whatever the cluster)."""
    import faust

    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=[f"kafka://{b.strip()}" for b in bootstrap.split(",")],
        broker_credentials=credentials,
        store="memory://",
        datadir=str(data_dir / app_id),
        web_enabled=True,
        web_bind=web_host,
        web_host=web_host,
        web_port=web_port,
        topic_partitions=partitions,
        topic_replication_factor=replication,
        topic_allow_declare=True,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=max(session_timeout_s / 10, 0.5),
        broker_commit_interval=commit_interval_s,
        broker_rebalance_timeout=max(session_timeout_s * 2, 10),
        stream_wait_empty=False,
        producer_acks=-1,
        web_in_thread=False,
        value_serializer="raw",
        key_serializer="raw",
    )
    if not consume:
        app.boot_strategy = app.BootStrategy(app, enable_kafka_consumer=False)
    return app
