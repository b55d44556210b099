"""Scale-out and scale-in under load on the real broker, judged by the oracle.

``run_scale_out`` starts a ``ChaosStack`` with ``partitions`` (>= 4) per topic and ``workers_per_kind``
workers of each kind, each with its own HTTP port; the workers of one kind share a consumer group, so
Kafka spreads the partitions over them. Under a paced catalogue load and a steady stream of queries
(HTTP, with a client-side failover, and over Kafka) it then:

1. ``baseline``: runs as started for ``settle_s``;
2. ``add``: starts one more worker of each kind (three of each) and waits until each is ready;
3. ``sigterm``: stops the oldest worker of each kind with SIGTERM (a clean leave);
4. ``sigkill``: SIGKILLs the oldest remaining worker of each kind (its group waits out the session
   timeout); one of each kind is left, none is restarted;
5. ``drain``: stops the load, waits until both consumer groups committed every record;
6. judges: reads back ``catalog.events`` and ``catalog.dlq`` and compares the collection with the
   oracle's expectation (``vitrine_tools.chaos.oracle``).

Rebalance pauses: a probe reads the committed offsets of each kind's group and the end offsets of
its topic every ``probe_interval_s``; a *stall* is a stretch with lag and no committed offset moving.
The longest stall per kind (and per step) is what a rebalance cost; the ``baseline`` step's figure is
the ordinary commit cadence to compare it with.

Queries: ``FailoverQueries`` sends text searches round-robin over the query workers in rotation, the
way a load balancer would. A worker that is stopped or killed stays in rotation until
``lb_delay_s`` after it exited (a load balancer notices a dead backend only by its health checks),
so queries do reach it; a query whose attempt gets no reply (connection refused or reset, a timeout,
a 5xx) is retried once on another worker, both within ``query_timeout_s``. *Answered* means an HTTP
200 within that budget.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streams.admin import group_offsets
from vitrine_tools.chaos.harness import ChaosStack, pick_images, wait_until
from vitrine_tools.chaos.load import CatalogueLoad, Publisher, image_reason_for
from vitrine_tools.chaos.runner import judge_stack
from vitrine_tools.devstack.stack import WORKER_KINDS, WorkerProcess, start_worker, wait_ready

log = logging.getLogger("vitrine.chaos.scale")

STEPS = ("baseline", "add", "sigterm", "sigkill", "drain")
TEXT_QUERIES: tuple[dict[str, Any], ...] = (
    {"kind": "text", "text": "black shoes", "k": 10},
    {"kind": "text", "text": "dress", "k": 10, "filters": {"in_stock": True}},
    {"kind": "text", "text": "red t-shirt", "k": 10, "filters": {"price_max": 120}},
)


@dataclass
class ScaleConfig:
    data_dir: Path
    prefix: str = "scale"
    partitions: int = 4
    workers_per_kind: int = 2
    rate: float = 3.0  # catalogue events/s
    products: int = 80
    seed: int = 17
    settle_s: float = 25.0  # load time after each step
    http_query_rate: float = 3.0
    kafka_query_rate: float = 1.0
    query_timeout_s: float = 10.0  # the client's whole budget, the retry included
    attempt_timeout_s: float = 5.0  # the first attempt's share of it
    query_retry: bool = True
    lb_delay_s: float = 5.0  # a removed query worker stays in rotation this long after it exited
    sigterm_timeout_s: float = 60.0
    probe_interval_s: float = 0.25
    drain_timeout_s: float = 400.0


@dataclass
class Member:
    """One worker process of the pool."""

    name: str
    worker: WorkerProcess
    started_at: float
    ready_s: float = 0.0
    removed: str | None = None  # "sigterm", "sigkill" or "crashed"
    exited_at: float | None = None


class WorkerPool:
    """N workers per kind on a ``ChaosStack``: the stack's own worker of each kind plus the ones added here.

    ``cs.stack.workers[kind]`` always points at a live member (what ``ChaosStack.http``, ``rss`` and
    ``check_crashes`` use), so the harness never restarts a worker this pool removed on purpose.
    """

    def __init__(self, cs: ChaosStack, lb_delay_s: float) -> None:
        assert cs.stack is not None
        self.cs, self.lb_delay_s = cs, lb_delay_s
        now = time.monotonic()
        self.members: dict[str, list[Member]] = {
            k: [Member(f"{k}-1", w, now)] for k, w in cs.stack.workers.items()}
        self.crashes: dict[str, int] = {k: 0 for k in self.members}
        self._n = {k: 1 for k in self.members}
        self._started: list[WorkerProcess] = []  # every process this pool started, ready or not
        self._lock = threading.Lock()

    def alive(self, kind: str) -> list[Member]:
        return [m for m in self.members[kind] if m.removed is None]

    def counts(self) -> dict[str, int]:
        return {k: len(self.alive(k)) for k in self.members}

    def endpoints(self) -> list[str]:
        """The query workers a load balancer would send to now: live ones, and removed ones until
        ``lb_delay_s`` after they exited."""
        now = time.monotonic()
        with self._lock:
            return [m.worker.http for m in self.members["query"]
                    if m.removed is None or m.exited_at is None or now < m.exited_at + self.lb_delay_s]

    def add(self, kinds: Sequence[str]) -> dict[str, float]:
        """Start one more worker of each of ``kinds`` at once; wait until all are ready (seconds each)."""
        assert self.cs.stack is not None
        env = self.cs.stack.settings_env()
        started: list[Member] = []
        for kind in kinds:
            self._n[kind] += 1
            name = f"{kind}-{self._n[kind]}"
            w = start_worker(kind, env, self.cs.stack.data_dir / "logs" / name)
            self._started.append(w)
            started.append(Member(name, w, time.monotonic()))
        for m in started:
            wait_ready(m.worker, timeout=300)
            m.ready_s = round(time.monotonic() - m.started_at, 1)
            with self._lock:
                self.members[m.worker.kind].append(m)
        return {m.name: m.ready_s for m in started}

    def remove(self, kinds: Sequence[str], how: str, timeout: float = 60.0) -> dict[str, float]:
        """Stop the oldest live worker of each kind at once, with SIGTERM or SIGKILL (``how``); at least
        one of each kind stays. Returns the seconds each took to exit."""
        assert self.cs.stack is not None and how in ("sigterm", "sigkill")
        victims = []
        for kind in kinds:
            live = self.alive(kind)
            if len(live) < 2:
                raise RuntimeError(f"removing a {kind} worker would leave none ({len(live)} alive)")
            victim, survivor = live[0], live[1]
            self.cs.stack.workers[kind] = survivor.worker  # before the signal: the harness must not restart it
            victim.removed = how
            victims.append(victim)
        t0 = time.monotonic()
        for v in victims:
            v.worker.process.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
        took: dict[str, float] = {}
        for v in victims:
            try:
                v.worker.process.wait(max(timeout - (time.monotonic() - t0), 1.0))
            except Exception:  # noqa: BLE001 - did not leave on SIGTERM: that is a finding, then it is killed
                log.error("%s did not exit %.0fs after %s; killing it", v.name, timeout, how)
                took[f"{v.name}_did_not_exit"] = timeout
                v.worker.kill()
            with self._lock:
                v.exited_at = time.monotonic()
            took[v.name] = round(v.exited_at - t0, 1)
            took[f"{v.name}_exit_code"] = v.worker.process.returncode
        return took

    def check_crashes(self) -> list[str]:
        """Members that exited although nobody removed them (counted, not restarted)."""
        assert self.cs.stack is not None
        found = []
        for kind, members in self.members.items():
            for m in members:
                if m.removed is None and m.worker.process.poll() is not None:
                    m.removed, m.exited_at = "crashed", time.monotonic()
                    self.crashes[kind] += 1
                    found.append(f"{m.name} exited {m.worker.process.returncode} (log {m.worker.log_path})")
                    live = self.alive(kind)
                    if live:
                        self.cs.stack.workers[kind] = live[0].worker
        return found

    def stop(self) -> None:
        for w in [m.worker for ms in self.members.values() for m in ms] + self._started:
            w.stop()


# ---------------------------------------------------------------------------------------------- queries


def post_search(base: str, body: bytes, timeout: float) -> int | None:
    """POST ``body`` to ``base``/search: the HTTP status, or None when no reply came (refused, reset, timeout)."""
    req = urllib.request.Request(f"{base}/search", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (OSError, http.client.HTTPException):
        return None


class FailoverQueries(threading.Thread):
    """Text searches at ``rate``/s, round-robin over ``endpoints()``; a failed attempt is retried once
    on the next endpoint within the ``timeout_s`` budget (``retry=False``: no retry)."""

    def __init__(self, endpoints: Callable[[], list[str]], rate: float, *, timeout_s: float,
                 attempt_timeout_s: float, retry: bool) -> None:
        super().__init__(name="scale-http-queries", daemon=True)
        self.endpoints, self.rate, self.timeout_s = endpoints, rate, timeout_s
        self.attempt_timeout_s, self.retry = attempt_timeout_s, retry
        self.stop_event = threading.Event()
        self.sent = self.answered = self.retried = self.answered_on_retry = 0
        self.first_failures: dict[str, int] = {}
        self.unanswered: list[dict[str, Any]] = []
        self.latencies: list[float] = []
        self._rr = itertools.count()
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def _one(self, i: int) -> None:
        body = json.dumps({"request_id": f"h{i}", **TEXT_QUERIES[i % len(TEXT_QUERIES)]}).encode()
        t0 = time.monotonic()
        deadline = t0 + self.timeout_s
        eps = self.endpoints()
        n = next(self._rr)
        first = eps[n % len(eps)]
        status = post_search(first, body, min(self.attempt_timeout_s, self.timeout_s))
        retried = False
        if status != 200 and self.retry and (status is None or status >= 500):
            left = deadline - time.monotonic()
            eps = self.endpoints()
            others = [e for e in eps if e != first] or eps
            if left > 0.05:
                retried = True
                status2 = post_search(others[n % len(others)], body, left)
                if status2 == 200:
                    status = 200
        took = time.monotonic() - t0
        with self._lock:
            if retried:
                self.retried += 1
            if status == 200 and took <= self.timeout_s + 0.5:
                self.answered += 1
                self.answered_on_retry += retried
                self.latencies.append(took)
            else:
                key = str(status) if status is not None else "no_reply"
                self.first_failures[key] = self.first_failures.get(key, 0) + 1
                if len(self.unanswered) < 20:
                    self.unanswered.append({"at_s": round(t0 - self._t0, 1), "first": first, "retried": retried,
                                            "status": status, "took_s": round(took, 2)})

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="scale-q") as pool:
            next_at = time.monotonic()
            for i in itertools.count():
                if self.stop_event.wait(max(0.0, next_at - time.monotonic())):
                    break
                next_at += 1.0 / self.rate
                with self._lock:
                    self.sent += 1
                pool.submit(self._one, i)

    def figures(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies or [0.0])
        return {"queries_sent": self.sent, "queries_answered": self.answered,
                "answered_fraction": round(self.answered / self.sent, 4) if self.sent else 0.0,
                "queries_retried": self.retried, "answered_on_retry": self.answered_on_retry,
                "unanswered_by_status": self.first_failures, "unanswered_sample": self.unanswered[:10],
                "query_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
                "query_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 1), "query_retry": self.retry}


class KafkaQueries(threading.Thread):
    """One search at a time over Kafka (``streams.query_client``) at most ``rate``/s; a request without a
    reply after half of ``timeout_s`` is sent again under a new id, and either reply counts."""

    def __init__(self, bootstrap: str, requests: str, responses: str, rate: float, timeout_s: float) -> None:
        super().__init__(name="scale-kafka-queries", daemon=True)
        self.args, self.rate, self.timeout_s = (bootstrap, requests, responses), rate, timeout_s
        self.stop_event = threading.Event()
        self.sent = self.answered = self.resent = 0
        self.error: str | None = None

    def run(self) -> None:
        from streams.exceptions import QueryTimeout
        from streams.query_client import QueryClient

        try:
            client = QueryClient(*self.args).start()
        except Exception as exc:  # noqa: BLE001 - reported in the figures
            self.error = repr(exc)
            return
        try:
            for i in itertools.count():
                if self.stop_event.wait(1.0 / self.rate):
                    break
                self.sent += 1
                req = {"request_id": f"k{i}", **TEXT_QUERIES[i % len(TEXT_QUERIES)]}
                try:
                    client.search(req, timeout=self.timeout_s / 2)
                    self.answered += 1
                    continue
                except QueryTimeout:
                    pass
                self.resent += 1
                try:
                    client.search({**req, "request_id": f"k{i}r"}, timeout=self.timeout_s / 2)
                    self.answered += 1
                except QueryTimeout:
                    try:  # the first request's reply may have come meanwhile
                        client.wait(f"k{i}", 0.01)
                        self.answered += 1
                    except QueryTimeout:
                        pass
        except Exception as exc:  # noqa: BLE001
            self.error = repr(exc)
        finally:
            client.close()

    def figures(self) -> dict[str, Any]:
        return {"kafka_queries_sent": self.sent, "kafka_queries_answered": self.answered,
                "kafka_answered_fraction": round(self.answered / self.sent, 4) if self.sent else 0.0,
                "kafka_queries_resent": self.resent, **({"kafka_query_error": self.error} if self.error else {})}


# ---------------------------------------------------------------------------------------------- progress


class ProgressProbe(threading.Thread):
    """Every ``interval`` s, per kind: its group's committed offset and lag on each partition of its topic."""

    def __init__(self, bootstrap: str, groups: dict[str, tuple[str, str]], interval: float) -> None:
        super().__init__(name="scale-probe", daemon=True)
        self.bootstrap, self.groups, self.interval = bootstrap, groups, interval
        self.stop_event = threading.Event()
        #: kind -> [(monotonic time, {partition: committed offset}, {partition: lag})]
        self.samples: dict[str, list[tuple[float, dict[int, int], dict[int, int]]]] = {k: [] for k in groups}
        self.errors = 0

    def run(self) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            tps = {k: [TopicPartition(t, p) for p in sorted(consumer.partitions_for_topic(t) or [])]
                   for k, (_, t) in self.groups.items()}
            next_at = time.monotonic()
            while not self.stop_event.wait(max(0.0, next_at - time.monotonic())):
                next_at += self.interval
                for kind, (group, topic) in self.groups.items():
                    try:
                        committed = {tp.partition: meta.offset for tp, meta in group_offsets(admin, group).items()
                                     if tp.topic == topic and meta.offset >= 0}
                        ends = consumer.end_offsets(tps[kind])
                    except Exception:  # noqa: BLE001 - a missed sample, counted
                        self.errors += 1
                        continue
                    c = {tp.partition: committed.get(tp.partition, 0) for tp in tps[kind]}
                    lag = {tp.partition: max(ends[tp] - c[tp.partition], 0) for tp in tps[kind]}
                    self.samples[kind].append((time.monotonic(), c, lag))
        finally:
            admin.close()
            consumer.close()


