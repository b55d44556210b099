"""Security settings on a real worker process: secrets never appear in its log, /metrics or /healthz;
POST /search requires the bearer token when one is set; the HTTP listener binds VITRINE_HTTP_HOST
(loopback by default); file:// image URIs are refused when disabled."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.chaos.harness import ChaosStack, wait_until
from workers.services import free_port
from workers.stack import WorkerProcess, start_worker

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
