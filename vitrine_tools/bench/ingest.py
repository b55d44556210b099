"""``vitrine bench ingest``: the real pipeline against a naive one and the model alone, same run.

Measured, in one process and on one machine:
1. model alone: decode + all models on the same device, batched, no Kafka, no Milvus (images/s);
2. naive pipeline: consume one message -> decode -> models -> insert into Milvus -> commit, one at a
   time, as tutorials do, with the same models and Milvus server (events/s);
3. the real pipeline (broker, ingest and index workers, Milvus Lite server) at maximum rate: N
   events published at once; end-to-end indexed events/s, freshness at max rate;
4. the real pipeline at fixed rates (25/50/75% of the maximum): freshness from publish to
   searchable, found by a probe that reads each product back through Milvus (not the upsert ack);
5. patch events (price/stock, no GPU work): patches/s through the same workers;
6. time per stage, from the workers' own Prometheus histograms.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vitrine_tools.bench.images import bench_images


def model_only(vision: Any, blobs: list[bytes], batch: int, decode_workers: int = 2,
               model_workers: int = 1) -> dict[str, float]:
    """Decode + models, batched, as the ingest worker runs them: decode of the next batch overlapping
    the model, and ``model_workers`` batches in the model at once, the torch threads shared among them."""
    from concurrent.futures import Future

    import torch

    from workers.vision.decode import decode_image

    decode_pool = ThreadPoolExecutor(decode_workers)
    model_pool = ThreadPoolExecutor(model_workers)
    total = torch.get_num_threads()
    threads = max(1, total // model_workers)
    chunks = [blobs[i:i + batch] for i in range(0, len(blobs), batch)]
    def models(images: list[Any], first: int) -> None:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        vision.analyse(images)
        vision.embed_text([f"product {first + j}" for j in range(len(images))])  # new texts: no cache hits

    list(model_pool.map(models, [[decode_image(blobs[0], target=224)]] * model_workers,
                        [-1 - w for w in range(model_workers)]))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    running: list[Future[None]] = []
    nxt = decode_pool.map(lambda b: decode_image(b, target=224), chunks[0])
    for i in range(len(chunks)):
        images = list(nxt)
        if i + 1 < len(chunks):
            nxt = decode_pool.map(lambda b: decode_image(b, target=224), chunks[i + 1])
        while len(running) >= model_workers:
            running.pop(0).result()
        running.append(model_pool.submit(models, images, i * batch))
    for f in running:
        f.result()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    decode_pool.shutdown()
    model_pool.shutdown()
    torch.set_num_threads(total)  # the global default new threads start with: the naive run gets all
    return {"images": len(blobs), "seconds": round(dt, 3), "images_per_s": round(len(blobs) / dt, 2),
            "cores": round(cpu / dt, 2), "model_workers": model_workers}


def naive(vision: Any, bootstrap: str, milvus_uri: str, images: list[Path], root: Path) -> dict[str, float]:
    """One message at a time: poll 1 -> fetch -> decode -> models -> Milvus insert -> commit."""
    from kafka import KafkaConsumer, KafkaProducer

    from indexer.schema import IndexLayout
    from indexer.store import connect
    from streams.admin import ensure_topics
    from streams.codecs import IndexRecord
    from streams.topics import TopicSet
    from workers.vision.decode import decode_image

    prefix = f"naive{uuid.uuid4().hex[:6]}"
    topics = TopicSet(prefix, 1)
    ensure_topics(bootstrap, topics)
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i, p in enumerate(images):
        prod.send(topics.events, key=f"n{i}".encode(), value=json.dumps({"id": f"n{i}", "uri": str(p)}).encode())
    prod.flush()
    prod.close()
    layout = IndexLayout(vision.model_version, {"image_vec": vision.image_dim, "colour_vec": vision.colour_dim,
                                                "text_vec": vision.text_dim}, alias=f"{prefix}_products")
    client = connect(milvus_uri)
    schema, index = layout.build_schema(client)
    client.create_collection(layout.collection, schema=schema, index_params=index, consistency_level="Strong")
    consumer = KafkaConsumer(topics.events, bootstrap_servers=bootstrap, group_id=prefix, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_poll_records=1, session_timeout_ms=6000,
                             heartbeat_interval_ms=1000)
    done, t0 = 0, None
    deadline = time.time() + 600
    while done < len(images) and time.time() < deadline:
        for records in consumer.poll(timeout_ms=1000, max_records=1).values():
            for rec in records:
                t0 = t0 or time.perf_counter()
                doc = json.loads(rec.value)
                image = decode_image(Path(doc["uri"]).read_bytes(), target=224)
                a = vision.analyse([image])[0]
                tv = vision.embed_text([doc["id"]])[0]
                rec = IndexRecord("upsert", doc["id"], 1, time.time(),
                                  {"title": doc["id"], "price": 1.0, "image_uri": doc["uri"]},
                                  {"image_vec": a.image_vec, "colour_vec": a.colour_vec, "text_vec": tv},
                                  vision.model_version)
                client.insert(layout.collection, [layout.full_row(rec)])  # the production row, one at a time
                consumer.commit()
                done += 1
    dt = time.perf_counter() - (t0 or time.perf_counter())
    consumer.close()
    client.drop_collection(layout.collection)
    client.close()
    return {"events": done, "seconds": round(dt, 3), "events_per_s": round(done / dt, 2) if dt else 0.0}


class Prober:
    """Reads each published product back until it is visible; freshness = visible - published."""

    def __init__(self, index: Any, interval_s: float = 0.01) -> None:
        self.index = index
        self.interval_s = interval_s  # each probe is a Milvus query: polling harder steals the pipeline's CPU
        self.pending: dict[str, float] = {}
        self.fresh: dict[str, float] = {}
        self.visible_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Prober:
        self._thread.start()
        return self

    def add(self, pid: str, published: float) -> None:
        with self._lock:
            self.pending[pid] = published

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                ids = list(self.pending)[:500]
            if not ids:
                time.sleep(0.005)
                continue
            seen = self.index.held(ids)
            now = time.time()
            with self._lock:
                for pid in seen:
                    if pid in self.pending:
                        self.fresh[pid] = now - self.pending.pop(pid)
                        self.visible_at[pid] = now
            time.sleep(self.interval_s)

    def wait(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while self.pending and time.time() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(5)


def cpu_by_session(sessions: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by every process of each session (name -> session id:
    each service and worker runs in its own session, its helper processes included)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    names = {sid: name for name, sid in sessions.items()}
    out = dict.fromkeys(sessions, 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(fields[3]))  # field 6: session id
        if name is not None:
            out[name] += (int(fields[11]) + int(fields[12])) / tick  # fields 14, 15: utime, stime
    out["bench (publisher, probe)"] = time.process_time()
    return out


def cpu_profile(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores used by each process group over a phase (1.0 = one core busy all the time)."""
    return {k: round((after[k] - before.get(k, 0.0)) / seconds, 3) for k in after if seconds > 0}


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    a = np.asarray(values)
    return {f"p{q}": round(float(np.percentile(a, q)), 4) for q in (50, 95, 99)}


