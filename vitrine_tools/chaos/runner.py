"""The chaos run: a steady load, workers SIGKILLed at random points, a broker restart, a Milvus
outage, an object-store outage, hostile inputs, and the oracle's verdict at the end.

Steps (``run_chaos``):
1. start Kafka, Milvus Lite, MinIO and the three workers (``ChaosStack``); upload the load's photos
   to the bucket; compute each photo's reference vector with the same models, in this process;
2. publish a seeded load (``CatalogueLoad``) at ``rate`` events/s and send queries alongside;
3. per worker kind, a thread kills the worker ``kills_per_kind`` times, each after a random delay
   (so kills land mid-batch, mid-upsert, in the rejoin rebalance), and restarts it; meanwhile the
   main thread restarts the broker on its log directory, takes Milvus away for ``milvus_outage_s``
   (checking that the index group commits no offset while nothing can be written) and the object
   store for ``s3_outage_s``;
4. stop the load, wait until both consumer groups have committed every record (lag 0);
5. publish the hostile events and run the hostile queries, wait until drained again;
6. read back ``catalog.events`` and ``catalog.dlq``, snapshot the collection, judge.

The result is one dict: ``{"kills", "broker_restarts", "milvus_outages", "events", "lost", "stale",
"resurrected", "duplicates", "dlq_by_reason", "hostile_inputs", "worker_crashes", ...}``, with
``verdict_ok`` and, when it is false, why (``verdict_problems``, see ``verdict_problems``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitrine_tools.chaos import hostile, oracle
from vitrine_tools.chaos.harness import ChaosStack, wait_until
from vitrine_tools.chaos.load import CatalogueLoad, Publisher, image_reason_for

log = logging.getLogger("vitrine.chaos")
KINDS = ("ingest", "index", "query")


@dataclass
class ChaosConfig:
    data_dir: Path
    kills_per_kind: int = 20
    broker_restarts: int = 2
    milvus_outage_s: float = 30.0
    milvus_kill: bool = False  # SIGKILL Milvus for the outage (default: a clean stop), see ChaosStack.milvus_down
    s3_outage_s: float = 20.0
    rate: float = 6.0
    query_rate: float = 1.0
    products: int = 150
    seed: int = 7
    kill_delay_s: tuple[float, float] = (0.0, 5.0)
    hostile: bool = True
    drain_timeout_s: float = 900.0
    prefix: str = "chaos"
    min_events: int = 0  # keep the load running at least until this many events were published
    reindex_kills: int = 10  # the reindex phase: SIGKILLs of `vitrine reindex build` (0: no reindex phase)
    reindex_kill_delay_s: tuple[float, float] = (1.0, 8.0)
    reindex_min_events: int = 0


def reference_vectors(paths: Mapping[str, Path]) -> dict[str, np.ndarray]:
    """URI -> the image vector the production models give that file (decoded as the ingest worker does)."""
    from workers.settings import Settings
    from workers.vision.decode import decode_image
    from workers.vision.factory import production_pipeline

    vision = production_pipeline()
    vision.load()
    max_pixels = Settings().fetch_max_pixels
    by_file: dict[Path, np.ndarray] = {}
    for path in set(paths.values()):
        img = decode_image(path.read_bytes(), max_pixels=max_pixels, target=224)
        by_file[path] = vision.analyse([img])[0].image_vec
    return {uri: by_file[p] for uri, p in paths.items()}


class QueryLoad(threading.Thread):
    """Text and similar-product queries over HTTP at ``rate``/s, counting replies by status."""

    def __init__(self, cs: ChaosStack, rate: float, product_ids: list[str]) -> None:
        super().__init__(name="chaos-queries", daemon=True)
        self.cs, self.rate, self.ids = cs, rate, product_ids
        self.stop_event = threading.Event()
        self.statuses: dict[str, int] = {}
        self.latencies: list[float] = []

    def run(self) -> None:
        rng = random.Random(3)
        while not self.stop_event.wait(1.0 / self.rate):
            body: dict[str, Any] = rng.choice([
                {"request_id": "t", "kind": "text", "text": "black shoes", "k": 10},
                {"request_id": "s", "kind": "similar", "product_id": rng.choice(self.ids), "k": 10},
                {"request_id": "f", "kind": "text", "text": "dress", "k": 10, "filters": {"in_stock": True}},
            ])
            t0 = time.perf_counter()
            try:
                status, _ = self.cs.search(body, timeout=30)
                key = str(status)
                if status in (200, 404):
                    self.latencies.append(time.perf_counter() - t0)
            except OSError:
                key = "unreachable"  # the worker is being killed or restarted
            self.statuses[key] = self.statuses.get(key, 0) + 1


class KillLoop(threading.Thread):
    """SIGKILLs one worker kind ``n`` times, each after a random delay, restarting it each time.

    ``hold()`` stops it between kills (and waits until a restart in progress is over): the main
    thread holds the index and query loops while Milvus is away, since their new incarnations
    cannot become ready without it.
    """

    def __init__(self, cs: ChaosStack, kind: str, n: int, delay: tuple[float, float], seed: float,
                 stop: threading.Event) -> None:
        super().__init__(name=f"kill-{kind}", daemon=True)
        self.cs, self.kind, self.n, self.delay, self.stop_event = cs, kind, n, delay, stop
        self.rng = random.Random(seed)
        self.restart_s: list[float] = []
        self.errors: list[str] = []
        self._held = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    def hold(self, timeout: float = 300) -> None:
        self._held.set()
        if not self._idle.wait(timeout):
            raise TimeoutError(f"kill loop {self.kind} did not come to rest")

    def release(self) -> None:
        self._held.clear()

    def run(self) -> None:
        done = 0
        while done < self.n and not self.stop_event.wait(self.rng.uniform(*self.delay)):
            if self._held.is_set():
                continue
            self._idle.clear()
            try:
                if self._held.is_set():
                    continue
                self.restart_s.append(self.cs.kill_and_restart(self.kind))
                done += 1
            except Exception as exc:  # noqa: BLE001 - a restart that failed: recorded, then retried
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                log.error("kill loop %s: %s", self.kind, exc)
                if len(self.errors) > 5:
                    return
            finally:
                self._idle.set()


def run_chaos(cfg: ChaosConfig, *, stack: ChaosStack | None = None, progress: Any = print) -> dict[str, Any]:
    t_start = time.monotonic()
    own = stack is None
    cs = stack or ChaosStack(cfg.data_dir, prefix=cfg.prefix).start()
    try:
        return _run(cfg, cs, t_start, progress)
    finally:
        if own:
            cs.stop()


def _run(cfg: ChaosConfig, cs: ChaosStack, t_start: float, progress: Any) -> dict[str, Any]:
    """Load with faults, drain, hostile inputs, judge: each a named step below."""
    assert cs.kafka is not None and cs.stack is not None
    uris, files = load_images(cs)
    progress(f"stack up in {time.monotonic() - t_start:.0f}s; computing reference vectors")
    refs = reference_vectors(files)
    pub, queries, loops, facts = _load_with_faults(cfg, cs, uris, t_start, progress)
    progress(f"[{time.monotonic() - t_start:.0f}s] chaos over: {pub.sent} events published "
             f"({pub.resends} resends); draining")
    cs.ensure_ready()
    facts["drain_s"] = round(cs.wait_drained(cfg.drain_timeout_s), 1)

    hostile_n, hostile_checks, known = 0, [], {}
    if cfg.hostile:
        hostile_n, hostile_checks, known = _hostile(cs, uris, progress)
        cs.ensure_ready()
        cs.wait_drained(cfg.drain_timeout_s)
    progress(f"[{time.monotonic() - t_start:.0f}s] drained; judging")
    verdict, _ = judge_stack(cs, image_reason_for(cs.image_root, {**{u: None for u in uris}, **known}), refs)
    cs.check_crashes()
    result = {
        **_verdict_figures(verdict), "kills": sum(cs.kills.values()), "broker_restarts": cs.broker_restarts,
        "milvus_outages": cs.milvus_outages, "s3_outages": cs.s3_outages,
        "hostile_inputs": hostile_n + len(hostile_checks),
        "hostile_failed": [f"{n}: {d}" for n, ok, d in hostile_checks if not ok],
        "worker_crashes": sum(cs.crashes.values()), "kills_by_kind": dict(cs.kills),
        "restart_s_median": {k: round(float(np.median(t.restart_s)), 1) for k, t in loops.items() if t.restart_s},
        **kill_facts(loops),
        "queries": queries.statuses if queries else {}, "publisher_resends": pub.resends, **facts,
        "wall_s": round(time.monotonic() - t_start, 1),
    }
    if cfg.reindex_kills > 0:
        progress(f"[{time.monotonic() - t_start:.0f}s] reindex phase")
        result.update(reindex_phase(cfg, cs, uris, refs, progress, known))
        result["wall_s"] = round(time.monotonic() - t_start, 1)
    result["verdict_problems"] = verdict_problems(verdict.ok, result, facts, cfg.kills_per_kind)
    result["verdict_ok"] = not result["verdict_problems"]
    if not verdict.ok:
        result["explain"] = verdict.explain()
    return result


def _load_with_faults(cfg: ChaosConfig, cs: ChaosStack, uris: list[str], t_start: float,
                      progress: Any) -> tuple[Publisher, QueryLoad | None, dict[str, KillLoop], dict[str, Any]]:
    """Publish at ``cfg.rate`` with queries while the kill loops run, injecting the planned broker,
    Milvus and object-store faults as the kills pass their marks; return once every loop is done and
    at least ``cfg.min_events`` were published (the load is stopped then)."""
    rng = random.Random(cfg.seed)
    load = CatalogueLoad(uris, cs.image_root, prefix=f"{cfg.prefix}p", products=cfg.products, seed=cfg.seed)
    pub = Publisher(cs.kafka.address, cs.settings.topics.events, load, cfg.rate)  # type: ignore[union-attr]
    queries = QueryLoad(cs, cfg.query_rate, [p.pid for p in load.pool]) if cfg.query_rate > 0 else None
    stop = threading.Event()
    loops = {k: KillLoop(cs, k, cfg.kills_per_kind, cfg.kill_delay_s, rng.random(), stop) for k in KINDS}
    facts: dict[str, Any] = {}
    pub.start()
    if queries:
        queries.start()
    wait_until(lambda: pub.sent > 0, 60, "the first published events")
    for t in loops.values():
        t.start()
    progress(f"load at {cfg.rate}/s; {cfg.kills_per_kind} kills per worker kind")

    total = cfg.kills_per_kind * len(KINDS)
    plan = _fault_plan(cfg, total)
    try:
        while any(t.is_alive() for t in loops.values()) or plan:
            done = sum(cs.kills.values())
            if plan and (done >= plan[0][0] or not any(t.is_alive() for t in loops.values())):
                _, fault = plan.pop(0)
                progress(f"[{time.monotonic() - t_start:.0f}s] kills {done}/{total}: {fault}")
                _inject(fault, cfg, cs, loops, facts)
            stop.wait(0.5)
        while pub.sent < cfg.min_events:
            stop.wait(0.5)
    finally:
        stop.set()
        for t in loops.values():
            t.join(300)
        pub.stop()
        if queries:
            queries.stop_event.set()
            queries.join(60)
    return pub, queries, loops, facts


def _inject(fault: str, cfg: ChaosConfig, cs: ChaosStack, loops: Mapping[str, KillLoop],
            facts: dict[str, Any]) -> None:
    """One planned fault: a broker restart (killed every other time), a Milvus outage, an S3 outage."""
    if fault == "broker":
        cs.restart_broker(kill=cs.broker_restarts % 2 == 1)
    elif fault == "milvus":
        facts["milvus_outage"] = _milvus_outage(cs, cfg.milvus_outage_s, [loops["index"], loops["query"]],
                                                kill=cfg.milvus_kill)
    elif fault == "s3":
        facts["s3_outage"] = _s3_outage(cs, cfg.s3_outage_s)


def _verdict_figures(verdict: oracle.Verdict) -> dict[str, Any]:
    """The oracle's verdict as the counts the JSON result reports."""
    return {
        "events": verdict.events, "lost": len(verdict.lost), "stale": len(verdict.stale),
        "resurrected": len(verdict.resurrected), "duplicates": len(verdict.duplicates),
        "wrong_vectors": len(verdict.wrong_vectors), "phantom": len(verdict.phantom),
        "unaccounted": len(verdict.unaccounted), "unexpected_dlq": len(verdict.unexpected_dlq),
        "orphan_image_rows": len(verdict.orphan_image_rows), "image_rows": verdict.image_rows_checked,
        "dlq_by_reason": verdict.dlq_by_reason, "outcomes": verdict.outcomes,
        "dlq_or_superseded": verdict.dlq_or_superseded, "superseded_or_dlq": verdict.superseded_or_dlq,
        "vectors_checked": verdict.vectors_checked,
    }


