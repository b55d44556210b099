"""Category prediction by fusion: the classifier's probabilities plus the categories of the nearest
indexed neighbours (Pailitao's "model + search results" vote). Pure NumPy.

    p_nn[c]  = sum over the k nearest hits of category c of exp(score / T), normalised
    p_fused  = (1 - w) * p_model + w * p_nn          (w = ``FusionConfig.weight``)

Why both: the classifier generalises across domains but confuses near categories (top vs
T-shirt); the neighbours carry the catalogue's own labels, and a query whose 20 nearest items are
all shirts is a shirt. Neighbours with an empty or unknown category do not vote; with no voting
neighbour the prediction is the classifier's (``fused`` False). ``weight``, ``k`` and ``T`` are
chosen at training time on a validation slice of the real-shot training half (see
``vitrine_tools.training``) and shipped in the projection head's record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workers.vision.taxonomy import GROUPS

__all__ = ["CategoryPrediction", "FusionConfig", "fuse_category", "neighbour_probs"]

CATEGORIES: tuple[str, ...] = GROUPS["category"]
_POS = {c: i for i, c in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class FusionConfig:
    weight: float = 0.5
    k: int = 20
    temperature: float = 0.05


@dataclass(frozen=True)
class CategoryPrediction:
    value: str
    confidence: float
    model: str  # the classifier's own top category
    fused: bool  # True when neighbours voted
    probs: np.ndarray  # (C,) float64, sums to 1, order of GROUPS["category"]


def neighbour_probs(categories: Sequence[str], scores: Sequence[float], temperature: float = 0.05) -> np.ndarray | None:
    """(C,) float64 vote shares of the hits' categories, or None when none of them has one."""
    votes = np.zeros(len(CATEGORIES))
    s = np.asarray(scores, dtype=np.float64)
    w = np.exp((s - (s.max() if len(s) else 0.0)) / temperature)
    for c, wi in zip(categories, w):
        i = _POS.get(str(c).strip().lower())
        if i is not None:
            votes[i] += wi
    total = votes.sum()
    return votes / total if total > 0 else None


def fuse_category(p_model: np.ndarray, hit_categories: Sequence[str], hit_scores: Sequence[float],
                  config: FusionConfig = FusionConfig()) -> CategoryPrediction:
    """p_model (C,) probabilities + the k nearest hits (best first) -> the fused prediction."""
    p_model = np.asarray(p_model, dtype=np.float64)
    p_nn = neighbour_probs(list(hit_categories)[: config.k], list(hit_scores)[: config.k], config.temperature)
    probs = p_model if p_nn is None else (1 - config.weight) * p_model + config.weight * p_nn
    best = int(probs.argmax())
    return CategoryPrediction(CATEGORIES[best], float(probs[best]), CATEGORIES[int(p_model.argmax())],
                              p_nn is not None, probs)
