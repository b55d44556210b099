"""Monitoring that really fires: a real Prometheus, with infra/prometheus/alerts.yml (every ``for:`` shortened,
the expressions as they are) and the scrape jobs of infra/prometheus/prometheus.yml, scrapes a real LocalStack
(Kafka, Milvus Lite, the three worker processes).

- a SIGKILLed worker: ``up == 0`` for its job and ``VitrineWorkerDown`` fires; restarted, it resolves;
- a stalled index worker (SIGSTOP) while events keep coming: the lag alerts fire for its group (the stalled
  worker exports nothing, so the lag comes from the ingest worker: ``vitrine_consumer_group_lag``); resumed,
  they resolve;
- every series that infra/prometheus/alerts_test.yml feeds promtool is named and labelled as the workers
  export it, with DLQ reasons and stages the code emits;
- the index worker's searchable probe saw a write (``vitrine_searchable_freshness_seconds``), no sooner than
  Milvus acknowledged it, and none timed out;
- every PromQL expression of the Grafana dashboard parses, evaluates to series, and reads only metrics the
  workers' ``/metrics`` export; the dashboard shows what an SRE needs (listed in ``DASHBOARD_MUST_SHOW``).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from vitrine_tools.devstack import services

pytestmark = [pytest.mark.ops, pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
INFRA_PROMETHEUS = ROOT / "infra" / "prometheus"
DASHBOARD = ROOT / "infra" / "grafana" / "provisioning" / "dashboards" / "vitrine-overview.json"
#: Every ``for:`` of alerts.yml becomes at most this (the expressions stay as they are).
FOR_S = 3
#: Patches published while the index worker is stalled: past VitrineConsumerLagHigh's 10k records.
STALL_PATCHES = 12_000


def _require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: run `make prometheus` (infra/prometheus/install.sh)", pytrace=False)
    return path


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration))


def shortened_rules(source: Path, dest: Path, for_s: int = FOR_S) -> dict[str, str]:
    """Write ``source`` to ``dest`` with every ``for:`` at most ``for_s`` seconds; {alert: its expr}."""
    doc = yaml.safe_load(source.read_text())
    exprs = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{min(int(_seconds(rule['for'])), for_s)}s"
            exprs[rule.get("alert") or rule.get("record")] = rule["expr"]
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return exprs


def scrape_config(targets: dict[str, str], rules: Path) -> tuple[str, dict[str, set[str]]]:
    """infra/prometheus/prometheus.yml's vitrine jobs (names, target labels, relabelling) with their service
    discovery replaced by ``targets`` {job: host:port}, scraped every second; also {job: the labels its
    config adds to every series}."""
    prod = yaml.safe_load((INFRA_PROMETHEUS / "prometheus.yml").read_text())
    jobs, added = [], {}
    for job in prod["scrape_configs"]:
        name = job["job_name"]
        if name not in targets:
            continue
        labels = {k: v for sc in job.get("static_configs", []) for k, v in (sc.get("labels") or {}).items()}
        kept = {k: v for k, v in job.items() if not k.endswith("_sd_configs") and k not in
                ("static_configs", "scrape_interval", "scrape_timeout")}
        jobs.append({**kept, "static_configs": [{"targets": [targets[name]], "labels": labels}]})
        added[name] = set(labels) | {r["target_label"] for r in job.get("relabel_configs", []) if "target_label" in r}
    assert set(added) == set(targets), f"prometheus.yml has no job for {set(targets) - set(added)}"
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
              "rule_files": [str(rules)], "scrape_configs": jobs}
    return yaml.safe_dump(config, sort_keys=False), added


@dataclass
class Monitored:
    stack: Any
    prometheus: Any
    jobs: dict[str, str]  # job -> worker host:port
    added_labels: dict[str, set[str]]  # job -> target labels prometheus.yml adds
    exprs: dict[str, str]  # alert -> expr, as in alerts.yml

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.prometheus.address}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def value(self, expr: str) -> dict[str, float]:
        """job -> value of ``expr`` now."""
        return {r["metric"].get("job", ""): float(r["value"][1]) for r in self.query(expr)}

    def alerts(self, name: str, state: str | None = None, **labels: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name
                and (state is None or a["state"] == state)
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def publisher(self) -> Any:
        from streams.publisher import CatalogPublisher
        from streams.topics import TopicSet

        return CatalogPublisher(self.stack.kafka_bootstrap, TopicSet(self.stack.topic_prefix, self.stack.partitions).events).start()

    def search(self, request: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(f"{self.stack.workers['query'].http}/search", data=json.dumps(request).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return dict(json.load(resp))

    def exported(self, kind: str) -> dict[str, set[frozenset[str]]]:
        """{sample name: label-name sets} of worker ``kind``'s own ``/metrics``, read directly."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.stack.workers[kind].http}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        out: dict[str, set[frozenset[str]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, set()).add(frozenset(sample.labels))
        return out


