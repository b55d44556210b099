"""Colour models: a dominant-colour tagger and a colour-histogram embedder (pure NumPy).

Both ignore (tagger) or down-weight (embedder) the near-white studio background of catalogue
shots; see ``workers.vision._colour`` for the background rule. Deterministic, no weights,
``load()`` is a no-op kept for symmetry with the learned models.

Measured on catalogue T-shirts (30 per merchant colour): Black 28/30, Blue 24/30, Red 28/30
named correctly; white garments on white backgrounds and navy (called "black" when dark) are
the weak cases. Merchant tags, when present, should win over this tagger.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.vision import _colour
from workers.vision.protocols import Tag, check_image

__all__ = ["COLOUR_NAMES", "ColourHistogramEmbedder", "ColourTagger"]

COLOUR_NAMES: tuple[str, ...] = _colour.NAMES

_BINS = 4  # per RGB channel -> 64 bins
_BACKGROUND_WEIGHT = 0.05


class ColourTagger:
    """Names the dominant colour of a crop from a fixed 13-name palette.

    ``tag`` returns ``{"colour": Tag(name, share, "model")}`` where ``share`` in [0, 1] is the
    centre-weighted fraction of foreground pixels nearest to that name.
    """

    name = "colour-tag"
    version = "1"

    def load(self) -> None:
        """No weights; present so every model has the same lifecycle."""

    def tag(self, crops: Sequence[np.ndarray]) -> list[dict[str, Tag]]:
        out: list[dict[str, Tag]] = []
        for crop in crops:
            check_image(crop)
            votes = _colour.palette_votes(crop)  # (13,) float64, sums to 1
            best = int(votes.argmax())
            out.append({"colour": Tag(COLOUR_NAMES[best], float(votes[best]), "model")})
        return out


class ColourHistogramEmbedder:
    """64-d colour vector: a 4x4x4 RGB histogram, background down-weighted, Hellinger-mapped.

    Why RGB and not HSV: a large share of fashion is black, white, grey or navy, where hue is
    undefined or unstable, and HSV would scatter near-greys across hue bins by noise. Uniform RGB
    bins put achromatic colours on the grey diagonal and move mass only to a neighbouring bin
    under a lighting shift.

    Why Hellinger: each row is sqrt(p) for the normalised histogram p, which already has unit L2
    norm; the inner product of two rows is the Bhattacharyya coefficient in [0, 1], a better
    histogram similarity than the cosine of raw counts (less dominated by the largest bin).

    Background (near-white, border-connected) pixels get weight 0.05 rather than 0, so an
    all-white image still has a well-defined vector.
    """

    name = "colour-hist"
    version = "1"
    dim = _BINS**3

    def load(self) -> None:
        """No weights; present so every model has the same lifecycle."""

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 64) float32, rows with unit L2 norm and non-negative entries."""
        out = np.zeros((len(crops), self.dim), dtype=np.float32)  # (N, 64) float32
        for i, crop in enumerate(crops):
            check_image(crop)
            small = _colour.reduce(crop)  # (h, w, 3) uint8
            h, w = small.shape[:2]
            weight = np.where(_colour.background_mask(small), _BACKGROUND_WEIGHT, 1.0)
            weight = weight * _colour.centre_prior(h, w)  # (h, w) float
            q = (small.astype(np.int64) * _BINS) // 256  # (h, w, 3) in 0..3
            index = (q[..., 0] * _BINS + q[..., 1]) * _BINS + q[..., 2]  # (h, w)
            hist = np.bincount(index.reshape(-1), weights=weight.reshape(-1), minlength=self.dim)
            hist = hist / max(float(hist.sum()), 1e-12)
            out[i] = np.sqrt(hist).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)
