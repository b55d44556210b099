"""``vitrine train compat`` and ``vitrine eval fitb``: the pieces on handmade inputs, the whole run on a
tiny synthetic street set (no shared data needed), and the real ``fitb_sample`` recipe when the shared
data is there (skipped, with the reason, when it is not)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitrine_tools.cli import main
from vitrine_tools.training.compat_data import (
    Question,
    cutout,
    cutout_view,
    photos_behind,
    read_outfits,
    read_questions,
)
from vitrine_tools.training.compat_fit import CompatData, FitConfig, fit_compat
from vitrine_tools.training.compat_train import complement_map
from vitrine_tools.training.fitb import fitb_report, score_questions
from vitrine_tools.training.sets import rng_for
from workers.vision.compat import load_compat

# --- pieces --------------------------------------------------------------------------------------


def test_cutout_puts_the_garment_on_white_with_a_padded_box() -> None:
    image = np.full((100, 80, 3), 40, np.uint8)  # a dark street
    mask = np.zeros((100, 80), np.uint8)
    mask[20:60, 10:30] = 7  # the garment: 20 wide, 40 high
    mask[70:80, 50:60] = 3  # another garment, not asked for
    cut = cutout(image, mask, [7])
    assert cut.shape == (40 + 2 * 2, 20 + 2 * 2, 3)  # pad = 5 % of the longer side (40) = 2 px
    assert (cut[2:-2, 2:-2] == 40).all() and (cut[0] == 255).all() and (cut[:, 0] == 255).all()


def test_cutout_views_are_mild_and_reproducible() -> None:
    cut = np.full((60, 40, 3), (200, 30, 30), np.uint8)
    a, b = cutout_view(cut, rng_for(0, "v", 1)), cutout_view(cut, rng_for(0, "v", 1))
    np.testing.assert_array_equal(a, b)
    for i in range(8):  # mirrored or not, cropped, jittered: still red (no hue change, small jitter)
        v = cutout_view(cut, rng_for(0, "v", i))
        centre = v[v.shape[0] // 2, v.shape[1] // 2].astype(int)
        assert centre[0] > 150 and centre[1] < 80 and centre[2] < 80, (i, centre)


def _q(answer: int, category: str = "shoes") -> Question:
    return Question("q", category, (Path("o1"), Path("o2")), tuple(Path(f"c{i}") for i in range(4)), answer)


def test_fitb_report_accuracy_and_auc() -> None:
    qs = [_q(0), _q(1), _q(2, "bag")]
    scores = np.array([[0.9, 0.1, 0.2, 0.3],   # right
                       [0.5, 0.4, 0.1, 0.0],   # wrong: true (0.4) beats 2 of 3
                       [0.0, 0.1, 0.8, 0.2]])  # right
    r = fitb_report(qs, scores)
    assert r["fitb_accuracy"] == pytest.approx(2 / 3, abs=1e-4) and r["n"] == 3
    assert r["by_category"] == {"bag": 1.0, "shoes": 0.5}
    assert r["compat_auc"] == pytest.approx((3 + 2 + 3) / 9, abs=1e-4)  # within each question
    # pooled: true scores 0.9, 0.4, 0.8 against the nine others (max 0.5): 0.4 loses to 0.5 only
    assert r["compat_auc_pooled"] == pytest.approx((9 + 8 + 9) / 27, abs=1e-4)


def test_visual_baseline_picks_the_candidate_nearest_the_outfit_mean() -> None:
    rng = np.random.default_rng(0)
    pooled = rng.normal(size=(6, 1280)).astype(np.float32)
    pooled[2] = pooled[0] + pooled[1]  # candidate c0 sits at the outfit's mean
    index = {Path("o1"): 0, Path("o2"): 1, **{Path(f"c{i}"): 2 + i for i in range(4)}}
    scores = score_questions([_q(0)], index, pooled, None)
    assert scores["visual"].argmax() == 0 and scores["random"].shape == (1, 4) and "vitrine" not in scores


def test_complements_come_from_co_occurrence() -> None:
    from vitrine_tools.training.compat_data import Garment, Outfit

    def outfit(*cats: str) -> Outfit:
        return Outfit("p.jpg", Path("p.jpg"), Path("p.png"), tuple(Garment(c, (1,), 0.1) for c in cats))

    outfits = [outfit("top", "pants", "shoes")] * 6 + [outfit("dress", "shoes")] * 5 + [outfit("top", "skirt")] * 2
    m = complement_map(outfits, min_share=0.2)
    assert m["top"] == ["pants", "shoes", "skirt"] and m["dress"] == ["shoes"]
    assert "skirt" not in m  # seen in fewer than 5 outfits


def _synthetic_outfits(n: int, seed: int, styles: np.ndarray | None = None) -> tuple[CompatData, np.ndarray]:
    """Outfits of 4 garments (top, pants, shoes, bag) whose features share the outfit's style."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(4, 6, 1280)) / 2  # category -> style projection
    offset = np.random.default_rng(98).normal(size=(4, 1280))
    style = rng.normal(size=(n, 6)) if styles is None else styles
    cats = np.array([15, 6, 9, 0])  # top, pants, shoes, bag in GROUPS["category"]
    x = np.concatenate([offset[k] + style @ basis[k] + rng.normal(size=(n, 1280)) * 0.3 for k in range(4)])
    cat = np.repeat(cats, n)
    outfit = np.tile(np.arange(n), 4)
    views = (x[:, None] + rng.normal(size=(len(x), 2, 1280)) * 0.1).astype(np.float32)
    cx = (offset[rng.integers(0, 4, 80)] + rng.normal(size=(80, 1280))).astype(np.float32)
    ccat = cats[np.argmax(cx @ offset.T, 1)]
    return CompatData(x.astype(np.float32), cat, outfit, views, cx, ccat), style


