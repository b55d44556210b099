"""Child processes that answer their own protocol: the ``Service`` handle, ports, spawning, readiness.

The contract every service follows is in the package docstring (``vitrine_tools.devstack.services``).
"""


from __future__ import annotations

import atexit
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from streams.admin import accepts_connections

REPO_ROOT = Path(__file__).resolve().parents[3]
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
    _wait_until(lambda: accepts_connections(host, port, 0.5), timeout, process, log_path, name, f"port {host}:{port}")


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


