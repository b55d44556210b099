"""Ranking measures over graded relevance (0, 1, 2), as Myntra's neural product search reports them.

Binary measures (MRR, MAP@50, P@k, R@50) count grade 2 as relevant; NDCG@10 uses the grades as gains
(2^g - 1) against the ideal ordering of the whole gallery's grades. Each function takes the grades of
the ranked results, in order, and what it needs of the gallery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["map_at", "mrr", "ndcg_at", "precision_at", "recall_at", "summarise"]

RELEVANT = 2


def mrr(grades: Sequence[int]) -> float:
    """1 / rank of the first relevant result; 0 when none is."""
    return next((1.0 / (i + 1) for i, g in enumerate(grades) if g >= RELEVANT), 0.0)


def precision_at(grades: Sequence[int], k: int) -> float:
    return sum(g >= RELEVANT for g in grades[:k]) / k


def recall_at(grades: Sequence[int], k: int, n_relevant: int) -> float:
    return sum(g >= RELEVANT for g in grades[:k]) / n_relevant if n_relevant else 0.0


def map_at(grades: Sequence[int], k: int, n_relevant: int) -> float:
    """Average precision over the first ``k``, normalised by min(k, relevant in the gallery)."""
    hits, total = 0, 0.0
    for i, g in enumerate(grades[:k]):
        if g >= RELEVANT:
            hits += 1
            total += hits / (i + 1)
    denom = min(k, n_relevant)
    return total / denom if denom else 0.0


def ndcg_at(grades: Sequence[int], k: int, gallery_grades: Sequence[int]) -> float:
    def dcg(gs: Sequence[int]) -> float:
        return sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(gs[:k]))

    ideal = dcg(sorted(gallery_grades, reverse=True))
    return dcg(grades) / ideal if ideal else 0.0


def summarise(per_query: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of every measure over the queries, rounded."""
    keys = per_query[0].keys() if per_query else []
    return {k: round(sum(q[k] for q in per_query) / len(per_query), 4) for k in keys}
