"""Security settings on a real worker process: secrets never appear in its log, /metrics or /healthz;
POST /search requires the bearer token when one is set; the HTTP listener binds VITRINE_HTTP_HOST
(loopback by default); file:// image URIs are refused when disabled. Kafka SASL credentials given as
settings work end to end: an ingest worker and the clients reach a SASL_PLAINTEXT-only listener, and
the broker refuses a wrong password (its authentication-failure response, not a mere disconnect)."""

from __future__ import annotations

import json
import logging
import re
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.codecs import decode_record
from streams.publisher import CatalogPublisher
from vitrine_tools.chaos.harness import ChaosStack, wait_until
from vitrine_tools.devstack.services import KafkaService, free_port, start_kafka
from vitrine_tools.devstack.stack import WorkerProcess, start_worker, wait_ready
from workers.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(300)]

SECRETS = {
    "VITRINE_KAFKA_PASSWORD": "kafka-pw-7f3a91",
    "VITRINE_S3_ACCESS_KEY": "s3-ak-2b8c44",
    "VITRINE_S3_SECRET_KEY": "s3-sk-9d1e07",
    "VITRINE_HTTP_TOKEN": "http-token-5e6f23",
}
HOST = "127.0.0.2"  # a loopback address other than the default, to see the setting obeyed


