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


def test_bench_query_compares_index_types(tmp_path: Path) -> None:
    """``vitrine bench query --index-types`` at toy size: one collection per type on its own Milvus
    Lite server, recall against the exact search in [0, 1], latency and memory reported, and a type
    the server cannot build reported unsupported instead of failing the run."""
    report_path, plot_path = tmp_path / "quantised.json", tmp_path / "quantised.png"
    argv = ["bench", "query", "--sizes", "2000", "--dim", "64", "--queries", "30",
            "--index-types", "HNSW,IVF_SQ8,NOT_AN_INDEX", "--json", str(report_path), "--plot", str(plot_path)]
    run = subprocess.run([sys.executable, "-c", "from vitrine_tools.cli import main; main()", *argv],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    entries = {e["index_type"]: e for e in report["sizes"]["2000"]["indexes"]}
    assert list(entries) == ["HNSW", "IVF_SQ8", "NOT_AN_INDEX"]
    bogus = entries["NOT_AN_INDEX"]
    assert bogus["supported"] is False and bogus["error"], bogus
    for name, key in (("HNSW", "ef"), ("IVF_SQ8", "nprobe")):
        entry = entries[name]
        assert entry["supported"] is True and "error" not in entry, entry
        assert entry["build_s"] >= 0
        rows = entry["results"]
        assert {r["filtered"] for r in rows} == {False, True}
        assert all(key in r["search_params"] for r in rows)
        for r in rows:
            assert 0.0 <= r["recall_at_10"] <= 1.0, r
            assert 0 < r["p50_ms"] <= r["p99_ms"], r
        assert max(r["recall_at_10"] for r in rows if not r["filtered"]) > 0.5  # the index finds neighbours
        memory = entry["memory"]
        assert memory["index_estimated_mb_per_1m"] > 0
        assert memory["server_rss_measured"] is True and memory["server_rss_delta_mb_per_1m"] is not None
        assert memory["index_files"] >= 1 and memory["index_files_mb_per_1m"] > 0
        point = entry["operating_point"]
        assert 0.0 <= point["recall_at_10"] <= 1.0 and 0.0 <= point["filtered_recall_at_10"] <= 1.0
    # float32 HNSW holds 4x the vector bytes of SQ8: the estimate and the index files both say so
    assert entries["HNSW"]["memory"]["index_estimated_mb_per_1m"] > entries["IVF_SQ8"]["memory"]["index_estimated_mb_per_1m"]
    assert entries["HNSW"]["memory"]["index_files_mb_per_1m"] > entries["IVF_SQ8"]["memory"]["index_files_mb_per_1m"]
    signs = report["sizes"]["2000"]["sign_bits_exact"]
    assert 0.0 <= signs["unfiltered"]["hamming_recall_at_10"] <= 1.0
    assert plot_path.stat().st_size > 10_000


def test_bench_look_times_complete_look_against_similar(tmp_path: Path) -> None:
    """``vitrine bench look`` at toy size: complete_look and similar answered pair by pair through the
    real QueryService on Milvus Lite, the default categories searched, p50 <= p99 for both."""
    report_path = tmp_path / "look.json"
    argv = ["bench", "look", "--items", "3000", "--queries", "20", "--k", "5", "--json", str(report_path)]
    run = subprocess.run([sys.executable, "-c", "from vitrine_tools.cli import main; main()", *argv],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["items"] == 3000 and report["style_dim"] == 128 and report["model"].startswith("style-compat@")
    for label in ("unfiltered", "filtered"):
        stats = report[label]
        for kind in ("complete_look", "one_search", "similar"):
            assert 0 < stats[kind]["p50_ms"] <= stats[kind]["p99_ms"], stats
        assert stats["categories_per_look_mean"] >= 2 and 0 < stats["results_per_category_mean"] <= 5
        assert math.isfinite(stats["p99_ratio_look_over_similar"]) and stats["one_search"]["p50_ms"] > 0