def stalls(samples: Sequence[tuple[float, int, int]]) -> list[tuple[float, float]]:
    """(start, end) of each stretch in which the committed offsets did not move while there was lag; it
    starts at the last sample that moved (or had no lag) and ends at the next one that does."""
    out: list[tuple[float, float]] = []
    anchor: float | None = None
    prev: int | None = None
    stalled = False
    for t, c, lag in samples:
        if prev is not None and c == prev and lag > 0:
            stalled = True
        else:
            if stalled and anchor is not None:
                out.append((anchor, t))
            anchor, stalled = t, False
        prev = c
    if stalled and anchor is not None:
        out.append((anchor, samples[-1][0]))
    return out


def pause_figures(samples: dict[str, list[tuple[float, dict[int, int], dict[int, int]]]],
                  steps: list[tuple[str, float]], t_start: float) -> dict[str, Any]:
    """The longest stalls per kind, overall and per step (a stall belongs to the step it began in):
    ``rebalance_pause_s``, the group as a whole (no partition's committed offset moved while the group
    had lag: a stop-the-world rebalance), and ``partition_pause_s``, any one partition (a partition
    with lag whose offset did not move: a dead owner's partitions until the session timeout)."""
    def step_of(t: float) -> str:
        name = steps[0][0]
        for s, at in steps:
            if t >= at:
                name = s
        return name

    def longest(st: list[tuple[float, float]]) -> tuple[float, dict[str, float]]:
        by: dict[str, float] = {}
        for a, b in st:
            by[step_of(a)] = round(max(by.get(step_of(a), 0.0), b - a), 2)
        return round(max((b - a for a, b in st), default=0.0), 2), by

    out: dict[str, Any] = {"rebalance_pause_s": {}, "rebalance_pause_s_by_step": {},
                           "partition_pause_s": {}, "partition_pause_s_by_step": {}, "longest_stalls": {}}
    for kind, ss in samples.items():
        whole = [(t, sum(c.values()), sum(lag.values())) for t, c, lag in ss]
        st = [(a, b) for a, b in stalls(whole) if a >= steps[0][1]]
        out["rebalance_pause_s"][kind], out["rebalance_pause_s_by_step"][kind] = longest(st)
        top = sorted(st, key=lambda ab: ab[0] - ab[1])[:3]
        out["longest_stalls"][kind] = [{"step": step_of(a), "at_s": round(a - t_start, 1), "s": round(b - a, 2)}
                                       for a, b in top]
        parts = sorted({p for _, c, _ in ss for p in c})
        pst = [(a, b) for p in parts for a, b in stalls([(t, c.get(p, 0), lag.get(p, 0)) for t, c, lag in ss])
               if a >= steps[0][1]]
        out["partition_pause_s"][kind], out["partition_pause_s_by_step"][kind] = longest(pst)
    return out