def test_fit_compat_learns_synthetic_outfits() -> None:
    d, _ = _synthetic_outfits(96, seed=0)
    head = fit_compat(d, FitConfig(epochs=25, pcs=24, hidden=64, dim=16), progress=False)
    test, _ = _synthetic_outfits(40, seed=1)
    v = head.embed(test.x, test.cat)
    n, hits = 40, 0
    rng = np.random.default_rng(2)
    for o in range(n):
        rows = np.flatnonzero(test.outfit == o)
        hidden, ctx = rows[2], rows[[0, 1, 3]]  # hide the shoes
        others = rng.choice([r for r in np.flatnonzero(test.cat == 9) if r != hidden], 3, replace=False)
        cands = [hidden, *others]
        s = [head.outfit_score(v[[*ctx, c]], test.cat[[*ctx, c]]) for c in cands]
        hits += int(np.argmax(s) == 0)
    assert hits / n > 0.6  # chance is 0.25


# --- the whole run on a tiny synthetic street set ------------------------------------------------

_LABELS = ["null", "blouse", "pants", "shoes", "bag"]
_TAX = {"blouse": "top", "pants": "pants", "shoes": "shoes", "bag": "bag"}
_BOXES = {1: (10, 12, 40, 52), 2: (42, 16, 80, 48), 3: (82, 18, 92, 46), 4: (40, 50, 60, 62)}  # y0, x0, y1, x1


