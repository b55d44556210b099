"""Scale-out and scale-in under load on the real broker, judged by the oracle.

Two workers of each kind on topics of four partitions, under a paced catalogue load and a steady
stream of queries (HTTP round-robin with one retry on another worker, and over Kafka): a third worker
of each kind joins, then one of each leaves with SIGTERM, then one of each is SIGKILLed (one of each
is left). After the load the groups drain and the oracle must find nothing lost, stale or duplicated;
at least 99% of the HTTP queries must be answered (200) within the client's timeout and retry.
The run's JSON figures are the last line printed (and written to ``$VITRINE_SCALE_OUT_JSON`` when set).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vitrine_tools.chaos.scale import ScaleConfig, pause_figures, run_scale_out

ANSWERED_TARGET = 0.99


def test_pause_figures_tell_a_whole_group_stall_from_one_partition_stall() -> None:
    """Partition 1 (lag 3) stands still from 2 s to 8 s while partition 0 moves: a partition pause of
    6 s in the step it began in, no group-wide pause; then both stand still for 1 s."""
    samples = []
    for i in range(44):
        t = i * 0.25
        moving = i if i < 36 else 36
        samples.append((t, {0: moving, 1: min(i, 8) if i < 32 else moving}, {0: 1, 1: 3}))
    f = pause_figures({"ingest": samples}, [("baseline", 0.0), ("sigkill", 1.0)], 0.0)
    assert f["partition_pause_s"]["ingest"] == 6.0 and f["partition_pause_s_by_step"]["ingest"] == {"sigkill": 6.0}
    assert f["rebalance_pause_s"]["ingest"] == 1.75  # 36 -> the last sample at 10.75 s, still stalled
    assert f["longest_stalls"]["ingest"][0] == {"step": "sigkill", "at_s": 9.0, "s": 1.75}


@pytest.mark.integration
@pytest.mark.chaos
@pytest.mark.ops
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_scale_out_and_in_under_load_loses_nothing(tmp_path: Path) -> None:
    cfg = ScaleConfig(tmp_path / "scale")
    r = run_scale_out(cfg, progress=lambda m: print(m, flush=True))
    line = json.dumps(r)
    if path := os.environ.get("VITRINE_SCALE_OUT_JSON"):
        Path(path).write_text(line + "\n")
    print(line, flush=True)

    assert r["workers_peak"] == {"ingest": 3, "index": 3, "query": 3}
    assert r["workers_at_end"] == {"ingest": 1, "index": 1, "query": 1}
    assert r["events_published"] >= 200 and r["indexed"] > 0
    assert (r["lost"], r["stale"], r["duplicates"]) == (0, 0, 0), r.get("explain")
    assert r["verdict_ok"], r.get("explain")
    assert r["worker_crashes"] == 0, r["crashed"]
    assert all(v >= 0 for v in r["rebalance_pause_s"].values()) and r["probe_samples"]["ingest"] > 100
    assert r["answered_fraction"] >= ANSWERED_TARGET, (r["answered_fraction"], r["unanswered_by_status"],
                                                       r["unanswered_sample"])
