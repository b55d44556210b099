"""ColourTagger on synthetic and catalogue images; MiniLM text embedder semantics."""

from __future__ import annotations

import numpy as np
import pytest
from vision_testdata import load_rgb, pick

from workers.vision.colour import COLOUR_NAMES, ColourTagger
from workers.vision.exceptions import ModelNotLoadedError
from workers.vision.protocols import Tag
from workers.vision.text import MiniLMTextEmbedder


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((210, 20, 25), "red"),
        ((30, 80, 210), "blue"),
        ((10, 10, 10), "black"),
        ((20, 28, 75), "navy"),
        ((30, 140, 60), "green"),
        ((250, 215, 20), "yellow"),
    ],
)
def test_solid_colours(rgb: tuple[int, int, int], name: str) -> None:
    image = np.full((80, 60, 3), rgb, dtype=np.uint8)
    (tags,) = ColourTagger().tag([image])
    assert tags["colour"].value == name
    assert tags["colour"].source == "model" and tags["colour"].confidence > 0.9


def test_background_ignored_and_white_product_named_white() -> None:
    image = np.full((100, 100, 3), 255, dtype=np.uint8)
    image[20:80, 25:75] = (200, 20, 30)  # a red garment on a studio background
    assert ColourTagger().tag([image])[0]["colour"].value == "red"
    white = np.full((100, 100, 3), 255, dtype=np.uint8)
    assert ColourTagger().tag([white])[0]["colour"].value == "white"
    assert set(COLOUR_NAMES) >= {"black", "white", "grey", "navy", "beige", "brown"}


@pytest.mark.parametrize(("merchant", "name"), [("Black", "black"), ("Blue", "blue"), ("Red", "red")])
def test_catalogue_tshirts_high_majority(catalog, merchant: str, name: str) -> None:  # type: ignore[no-untyped-def]
    rows = pick(catalog, 12, article_type="Tshirts", colour=merchant)
    tags = ColourTagger().tag([load_rgb(r["path"]) for r in rows])
    right = sum(t["colour"].value == name for t in tags)
    assert right >= 9, f"{merchant}: {[t['colour'].value for t in tags]}"


def test_text_needs_load() -> None:
    with pytest.raises(ModelNotLoadedError, match="call load\\(\\) first"):
        MiniLMTextEmbedder().embed_text(["x"])


def test_minilm_norms_and_semantics(minilm) -> None:  # type: ignore[no-untyped-def]
    v = minilm.embed_text(["red dress", "crimson gown", "leather wallet"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.1
    assert np.array_equal(v, minilm.embed_text(["red dress", "crimson gown", "leather wallet"]))
    assert minilm.embed_text([]).shape == (0, 384)


def test_minilm_cache_answers_repeats_with_the_models_vectors(minilm) -> None:  # type: ignore[no-untyped-def]
    cached = MiniLMTextEmbedder(cache_size=2)
    cached._model = minilm._model  # the same loaded model, a cache of two
    texts = ["navy wool coat. Double-breasted.", "white canvas sneakers", "navy wool coat. Double-breasted."]
    fresh = minilm.embed_text(texts)
    first = cached.embed_text(texts)  # the repeat inside one batch is embedded once
    assert (cached.hits, cached.misses) == (0, 2)
    np.testing.assert_allclose(first, fresh, atol=1e-6)
    assert np.array_equal(first[0], first[2])
    again = cached.embed_text(texts[::-1])
    assert (cached.hits, cached.misses) == (3, 2)
    np.testing.assert_array_equal(again, first[::-1])
    cached.embed_text(["a third text"])  # evicts the least recently used: the sneakers
    cached.embed_text(["white canvas sneakers", "navy wool coat. Double-breasted."])
    assert (cached.hits, cached.misses) == (4, 4)
    off = MiniLMTextEmbedder(cache_size=0)
    off._model = minilm._model
    off.embed_text(texts)
    off.embed_text(texts)
    assert (off.hits, off.misses) == (0, 4) and not off._cache


def test_tag_is_frozen() -> None:
    tag = Tag("red", 0.9, "model")
    with pytest.raises(AttributeError):
        tag.value = "blue"  # type: ignore[misc]