def _listening(port: int) -> set[str]:
    """Local addresses with a TCP listener on ``port`` (from /proc/net/tcp)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if state == "0A" and int(p, 16) == port:
            out.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return out


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _post(url: str, body: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def worker(chaos_stack: ChaosStack) -> Iterator[tuple[WorkerProcess, str]]:
    cs = chaos_stack
    assert cs.stack is not None
    port = free_port()
    env = {**cs.stack.settings_env(), **SECRETS, "VITRINE_HTTP_HOST": HOST, "VITRINE_FETCH_ALLOW_FILE": "false",
           "VITRINE_LOG_LEVEL": "debug"}
    w = start_worker("query", env, cs.data_dir / "secure-logs", port=port)
    base = f"http://{HOST}:{port}"

    def ready() -> bool:
        assert w.process.poll() is None, w.log_path.read_text()[-3000:]
        try:
            return _get(f"{base}/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(ready, 180, "the secured query worker")
        yield w, base
    finally:
        w.stop()


def test_bearer_token_is_required_when_set(worker: tuple[WorkerProcess, str]) -> None:
    _, base = worker
    body = {"request_id": "s", "kind": "text", "text": "shoes", "k": 3}
    assert _post(f"{base}/search", body, None)[0] == 401
    assert _post(f"{base}/search", body, "wrong-token")[0] == 401
    status, reply = _post(f"{base}/search", body, SECRETS["VITRINE_HTTP_TOKEN"])
    assert status == 200 and reply["ok"], reply


def test_http_binds_the_configured_host_only(worker: tuple[WorkerProcess, str], chaos_stack: ChaosStack) -> None:
    _, base = worker
    port = int(base.rsplit(":", 1)[1])
    assert _listening(port) == {HOST}
    default_port = int(chaos_stack.http("query").rsplit(":", 1)[1])
    assert _listening(default_port) == {"127.0.0.1"}  # loopback by default, never 0.0.0.0


def test_file_uris_are_refused_when_disabled(worker: tuple[WorkerProcess, str]) -> None:
    _, base = worker
    status, reply = _post(f"{base}/search", {"request_id": "f", "kind": "image",
                                             "image": {"uri": "file:///etc/hostname"}}, SECRETS["VITRINE_HTTP_TOKEN"])
    assert status == 422 and reply["error"]["code"] == "bad_image" and "file" in reply["error"]["message"]


def test_secrets_never_appear_in_log_metrics_or_health(worker: tuple[WorkerProcess, str]) -> None:
    w, base = worker
    _post(f"{base}/search", {"request_id": "x", "kind": "teleport"}, SECRETS["VITRINE_HTTP_TOKEN"])  # some logging
    pages = [_get(f"{base}/metrics")[1], _get(f"{base}/healthz")[1], w.log_path.read_text(errors="replace")]
    assert "vitrine_queries_total" in pages[0] and len(pages[2]) > 1000  # the pages are real, the log is not empty
    for name, secret in SECRETS.items():
        for where, text in zip(("metrics", "healthz", "log"), pages, strict=True):
            assert secret not in text, f"{name} appears in the worker's {where}"


@pytest.fixture
def sasl_kafka(tmp_path: Path) -> Iterator[KafkaService]:
    """A broker of its own whose SASL_PLAINTEXT listener (PLAIN) knows one user: vitrine."""
    kafka = start_kafka(tmp_path / "kafka", sasl_users={"vitrine": SECRETS["VITRINE_KAFKA_PASSWORD"]}, timeout=180)
    try:
        yield kafka
    finally:
        kafka.stop(timeout=30)  # by PID (its process group)


def test_kafka_sasl_credentials_work_end_to_end(chaos_stack: ChaosStack, sasl_kafka: KafkaService, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    assert chaos_stack.stack is not None and sasl_kafka.sasl_address
    password = SECRETS["VITRINE_KAFKA_PASSWORD"]
    kafka_env = {"VITRINE_KAFKA_BOOTSTRAP": sasl_kafka.sasl_address, "VITRINE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                 "VITRINE_KAFKA_SASL_MECHANISM": "PLAIN", "VITRINE_KAFKA_USERNAME": "vitrine",
                 "VITRINE_KAFKA_PASSWORD": password, "VITRINE_TOPIC_PREFIX": f"tsasl{uuid.uuid4().hex[:8]}"}
    settings = Settings(**{k.removeprefix("VITRINE_").lower(): v for k, v in kafka_env.items()})
    options, topics = settings.kafka_options(), settings.topics.for_model(chaos_stack.layout.model_key)
    env = {**chaos_stack.stack.settings_env(), **kafka_env, "VITRINE_DATA_DIR": str(tmp_path / "state"),
           "VITRINE_LOG_LEVEL": "debug"}
    w = start_worker("ingest", env, tmp_path / "logs")
    try:
        wait_ready(w, 240)  # ensure_topics (kafka-python) and the Faust app (aiokafka) went through SASL
        publisher = CatalogPublisher(sasl_kafka.sasl_address, topics.events, client_options=options).start()
        publisher.delete("sasl-p1", 3)
        publisher.close()  # raises unless the broker acknowledged the event
        consumer = KafkaConsumer(topics.enriched, bootstrap_servers=sasl_kafka.sasl_address, group_id=None,
                                 auto_offset_reset="earliest", enable_auto_commit=False, **options)
        try:
            def enriched() -> Any:
                assert w.process.poll() is None, w.log_path.read_text(errors="replace")[-3000:]
                batches = consumer.poll(timeout_ms=1000).values()
                return next((r for b in batches for r in b if r.key == b"sasl-p1"), None)

            record = wait_until(enriched, 120, "the enriched delete on the SASL listener")
        finally:
            consumer.close()
        rec = decode_record(record.value)
        assert (rec.op, rec.product_id, rec.version) == ("delete", "sasl-p1", 3)
    finally:
        w.stop()

    def bootstrap(pw: str) -> tuple[BaseException | None, list[str]]:
        """One kafka-python client bootstrapping on the SASL listener with password ``pw``: what it
        raised (None: it got the topic list) and the messages of its log records (INFO and above)."""
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="kafka"):
            try:
                c = KafkaConsumer(bootstrap_servers=sasl_kafka.sasl_address, bootstrap_timeout_ms=8000,
                                  request_timeout_ms=5000, **{**options, "sasl_plain_password": pw})
                try:
                    c.topics()
                finally:
                    c.close()
                error = None
            except KafkaError as exc:
                error = exc
        return error, [r.getMessage() for r in caplog.records if r.name.startswith("kafka")]

    # Evidence that only a failed authentication produces: the broker's SaslAuthenticate response with
    # error 58 (SASL_AUTHENTICATION_FAILED), which kafka-python raises as SaslAuthenticationFailedError.
    # (Not "Sending username and password in the clear": kafka-python logs that on every handshake.)
    def refused(messages: list[str]) -> bool:
        return any("SaslAuthenticationFailedError" in m for m in messages)

    def authenticated(messages: list[str]) -> bool:
        return any("Authenticated as vitrine via SASL" in m for m in messages)

    error, messages = bootstrap(password)  # the control: the right password gets in and is never refused
    assert error is None and authenticated(messages) and not refused(messages), (error, messages[-20:])

    attempts: list[tuple[BaseException | None, list[str]]] = []

    def wrong_password_refused() -> bool:
        # the broker may close the connection before its error response arrives (then the client sees
        # only a disconnect); a client retries within its bootstrap timeout, another attempt follows
        attempts.append(bootstrap("not-" + password))
        error, messages = attempts[-1]
        assert error is not None and not authenticated(messages), (error, messages[-20:])
        return refused(messages)

    wait_until(wrong_password_refused, 90, "the broker to refuse the wrong password (SaslAuthenticationFailedError)")

    worker_log = w.log_path.read_text(errors="replace")
    # a debug log in which both clients say they authenticated: kafka-python (wait_for_broker,
    # ensure_topics) and aiokafka (the Faust app)
    assert re.search(r" kafka\.\S+ INFO .*Authenticated as vitrine via SASL", worker_log), worker_log[-3000:]
    assert re.search(r" aiokafka\.\S+ INFO Authenticated as vitrine via PLAIN", worker_log), worker_log[-3000:]
    assert " DEBUG " in worker_log
    assert password not in worker_log, "the Kafka password appears in the worker's log"
    assert password not in sasl_kafka.log_tail(100_000), "the Kafka password appears in the broker's log"