def publish(pub: Any, images: list[Path], prefix: str, rate: float | None, prober: Prober | None,
            timeline: list[tuple[float, int]] | None = None) -> list[str]:
    """Publish one upsert per image, at ``rate`` events/s (None = as fast as possible)."""
    ids = []
    t0 = time.time()
    for i, path in enumerate(images):
        if rate:
            wait = t0 + i / rate - time.time()
            if wait > 0:
                time.sleep(wait)
        pid = f"{prefix}-{i}"
        now = time.time()
        pub.upsert(pid, 1, title=f"bench product {pid}", price=10.0 + i % 50, images=[f"file://{path}"],
                   occurred_at=now)
        if rate:
            pub.flush()
        if prober:
            prober.add(pid, now)
        ids.append(pid)
    pub.flush()
    return ids


def stage_times(workers: dict[str, Any]) -> dict[str, float]:
    """Mean seconds per batch of each stage, read from the workers' /metrics."""
    out: dict[str, float] = {}
    for w in workers.values():
        try:
            text = urllib.request.urlopen(f"{w.http}/metrics", timeout=5).read().decode()
        except OSError:
            continue
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("vitrine_stage_seconds_sum") or line.startswith("vitrine_stage_seconds_count"):
                stage = line.split('stage="')[1].split('"')[0]
                (sums if "_sum" in line else counts)[stage] = float(line.rsplit(" ", 1)[1])
        for stage, total in sums.items():
            if counts.get(stage):
                out[stage] = round(total / counts[stage], 4)
    return out


