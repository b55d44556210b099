"""A worker started while Kafka is away waits for it instead of crashing (found by the chaos run: a
worker restarted during a broker restart exited 1 with NodeNotReadyError), and the Kafka-failure test
that decides between restarting in place and a real crash."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from vitrine_tools.devstack.services import free_port, start_kafka
from vitrine_tools.devstack.stack import start_worker, wait_ready
from workers.cli import _kafka_failure


def _faust_style_exit(exc: BaseException) -> SystemExit:
    """What Faust's runner raises: ``sys.exit(1)`` inside the ``except`` that caught ``exc``."""
    try:
        try:
            raise exc
        except Exception:
            raise SystemExit(1)
    except SystemExit as out:
        return out


def test_kafka_failures_are_told_from_other_crashes() -> None:
    from aiokafka.errors import NodeNotReadyError

    not_ready = NodeNotReadyError("node 1 not ready")
    assert _kafka_failure(_faust_style_exit(not_ready)) is not_ready
    assert isinstance(_kafka_failure(_faust_style_exit(ConnectionRefusedError("refused"))), ConnectionRefusedError)
    assert _kafka_failure(_faust_style_exit(ValueError("a bug"))) is None
    assert _kafka_failure(SystemExit(1)) is None


@pytest.mark.integration
@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_worker_started_before_the_broker_waits_for_it(milvus: Any, tmp_path: Path) -> None:
    port = free_port()
    env = {"VITRINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "VITRINE_MILVUS_URI": milvus.address,
           "VITRINE_TOPIC_PREFIX": "bwait", "VITRINE_DATA_DIR": str(tmp_path / "state"),
           "VITRINE_COLLECTION_ALIAS": "bwait_products", "VITRINE_SESSION_TIMEOUT_S": "6"}
    worker = start_worker("index", env, tmp_path / "logs")
    kafka = None
    try:
        deadline = time.monotonic() + 120  # the worker starts, finds no broker, and says so
        while "not reachable" not in worker.log_path.read_text() and time.monotonic() < deadline:
            assert worker.process.poll() is None, worker.log_path.read_text()[-3000:]
            time.sleep(0.2)
        assert "not reachable" in worker.log_path.read_text()
        assert worker.process.poll() is None, worker.log_path.read_text()[-3000:]
        kafka = start_kafka(tmp_path / "kafka", port=port)
        wait_ready(worker, timeout=180)
        assert worker.process.poll() is None
    finally:
        worker.stop()
        if kafka is not None:
            kafka.stop()
