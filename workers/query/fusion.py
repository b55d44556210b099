"""Re-ranking a query's hits by what the models and the query say (pure functions over hits).

- ``category_rerank``: Pailitao-style category prediction by fusion (``workers.vision.fusion``):
  the classifier's probabilities for the query's main region plus the categories of its nearest
  indexed neighbours give a predicted category. Hits of that category get ``score += boost *
  confidence``; when the prediction is confident (>= ``restrict_at``) and at least ``k`` hits
  agree, the others are dropped (restrict). A request that filters on category is left alone.
- ``attribute_boost``: hits whose hot fields agree with the values a text query names
  (``workers.query.parse``) get ``score += boost`` per agreeing field; never a hard filter.

Scores stay "larger = more similar"; the order is by the new score, ties kept in search order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.store import SearchHit
from workers.vision.fusion import CategoryPrediction, FusionConfig, fuse_category

__all__ = ["SEARCH_POOL", "attribute_boost", "category_rerank", "prediction_json"]

SEARCH_POOL = 50  # hits fetched before re-ranking (>= the fusion's k neighbours)


def _rescore(hits: Sequence[SearchHit], bonus: Sequence[float], part: str) -> list[SearchHit]:
    """Each hit's score plus its bonus, re-sorted; the bonus is kept as the score's part ``part``."""
    scored = [SearchHit(h.product_id, h.score + b, h.fields, {**h.parts, part: h.parts.get(part, 0.0) + b} if b
                        else h.parts) for h, b in zip(hits, bonus)]
    return [h for _, h in sorted(enumerate(scored), key=lambda t: (-t[1].score, t[0]))]


def category_rerank(hits: Sequence[SearchHit], probs: np.ndarray, k: int, config: FusionConfig | None = None,
                    *, boost: float = 0.1, restrict_at: float = 0.8) -> tuple[list[SearchHit], CategoryPrediction]:
    pred = fuse_category(probs, [str(h.fields.get("category", "")) for h in hits], [h.score for h in hits],
                         config or FusionConfig())
    agree = [str(h.fields.get("category", "")).lower() == pred.value for h in hits]
    out = _rescore(hits, [boost * pred.confidence if a else 0.0 for a in agree], "category_fusion")
    if pred.confidence >= restrict_at and sum(agree) >= k:
        out = [h for h in out if str(h.fields.get("category", "")).lower() == pred.value]
    return out, pred


def attribute_boost(hits: Sequence[SearchHit], attributes: dict[str, str], boost: float = 0.05) -> list[SearchHit]:
    if not attributes:
        return list(hits)
    bonus = [boost * sum(str(h.fields.get(g, "")).lower() == v for g, v in attributes.items()) for h in hits]
    return _rescore(hits, bonus, "attribute_match")


def prediction_json(pred: CategoryPrediction, model_version: str) -> dict[str, Any]:
    return {"value": pred.value, "confidence": round(pred.confidence, 4), "model": pred.model,
            "fused": pred.fused, "model_version": model_version}
