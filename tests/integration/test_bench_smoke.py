"""``vitrine bench ingest`` end to end at toy size: every phase runs and the report has every figure.

The figures themselves are measured by the full run (README, Performance); this keeps the
benchmark from rotting between those runs.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SUMMARY_KEYS = ("events_per_s", "naive_events_per_s", "model_only_images_per_s", "pipeline_over_naive",
                "pipeline_over_model_only", "freshness_p50_s", "freshness_p99_s", "freshness_p99_at_max_s",
                "patch_events_per_s", "patch_events_per_s_ingest_worker_alone",
                "patch_events_per_s_index_worker_alone")


def test_bench_ingest_reports_every_figure(tmp_path: Path) -> None:
    report_path, plot_path = tmp_path / "ingest.json", tmp_path / "ingest.png"
    argv = ["bench", "ingest", "--events", "16", "--naive-events", "3", "--patches", "8000", "--rates", "0.5,1.0",
            "--rate-seconds", "3", "--work-dir", str(tmp_path / "work"), "--json", str(report_path),
            "--plot", str(plot_path)]
    run = subprocess.run([sys.executable, "-c", "from vitrine_tools.cli import main; main()", *argv],
                         capture_output=True, text=True, timeout=840)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    summary = report["summary"]
    for key in SUMMARY_KEYS:
        value = summary[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    assert summary["device"] == "cpu"
    assert report["pipeline"]["events"] == 16  # every event became visible to the probe
    assert report["patches"]["rows_behind_after_drain"] == 0
    assert report["patches_alone"]["rows_behind_after_drain"] == 0
    assert report["model_only"]["model_workers"] == 2
    assert plot_path.stat().st_size > 10_000
