"""``vitrine eval text`` and ``vitrine eval modifier`` at toy size: each runs through the real query path
on a Milvus Lite server and writes every figure and the chart. The figures themselves are the full
runs' (README, Search quality)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vitrine_tools.cli import main
from vitrine_tools.search_eval.metrics import map_at, mrr, ndcg_at, precision_at, recall_at
from vitrine_tools.search_eval.text import grade

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.mark.parametrize(("suite", "systems", "keys"), [
    ("text", ("vitrine", "bm25", "dense"), ("mrr", "map_at_50", "ndcg_at_10", "p_at_50", "r_at_50")),
    ("modifier", ("vitrine", "image_only", "text_only"), ("p_at_10", "ndcg_at_10")),
])
def test_a_suite_writes_every_figure(suite: str, systems: tuple[str, ...], keys: tuple[str, ...], shared_data: Path,
                                     tmp_path: Path) -> None:
    out = tmp_path / f"{suite}.json"
    with pytest.raises(SystemExit) as done:
        main(["eval", suite, "--data", str(shared_data), "--gallery-limit", "400", "--cache", str(tmp_path / "cache"),
              "--json", str(out)])
    assert done.value.code == 0
    result = json.loads(out.read_text())
    for system in systems:
        for key in keys:
            value = result[system][key]
            assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0, (system, key, value)
    assert result["indexed"] == 400 and result["queries"] > 0
    assert out.with_suffix(".png").stat().st_size > 1000


def test_the_measures_on_a_hand_worked_ranking() -> None:
    grades = [0, 2, 1, 2]  # ranks 2 and 4 relevant
    assert mrr(grades) == 0.5
    assert precision_at(grades, 4) == 0.5 and recall_at(grades, 4, 4) == 0.5
    assert map_at(grades, 4, 2) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert ndcg_at([2, 2, 1], 3, [1, 2, 2, 0]) == 1.0 and ndcg_at([0, 2, 2], 3, [2, 2, 0]) < 1.0


def test_grades_follow_the_named_attributes() -> None:
    named = {"article_type": "shirts", "colour": "red", "gender": "men"}
    assert grade(named, {"article_type": "shirts", "colour": "red", "gender": "men"}) == 2
    assert grade(named, {"article_type": "shirts", "colour": "blue", "gender": "men"}) == 1
    assert grade(named, {"article_type": "shirts", "colour": "blue", "gender": "women"}) == 0
    assert grade(named, {"article_type": "tshirts", "colour": "red", "gender": "men"}) == 0