def _write_csv(path: Path, fields: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        w.writerows(rows)


def tiny_street(dest: Path, photos: int = 14, seed: int = 0) -> Path:
    """``photos`` street photos (96x64) of 4 garments in a shared colour (the outfit's style), masks,
    a 20-item catalogue of flat colours; the CSV formats of ../shared/data."""
    rng = np.random.default_rng(seed)
    (dest / "street" / "images").mkdir(parents=True)
    (dest / "street" / "masks").mkdir(parents=True)
    (dest / "catalog" / "images").mkdir(parents=True)
    rows = []
    for i in range(photos):
        base = rng.integers(40, 216, 3)
        image = np.full((96, 64, 3), rng.integers(0, 255, 3), np.uint8)
        mask = np.zeros((96, 64), np.uint8)
        for label, (y0, x0, y1, x1) in _BOXES.items():
            mask[y0:y1, x0:x1] = label
            image[y0:y1, x0:x1] = np.clip(base + rng.integers(-20, 20, 3) + 10 * label, 0, 255)
        name = f"{i:04d}"
        Image.fromarray(image).save(dest / "street" / "images" / f"{name}.jpg")
        Image.fromarray(mask).save(dest / "street" / "masks" / f"{name}.png")
        rows.append([f"street/images/{name}.jpg", f"street/masks/{name}.png", 64, 96, "bag;blouse;pants;shoes"])
    _write_csv(dest / "street" / "photos.csv", ["image", "mask", "width", "height", "labels"], rows)
    _write_csv(dest / "street" / "labels.csv", ["index", "name"], [[i, n] for i, n in enumerate(_LABELS)])
    _write_csv(dest / "taxonomy.csv", ["dataset", "source_label", "category"],
               [["street", k, v] for k, v in _TAX.items()])
    cat_rows = []
    for j in range(20):
        cat = ["top", "pants", "shoes", "bag"][j % 4]
        Image.fromarray(np.full((40, 30, 3), rng.integers(0, 255, 3), np.uint8)).save(dest / "catalog" / "images" / f"{j}.jpg")
        cat_rows.append([f"p{j}", "women", cat, f"catalog/images/{j}.jpg"])
    _write_csv(dest / "catalog" / "catalog.csv", ["product_id", "gender", "category", "image"], cat_rows)
    return dest


@pytest.mark.slow
def test_train_compat_then_eval_fitb_on_a_tiny_street_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_street(tmp_path / "data")
    out, cache, held = tmp_path / "weights", tmp_path / "cache", tmp_path / "heldout"
    with pytest.raises(SystemExit) as done:
        main(["train", "compat", "--data", str(data), "--out", str(out), "--cache", str(cache), "--heldout-dir",
              str(held), "--limit", "14", "--cutout-views", "1", "--holdout-frac", "0.4", "--holdout-questions",
              "--epochs", "2", "--device", "cpu"])
    assert done.value.code == 0
    record = json.loads((out / "compat.json").read_text())
    assert record["version"] == hashlib.sha256((out / "compat.pt").read_bytes()).hexdigest()[:10]
    table = record["metrics"]["heldout_fitb"]
    assert set(table) == {"outfits", "+pseudo", "+pseudo+consistency", "+consistency", "visual", "random"}
    assert record["shipped_variant"] in table
    assert all(0 <= table[m]["fitb_accuracy"] <= 1 for m in table)
    assert record["sizes"]["train_photos"] + record["sizes"]["heldout_photos"] == 14
    assert record["complements"]["top"] and not (out / "manifest.json").exists()
    head = load_compat(out)
    assert head.version == record["version"] and head.config["dim"] == record["dim"] == 128
    questions = held / "questions.csv"
    qs = read_questions(questions)
    assert len(qs) == record["sizes"]["heldout_questions"] > 0
    assert all(len(q.candidates) == 4 and 0 <= q.answer < 4 and q.candidates[q.answer].is_file() for q in qs)
    report, png = tmp_path / "fitb.json", tmp_path / "fitb.png"
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["eval", "fitb", "--questions", str(questions), "--weights", str(out), "--cache", str(cache),
              "--json", str(report), "--plot", str(png), "--device", "cpu"])
    assert done.value.code == 0
    assert f"{len(qs)} questions" in capsys.readouterr().out
    result = json.loads(report.read_text())
    for method in ("vitrine", "visual", "random"):
        assert {"fitb_accuracy", "compat_auc"} <= set(result[method]) and result[method]["n"] == len(qs)
    # the eval reads the same cached features as the training run: the same figures
    assert result["vitrine"]["fitb_accuracy"] == table[record["shipped_variant"]]["fitb_accuracy"]
    assert png.stat().st_size > 1000


# --- the real recipe (shared data) ---------------------------------------------------------------


@pytest.mark.slow
def test_fitb_sample_is_cut_out_the_way_the_trainer_cuts(shared_data: Path) -> None:
    """The photos behind fitb_sample are found (so they can be held out), and most answers are a
    garment of the question's category of one of those photos, of the same size to 2 px (a few
    sample items were cut differently: q0000's bag, for one)."""
    questions = read_questions(shared_data / "queries" / "fitb_sample" / "questions.csv")[:8]
    outfits = read_outfits(shared_data)
    assert len(outfits) == 795
    behind = photos_behind(questions, outfits)
    assert len(behind) == len(questions)
    by_photo = {o.photo: o for o in outfits}
    matched = 0
    for q in questions:
        with Image.open(q.candidates[q.answer]) as img:
            w, h = img.size
        fits = []
        for p in behind:
            o = by_photo[p]
            for g in o.garments:
                if g.category == q.category:
                    with Image.open(o.mask) as m:
                        mask = np.asarray(m)
                    cut = cutout(np.zeros((*mask.shape, 3), np.uint8), mask, g.labels)
                    fits.append(abs(cut.shape[1] - w) <= 2 and abs(cut.shape[0] - h) <= 2)
        matched += any(fits)
    assert matched >= len(questions) - 2, matched