def kill_facts(loops: Mapping[str, KillLoop]) -> dict[str, Any]:
    """What the kill loops did in this run: kills per kind (``kills_done``, to compare with
    ``kills_per_kind``) and every failed kill-and-restart (``kill_loop_errors``)."""
    return {"kills_done": {k: len(t.restart_s) for k, t in loops.items()},
            "kill_loop_errors": [f"{k}: {e}" for k, t in loops.items() for e in t.errors]}


def verdict_problems(oracle_ok: bool, result: Mapping[str, Any], facts: Mapping[str, Any],
                     kills_per_kind: int) -> list[str]:
    """Why the run fails (empty: it passes): the oracle's verdict, the hostile checks, workers that died
    unless killed, the faults' own checks, and the kills themselves. A run that killed a kind fewer
    times than asked (its kill loop gave up after repeated restart failures) proved less than it
    claims, and a restart that failed at all (``kill_loop_errors``, retried or not) is a worker that
    could not come back: both fail the run."""
    problems = []
    if not oracle_ok:
        problems.append("the oracle found damage (see explain)")
    if result["hostile_failed"]:
        problems.append(f"{len(result['hostile_failed'])} hostile check(s) failed")
    if result["worker_crashes"]:
        problems.append(f"{result['worker_crashes']} worker crash(es)")
    if facts.get("milvus_outage", {}).get("committed_while_down"):
        problems.append("the index group committed offsets while Milvus was down")
    problems += [f"{name}: {f['problem']}" for name, f in facts.items() if isinstance(f, dict) and f.get("problem")]
    if result["kill_loop_errors"]:
        problems.append(f"{len(result['kill_loop_errors'])} kill-and-restart attempt(s) failed")
    if "reindex_ok" in result:
        if not result["reindex_ok"]:
            problems.append("the rebuilt collection differs from the truth (see reindex_explain)")
        if not result["reindex_old_collection_ok"]:
            problems.append("the old collection differs from the truth after the rollback and swaps")
        if result["reindex_query_errors"]:
            problems.append(f"{result['reindex_query_errors']} query error(s) during the reindex phase")
        if not (result["reindex_live_at_end"] and result["reindex_previous_at_end"]):
            problems.append("the aliases are not where the last swap put them")
    short = {k: n for k, n in result["kills_done"].items() if n < kills_per_kind}
    if short or set(result["kills_done"]) != set(KINDS):
        problems.append(f"fewer kills than asked ({kills_per_kind} per kind): {dict(result['kills_done'])}")
    return problems


