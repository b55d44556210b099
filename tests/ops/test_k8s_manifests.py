"""The Kubernetes manifests (infra/k8s) render, validate offline, and say what the code does.

- every kustomization renders with the real kustomize, and every object it renders is validated by
  kubeconform (strict: unknown fields fail) against Kubernetes' JSON schemas and, for KEDA, prometheus-
  operator and Strimzi objects, schemas made from their CRDs; a kind without a schema is an error, never
  a skip, and the test checks that kubeconform reported on exactly the objects rendered;
- each Deployment runs its worker on the port its settings give it, with probes on the paths the worker's
  web server really serves (``workers.runtime.app.worker_app``), a startup budget that covers the wait
  for Kafka, a grace period that covers the drain, non-root as the image's user, the GPU for ingest only,
  credentials from a Secret only, and no ``VITRINE_*`` variable that is no setting;
- the KEDA lag triggers name the topics and consumer groups ``streams.topics`` gives the shipped models,
  never more replicas than partitions; the KafkaTopics are ``TopicSet.specs()`` exactly.

The tools come from ``make k8s-tools`` (infra/k8s/install-tools.sh); without them this test fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.ops, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
TOOLS = Path(os.environ.get("VITRINE_K8S_TOOLS", ROOT / ".vitrine" / "k8s"))
#: The Kubernetes version validated against (install-tools.sh K8S_SCHEMA_VERSION).
K8S_VERSION = "1.34.0"
KUSTOMIZATIONS = ["infra/k8s/base", "infra/k8s/overlays/production"]
#: Every kind the manifests may hold; a new kind must be added here (and get a schema) on purpose.
KINDS = {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "KafkaTopic", "Namespace", "PodDisruptionBudget",
         "ScaledObject", "Service", "ServiceMonitor"}
WORKERS = ("ingest", "index", "query")
#: The settings that are secrets: each must come from a secretKeyRef, never a value or the ConfigMap.
SECRET_SETTINGS = {"VITRINE_KAFKA_PASSWORD", "VITRINE_MILVUS_TOKEN", "VITRINE_S3_ACCESS_KEY", "VITRINE_S3_SECRET_KEY",
                   "VITRINE_HTTP_TOKEN"}


def _tool(name: str) -> Path:
    path = TOOLS / "bin" / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `make k8s-tools` (bash infra/k8s/install-tools.sh)", pytrace=False)
    return path


def _schema_dirs() -> tuple[Path, Path]:
    k8s, crds = TOOLS / "schemas" / "kubernetes" / f"v{K8S_VERSION}-local-strict", TOOLS / "schemas" / "crds"
    if not (k8s / "_definitions.json").is_file() or not crds.is_dir():
        pytest.fail(f"the schemas under {TOOLS / 'schemas'} are missing: run `make k8s-tools` "
                    "(bash infra/k8s/install-tools.sh)", pytrace=False)
    return k8s, crds


@cache
def _rendered_text(kustomization: str) -> str:
    out = subprocess.run([str(_tool("kustomize")), "build", str(ROOT / kustomization)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, f"kustomize build {kustomization} failed:\n{out.stderr}"
    return out.stdout


def rendered(kustomization: str = "infra/k8s/overlays/production") -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_rendered_text(kustomization)) if d]


def kubeconform(text: str) -> dict[str, Any]:
    """kubeconform's JSON report on ``text`` (strict; both schema locations; missing schemas are errors)."""
    k8s, crds = _schema_dirs()
    out = subprocess.run(
        [str(_tool("kubeconform")), "-strict", "-summary", "-verbose", "-output", "json",
         "-kubernetes-version", K8S_VERSION,
         "-schema-location", f"{k8s}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
         "-schema-location", f"{crds}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
         "-"], input=text, capture_output=True, text=True, timeout=120)
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"kubeconform printed no JSON (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    report["returncode"] = out.returncode
    return report


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _worker(deployment: dict[str, Any]) -> str:
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "worker" and args[1] in WORKERS, args
    return args[1]


