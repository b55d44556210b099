"""Cheap deterministic stand-ins for the learned models, for unit tests elsewhere.

``HashEmbedder`` / ``HashTextEmbedder`` map content to a unit vector drawn from a NumPy RNG seeded
by a BLAKE2b digest of the content (array bytes plus shape, or UTF-8 text). Same content, same
vector, in every process and on every machine; different content, an unrelated (nearly
orthogonal) vector. They carry no semantics: "red dress" is no closer to "crimson gown" than to
anything else. No weights, no torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from workers.vision.protocols import check_image

if TYPE_CHECKING:
    from workers.vision.pipeline import VisionPipeline

__all__ = ["HashEmbedder", "HashTextEmbedder", "fake_pipeline"]


def _unit_vector(digest_input: bytes, dim: int) -> np.ndarray:
    """(dim,) float32 unit vector, a pure function of ``digest_input`` and ``dim``."""
    seed = int.from_bytes(hashlib.blake2b(digest_input, digest_size=16).digest(), "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


class HashEmbedder:
    """Deterministic image "embedder": (N, dim) float32 unit rows from the crops' bytes."""

    def __init__(self, dim: int = 32, name: str = "hash", version: str = "1") -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.name = name
        self.version = version

    def load(self) -> None:
        """No weights."""

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(crops), self.dim), dtype=np.float32)  # (N, dim) float32
        for i, crop in enumerate(crops):
            check_image(crop)
            key = repr(crop.shape).encode() + np.ascontiguousarray(crop).tobytes()
            out[i] = _unit_vector(key, self.dim)
        return out


class HashTextEmbedder:
    """Deterministic text "embedder": (N, dim) float32 unit rows from the UTF-8 text."""

    def __init__(self, dim: int = 32, name: str = "hash-text", version: str = "1") -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.name = name
        self.version = version

    def load(self) -> None:
        """No weights."""

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)  # (N, dim) float32
        for i, text in enumerate(texts):
            out[i] = _unit_vector(b"text:" + text.encode("utf-8"), self.dim)
        return out


def fake_pipeline(image_dim: int = 32, text_dim: int = 32) -> VisionPipeline:
    """A deterministic, weight-free ``VisionPipeline`` for unit tests (usable without ``load()``)."""
    from workers.vision.colour import ColourHistogramEmbedder, ColourTagger
    from workers.vision.detectors import WholeImageDetector
    from workers.vision.pipeline import VisionPipeline

    return VisionPipeline(detector=WholeImageDetector(), tagger=ColourTagger(), embedder=HashEmbedder(image_dim),
                          colour=ColourHistogramEmbedder(), text=HashTextEmbedder(text_dim))
