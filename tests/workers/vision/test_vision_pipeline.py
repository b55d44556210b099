"""VisionPipeline with fakes and with the real models; import hygiene of the package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from vision_testdata import REPO_ROOT, load_rgb, pick

from workers.vision import ModelNotLoadedError, Region, VisionPipeline
from workers.vision.factory import baseline_pipeline
from workers.vision.fakes import fake_pipeline
from workers.vision.pipeline import crop_region


class _TwoRegionDetector:
    name, version = "two", "1"

    def detect(self, images):  # type: ignore[no-untyped-def]
        return [[Region((10, 10, 30, 40), "tshirt", 0.9), Region((0, 0, 5, 5), "hat", 0.2)]
                for _ in images]


def test_fake_pipeline_without_load() -> None:
    p = fake_pipeline(image_dim=16, text_dim=8)
    images = [np.full((40, 30, 3), (200, 20, 20), np.uint8), np.zeros((5, 7, 3), np.uint8)]
    out = p.analyse(images)
    assert len(out) == 2
    assert out[0].image_vec.shape == (16,) and out[0].colour_vec.shape == (64,)
    assert out[0].regions[0].box == (0, 0, 30, 40) and out[0].tags["colour"].value == "red"
    assert p.image_dim == 16 and p.colour_dim == 64 and p.text_dim == 8
    assert p.embed_text(["a", "b"]).shape == (2, 8)
    assert p.analyse([]) == []
    assert np.array_equal(p.analyse(images)[1].image_vec, out[1].image_vec)


def test_main_region_is_cropped() -> None:
    base = fake_pipeline()
    p = VisionPipeline(_TwoRegionDetector(), base.tagger, base.embedder, base.colour, base.text)
    image = np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    (a,) = p.analyse([image])
    assert [r.category for r in a.regions] == ["tshirt", "hat"]
    np.testing.assert_array_equal(a.image_vec, base.embedder.embed([image[10:40, 10:30]])[0])
    assert crop_region(image, (35, 45, 99, 99)).shape == (5, 5, 3)
    assert crop_region(image, (60, 60, 70, 70)).shape == image.shape  # outside: whole image


def test_baseline_pipeline_lifecycle_and_version(catalog) -> None:  # type: ignore[no-untyped-def]
    p = baseline_pipeline()
    assert p.model_version == (
        "whole-image@1+colour-tag@1+effnet-lite0-gap@1+colour-hist@1+all-MiniLM-L6-v2@1"
    )
    image = load_rgb(pick(catalog, 1, article_type="Tshirts", colour="Black")[0]["path"])
    with pytest.raises(ModelNotLoadedError):
        p.analyse([image])
    p.load()
    p.load()  # idempotent
    (a,) = p.analyse([image])
    assert a.image_vec.shape == (1280,) and a.image_vec.dtype == np.float32
    assert abs(float(np.linalg.norm(a.image_vec)) - 1.0) < 1e-5
    assert a.tags["colour"].value == "black"
    assert (p.image_dim, p.colour_dim, p.text_dim) == (1280, 64, 384)


def test_import_pulls_no_broker_network_or_weights() -> None:
    code = (
        "import sys, workers.vision as v\n"
        "bad = [m for m in ('faust', 'kafka', 'aiokafka', 'pymilvus', 'minio', 'requests',"
        " 'aiohttp', 'httpx', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "assert set(v.__all__) <= set(dir(v))\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)


def test_no_environ_reads_in_source() -> None:
    """No ``os.environ`` / ``os.getenv`` in code (docstrings may mention them)."""
    for path in Path(REPO_ROOT, "workers", "vision").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"environ", "getenv", "putenv"}, (path, node.lineno)