def deployments() -> Iterator[tuple[str, dict[str, Any]]]:
    docs = rendered()
    found = {_worker(d): d for d in of_kind(docs, "Deployment").values()}
    assert sorted(found) == sorted(WORKERS), "one Deployment per worker"
    yield from found.items()


def config_map(docs: list[dict[str, Any]]) -> dict[str, str]:
    (cm,) = of_kind(docs, "ConfigMap").values()
    return cm["data"]


def container_env(deployment: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    """The plain VITRINE_* values the worker's container gets (ConfigMap, then its own env)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] in of_kind(docs, "ConfigMap"), source
        env.update(config_map(docs))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
    return env


def settings_of(env: dict[str, str]) -> Any:
    """``workers.settings.Settings`` as the worker would build it from ``env`` (and nothing else)."""
    from workers.settings import Settings, load_settings, unknown_variables

    assert unknown_variables(env) == [], "VITRINE_* variables that are no setting"
    saved = {k: v for k, v in os.environ.items() if k.startswith("VITRINE_")}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update(env)
        settings = load_settings()
    finally:
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(saved)
    assert isinstance(settings, Settings)
    return settings


def scrape_ports() -> dict[str, int]:
    """Each worker's port in infra/prometheus/prometheus.yml, the compose stack's scrape config (a static
    ``ingest:6066`` target or a DNS service discovery with ``port: 6066``)."""
    config = yaml.safe_load((ROOT / "infra" / "prometheus" / "prometheus.yml").read_text())
    ports = {}
    for job in config["scrape_configs"]:
        if not job["job_name"].startswith("vitrine-"):
            continue
        found = {int(t.rsplit(":", 1)[1]) for c in job.get("static_configs", []) for t in c["targets"]}
        found |= {int(c["port"]) for c in job.get("dns_sd_configs", []) if "port" in c}
        (port,) = found
        ports[job["job_name"].removeprefix("vitrine-")] = port
    assert sorted(ports) == sorted(WORKERS), ports
    return ports


def shipped_layout(settings: Any) -> Any:
    """The index layout of the models the workers load (constructed, not loaded: no weights read)."""
    from workers.runtime.wiring import layout_for, vision_for

    return layout_for(settings, vision_for(settings))


# --------------------------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_is_valid(kustomization: str) -> None:
    docs = rendered(kustomization)
    kinds = {d["kind"] for d in docs}
    assert kinds <= KINDS, f"kinds without a decision on their schema: {sorted(kinds - KINDS)}"
    report = kubeconform(_rendered_text(kustomization))
    results = report["resources"]
    bad = [r for r in results if r["status"] != "statusValid"]
    assert not bad, "\n".join(f"{r['kind']} {r['name']}: {r['status']} {r.get('msg', '')} "
                              f"{r.get('validationErrors', '')}" for r in bad)
    assert sorted((r["kind"], r["name"]) for r in results) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in docs), "kubeconform reported on other objects than rendered"
    summary = report["summary"]
    assert summary == {"valid": len(docs), "invalid": 0, "errors": 0, "skipped": 0}, summary
    assert report["returncode"] == 0


def test_a_broken_manifest_fails_validation() -> None:
    """The validator can fail: a wrong type, an unknown field and a string where KEDA wants a string map
    value each make kubeconform reject exactly the objects broken."""
    text = _rendered_text("infra/k8s/overlays/production")
    broken = {
        "Deployment": text.replace("failureThreshold: 4", 'failureThreshold: "4"', 1),
        "KafkaTopic": text.replace("partitions: 48", 'partitions: "48"', 1),
        "ScaledObject": text.replace('lagThreshold: "5000"', "lagThreshold: 5000", 1),
        "ServiceMonitor": text.replace("scrapeTimeout:", "scrapeTimout:", 1),
        "PodDisruptionBudget": text.replace("maxUnavailable: 1\n  selector", "maxUnavailabel: 1\n  selector", 1),
    }
    for kind, variant in broken.items():
        assert variant != text, f"the {kind} break did not apply"
        report = kubeconform(variant)
        invalid = [r for r in report["resources"] if r["status"] == "statusInvalid"]
        assert len(invalid) == 1 and invalid[0]["kind"] == kind, (kind, invalid)
        assert report["returncode"] != 0


# ----------------------------------------------------------------------------------------- the workers

def _port(container: dict[str, Any], ref: Any) -> int:
    if isinstance(ref, int):
        return ref
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == ref]
    return port


def test_deployments_serve_and_probe_what_the_worker_does() -> None:
    from workers.runtime.app import worker_app

    docs = rendered()
    for kind, deployment in deployments():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", "workers.cli"] and container["args"] == ["worker", kind]
        settings = settings_of(container_env(deployment, docs))
        assert settings.http_host == "0.0.0.0", "a worker bound to loopback cannot be probed"
        with tempfile.TemporaryDirectory() as data:
            served = set(worker_app(settings.model_copy(update={"data_dir": Path(data)}), kind).web.views)
        assert {"/metrics", "/healthz"} <= served, served
        (port,) = container["ports"]
        assert port["containerPort"] == settings.http_port, (kind, port, settings.http_port)
        assert settings.http_port == scrape_ports()[kind], "the port infra/prometheus and compose use"
        probes = {p: container[p]["httpGet"] for p in ("startupProbe", "livenessProbe", "readinessProbe")}
        for name, probe in probes.items():
            assert probe["path"] in served, (kind, name, probe)
            assert _port(container, probe["port"]) == settings.http_port, (kind, name)
        # ready = /healthz (the reader joined its group / the live collection is open); alive = /metrics,
        # which answers while a query worker left behind by a swap says 503 on /healthz
        assert probes["readinessProbe"]["path"] == "/healthz"
        assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/metrics"
        start = container["startupProbe"]
        assert start["periodSeconds"] * start["failureThreshold"] >= settings.kafka_wait_s + 60, \
            "the startup probe must outlast the wait for Kafka plus the model load"


def test_grace_period_covers_the_drain() -> None:
    """On SIGTERM a worker stops its Faust services (each waits up to mode's Service.shutdown_timeout),
    commits what was acknowledged and leaves its group; the web server gives handlers
    handler_shutdown_timeout. The grace period covers the longer of the two plus the preStop pause."""
    from faust.web.drivers.aiohttp import Web
    from mode import Service

    drain = max(Service.shutdown_timeout, Web.handler_shutdown_timeout)
    for kind, deployment in deployments():
        pod = deployment["spec"]["template"]["spec"]
        pre_stop = pod["containers"][0].get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        assert pod["terminationGracePeriodSeconds"] >= drain + pre_stop + 10, (kind, drain, pre_stop)
    query = dict(deployments())["query"]["spec"]["template"]["spec"]["containers"][0]
    assert query["lifecycle"]["preStop"]["sleep"]["seconds"] >= 5, "the Service must drop a stopping query pod first"


def test_gpu_resources_and_security() -> None:
    uid = int(re.search(r"useradd [^\n]*--uid (\d+)", (ROOT / "infra" / "Dockerfile").read_text()).group(1))
    docs = rendered()
    for kind, deployment in deployments():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        res = container["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"], kind
        gpu = res["limits"].get("nvidia.com/gpu")
        settings = settings_of(container_env(deployment, docs))
        if kind == "ingest":
            assert gpu == "1" and settings.device == "cuda"
        else:
            assert gpu is None and settings.device == "cpu", kind
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        if sc.get("readOnlyRootFilesystem"):
            assert str(settings.data_dir) in mounts and "/tmp" in mounts, (kind, mounts)


def test_credentials_come_from_a_secret_only() -> None:
    docs = rendered()
    assert not of_kind(docs, "Secret"), "the manifests reference the Secret; they never carry its values"
    assert not SECRET_SETTINGS & set(config_map(docs)), "a secret in the ConfigMap"
    for kind, deployment in deployments():
        for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            if var["name"] in SECRET_SETTINGS:
                assert "value" not in var, (kind, var["name"])
                assert var["valueFrom"]["secretKeyRef"]["name"] == "vitrine-credentials", (kind, var)
    for name in SECRET_SETTINGS:
        from workers.settings import Settings

        assert name.removeprefix("VITRINE_").lower() in Settings.model_fields, name


# --------------------------------------------------------------------------------- Kafka and autoscaling

def test_kafka_topics_are_the_topic_specs() -> None:
    docs = rendered()
    settings = settings_of(config_map(docs))
    specs = settings.topics.for_model(shipped_layout(settings).model_key).specs()  # streams.topics.TopicSet
    topics = of_kind(docs, "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics.values()) == sorted(s.name for s in specs)
    for spec in specs:
        (topic,) = [t for t in topics.values() if t["spec"]["topicName"] == spec.name]
        assert topic["spec"]["partitions"] == spec.partitions, spec.name
        assert topic["spec"]["replicas"] == spec.replication, spec.name
        assert topic["spec"]["config"] == dict(spec.configs), spec.name
        assert topic["metadata"]["labels"]["strimzi.io/cluster"], spec.name
    assert settings.replication_factor >= 3, "a production cluster keeps 3 replicas (min.insync.replicas 2)"


def test_keda_triggers_name_the_real_topics_and_groups() -> None:
    from streams.topics import index_group, ingest_group

    docs = rendered()
    settings = settings_of(config_map(docs))
    layout = shipped_layout(settings)
    topics = settings.topics
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind(docs, "KafkaTopic").values()}
    want = {
        "vitrine-ingest": (topics.events, ingest_group(layout.model_key)),
        "vitrine-index": (topics.features(layout.model_key), index_group(layout.collection)),
    }
    scaled = of_kind(docs, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled.values()} == set(want)
    for obj in scaled.values():
        target = obj["spec"]["scaleTargetRef"]["name"]
        assert target in of_kind(docs, "Deployment"), target
        (trigger,) = obj["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert (meta["topic"], meta["consumerGroup"]) == want[target], target
        assert meta["bootstrapServers"] == settings.kafka_bootstrap
        assert meta["offsetResetPolicy"] == "earliest"
        assert obj["spec"]["maxReplicaCount"] <= partitions[meta["topic"]], "replicas beyond partitions idle"
        assert 1 <= obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vitrine-query"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_services_budgets_and_scraping_select_the_workers() -> None:
    docs = rendered()
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in of_kind(docs, "Deployment").items()}

    def selects(selector: dict[str, str]) -> set[str]:
        return {name for name, labels in pods.items() if selector.items() <= labels.items()}

    services = of_kind(docs, "Service")
    (monitor,) = of_kind(docs, "ServiceMonitor").values()
    scraped = {n: s for n, s in services.items()
               if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()}
    jobs = {s["metadata"]["labels"][monitor["spec"]["jobLabel"]]: selects(s["spec"]["selector"])
            for s in scraped.values()}
    assert jobs == {f"vitrine-{k}": {f"vitrine-{k}"} for k in WORKERS}, "one scrape job per worker, the alert names"
    endpoint_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}
    for s in scraped.values():
        assert {p["name"] for p in s["spec"]["ports"]} >= endpoint_ports
        assert s["spec"]["clusterIP"] == "None"
    query = services["vitrine-query"]
    assert selects(query["spec"]["selector"]) == {"vitrine-query"}
    assert [p["port"] for p in query["spec"]["ports"]] == [6068]
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert sorted(n for b in budgets.values() for n in selects(b["spec"]["selector"]["matchLabels"])) == \
        sorted(pods), "one disruption budget per worker"
