"""docker-compose.yml as the real Docker Compose CLI reads it: ``docker-compose config`` (v5, built from
the Go module proxy by ``make compose``: infra/compose/build.sh) validates and resolves the file with
every profile, as written and scaled out the way ``docker compose up --scale ingest=2 --scale index=3
--scale query=3`` scales it (``up --scale`` sets each service's ``scale``; here an override file does).
``config`` needs no Docker engine: the CLI runs with ``DOCKER_HOST`` at a socket nothing listens on,
an empty Docker config and an empty env file, so neither a local engine nor a local ``.env`` nor the
shell's ``VITRINE_*`` variables change what is checked.

What holds, on every variant:
- no worker service (ingest, index, query, the topics job) publishes a host port, so each can run as
  many replicas as asked; exactly one service publishes the query API's port: the proxy in front of
  the query workers (infra/proxy/nginx.conf: Docker's DNS, re-resolved);
- every port published to the host binds 127.0.0.1;
- Prometheus gets infra/prometheus mounted as its config, and that config finds the three worker jobs
  by DNS (``dns_sd_configs``, type A, the compose service names and the workers' ports), so every
  replica is scraped; ``promtool check config`` accepts it where promtool is installed;
- the workers and the topics job create and read 12 partitions (VITRINE_PARTITIONS), the broker's
  default is the same, and replication and the DLQ's partitions come from settings.

A missing compose binary FAILS the test (run ``make compose``): CI builds it before the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.ops

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
PROXY_CONF = ROOT / "infra" / "proxy" / "nginx.conf"
COMPOSE_BIN = ROOT / ".vitrine" / "bin" / "docker-compose"

WORKER_PORTS = {"ingest": 6066, "index": 6067, "query": 6068}  # the compose service: its VITRINE_HTTP_PORT
WORKER_SERVICES = (*WORKER_PORTS, "topics")
SCALE = {"ingest": 2, "index": 3, "query": 3}
QUERY_ENTRY_PORT = "6068"  # VITRINE_QUERY_PORT's default: where the query API is published
PARTITIONS = "12"

Compose = Callable[..., dict[str, Any]]


def _compose_binary() -> Path:
    """The compose CLI (``VITRINE_TEST_COMPOSE_BIN`` overrides); FAILS the test, never skips, when missing."""
    path = Path(os.environ.get("VITRINE_TEST_COMPOSE_BIN") or COMPOSE_BIN)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"the Docker Compose CLI is not built at {path}: run `make compose` (infra/compose/build.sh, "
                    "Docker Compose v5 from the Go module proxy; `make test` runs it first)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Compose:
    """``compose(*override_files) -> the resolved config`` of docker-compose.yml (+ overrides), every
    profile on: ``config --quiet`` must pass, then ``config --format json`` is parsed."""
    binary = _compose_binary()
    home = tmp_path_factory.mktemp("compose-home")
    env_file = home / "empty.env"
    env_file.write_text("")
    env = {  # nothing of the caller's shell: only the file's own defaults are interpolated
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DOCKER_CONFIG": str(home),
        "DOCKER_HOST": f"unix://{home}/no-engine.sock",  # nothing listens: `config` must not need an engine
    }

    def run(*overrides: Path, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        files = [arg for f in (COMPOSE_FILE, *overrides) for arg in ("-f", str(f))]
        argv = [str(binary), *files, "--project-directory", str(ROOT), "--env-file", str(env_file),
                "--profile", "*", "config", *args]
        return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

    def config(*overrides: Path) -> dict[str, Any]:
        quiet = run(*overrides, args=("--quiet",))
        assert quiet.returncode == 0 and not quiet.stdout, \
            f"docker-compose config --quiet refused the file:\n{quiet.stdout}{quiet.stderr}"
        done = run(*overrides, args=("--format", "json"))
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    return config


@pytest.fixture(scope="module")
def scale_override(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose-scale") / "scale.yml"
    path.write_text(yaml.safe_dump({"services": {name: {"scale": n} for name, n in SCALE.items()}}))
    return path


def _published(service: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in service.get("ports") or [] if p.get("published")]


def compose_problems(config: dict[str, Any]) -> list[str]:
    """What is wrong with a resolved compose config, one line each (empty: nothing)."""
    services: dict[str, Any] = config["services"]
    problems = [f"{name} is not a service" for name in WORKER_SERVICES if name not in services]
    for name in WORKER_SERVICES:
        for port in _published(services.get(name, {})):
            problems.append(f"worker service {name} publishes host port {port['published']} (it cannot scale out)")
        if services.get(name, {}).get("container_name"):
            problems.append(f"worker service {name} sets container_name (it cannot scale out)")
    for name, service in services.items():
        for port in _published(service):
            if port.get("host_ip") != "127.0.0.1":
                problems.append(f"{name} publishes {port['published']} on {port.get('host_ip') or 'every address'}, "
                                "not 127.0.0.1")
    entry = sorted(name for name, s in services.items()
                   if any(str(p["published"]) == QUERY_ENTRY_PORT for p in _published(s)))
    if len(entry) != 1:
        problems.append(f"the query API port {QUERY_ENTRY_PORT} is published by {entry or 'no service'}, not by one")
    elif entry[0] in WORKER_SERVICES:
        problems.append(f"the query API port is published by the worker {entry[0]}, not by a proxy")
    else:
        mounts = {(v.get("source"), v.get("target")) for v in services[entry[0]].get("volumes") or []}
        if (str(PROXY_CONF), "/etc/nginx/nginx.conf") not in mounts:
            problems.append(f"the entry point {entry[0]} does not mount {PROXY_CONF.relative_to(ROOT)}")
    for name in WORKER_SERVICES:
        env = services.get(name, {}).get("environment") or {}
        if env.get("VITRINE_PARTITIONS") != PARTITIONS:
            problems.append(f"{name}: VITRINE_PARTITIONS={env.get('VITRINE_PARTITIONS')!r}, not {PARTITIONS}")
        for setting in ("VITRINE_REPLICATION_FACTOR", "VITRINE_DLQ_PARTITIONS"):
            if not env.get(setting):
                problems.append(f"{name}: {setting} is not set")
    for name, http_port in WORKER_PORTS.items():
        if (services.get(name, {}).get("environment") or {}).get("VITRINE_HTTP_PORT") != str(http_port):
            problems.append(f"{name}: VITRINE_HTTP_PORT is not {http_port} (prometheus.yml scrapes that port)")
    broker = (services.get("kafka", {}).get("environment") or {}).get("KAFKA_NUM_PARTITIONS")
    if broker is not None and str(broker) != PARTITIONS:
        problems.append(f"kafka: KAFKA_NUM_PARTITIONS={broker!r} differs from VITRINE_PARTITIONS={PARTITIONS}")
    return problems


def _assert_none(problems: list[str]) -> None:
    assert not problems, "docker-compose.yml, as the compose CLI resolved it:\n" + "\n".join(problems)


def test_the_compose_file_as_written_passes_the_real_cli(compose: Compose) -> None:
    _assert_none(compose_problems(compose()))


def test_the_compose_file_scaled_out_passes_the_real_cli(compose: Compose, scale_override: Path) -> None:
    config = compose(scale_override)
    assert {name: config["services"][name].get("scale") for name in SCALE} == SCALE
    _assert_none(compose_problems(config))


def test_a_worker_with_a_host_port_or_a_port_on_every_address_is_caught(compose: Compose, tmp_path: Path) -> None:
    """The check itself: the mistakes it exists for are reported, through the same CLI."""
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"services": {
        "query": {"ports": ["127.0.0.1:6068:6068"]},
        "index": {"ports": ["6067:6067"]},
    }}))
    problems = compose_problems(compose(broken))
    assert "worker service query publishes host port 6068 (it cannot scale out)" in problems, problems
    assert any(p.startswith("the query API port 6068 is published by ['query', 'query-proxy']") for p in problems), \
        problems
    assert any(p.startswith("index publishes 6067 on") and p.endswith("not 127.0.0.1") for p in problems), problems


def test_prometheus_mounts_its_config_and_finds_every_worker_replica_by_dns(compose: Compose) -> None:
    prometheus = compose()["services"]["prometheus"]
    mounts = {v.get("target"): v for v in prometheus.get("volumes") or [] if v.get("type") == "bind"}
    assert mounts.get("/etc/prometheus", {}).get("source") == str(PROMETHEUS_DIR), mounts
    assert mounts["/etc/prometheus"].get("read_only") is True
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]

    jobs = {j["job_name"]: j for j in yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"]}
    for service, port in WORKER_PORTS.items():
        job = jobs.get(f"vitrine-{service}")
        assert job is not None, f"prometheus.yml has no job vitrine-{service} (alerts.yml reads the job names)"
        assert "static_configs" not in job, f"vitrine-{service} lists static targets: scaled replicas are missed"
        assert job.get("dns_sd_configs") == [{"names": [service], "type": "A", "port": port, "refresh_interval": "15s"}]


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (`make prometheus`); tests/test_services.py requires it")
    done = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS_DIR,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_proxy_reresolves_the_query_service_through_dockers_dns() -> None:
    """nginx resolves a fixed upstream name once at start; only a variable with a resolver follows
    replicas that come and go (infra/proxy/nginx.conf says why)."""
    lines = [line.split("#", 1)[0].strip() for line in PROXY_CONF.read_text().splitlines()]
    assert any(line.startswith("resolver 127.0.0.11 ") for line in lines)
    assert "set $query_upstream http://query:6068;" in lines and "proxy_pass $query_upstream;" in lines
    assert not any(line.startswith("upstream ") for line in lines), "an upstream block is resolved once, at start"