def _fault_plan(cfg: ChaosConfig, total: int) -> list[tuple[int, str]]:
    faults = ["broker"] * cfg.broker_restarts
    if cfg.milvus_outage_s > 0:
        faults.append("milvus")
    if cfg.s3_outage_s > 0:
        faults.append("s3")
    order = ["milvus", "broker", "s3"]
    faults.sort(key=lambda f: order.index(f))
    n = len(faults)
    return [(int(total * (i + 1) / (n + 1)), f) for i, f in enumerate(faults)]


def load_images(cs: ChaosStack) -> tuple[list[str], dict[str, Path]]:
    """The load's image URIs (file:// and, with an object store, s3://) and the file behind each."""
    files = {f"file://{cs.image_root / n}": cs.image_root / n for n in cs.images}
    if cs.s3 is not None:
        from minio import Minio

        client = Minio(cs.s3.address, access_key=cs.s3.access_key, secret_key=cs.s3.secret_key, secure=False)
        if not client.bucket_exists("chaos"):
            client.make_bucket("chaos")
        for n in cs.images[: len(cs.images) // 2]:
            data = (cs.image_root / n).read_bytes()
            client.put_object("chaos", f"img/{n}", io.BytesIO(data), len(data), content_type="image/jpeg")
            files[f"s3://chaos/img/{n}"] = cs.image_root / n
    return list(files), files


def _milvus_outage(cs: ChaosStack, seconds: float, held: list[KillLoop], *, kill: bool = False) -> dict[str, Any]:
    """Milvus away for ``seconds``: the index group must commit nothing it could not write, the
    index worker must stay up, and the lag must drain after Milvus is back."""
    index_group = cs.index_group
    for loop in held:
        loop.hold()
    try:
        cs.ensure_ready()
        cs.milvus_down(kill=kill)
        try:
            t0 = time.monotonic()
            time.sleep(min(3.0, seconds / 3))  # part of the outage: commits of pre-outage writes land
            before = cs.committed(*index_group)
            while time.monotonic() < t0 + seconds:
                time.sleep(0.5)  # the outage itself
            after = cs.committed(*index_group)
            lag_down = cs.group_lag(*index_group)
        finally:
            cs.milvus_up()
        t_up = time.monotonic()
        lag_fn = lambda: cs.group_lag(*index_group)
        wait_until(lambda: (lag := lag_fn()) is not None and lag < 50, 300, "the index lag to drain after Milvus")
        alive = cs.stack.workers["index"].process.poll() is None  # type: ignore[union-attr]
        return {"seconds": seconds, "sigkill": kill, "committed_while_down": before != after, "lag_at_recovery": lag_down,
                "drain_after_recovery_s": round(time.monotonic() - t_up, 1), "index_worker_survived": alive,
                "problem": before != after or not alive}
    finally:
        for loop in held:
            loop.release()


def _s3_outage(cs: ChaosStack, seconds: float) -> dict[str, Any]:
    cs.s3_down()
    try:
        time.sleep(seconds)  # the outage itself
    finally:
        cs.s3_up()
    return {"seconds": seconds}


def _hostile(cs: ChaosStack, uris: list[str], progress: Any) -> tuple[int, list[tuple[str, bool, str]], dict[str, Any]]:
    from streams.publisher import CatalogPublisher
    from streams.query_client import QueryClient

    assert cs.kafka is not None
    topics = cs.settings.topics
    photo = cs.image_root / cs.images[0]
    pub = CatalogPublisher(cs.kafka.address, topics.events).start()
    before = cs.rss()
    ev = hostile.publish_events(pub.send_raw, cs.image_root, photo)
    pub.flush()
    pub.close()
    cs.wait_drained(300)
    index = _index(cs)
    try:
        wait_until(lambda: all(index.get(p) for p in (*ev.exif_trio, f"{ev.prefix}inj", f"{ev.prefix}plain")),
                   120, "the hostile images to be indexed")
        rows = {p: index.get(p, with_vectors=True) for p in ev.exif_trio}
    finally:
        index.close()
    client = QueryClient(cs.kafka.address, topics.requests, topics.responses).start()
    try:
        checks = hostile.run_queries(cs.search, lambda body: client.search(body, timeout=60), photo,
                                     f"{ev.prefix}inj", f"{ev.prefix}plain", cs.image_root)
    finally:
        client.close()
    vecs = {p: np.asarray(r["image_vec"], np.float32) if r else None for p, r in rows.items()}
    exif, upright, sideways = (vecs[p] for p in ev.exif_trio)
    if exif is not None and upright is not None and sideways is not None:
        same, other = float(exif @ upright), float(sideways @ upright)
        checks.append(("EXIF rotation applied", same > 0.98 and same > other + 0.01,
                       f"cos(exif, upright) {same:.4f}, cos(sideways, upright) {other:.4f}"))
    else:
        checks.append(("EXIF rotation applied", False, "rows missing"))
    after = cs.rss()
    alive = all(w.process.poll() is None for w in cs.stack.workers.values())  # type: ignore[union-attr]
    checks.append(("workers up after hostile inputs", alive, f"rss MiB before {before}, after {after}"))
    limit = 3072.0
    checks.append((f"workers under {limit:.0f} MiB", all(v < limit for v in after.values()), f"{after}"))
    progress(f"hostile: {ev.count} events, {len(checks)} checks, {sum(not ok for _, ok, _ in checks)} failed")
    for name, ok, detail in checks:
        if not ok:
            progress(f"  FAILED {name}: {detail}")
    return ev.count, checks, ev.image_reasons


def _index(cs: ChaosStack) -> Any:
    from indexer.store import ProductIndex
    from workers.runtime.wiring import layout_for
    from workers.vision.factory import production_pipeline

    return ProductIndex(cs.milvus.address, layout_for(cs.settings, production_pipeline())).start(create=False)  # type: ignore[union-attr]


def judge_stack(cs: ChaosStack, image_reason: Any, refs: Mapping[str, np.ndarray] | None,
                product_prefixes: Iterable[str] = (), collection: str | None = None,
                ) -> tuple[oracle.Verdict, oracle.Expectation]:
    """Read back the topics and the collection (the live layout's, or ``collection``) and judge them
    (see ``vitrine_tools.chaos.oracle``)."""
    assert cs.kafka is not None and cs.milvus is not None
    topics = cs.settings.topics
    records = oracle.read_published(cs.kafka.address, topics.events)
    prefixes = tuple(product_prefixes)
    if prefixes:
        records = [r for r in records if r.key and r.key.startswith(prefixes)]
    exp = oracle.expected_index(records, image_reason)
    dead = oracle.read_dead_letters(cs.kafka.address, topics.dlq, topics.events)
    if prefixes:
        mine = set(exp.outcome)
        dead = [d for d in dead if (d.partition, d.offset) in mine]
    snap = oracle.snapshot_index(cs.milvus.address, collection or cs.collection, exp.seen_products | set(exp.products))
    if prefixes:
        snap.pk_counts = type(snap.pk_counts)({k: v for k, v in snap.pk_counts.items() if k.startswith(prefixes)})
        snap.total_rows = sum(snap.pk_counts.values())
    return oracle.judge(exp, snap, dead, reference_vectors=refs), exp


# ---------------------------------------------------------------------------------------------- reindex

#: The index layout the reindex phase rebuilds into: same model, another HNSW graph (a retune).
REINDEX_LAYOUT = {"index_type": "HNSW", "index_params": {"M": 8, "efConstruction": 64}}


class _Reindexer:
    """Runs ``vitrine reindex`` commands as child processes of this one, with the stack's settings."""

    def __init__(self, cs: ChaosStack, log_dir: Path) -> None:
        assert cs.stack is not None
        self.env = {**os.environ, **cs.stack.settings_env(), "VITRINE_HTTP_PORT": str(_free_port()),
                    "VITRINE_COMMIT_INTERVAL_S": "0.5"}
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.builder: subprocess.Popen[bytes] | None = None
        self.kills: dict[str, int] = {"build": 0, "swap": 0, "rollback": 0}
        self.refused = 0  # swaps the canary refused (the build had not caught up yet)
        self._n = 0

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        self._n += 1
        out = (self.log_dir / f"{self._n:03d}-{args[0]}.log").open("wb")
        return subprocess.Popen([sys.executable, "-m", "vitrine_tools.cli", "reindex", *args], env=self.env,
                                stdout=out, stderr=subprocess.STDOUT)

    def start_builder(self) -> None:
        self.builder = self._start("build", "--from", "features", "--index-type", REINDEX_LAYOUT["index_type"],
                                   "--index-params", json.dumps(REINDEX_LAYOUT["index_params"]), "--follow")

    def kill_builder(self) -> None:
        assert self.builder is not None
        self.builder.send_signal(signal.SIGKILL)
        self.builder.wait(60)
        self.kills["build"] += 1

    def stop_builder(self) -> int:
        assert self.builder is not None
        self.builder.terminate()
        return self.builder.wait(120)

    def swap_until_it_passes(self, collection: str, timeout: float = 300) -> None:
        """``swap`` until its canary passes: under a live load it refuses while the build lags (products
        missing, lag above the threshold), which is what it should do; an operator runs it again."""
        deadline = time.monotonic() + timeout
        while self.run("swap", collection, "--max-lag", "1000", "--probes", "50") != 0:
            self.refused += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"the swap kept refusing for {timeout:.0f}s (see {self.log_dir})")
            time.sleep(3)

    def run(self, *args: str, kill_after: float | None = None, timeout: float = 300) -> int | None:
        """Run one command; with ``kill_after``, SIGKILL it then if still running (None: it was killed)."""
        p = self._start(*args)
        try:
            code = p.wait(kill_after if kill_after is not None else timeout)
            return code
        except subprocess.TimeoutExpired:
            if kill_after is None:
                p.kill()
                p.wait()
                raise
            p.send_signal(signal.SIGKILL)
            p.wait()
            self.kills[args[0]] += 1
            return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reindex_phase(cfg: ChaosConfig, cs: ChaosStack, uris: list[str], refs: Mapping[str, np.ndarray] | None,
                  progress: Any, known: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """``vitrine reindex`` under live load with queries: the builder SIGKILLed ``cfg.reindex_kills`` times
    at random points (replaying, catching up, following) and resumed each time, ``swap`` killed mid-way
    and run again, then the swap, a rollback mid-load and the swap again. After the load: the new
    collection and the old one are each judged against the truth, and every query reply counted."""
    from indexer.schema import IndexLayout
    from vitrine_tools import reindex

    rng = random.Random(cfg.seed + 13)
    live_layout = cs.layout
    new = IndexLayout(live_layout.model_version, live_layout.dims, alias=live_layout.alias,
                      lexical=live_layout.lexical, **REINDEX_LAYOUT).collection  # type: ignore[arg-type]
    load = CatalogueLoad(uris, cs.image_root, prefix=f"{cfg.prefix}r", products=cfg.products, seed=cfg.seed + 1)
    pub = Publisher(cs.kafka.address, cs.settings.topics.events, load, cfg.rate)  # type: ignore[union-attr]
    queries = QueryLoad(cs, max(cfg.query_rate, 2.0), [p.pid for p in load.pool])
    rx = _Reindexer(cs, cfg.data_dir / "reindex-logs")
    t0 = time.monotonic()
    swaps: list[str] = []
    pub.start()
    queries.start()
    try:
        rx.start_builder()
        for _ in range(cfg.reindex_kills):
            time.sleep(rng.uniform(*cfg.reindex_kill_delay_s))
            rx.kill_builder()
            rx.start_builder()
        progress(f"reindex: builder killed {rx.kills['build']} times; swapping (killed first, then for real)")
        for _ in range(2):  # a swap killed at a random point, then finished by the next run
            rx.run("swap", new, "--max-lag", "1000", "--probes", "50", kill_after=rng.uniform(0.5, 6.0))
        rx.swap_until_it_passes(new)
        swaps.append("swap")
        time.sleep(rng.uniform(3, 8))
        rx.run("rollback", kill_after=rng.uniform(0.3, 3.0))  # a rollback killed mid-way ...
        if rx.run("rollback") != 0:  # ... finished: the old collection is live again
            raise RuntimeError("rollback failed (see reindex-logs)")
        swaps.append("rollback")
        time.sleep(rng.uniform(3, 8))
        rx.swap_until_it_passes(new)
        swaps.append("swap")
        while pub.sent < cfg.reindex_min_events:
            time.sleep(0.5)
    finally:
        pub.stop()
        time.sleep(3)  # queries keep running while the last events drain
        queries.stop_event.set()
        queries.join(60)
    progress(f"reindex: load over ({pub.sent} events); draining both collections")
    cs.ensure_ready()
    cs.wait_drained(cfg.drain_timeout_s)
    wait_until(lambda: cs.group_lag(*_new_index_group(cs, new)) == 0, cfg.drain_timeout_s,
               "the new collection's writer to drain")
    code = rx.stop_builder()
    client = _client(cs)
    try:
        live_now = reindex.alias_target(client, live_layout.alias)
        previous = reindex.alias_target(client, live_layout.alias + reindex.PREVIOUS)
    finally:
        client.close()
    image_reason = image_reason_for(cs.image_root, {**{u: None for u in uris}, **(known or {})})
    new_verdict, _ = judge_stack(cs, image_reason, refs, collection=new)
    old_verdict, _ = judge_stack(cs, image_reason, refs)
    # leave the stack as it was found: the workers' collection live again, the rebuilt one dropped
    restored = rx.run("rollback") == 0 and rx.run("gc", "--previous") == 0
    errors = {k: v for k, v in queries.statuses.items() if k not in ("200", "404")}
    fig_new, fig_old = _verdict_figures(new_verdict), _verdict_figures(old_verdict)
    return {
        "reindex_kills": sum(rx.kills.values()), "reindex_kills_by_step": dict(rx.kills),
        "reindex_lost": fig_new["lost"], "reindex_stale": fig_new["stale"],
        "reindex_resurrected": fig_new["resurrected"], "reindex_duplicates": fig_new["duplicates"],
        "reindex_ok": new_verdict.ok, "reindex_old_collection_ok": old_verdict.ok,
        "reindex_old_lost": fig_old["lost"] + fig_old["stale"] + fig_old["resurrected"] + fig_old["duplicates"],
        "reindex_query_errors": sum(errors.values()), "reindex_query_error_statuses": errors,
        "reindex_queries": queries.statuses, "reindex_swaps": swaps, "reindex_swaps_refused": rx.refused,
        "reindex_events": pub.sent,
        "reindex_live_at_end": live_now == new, "reindex_previous_at_end": previous == cs.collection,
        "reindex_builder_exit": code, "reindex_restored": restored, "reindex_s": round(time.monotonic() - t0, 1),
        **({"reindex_explain": new_verdict.explain()} if not new_verdict.ok else {}),
    }


def _new_index_group(cs: ChaosStack, collection: str) -> tuple[str, str]:
    from streams.topics import index_group

    return index_group(collection), cs.index_group[1]


def _client(cs: ChaosStack) -> Any:
    from indexer.store import connect

    return connect(cs.milvus.address)  # type: ignore[union-attr]


__all__ = ["ChaosConfig", "judge_stack", "reference_vectors", "reindex_phase", "run_chaos"]
