"""Embedders: shapes, unit norms, determinism, lifecycle errors, and fakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vision_testdata import load_rgb, pick

from workers.vision.colour import ColourHistogramEmbedder
from workers.vision.embedders import EfficientNetEmbedder, letterbox
from workers.vision.exceptions import InvalidImageError, ModelNotLoadedError
from workers.vision.fakes import HashEmbedder, HashTextEmbedder


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [
        rng.integers(0, 256, (300, 225, 3), dtype=np.uint8),
        np.full((50, 120, 3), (200, 20, 20), dtype=np.uint8),
        rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
    ]


def test_effnet_needs_load() -> None:
    emb = EfficientNetEmbedder()
    with pytest.raises(ModelNotLoadedError, match="call load\\(\\) first"):
        emb.embed(_images())


def test_effnet_shapes_norms_determinism(effnet_embedder) -> None:  # type: ignore[no-untyped-def]
    images = _images()
    pre = effnet_embedder.preprocess(images)
    assert pre.shape == (3, 3, 224, 224) and pre.dtype == torch.float32
    assert float(pre.min()) >= -1.0 and float(pre.max()) <= 1.0
    a = effnet_embedder.embed(images)
    b = effnet_embedder.embed(images)
    assert a.shape == (3, 1280) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, b)
    single = effnet_embedder.embed(images[:1])
    np.testing.assert_allclose(single[0], a[0], atol=1e-4)
    assert effnet_embedder.embed([]).shape == (0, 1280)
    with pytest.raises(InvalidImageError):
        effnet_embedder.embed([np.zeros((10, 10), dtype=np.uint8)])


def test_effnet_same_product_closer_than_other_product(catalog, effnet_embedder) -> None:  # type: ignore[no-untyped-def]
    shirt, jeans = (load_rgb(pick(catalog, 1, article_type=t)[0]["path"]) for t in ("Tshirts", "Jeans"))
    flipped_shirt = np.ascontiguousarray(shirt[:, ::-1])
    v = effnet_embedder.embed([shirt, flipped_shirt, jeans])
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.1


def test_letterbox_keeps_whole_portrait_image() -> None:
    img = np.zeros((300, 150, 3), dtype=np.uint8)
    img[:, :] = (255, 255, 255)
    img[100:200, 50:100] = (0, 0, 0)
    out = letterbox(img)
    assert out.shape == (224, 224, 3)
    assert tuple(out[0, 0]) == (255, 255, 255)  # padding takes the border colour
    assert (out.sum(axis=2) == 0).sum() > 0.5 * (100 * 50) * (224 / 300) ** 2


def test_colour_hist_shape_norm_and_similarity() -> None:
    emb = ColourHistogramEmbedder()
    red = np.full((64, 64, 3), (210, 20, 20), dtype=np.uint8)
    red2 = np.full((80, 40, 3), (220, 30, 25), dtype=np.uint8)
    blue = np.full((64, 64, 3), (20, 30, 200), dtype=np.uint8)
    white = np.full((64, 64, 3), 255, dtype=np.uint8)
    v = emb.embed([red, red2, blue, white])
    assert v.shape == (4, 64) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert float(v[0] @ v[1]) > 0.95 and float(v[0] @ v[2]) < 0.05
    assert np.array_equal(v, emb.embed([red, red2, blue, white]))


def test_colour_hist_background_downweighted() -> None:
    emb = ColourHistogramEmbedder()
    shirt_on_white = np.full((100, 100, 3), 255, dtype=np.uint8)
    shirt_on_white[30:70, 30:70] = (20, 30, 200)
    plain_blue = np.full((100, 100, 3), (20, 30, 200), dtype=np.uint8)
    v = emb.embed([shirt_on_white, plain_blue])
    assert float(v[0] @ v[1]) > 0.9  # would be ~0.4 if the background counted fully


def test_hash_fakes_deterministic_and_content_sensitive() -> None:
    images = _images()
    emb = HashEmbedder(16)
    a, b = emb.embed(images), HashEmbedder(16).embed(images)
    assert a.shape == (3, 16) and a.dtype == np.float32 and np.array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    changed = images[1].copy()
    changed[0, 0, 0] ^= 1
    assert float(emb.embed([changed])[0] @ a[1]) < 0.9
    text = HashTextEmbedder(24)
    t = text.embed_text(["red dress", "red dress", "blue jeans"])
    assert t.shape == (3, 24) and np.array_equal(t[0], t[1]) and not np.array_equal(t[0], t[2])
    assert text.embed_text([]).shape == (0, 24)
