"""The factory: production models need their weights; missing ones stop a worker instead of a
silent fall-back to the untrained 1280-d pipeline (another model version)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workers.vision.exceptions import ModelWeightsMissing
from workers.vision.factory import baseline_pipeline, production_pipeline
from workers.vision.trained import WEIGHTS_DIR


def test_no_weights_raise_and_name_the_missing_heads(tmp_path: Path) -> None:
    with pytest.raises(ModelWeightsMissing) as err:
        production_pipeline(weights_dir=tmp_path)
    assert err.value.missing == ["detector", "tagger", "projection"]


def test_one_missing_head_is_named(tmp_path: Path) -> None:
    for f in WEIGHTS_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / manifest["tagger"]["file"]).unlink()
    with pytest.raises(ModelWeightsMissing) as err:
        production_pipeline(weights_dir=tmp_path)
    assert err.value.missing == ["tagger"] and "tagger" in str(err.value)


def test_the_shipped_weights_make_the_trained_pipeline_of_another_version_than_the_baseline() -> None:
    trained, base = production_pipeline(), baseline_pipeline()
    assert trained.image_dim != base.image_dim and trained.model_version != base.model_version


def test_a_worker_without_weights_refuses_to_start(tmp_path: Path) -> None:
    code = "from workers.cli import main; main(['worker', 'index'])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "VITRINE_KAFKA_WAIT_S": "1",
                              "VITRINE_WEIGHTS_DIR": str(tmp_path)})  # a weights folder without the heads
    assert run.returncode == 2, run.stderr[-2000:]
    assert "refuses to start" in run.stderr and "trained head weights missing" in run.stderr
