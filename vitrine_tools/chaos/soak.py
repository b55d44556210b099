"""The soak: a long steady load at a fraction of the measured maximum rate, with concurrent queries.

Steps: start the stack; measure the maximum sustainable event rate (a burst of the same load mix,
published at once, timed until both consumer groups committed it all); run ``minutes`` at
``fraction`` of it with queries alongside, sampling each worker's RSS and the lag; drain; judge
with the oracle. Reports RSS per worker at the start and the end (and the peak), the lag, query
outcomes and latency, and the verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitrine_tools.chaos.harness import ChaosStack, wait_until
from vitrine_tools.chaos.load import CatalogueLoad, Publisher, image_reason_for
from vitrine_tools.chaos.runner import QueryLoad, judge_stack, load_images, reference_vectors


@dataclass
class SoakConfig:
    data_dir: Path
    minutes: float = 30.0
    fraction: float = 0.5
    rate: float = 0.0  # 0: measure the maximum first
    query_rate: float = 2.0
    burst: int = 300
    products: int = 400
    seed: int = 5


def run_soak(cfg: SoakConfig, progress: Any = print) -> dict[str, Any]:
    t0 = time.monotonic()
    cs = ChaosStack(cfg.data_dir, prefix="soak", with_s3=False).start()
    try:
        return _soak(cfg, cs, t0, progress)
    finally:
        cs.stop()


def _soak(cfg: SoakConfig, cs: ChaosStack, t0: float, progress: Any) -> dict[str, Any]:
    assert cs.kafka is not None
    topics = cs.settings.topics
    uris, files = load_images(cs)
    refs = reference_vectors(files)
    load = CatalogueLoad(uris, cs.image_root, prefix="soakp", products=cfg.products, seed=cfg.seed)
    out: dict[str, Any] = {}
    rate = cfg.rate
    if rate <= 0:
        pub = Publisher(cs.kafka.address, topics.events, load, rate=1.0)
        pub._pub = None
        t_burst = time.monotonic()
        pub.publish(load.next_batch(cfg.burst))
        wait_until(cs.drained, 600, "the burst to drain", interval=0.5)
        max_rate = cfg.burst / (time.monotonic() - t_burst)
        rate = max_rate * cfg.fraction
        out["max_rate_events_per_s"] = round(max_rate, 2)
        progress(f"measured maximum {max_rate:.1f} events/s; soaking at {rate:.1f}/s for {cfg.minutes} min")
    rss_start = cs.rss()
    peak = dict(rss_start)
    lags: list[int] = []
    pub = Publisher(cs.kafka.address, topics.events, load, rate)
    queries = QueryLoad(cs, cfg.query_rate, [p.pid for p in load.pool])
    pub.start()
    queries.start()
    end = time.monotonic() + cfg.minutes * 60
    try:
        while time.monotonic() < end:
            time.sleep(min(10.0, max(end - time.monotonic(), 0)))  # the sampling period
            for k, v in cs.rss().items():
                peak[k] = max(peak[k], v)
            lag = cs.group_lag(*cs.ingest_group)
            if lag is not None:
                lags.append(lag)
            cs.check_crashes()
    finally:
        pub.stop()
        queries.stop_event.set()
        queries.join(60)
    rss_end = cs.rss()
    drain_s = cs.wait_drained(900)
    verdict, _ = judge_stack(cs, image_reason_for(cs.image_root, {u: None for u in uris}), refs)
    lat = np.asarray(queries.latencies) * 1e3 if queries.latencies else np.zeros(1)
    out.update({
        "minutes": cfg.minutes, "rate_events_per_s": round(rate, 2), "events_published": pub.sent,
        "rss_mib_start": rss_start, "rss_mib_end": rss_end, "rss_mib_peak": peak,
        "ingest_lag_max": max(lags or [0]), "ingest_lag_last": lags[-1] if lags else 0, "drain_s": round(drain_s, 1),
        "queries": queries.statuses, "query_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "query_p99_ms": round(float(np.percentile(lat, 99)), 1), "worker_crashes": sum(cs.crashes.values()),
        **{k: v for k, v in verdict.summary().items() if k != "outcomes"},
        "wall_s": round(time.monotonic() - t0, 1),
    })
    out["verdict_ok"] = verdict.ok and out["worker_crashes"] == 0
    if not verdict.ok:
        out["explain"] = verdict.explain()
    return out
