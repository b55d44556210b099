"""``vitrine look-example`` (the README's figure) on a slice of the bundled sample with the shipped
models: the complements are of the categories asked, ranked by the style head, and drawn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vitrine_tools.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_look_example_ranks_and_draws_the_complements(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, js = tmp_path / "look.png", tmp_path / "look.json"
    with pytest.raises(SystemExit) as done:
        main(["look-example", "--query", "top", "--limit", "40", "--k", "3", "--out", str(out), "--json", str(js)])
    assert done.value.code == 0
    result = json.loads(js.read_text())
    assert result["query"]["category"] == "top" and result["model_version"].split("+")[-1].startswith("style-compat@")
    assert result["categories"] and "top" not in result["categories"]
    for group in result["complements"]:
        hits = group["results"]
        assert 0 < len(hits) <= 3 and result["query"]["product_id"] not in [h["product_id"] for h in hits]
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores))
    assert out.stat().st_size > 10_000
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["png"] == str(out)