# ---------------------------------------------------------------------------------------------- the run


def run_scale_out(cfg: ScaleConfig, progress: Callable[[str], Any] = print) -> dict[str, Any]:
    t_start = time.monotonic()
    cs = ChaosStack(cfg.data_dir, prefix=cfg.prefix, partitions=cfg.partitions, with_s3=False,
                    images=pick_images(16))
    pool: WorkerPool | None = None
    try:
        cs.start()
        pool = WorkerPool(cs, cfg.lb_delay_s)
        progress(f"[{time.monotonic() - t_start:.0f}s] stack up; starting {cfg.workers_per_kind} workers per kind")
        added_at_start: dict[str, float] = {}
        for _ in range(cfg.workers_per_kind - 1):
            added_at_start.update(pool.add(WORKER_KINDS))
        return _run(cfg, cs, pool, t_start, progress, added_at_start)
    finally:
        if pool is not None:
            pool.stop()
        cs.stop()


def _run(cfg: ScaleConfig, cs: ChaosStack, pool: WorkerPool, t_start: float, progress: Callable[[str], Any],
         added_at_start: dict[str, float]) -> dict[str, Any]:
    assert cs.kafka is not None
    topics = cs.settings.topics
    uris = [f"file://{cs.image_root / n}" for n in cs.images]
    load = CatalogueLoad(uris, cs.image_root, prefix=f"{cfg.prefix}p", products=cfg.products, seed=cfg.seed)
    pub = Publisher(cs.kafka.address, topics.events, load, cfg.rate)
    groups = {"ingest": cs.ingest_group, "index": cs.index_group, "query": ("vitrine-query", topics.requests)}
    probe = ProgressProbe(cs.kafka.address, groups, cfg.probe_interval_s)
    http_q = FailoverQueries(pool.endpoints, cfg.http_query_rate, timeout_s=cfg.query_timeout_s,
                             attempt_timeout_s=cfg.attempt_timeout_s, retry=cfg.query_retry)
    kafka_q = KafkaQueries(cs.kafka.address, topics.requests, topics.responses, cfg.kafka_query_rate,
                           cfg.query_timeout_s) if cfg.kafka_query_rate > 0 else None
    steps: list[tuple[str, float]] = []
    facts: dict[str, Any] = {"workers_started_ready_s": added_at_start}
    crashes: list[str] = []

    def step(name: str) -> None:
        steps.append((name, time.monotonic()))
        progress(f"[{time.monotonic() - t_start:.0f}s] {name}: workers {pool.counts()}, {pub.sent} events published")

    def under_load(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:  # the load runs meanwhile; this only watches for crashes
            crashes.extend(pool.check_crashes())
            time.sleep(0.5)

    probe.start()
    pub.start()
    http_q.start()
    if kafka_q is not None:
        kafka_q.start()
    try:
        wait_until(lambda: pub.sent > 0, 60, "the first published events")
        step("baseline")
        under_load(cfg.settle_s)
        step("add")
        facts["added_ready_s"] = pool.add(WORKER_KINDS)
        facts["workers_peak"] = pool.counts()
        under_load(cfg.settle_s)
        step("sigterm")
        facts["sigterm_exit_s"] = pool.remove(WORKER_KINDS, "sigterm", cfg.sigterm_timeout_s)
        under_load(cfg.settle_s)
        step("sigkill")
        facts["sigkill_exit_s"] = pool.remove(WORKER_KINDS, "sigkill")
        under_load(cfg.settle_s)
    finally:
        pub.stop()
    step("drain")
    facts["workers_at_end"] = pool.counts()
    try:
        facts["drain_s"] = round(cs.wait_drained(cfg.drain_timeout_s), 1)
    finally:
        crashes.extend(pool.check_crashes())
        http_q.stop_event.set()
        if kafka_q is not None:
            kafka_q.stop_event.set()
        probe.stop_event.set()
        http_q.join(60)
        if kafka_q is not None:
            kafka_q.join(60)
        probe.join(30)
    progress(f"[{time.monotonic() - t_start:.0f}s] drained in {facts['drain_s']}s; judging")
    verdict, _ = judge_stack(cs, image_reason_for(cs.image_root), None)
    summary = verdict.summary()
    result: dict[str, Any] = {
        "events_published": pub.sent, "publisher_resends": pub.resends,
        "events_read_back": summary.pop("events"), "indexed": verdict.outcomes.get("indexed", 0),
        **{k: summary[k] for k in ("lost", "stale", "duplicates", "resurrected", "phantom", "unaccounted",
                                   "unexpected_dlq", "orphan_image_rows", "wrong_vectors")},
        "outcomes": verdict.outcomes, "dlq_by_reason": verdict.dlq_by_reason, "verdict_ok": verdict.ok,
        **pause_figures(probe.samples, steps, t_start), "probe_samples": {k: len(v) for k, v in probe.samples.items()},
        "probe_errors": probe.errors,
        **http_q.figures(), **(kafka_q.figures() if kafka_q is not None else {}),
        "partitions": cfg.partitions, "worker_crashes": sum(pool.crashes.values()), "crashed": crashes,
        **facts, "steps_at_s": {s: round(t - t_start, 1) for s, t in steps},
        "wall_s": round(time.monotonic() - t_start, 1),
    }
    if not verdict.ok:
        result["explain"] = verdict.explain()
    return result


__all__ = ["FailoverQueries", "ScaleConfig", "WorkerPool", "pause_figures", "run_scale_out", "stalls"]