def wait_for(what: str, cond: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
    return got


@pytest.fixture(scope="module")
def monitored(kafka: Any, milvus: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    from vitrine_tools.devstack.demo import SAMPLE_DIR, load_sample
    from vitrine_tools.devstack.stack import LocalStack

    _require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("monitoring")
    run = f"mon_{uuid.uuid4().hex[:8]}"
    ports = {kind: services.free_port() for kind in ("ingest", "index", "query")}  # kept across a restart
    stack = LocalStack(tmp / "stack", kafka_bootstrap=kafka.address, milvus_uri=milvus.address, topic_prefix=run,
                       worker_ports=ports,
                       env={"VITRINE_COLLECTION_ALIAS": run, "VITRINE_FETCH_ALLOW_FILE": "true",
                            "VITRINE_FETCH_FILE_ROOT": str(SAMPLE_DIR), "VITRINE_BATCH_MAX_WAIT_S": "0.02"}).start()
    prometheus = None
    try:
        rules = tmp / "alerts.yml"
        exprs = shortened_rules(INFRA_PROMETHEUS / "alerts.yml", rules)
        jobs = {f"vitrine-{kind}": w.http.removeprefix("http://") for kind, w in stack.workers.items()}
        config, added = scrape_config(jobs, rules)
        (tmp / "prometheus.yml").write_text(config)
        prometheus = services.start_prometheus(tmp / "prometheus.yml", data_dir=tmp / "prom")
        assert prometheus is not None
        mon = Monitored(stack, prometheus, jobs, added, exprs)
        wait_for("every worker scraped", lambda: mon.value("up") == {job: 1.0 for job in jobs})

        # traffic that makes every series of the dashboard and of alerts_test.yml exist
        rows = load_sample()[:3]
        pub = mon.publisher()
        for r in rows:
            pub.upsert(r["product_id"], 1, title=r["title"], price=10.0, images=[f"file://{SAMPLE_DIR / r['image']}"])
        pub.send_raw("poison", b'{"schema_version": 1, "type": ')  # malformed JSON: dead-lettered
        pub.flush()
        pub.close()
        wait_for("3 upserts written", lambda: mon.value('vitrine_events_indexed_total{op="upsert"}')
                 == {"vitrine-index": 3.0})
        wait_for("3 products counted", lambda: mon.value("vitrine_index_products") == {"vitrine-index": 3.0})
        for request in ({"request_id": "q1", "kind": "text", "text": "a dress", "k": 3},
                        {"request_id": "q2", "kind": "similar", "product_id": rows[0]["product_id"], "k": 3}):
            assert mon.search(request).get("ok", True) is not False
        wait_for("the queries counted", lambda: mon.value("sum by (job) (vitrine_queries_total)")
                 == {"vitrine-query": 2.0})
        wait_for("the index group's lag exported by the ingest worker, caught up", lambda: mon.value(
            'vitrine_consumer_group_lag{group=~"vitrine-index\\\\..*"}') == {"vitrine-ingest": 0.0}, 60)
        yield mon
    finally:
        if prometheus is not None:
            prometheus.stop()
        stack.stop()


# --------------------------------------------------------------------------------------------
# the alert rules on the real stack


def test_the_rules_copy_changes_only_the_for_durations(monitored: Monitored, tmp_path: Path) -> None:
    original = yaml.safe_load((INFRA_PROMETHEUS / "alerts.yml").read_text())
    exprs = {r["alert"]: r["expr"] for g in original["groups"] for r in g["rules"]}
    assert monitored.exprs == exprs
    loaded = {r["name"]: r for g in monitored.api("rules")["groups"] for r in g["rules"]}
    assert set(loaded) == set(exprs)
    assert all(r["duration"] <= FOR_S for r in loaded.values()), {n: r["duration"] for n, r in loaded.items()}
    assert [(n, r.get("lastError")) for n, r in loaded.items() if r["health"] == "err"] == []


# --------------------------------------------------------------------------------------------
# the promtool tests read series labelled as the workers export them


def _selector(series: str) -> tuple[str, dict[str, str]]:
    name, _, rest = series.partition("{")
    labels = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', rest))
    return name.strip(), labels


def _reasons_in_code() -> tuple[set[str], set[str]]:
    """(DLQ reasons, DLQ stages) the code passes as literals to its dead-letter exceptions."""
    reason_arg = {"DeadLetter": 1, "FetchError": 0, "InvalidEvent": 0, "ImageDecodeError": 0}
    reasons, stages = set(), set()
    for path in [*(ROOT / "workers").rglob("*.py"), *(ROOT / "streams").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in reason_arg):
                continue
            args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args]
            at = reason_arg[node.func.id]
            if len(args) > at and args[at]:
                reasons.add(args[at])
            if node.func.id == "DeadLetter" and args and args[0]:
                stages.add(args[0])
            if node.func.id == "FetchError":
                stages.add("fetch")
    return reasons, stages | {"validate", "index"}  # (the stage of an InvalidEvent, of the writer's refusals)


def test_the_alert_unit_tests_read_series_as_the_workers_export_them(monitored: Monitored) -> None:
    promtool = _require_binary("promtool")
    for argv in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([promtool, *argv], cwd=INFRA_PROMETHEUS, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    mon = monitored
    doc = yaml.safe_load((INFRA_PROMETHEUS / "alerts_test.yml").read_text())
    used = [_selector(s["series"]) for t in doc["tests"] for s in t["input_series"]]
    reasons, stages = _reasons_in_code()
    problems = []
    for name, labels in used:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        stored = mon.api("series", **{"match[]": f'{{__name__="{name}"}}'})
        if not stored:
            problems.append(f"{name}: no worker exports it")
            continue
        label_sets = {frozenset(s) - {"__name__"} - mon.added_labels.get(s.get("job", ""), set()) for s in stored}
        if frozenset(labels) not in label_sets:
            problems.append(f"{name}{sorted(labels)}: exported with {sorted(map(sorted, label_sets))}")
        job = labels.get("job")
        if job is not None and not any(s.get("job") == job for s in stored):
            problems.append(f"{name}: job {job} does not export it (exported by {sorted({s['job'] for s in stored})})")
        if "worker" in labels and job and job != f"vitrine-{labels['worker']}":
            problems.append(f"{name}: worker {labels['worker']} under job {job}")
        if base == "vitrine_events_dlq_total":
            if labels.get("reason") not in reasons:
                problems.append(f"{name}: reason {labels.get('reason')!r} is none the code emits")
            if labels.get("stage") not in stages:
                problems.append(f"{name}: stage {labels.get('stage')!r} is none the code emits")
        for key, pattern in (("group", r"vitrine-(ingest|index)\..+"), ("topic", r".+\.(catalog\.events|index\.enriched\..+)")):
            if key in labels and not re.fullmatch(pattern, labels[key]):
                problems.append(f"{name}: {key} {labels[key]!r} is not named like the workers' ({pattern})")
    assert problems == [], "\n".join(problems)
    # the test reads every metric the rules read
    rule_metrics = {n for e in mon.exprs.values() for n in re.findall(r"\b(vitrine_[a-z_]+)", e)}
    tested = {re.sub(r"_(bucket|sum|count)$", "", n) for n, _ in used}
    assert {re.sub(r"_(bucket|sum|count)$", "", n) for n in rule_metrics} - tested == set()


# --------------------------------------------------------------------------------------------
# the dashboard

#: What the overview must show: a pattern that one of its expressions matches.
DASHBOARD_MUST_SHOW = {
    "ingest rate": r'rate\(vitrine_events_consumed_total\{[^}]*worker="ingest"',
    "lag, the readers' view": r"vitrine_consumer_lag\b",
    "lag, the broker's view": r"vitrine_consumer_group_lag\b",
    "freshness p50": r"histogram_quantile\(0\.50?,.*vitrine_index_freshness_seconds_bucket",
    "freshness p99": r"histogram_quantile\(0\.99,.*vitrine_index_freshness_seconds_bucket",
    "searchable freshness p50": r"histogram_quantile\(0\.50?,.*vitrine_searchable_freshness_seconds_bucket",
    "searchable freshness p99": r"histogram_quantile\(0\.99,.*vitrine_searchable_freshness_seconds_bucket",
    "DLQ by reason": r"sum by \(reason\) \(rate\(vitrine_events_dlq_total",
    "batch size": r"vitrine_batch_size_bucket",
    "model time": r'vitrine_stage_seconds_bucket\{stage="model"\}',
    "query QPS by kind": r"sum by \([^)]*kind[^)]*\) \(rate\(vitrine_queries_total",
    "query latency by kind": r"histogram_quantile\(0\.\d+, sum by \([^)]*kind[^)]*\) \(rate\(vitrine_query_seconds_bucket",
    "index size": r"vitrine_index_products\b",
}


def _dashboard_exprs() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in doc["panels"] for t in p.get("targets", []) if t.get("expr")]


def test_the_dashboard_reads_what_the_workers_export(monitored: Monitored) -> None:
    mon = monitored
    exprs = _dashboard_exprs()
    missing = [what for what, pattern in DASHBOARD_MUST_SHOW.items() if not any(re.search(pattern, e) for _, e in exprs)]
    assert missing == [], f"the dashboard does not show {missing}"

    exported: set[str] = set()
    for kind in mon.stack.workers:
        exported |= set(mon.exported(kind))
    problems = []
    for title, expr in exprs:
        unknown = set(re.findall(r"\b(vitrine_[a-z_]+)", expr)) - exported
        if unknown:
            problems.append(f"{title}: {expr}: no worker exports {sorted(unknown)}")
        try:
            mon.query(expr)  # parses and evaluates it
        except urllib.error.HTTPError as exc:
            problems.append(f"{title}: {expr}: {exc.read().decode()[:300]}")
            continue
        try:  # a rate() needs two scrapes of a counter the fixture's traffic just created
            wait_for(f"{expr} to have series", lambda e=expr: mon.query(e), 15)
        except AssertionError:
            problems.append(f"{title}: {expr}: no series")
    assert problems == [], "\n".join(problems)


# --------------------------------------------------------------------------------------------
# freshness end to end: the index worker's searchable probe


def test_the_searchable_probe_sees_the_writes_after_milvus_acknowledged_them(monitored: Monitored) -> None:
    mon = monitored
    idx = '{job="vitrine-index"}'
    wait_for("a probe that saw its write", lambda: mon.value(
        'vitrine_searchable_probe_total{job="vitrine-index",outcome="seen"}').get("vitrine-index", 0) >= 1, 30)
    probes = {r["metric"]["outcome"]: float(r["value"][1]) for r in mon.query(f"vitrine_searchable_probe_total{idx}")}
    assert probes.keys() == {"seen", "timeout", "error"} and probes["timeout"] == probes["error"] == 0, probes
    seen = mon.value(f"vitrine_searchable_freshness_seconds_count{idx}")["vitrine-index"]
    assert seen == probes["seen"]
    searchable_mean = mon.value(f"vitrine_searchable_freshness_seconds_sum{idx}")["vitrine-index"] / seen
    # a probed write is seen after its batch was acknowledged, so no sooner than the least acknowledged
    # freshness: at least the lower edge of the lowest index-freshness bucket that holds an event
    buckets = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in
                     mon.query(f"vitrine_index_freshness_seconds_bucket{idx}"))
    lowest = next(i for i, (_, n) in enumerate(buckets) if n > 0)
    floor = buckets[lowest - 1][0] if lowest > 0 else 0.0
    p50 = {name: mon.value(f"histogram_quantile(0.5, {name}_bucket{idx})").get("vitrine-index")
           for name in ("vitrine_index_freshness_seconds", "vitrine_searchable_freshness_seconds")}
    print(f"searchable probes {probes}, searchable mean {searchable_mean:.3f} s, p50 {p50}")
    assert searchable_mean >= floor, (searchable_mean, buckets)


