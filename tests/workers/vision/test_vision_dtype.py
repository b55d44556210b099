"""The backbone's compute dtype: "auto" resolves by the hardware, and bf16 serves the same answers as float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from vision_testdata import REPO_ROOT, load_rgb

from workers.settings import Settings
from workers.vision.embedders import native_bf16, resolve_dtype
from workers.vision.factory import production_pipeline
from workers.vision.trained_pipeline import TrainedVisionPipeline

SAMPLE = REPO_ROOT / "vitrine_tools" / "devstack" / "sample" / "images"


def test_resolve_dtype() -> None:
    assert resolve_dtype("float32", "cpu") is torch.float32
    assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16
    assert resolve_dtype(torch.float16, "cpu") is torch.float16
    assert resolve_dtype("auto", "cpu") is (torch.bfloat16 if native_bf16("cpu") else torch.float32)
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("int8", "cpu")
    with pytest.raises(ValidationError):
        Settings(model_dtype="float16")


@pytest.fixture(scope="module")
def pipelines() -> tuple[TrainedVisionPipeline, TrainedVisionPipeline]:
    out = []
    for dtype in ("float32", "bfloat16"):
        p = production_pipeline(dtype=dtype)
        assert isinstance(p, TrainedVisionPipeline), "shipped weights missing from workers/vision/weights"
        p.load()
        out.append(p)
    assert (out[0].dtype, out[1].dtype) == ("float32", "bfloat16")
    assert out[0].model_version == out[1].model_version  # interchangeable vectors: one version
    return out[0], out[1]


def test_bf16_backbone_serves_what_float32_serves(pipelines: tuple[TrainedVisionPipeline, ...]) -> None:
    """24 sample photos through both: vectors nearly equal, tags and main boxes mostly the same."""
    images = [load_rgb(str(p)) for p in sorted(SAMPLE.glob("*.jpg"))[::11][:24]]
    f32, bf16 = (p.analyse(images) for p in pipelines)
    feats = pipelines[1].shared.backbone.features(images[:2])[0]
    assert feats.pooled.dtype == feats.s16.dtype == feats.s32.dtype == torch.float32
    cos = np.array([float(a.image_vec @ b.image_vec) for a, b in zip(f32, bf16)])
    assert cos.min() > 0.98 and np.median(cos) > 0.995, cos
    same_category = np.mean([a.tags["category"].value == b.tags["category"].value for a, b in zip(f32, bf16)])
    assert same_category >= 0.9
    iou = np.array([_iou(a.regions[0].box, b.regions[0].box) for a, b in zip(f32, bf16)])
    assert np.median(iou) > 0.95 and iou.min() > 0.5, iou  # the detector's maps move a little, its boxes a pixel
    colour = np.array([float(a.colour_vec @ b.colour_vec) for a, b in zip(f32, bf16)])
    assert np.median(colour) > 0.99, colour  # histograms of (nearly) the same crop


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / area
