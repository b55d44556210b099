"""The embedded default path: ``vitrine demo`` on tansu + the Milvus Lite server, with a small sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitrine_tools.devstack.cli import stack_env
from vitrine_tools.devstack.demo import run_demo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_demo_indexes_or_dead_letters_every_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_demo(tmp_path / "demo", limit=22, json_path=str(tmp_path / "figures.json"), env=stack_env({}))
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert code == 0
    assert figures["published"] == 24 and figures["indexed"] == 22 and figures["dlq"] == 2
    assert figures["queries"] >= 8 and figures["events_per_s"] > 0
    assert 0 < figures["freshness_p50_s"] <= figures["freshness_p99_s"]
    assert json.loads((tmp_path / "figures.json").read_text()) == figures
    assert "photo query over HTTP (200)" in out and "error reply (400)" in out
