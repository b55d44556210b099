"""``ChaosStack``: the real services and worker processes a chaos run breaks and repairs.

It owns its Apache Kafka broker (so it may restart it on the same log directory and ports), its
Milvus Lite server (killed and restarted on the same data directory and port for an outage), an
S3 server (real MinIO when built: objects on disk survive its restart) and the three workers of a
``LocalStack``. Every process binds 127.0.0.1; ``stop()`` stops each by PID.

Crash accounting: a worker that exits when the harness did not kill it is a *worker crash*
(``crashes``); the harness restarts it and counts it, so a run can report it and fail on it.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.admin import committed_offsets
from vitrine_tools.chaos.hostile import INTERNAL_HOSTS
from vitrine_tools.devstack import services
from vitrine_tools.devstack.demo import SAMPLE_DIR
from vitrine_tools.devstack.stack import LocalStack, wait_ready
from workers.settings import Settings

log = logging.getLogger("vitrine.chaos")


def wait_until(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll ``cond`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pick_images(n: int) -> list[str]:
    """``n`` distinct bundled sample photos (file names), the same ones every run."""
    names = sorted(p.name for p in (SAMPLE_DIR / "images").glob("*.jpg"))
    step = max(len(names) // n, 1)
    return names[::step][:n]


@dataclass
class ChaosStack:
    data_dir: Path
    prefix: str = "chaos"
    partitions: int = 2
    env: dict[str, str] = field(default_factory=dict)
    images: list[str] = field(default_factory=lambda: pick_images(24))
    with_s3: bool = True
    kafka: services.Service | None = None
    milvus: services.Service | None = None
    s3: services.S3Service | None = None
    stack: LocalStack | None = None
    crashes: dict[str, int] = field(default_factory=lambda: {"ingest": 0, "index": 0, "query": 0})
    kills: dict[str, int] = field(default_factory=lambda: {"ingest": 0, "index": 0, "query": 0})
    broker_restarts: int = 0
    milvus_outages: int = 0
    s3_outages: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def image_root(self) -> Path:
        return self.data_dir / "images"

    def start(self) -> ChaosStack:
        self.data_dir = Path(self.data_dir).resolve()  # file:// URIs of the images must be absolute
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.image_root.mkdir(parents=True, exist_ok=True)
        for name in self.images:  # the load's photos, in a folder the hostile images may join
            shutil.copy(SAMPLE_DIR / "images" / name, self.image_root / name)
        try:
            self.kafka = services.start_kafka(self.data_dir / "kafka")
            self.milvus = services.start_milvus_lite(self.data_dir / "milvus")
            env = {
                "VITRINE_COLLECTION_ALIAS": f"{self.prefix}_products",
                "VITRINE_FETCH_ALLOW_FILE": "true",
                "VITRINE_FETCH_FILE_ROOT": str(self.image_root),
                "VITRINE_SESSION_TIMEOUT_S": "6",
                "VITRINE_FLUSH_INTERVAL_S": "2",
                # internal hosts allow-listed on purpose: what must refuse them is the address check
                "VITRINE_FETCH_ALLOWED_HOSTS": json.dumps(INTERNAL_HOSTS),
            }
            if self.with_s3:
                self.s3 = services.start_s3(self.data_dir / "s3")
                env.update({"VITRINE_S3_ENDPOINT": self.s3.address, "VITRINE_S3_ACCESS_KEY": self.s3.access_key,
                            "VITRINE_S3_SECRET_KEY": self.s3.secret_key})
            env.update(self.env)
            self.stack = LocalStack(self.data_dir / "stack", kafka_bootstrap=self.kafka.address,
                                    milvus_uri=self.milvus.address, topic_prefix=self.prefix,
                                    partitions=self.partitions, env=env).start()
        except BaseException:
            self.stop()
            raise
        return self

    # ------------------------------------------------------------------ what the oracle needs

    @property
    def settings(self) -> Settings:
        assert self.stack is not None and self.kafka is not None and self.milvus is not None
        env = self.stack.settings_env()
        return Settings(kafka_bootstrap=self.kafka.address, milvus_uri=self.milvus.address,
                        topic_prefix=self.prefix, partitions=self.partitions,
                        collection_alias=env["VITRINE_COLLECTION_ALIAS"])

    @property
    def layout(self) -> Any:
        """The live layout: the workers' models (the trained heads) and the configured index."""
        from workers.runtime.wiring import layout_for
        from workers.vision.factory import production_pipeline

        return layout_for(self.settings, production_pipeline())

    @property
    def collection(self) -> str:
        return self.layout.collection

    @property
    def ingest_group(self) -> tuple[str, str]:
        """(group, topic) of the live model's ingest workers."""
        from streams.topics import ingest_group

        return ingest_group(self.layout.model_key), self.settings.topics.events

    @property
    def index_group(self) -> tuple[str, str]:
        """(group, topic) of the live collection's index writers."""
        from streams.topics import index_group

        layout = self.layout
        return index_group(layout.collection), self.settings.topics.features(layout.model_key)

    def http(self, kind: str) -> str:
        assert self.stack is not None
        return self.stack.workers[kind].http

    # ------------------------------------------------------------------ faults

    def check_crashes(self) -> None:
        """Count and restart any worker that exited without being killed by the harness."""
        assert self.stack is not None
        for kind, w in list(self.stack.workers.items()):
            if w.process.poll() is not None:
                log.error("%s worker exited on its own (code %s); restarting", kind, w.process.returncode)
                with self._lock:
                    self.crashes[kind] += 1
                self.stack.restart_worker(kind, kill=True)

    def kill_and_restart(self, kind: str) -> float:
        """SIGKILL the ``kind`` worker, start a new one, wait until it is ready; return the seconds it took."""
        assert self.stack is not None
        w = self.stack.workers[kind]
        if w.process.poll() is not None:
            with self._lock:
                self.crashes[kind] += 1
        t0 = time.monotonic()
        self.stack.restart_worker(kind, kill=True)
        with self._lock:
            self.kills[kind] += 1
        return time.monotonic() - t0

    def restart_broker(self, *, kill: bool = False) -> None:
        """Stop (SIGTERM, or SIGKILL with ``kill``) and restart Kafka on the same log directory and ports."""
        assert self.kafka is not None
        data_dir = self.kafka.data_dir
        assert data_dir is not None
        self.kafka.kill() if kill else self.kafka.stop(timeout=30)
        self.kafka = services.start_kafka(data_dir, timeout=120)
        self.broker_restarts += 1

    def milvus_down(self, *, kill: bool = False) -> None:
        """Take Milvus away: SIGTERM (a clean stop), or SIGKILL with ``kill``.

        With SIGKILL, the Milvus Lite 3.2.2 server, just restarted, has been seen to answer a query
        without rows written before the kill (for well under a second): the guard then takes a
        known product for unknown. A store that forgets is outside what the index writer can guard
        against, so the default outage is a clean stop; ``vitrine chaos --milvus-kill`` shows it.
        """
        assert self.milvus is not None
        self.milvus.kill() if kill else self.milvus.stop(timeout=30)

    def milvus_up(self) -> None:
        assert self.milvus is not None and self.milvus.data_dir is not None
        self.milvus = services.start_milvus_lite(self.milvus.data_dir, port=self.milvus.port)
        self.milvus_outages += 1

    def s3_down(self) -> None:
        assert self.s3 is not None
        self.s3.kill()

    def s3_up(self) -> None:
        assert self.s3 is not None and self.s3.data_dir is not None
        self.s3 = services.start_s3(self.s3.data_dir, port=self.s3.port, access_key=self.s3.access_key,
                                    secret_key=self.s3.secret_key)
        self.s3_outages += 1

    # ------------------------------------------------------------------ observation

    def metrics(self, kind: str) -> str:
        with urllib.request.urlopen(f"{self.http(kind)}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def rss(self) -> dict[str, float]:
        assert self.stack is not None
        return {kind: round(rss_mib(w.process.pid), 1) for kind, w in self.stack.workers.items()}

    def group_lag(self, group: str, topic: str) -> int | None:
        """Records of ``topic`` not yet committed by ``group`` (None when the broker does not answer)."""
        from kafka import KafkaConsumer, TopicPartition

        assert self.kafka is not None
        try:
            consumer = KafkaConsumer(bootstrap_servers=self.kafka.address, request_timeout_ms=5000)
        except Exception:  # noqa: BLE001
            return None
        try:
            committed = committed_offsets(self.kafka.address, group, topic)
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            ends = consumer.end_offsets(tps)
            return sum(max(ends[tp] - committed.get(tp.partition, 0), 0) for tp in tps)
        except Exception:  # noqa: BLE001
            return None
        finally:
            consumer.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        assert self.kafka is not None
        return committed_offsets(self.kafka.address, group, topic)

    def drained(self) -> bool:
        return self.group_lag(*self.ingest_group) == 0 and self.group_lag(*self.index_group) == 0

    def wait_drained(self, timeout: float) -> float:
        t0 = time.monotonic()
        deadline = t0 + timeout
        while not self.drained():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"not drained after {timeout:.0f}s: ingest lag {self.group_lag(*self.ingest_group)}, "
                    f"index lag {self.group_lag(*self.index_group)}")
            self.check_crashes()
            time.sleep(1.0)  # polling interval of a condition with a deadline
        return time.monotonic() - t0

    def ensure_ready(self) -> None:
        assert self.stack is not None
        self.check_crashes()
        for w in self.stack.workers.values():
            wait_ready(w)

    def search(self, body: Mapping[str, Any], token: str | None = None, timeout: float = 60) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"{self.http('query')}/search", data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        for svc in (self.s3, self.milvus, self.kafka):
            if svc is not None:
                svc.stop()