def seed_rows(index: Any, ids: list[str], batch: int = 1000) -> None:
    """Version-1 rows with random vectors for ``ids``, written straight to Milvus (patch targets)."""
    from streams.codecs import IndexRecord

    rng = np.random.default_rng(0)
    for i in range(0, len(ids), batch):
        index.apply([IndexRecord("upsert", pid, 1, time.time(), {"title": pid, "price": 1.0},
                                 {k: rng.standard_normal(d).astype(np.float32) for k, d in index.layout.dims.items()},
                                 index.layout.model_version)
                     for pid in ids[i:i + batch]])
    index.flush()


def _committed_total(bootstrap: str, group: str, topic: str) -> int:
    from streams.admin import committed_offsets

    return sum(committed_offsets(bootstrap, group, topic).values())


def drain_patches(stack: Any, pub: Any, index: Any, patches: list[tuple[str, int]],
                  timeout: float = 600, alone: bool = False) -> dict[str, Any]:
    """Publish ``patches`` while the ingest worker is stopped, start it, and time the drain.

    Rates come from the committed offsets (an offset is committed only after its output was
    acknowledged: the ingest group's after ``index.enriched`` took the record, the index group's
    after Milvus did), from the first committed progress to the last; the final versions are checked.
    ``alone``: the index worker is stopped too, and started only once the ingest worker is done, so
    each worker's rate is its own, not shared with the other and Milvus on the same two cores.
    """
    from streams.topics import TopicSet, index_group, ingest_group

    layout = index.layout
    topics = TopicSet(stack.topic_prefix, stack.partitions).for_model(layout.model_key)
    events_topic, enriched_topic = topics.events, topics.enriched
    ingest_g, index_g = ingest_group(layout.model_key), index_group(layout.collection)
    boot = stack.kafka_bootstrap
    stack.workers["ingest"].stop()  # a running one would take the backlog while it is published, then restart
    base_ingest = _committed_total(boot, ingest_g, events_topic)
    base_index = _committed_total(boot, index_g, enriched_topic)
    last: dict[str, int] = {}
    for pid, version in patches:
        pub.patch(pid, version, price=float(version % 97), in_stock=bool(version % 2))
        last[pid] = max(version, last.get(pid, 0))
    pub.flush()
    n = len(patches)
    if alone:
        stack.workers["index"].stop()
    ready_at: dict[str, float] = {}

    def restart_worker(kind: str) -> None:
        stack.restart_worker(kind, kill=False)
        ready_at[kind] = time.time()  # joined its group: the drain cannot have started before

    restart = threading.Thread(target=restart_worker, args=("ingest",))
    restart.start()  # poll while it starts: the drain may begin before /healthz says ready
    index_start: threading.Thread | None = None
    marks: dict[str, list[tuple[float, int]]] = {"ingest": [], "index": []}
    deadline = time.time() + timeout
    while time.time() < deadline:
        done_ingest = _committed_total(boot, ingest_g, events_topic) - base_ingest
        done_index = _committed_total(boot, index_g, enriched_topic) - base_index
        now = time.time()
        for name, done in (("ingest", done_ingest), ("index", done_index)):
            if done > 0 and (not marks[name] or marks[name][-1][1] != done):
                marks[name].append((now, done))
        if done_ingest >= n and done_index >= n:
            break
        if alone and done_ingest >= n and index_start is None:
            index_start = threading.Thread(target=restart_worker, args=("index",))
            index_start.start()
        time.sleep(0.1)
    restart.join()
    if index_start is not None:
        index_start.join()

    def rate(points: list[tuple[float, int]], started: float | None) -> float:
        """From the first committed progress to the last; a worker that drained everything within one
        commit interval has one point only: its rate is then counted from when it was ready."""
        if len(points) < 2 and started is not None and points and points[0][0] > started:
            points = [(started, 0), *points]
        if len(points) < 2:
            return float("nan")
        (t0, d0), (t1, d1) = points[0], points[-1]
        return round((d1 - d0) / (t1 - t0), 1) if t1 > t0 else float("nan")

    held = {}
    ids = list(last)
    for i in range(0, len(ids), 2000):
        held.update(index.held(ids[i:i + 2000]))
    behind = sum(1 for p, v in last.items() if p not in held or held[p].version < v)
    t_base = min((p[0][0] for p in marks.values() if p), default=0.0)
    return {"events": n, "products": len(last), "ingest_events_per_s": rate(marks["ingest"], ready_at.get("ingest")),
            "events_per_s": rate(marks["index"], ready_at.get("index") if alone else None), "rows_behind_after_drain": behind,
            "committed": {k: [[round(t - t_base, 2), d] for t, d in v] for k, v in marks.items()}}


