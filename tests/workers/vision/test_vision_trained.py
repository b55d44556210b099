"""The shipped trained heads: contracts on real weights (bundled CC0 sample photos, no shared data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from vision_testdata import REPO_ROOT, load_rgb

from workers.vision import ModelNotLoadedError
from workers.vision.factory import production_pipeline
from workers.vision.pipeline import crop_region
from workers.vision.taxonomy import GROUPS
from workers.vision.trained import WEIGHTS_DIR, needs_crop, read_manifest
from workers.vision.trained_pipeline import TrainedVisionPipeline

SAMPLE = REPO_ROOT / "vitrine_tools" / "devstack" / "sample" / "images"


@pytest.fixture(scope="module")
def pipeline() -> TrainedVisionPipeline:
    p = production_pipeline()
    assert isinstance(p, TrainedVisionPipeline), "shipped weights missing from workers/vision/weights"
    p.load()
    return p


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    paths = sorted(SAMPLE.glob("*.jpg"))[::40][:5]
    return [load_rgb(str(p)) for p in paths]


def test_weights_shipped_small_and_recorded() -> None:
    manifest = read_manifest()
    assert manifest is not None
    total = sum(f.stat().st_size for f in WEIGHTS_DIR.iterdir())
    assert total < 10 * 2**20
    for head, entry in manifest.items():
        record = json.loads((WEIGHTS_DIR / f"{head}.json").read_text())
        assert record["version"] == entry["version"] and record["seed"] == 0
        assert {"data", "split", "sizes", "trained_seconds_total"} <= set(record)


def test_version_names_every_model_and_load_is_required() -> None:
    p = production_pipeline()
    manifest = read_manifest()
    assert manifest is not None
    parts = p.model_version.split("+")
    assert [x.split("@")[0] for x in parts] == [
        "roi-centernet", "attr-tagger", "effnet-lite0-proj", "colour-hist", "all-MiniLM-L6-v2", "style-compat"]
    assert parts[0] == f"roi-centernet@{manifest['detector']['version']}"
    assert parts[-1] == f"style-compat@{json.loads((WEIGHTS_DIR / 'compat.json').read_text())['version']}"
    assert (p.image_dim, p.colour_dim, p.text_dim, p.style_dim) == (256, 64, 384, 128)
    assert p.dims() == {"image_vec": 256, "colour_vec": 64, "text_vec": 384, "style_vec": 128}
    with pytest.raises(ModelNotLoadedError):
        p.analyse([np.zeros((32, 32, 3), np.uint8)])


def test_analyse_contract_and_determinism(pipeline: TrainedVisionPipeline, photos: list[np.ndarray]) -> None:
    out = pipeline.analyse(photos)
    again = pipeline.analyse(photos)
    assert len(out) == len(photos)
    for a, b, img in zip(out, again, photos):
        h, w = img.shape[:2]
        assert a.image_vec.shape == (256,) and a.image_vec.dtype == np.float32
        assert abs(float(np.linalg.norm(a.image_vec)) - 1) < 1e-4
        np.testing.assert_allclose(a.image_vec, b.image_vec, atol=1e-5)
        assert a.regions and [r.score for r in a.regions] == sorted((r.score for r in a.regions), reverse=True)
        for r in a.regions:
            x0, y0, x1, y1 = r.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert r.category in GROUPS["category"] and 0 <= r.score <= 1
        assert set(a.tags) == set(GROUPS)
        for group, tag in a.tags.items():
            assert tag.value in GROUPS[group] and 0 <= tag.confidence <= 1 and tag.source == "model"
        assert a.category_probs is not None and abs(float(a.category_probs.sum()) - 1) < 1e-4
        assert a.tags["category"].value == GROUPS["category"][int(a.category_probs.argmax())]
    assert pipeline.analyse([]) == []


#: Sample photos on either side of ``needs_crop`` with the shipped weights: the detector's main region
#: covers about half of the first (whole-image forward) and about 7% of the second (second forward on the crop).
LARGE_MAIN_REGION = "0a30baec"
SMALL_MAIN_REGION = "387d935f"


def test_models_alone_agree_with_the_pipeline(pipeline: TrainedVisionPipeline, photos: list[np.ndarray]) -> None:
    images = photos + [load_rgb(str(next(SAMPLE.glob(f"{stem}*.jpg")))) for stem in (LARGE_MAIN_REGION,
                                                                                      SMALL_MAIN_REGION)]
    regions = pipeline.detector.detect(images)
    out = pipeline.analyse(images)
    assert [r[0].box for r in regions] == [a.regions[0].box for a in out]
    whole = [i for i, (img, r) in enumerate(zip(images, regions)) if not needs_crop(r[0], *img.shape[:2])]
    cropped = [i for i in range(len(images)) if i not in whole]
    # both rules must be exercised, the two chosen photos each on its side
    assert len(images) - 2 in whole and len(images) - 1 in cropped, (whole, cropped)
    # main region large: the pipeline's vector is the embedder's on the whole image
    vecs = pipeline.embedder.embed([images[i] for i in whole])
    np.testing.assert_allclose(vecs, np.stack([out[i].image_vec for i in whole]), atol=1e-4)
    # main region small: the embedder's on the main region's crop, which differs from the whole image's
    crops = [crop_region(images[i], regions[i][0].box) for i in cropped]
    vecs = pipeline.embedder.embed(crops)
    np.testing.assert_allclose(vecs, np.stack([out[i].image_vec for i in cropped]), atol=1e-4)
    full = pipeline.embedder.embed([images[i] for i in cropped])
    assert not np.allclose(full, vecs, atol=1e-2)
    tags = pipeline.tagger.tag(images[:1])
    assert set(tags[0]) == set(GROUPS)
    assert pipeline.embedder.embed([]).shape == (0, 256)


def test_sample_photos_get_a_sensible_category(pipeline: TrainedVisionPipeline) -> None:
    """The bundled sample is 264 real-shot photos, 24 per category: most should be named right."""
    import csv

    with open(REPO_ROOT / "vitrine_tools" / "devstack" / "sample" / "catalog.csv", newline="") as f:
        rows = list(csv.DictReader(f))[::12]
    images = [load_rgb(str(SAMPLE.parent / r["image"])) for r in rows]
    out = pipeline.analyse(images)
    right = np.mean([a.tags["category"].value == r["category"] for a, r in zip(out, rows)])
    assert right >= 0.6, right


def test_style_vectors_follow_the_category_they_are_computed_under(pipeline: TrainedVisionPipeline,
                                                                    photos: list[np.ndarray]) -> None:
    out = pipeline.analyse(photos)
    assert all(a.style_input is not None and a.style_input.shape == (pipeline.style.head.feature_dim,)
               for a in out)
    tops = pipeline.style_vectors(out, ["top"] * len(out))
    assert tops.shape == (len(out), 128) and tops.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(tops, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(tops, pipeline.style_vectors(out, ["top"] * len(out)))  # deterministic
    shoes = pipeline.style_vectors(out, ["shoes"] * len(out))
    assert not np.allclose(tops, shoes)  # the category conditions the vector
    # the merchant's category wins when the head knows it, else the model's reading
    assert pipeline.style_category("skirt", out[0]) == "skirt"
    assert pipeline.style_category("gift cards", out[0]) == out[0].tags["category"].value


def test_garments_of_a_photo_one_per_category_with_unit_style_vectors(pipeline: TrainedVisionPipeline,
                                                                       photos: list[np.ndarray]) -> None:
    for img in photos[:3]:
        garments = pipeline.garments(img)
        assert 1 <= len(garments) <= 6
        cats = [g.region.category for g in garments]
        assert len(set(cats)) == len(cats) and all(c in GROUPS["category"] for c in cats)
        for g in garments:
            assert g.style_vec.shape == (128,) and abs(float(np.linalg.norm(g.style_vec)) - 1) < 1e-5
            x0, y0, x1, y1 = g.region.box
            assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]
