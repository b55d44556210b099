"""``vitrine train`` + ``vitrine eval all`` end to end on a tiny subset of the shared data.

How long it takes is a benchmark's business, not this test's: it checks what the commands produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_testdata import tiny_data

from vitrine_tools.cli import main
from workers.vision.trained import read_manifest


@pytest.mark.slow
def test_train_then_eval_on_a_tiny_subset(shared_data: Path, tmp_path: Path) -> None:
    data = tiny_data(shared_data, tmp_path / "data")
    out, cache = tmp_path / "weights", tmp_path / "cache"
    with pytest.raises(SystemExit) as done:
        main(["train", "--data", str(data), "--out", str(out), "--cache", str(cache), "--limit", "100",
              "--device", "cpu"])
    assert done.value.code == 0
    manifest = read_manifest(out)
    assert manifest is not None and set(manifest) == {"detector", "tagger", "projection"}
    record = json.loads((out / "tagger.json").read_text())
    assert record["seed"] == 0 and record["data"] == str(data) and "metrics" in record
    report = tmp_path / "eval.json"
    with pytest.raises(SystemExit) as done:
        main(["eval", "all", "--data", str(data), "--weights", str(out), "--cache", str(cache), "--json", str(report)])
    assert done.value.code == 0
    result = json.loads(report.read_text())
    keys = {"realshot": {"category_p_at_1", "category_p_at_10", "category_map_at_10"},
            "street": {"box_recall_iou50", "category_p_at_10"},
            "views": {"recall_at_1", "recall_at_10"},
            "tags": {"colour_top1", "article_type_top1", "gender_top1", "usage_top1", "season_top1"},
            "fusion": {"category_acc_model", "category_acc_fused"}}
    for suite, names in keys.items():
        assert names <= set(result[suite]["vitrine"]) and names <= set(result[suite]["baseline"]), suite
    assert report.with_suffix(".png").stat().st_size > 1000