def _brief(drain: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in drain.items() if k != "committed"}


def run(*, events: int, data_dir: Path | None, work_dir: Path, kafka: str | None, device: str = "cpu",
        dtype: str = "auto",
        rates: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0), rate_seconds: float = 20.0, naive_events: int = 60,
        patches: int = 2000, kafka_pid: int | None = None) -> dict[str, Any]:
    import shutil

    from indexer.store import ProductIndex
    from streams.publisher import CatalogPublisher
    from vitrine_tools.devstack.stack import LocalStack
    from workers.runtime.wiring import layout_for
    from workers.settings import Settings
    from workers.vision.factory import production_pipeline

    images, root = bench_images(data_dir, max(events, naive_events))
    shutil.rmtree(work_dir, ignore_errors=True)
    report: dict[str, Any] = {"device": device, "events": events, "image_source": str(root)}

    vision = production_pipeline(device=device, dtype=dtype)  # the workers get the same VITRINE_MODEL_DTYPE
    vision.load()
    report["dtype"] = vision.dtype
    blobs = [p.read_bytes() for p in images[:events]]
    model_workers = Settings(device=device).model_threads()  # as the ingest worker runs them
    report["model_only"] = model_only(vision, blobs, batch=32, model_workers=model_workers)
    print(f"model alone: {report['model_only']['images_per_s']} images/s on {report['model_only']['cores']} cores", flush=True)

    env = {"VITRINE_FETCH_ALLOW_FILE": "true", "VITRINE_FETCH_FILE_ROOT": str(root), "VITRINE_DEVICE": device,
           "VITRINE_MODEL_DTYPE": dtype,
           "VITRINE_LOG_LEVEL": "warning"}
    with LocalStack(work_dir, kafka_bootstrap=kafka, env=env) as stack:
        report["naive"] = naive(vision, stack.kafka_bootstrap, stack.milvus_uri, images[:naive_events], root)
        print(f"naive pipeline: {report['naive']['events_per_s']} events/s", flush=True)
        del vision
        settings = Settings(kafka_bootstrap=stack.kafka_bootstrap, milvus_uri=stack.milvus_uri,
                            partitions=stack.partitions)
        index = ProductIndex(stack.milvus_uri, layout_for(settings, production_pipeline())).start(create=False)
        pub = CatalogPublisher(stack.kafka_bootstrap, settings.topics.events, linger_ms=2).start()

        sessions = {"kafka": kafka_pid, **{s.name: s.pid for s in stack.services},
                    **{f"{k}-worker": w.process.pid for k, w in stack.workers.items()}}
        sessions = {k: v for k, v in sessions.items() if v}  # the bench process itself: time.process_time()
        # maximum rate: everything published at once (a burst: its freshness is the backlog's drain time)
        cpu0 = cpu_by_session(sessions)
        timeline: list[tuple[float, int]] = []
        prober = Prober(index, interval_s=0.1).start()  # a burst's freshness is seconds: probe gently
        t0 = time.time()
        publish(pub, images[:events], "max", None, prober)
        while prober.pending and time.time() - t0 < 900:
            timeline.append((time.time() - t0, len(prober.fresh)))
            time.sleep(0.25)
        prober.wait(5)
        span = max(prober.visible_at.values(), default=t0) - t0
        report["pipeline"] = {"events": len(prober.fresh), "seconds": round(span, 3),
                              "events_per_s": round(len(prober.fresh) / span, 2) if span else 0.0,
                              "freshness_s": _percentiles(list(prober.fresh.values()))}
        report["timeline"] = timeline
        report["cores_used_at_max"] = cpu_profile(cpu0, cpu_by_session(sessions), time.time() - t0)
        print(f"cores used at max rate: {report['cores_used_at_max']}", flush=True)
        max_rate = report["pipeline"]["events_per_s"]
        print(f"pipeline at max rate: {max_rate} events/s, freshness {report['pipeline']['freshness_s']}", flush=True)

        # fixed rates, freshness by probe; 1.0 = paced at the maximum just measured
        report["rates"] = {}
        for frac in rates:
            rate = max(max_rate * frac, 0.5)
            n = max(int(rate * rate_seconds), 5)
            prober = Prober(index).start()
            publish(pub, [images[i % len(images)] for i in range(n)], f"r{int(frac * 100)}", rate, prober)
            prober.wait(120)
            report["rates"][str(frac)] = {"rate": round(rate, 2), "events": n,
                                          "freshness_s": _percentiles(list(prober.fresh.values())),
                                          "cdf": sorted(round(v, 4) for v in prober.fresh.values())}
            print(f"  at {frac:.0%} ({rate:.1f}/s): freshness {report['rates'][str(frac)]['freshness_s']}", flush=True)

        report["stage_seconds_per_batch"] = stage_times(stack.workers)  # image runs only: before the patches
        print(f"seconds per batch: {report['stage_seconds_per_batch']}", flush=True)

        # patches (no GPU work): a backlog drained by a fresh ingest worker, measured per worker from
        # the consumer groups' committed offsets, once over distinct products (every patch is a row
        # write) and once over the few products indexed above (a batch folds a product's patches)
        distinct = [f"pp-{i}" for i in range(patches)]
        seed_rows(index, distinct)
        report["patches"] = drain_patches(stack, pub, index, [(pid, 2) for pid in distinct])
        print(f"patches, {patches} distinct products: {_brief(report['patches'])}", flush=True)
        ids = [f"max-{i}" for i in range(len(images[:events]))]
        hot = [(ids[j % len(ids)], 2 + j // len(ids)) for j in range(patches)]
        report["patches_hot"] = drain_patches(stack, pub, index, hot)
        print(f"patches, {patches} over {len(ids)} products: {_brief(report['patches_hot'])}", flush=True)
        alone = [(pid, 3) for pid in distinct]
        report["patches_alone"] = drain_patches(stack, pub, index, alone, alone=True)
        print(f"patches, {patches} distinct products, each worker alone: {_brief(report['patches_alone'])}", flush=True)
        pub.close()
        index.close()

    half = report["rates"].get("0.5", {}).get("freshness_s", {})
    report["summary"] = {
        "events_per_s": report["pipeline"]["events_per_s"],
        "naive_events_per_s": report["naive"]["events_per_s"],
        "model_only_images_per_s": report["model_only"]["images_per_s"],
        "pipeline_over_naive": round(report["pipeline"]["events_per_s"] / max(report["naive"]["events_per_s"], 1e-9), 2),
        "pipeline_over_model_only": round(report["pipeline"]["events_per_s"] / report["model_only"]["images_per_s"], 3),
        "freshness_p50_s": half.get("p50"), "freshness_p99_s": half.get("p99"),
        "freshness_p99_at_max_s": report["rates"].get("1.0", {}).get("freshness_s", {}).get("p99"),
        "freshness_p99_burst_s": report["pipeline"]["freshness_s"]["p99"],
        "patch_events_per_s": report["patches"]["events_per_s"],
        "patch_events_per_s_ingest_worker": report["patches"]["ingest_events_per_s"],
        "patch_events_per_s_hot_products": report["patches_hot"]["events_per_s"],
        "patch_events_per_s_ingest_worker_alone": report["patches_alone"]["ingest_events_per_s"],
        "patch_events_per_s_index_worker_alone": report["patches_alone"]["events_per_s"], "device": device,
        "dtype": report["dtype"],
    }
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    t = [x for x, _ in report["timeline"]]
    n = [y for _, y in report["timeline"]]
    a.plot(t, n)
    a.set(title=f"indexed events at max rate ({report['summary']['events_per_s']}/s)", xlabel="s", ylabel="events")
    for frac, r in report["rates"].items():
        cdf = r["cdf"]
        b.plot(cdf, np.arange(1, len(cdf) + 1) / max(len(cdf), 1), label=f"{float(frac):.0%} ({r['rate']}/s)")
    b.set(title="freshness, publish -> visible (probe)", xlabel="s", ylabel="CDF", xscale="log")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