# --------------------------------------------------------------------------------------------
# faults (last: a restarted worker starts its counters again)


def test_a_killed_worker_fires_worker_down_then_resolves(monitored: Monitored) -> None:
    mon = monitored
    mon.stack.workers["query"].kill()  # SIGKILL
    wait_for("up == 0 for vitrine-query", lambda: mon.value('up{job="vitrine-query"}') == {"vitrine-query": 0.0}, 30)
    wait_for("VitrineWorkerDown firing for vitrine-query",
             lambda: mon.alerts("VitrineWorkerDown", "firing", job="vitrine-query"), 60)
    assert mon.alerts("VitrineWorkerDown", job="vitrine-ingest") == []
    assert mon.alerts("VitrineWorkerDown", job="vitrine-index") == []

    mon.stack.restart_worker("query")  # same port: the same scrape target
    wait_for("up == 1 for vitrine-query", lambda: mon.value('up{job="vitrine-query"}') == {"vitrine-query": 1.0}, 60)
    wait_for("VitrineWorkerDown resolved", lambda: not mon.alerts("VitrineWorkerDown"), 60)


def test_a_stalled_index_worker_fires_the_lag_alerts_then_resolves(monitored: Monitored) -> None:
    from vitrine_tools.devstack.demo import SAMPLE_DIR

    mon = monitored
    index = mon.stack.workers["index"]
    group = wait_for("the index group's name", lambda: [r["metric"]["group"] for r in mon.query(
        'vitrine_consumer_lag{job="vitrine-index"}')])[0]
    os.kill(index.process.pid, signal.SIGSTOP)
    try:
        pub = mon.publisher()
        product = "rs-stalled"
        image = next((SAMPLE_DIR / "images").iterdir())
        pub.upsert(product, 1, title="stalled", price=1.0, images=[f"file://{image}"])
        for version in range(2, STALL_PATCHES + 2):
            pub.patch(product, version, price=float(version % 97))
        pub.flush()
        pub.close()
        # the stalled worker exports nothing: only the ingest worker's view of the index group's lag is left
        wait_for("up == 0 for vitrine-index", lambda: mon.value('up{job="vitrine-index"}') == {"vitrine-index": 0.0})
        assert mon.query('vitrine_consumer_lag{job="vitrine-index"}') == []
        wait_for("VitrineConsumerLagHigh firing for the index group",
                 lambda: mon.alerts("VitrineConsumerLagHigh", "firing", group=group), 180)
        wait_for("VitrineConsumerLagGrowing pending or firing for the index group",
                 lambda: mon.alerts("VitrineConsumerLagGrowing", group=group), 60)
        wait_for("VitrineWorkerDown firing for vitrine-index",
                 lambda: mon.alerts("VitrineWorkerDown", "firing", job="vitrine-index"), 60)
        lag = mon.value(f'vitrine_consumer_group_lag{{group="{group}"}}')
        assert lag.keys() == {"vitrine-ingest"} and lag["vitrine-ingest"] > 10_000, lag
    finally:
        os.kill(index.process.pid, signal.SIGCONT)

    wait_for("the index group caught up", lambda: mon.value(f'vitrine_consumer_group_lag{{group="{group}"}}')
             == {"vitrine-ingest": 0.0}, 300)
    wait_for("VitrineWorkerDown and VitrineConsumerLagHigh resolved", lambda: not mon.alerts("VitrineWorkerDown")
             and not mon.alerts("VitrineConsumerLagHigh"), 60)
    wait_for("VitrineConsumerLagGrowing resolved", lambda: not mon.alerts("VitrineConsumerLagGrowing"), 300)
    assert mon.value('up{job="vitrine-index"}') == {"vitrine-index": 1.0}
