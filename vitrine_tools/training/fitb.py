"""Fill-in-the-blank (FITB) scoring: the compatibility head against a visual and a random baseline.

Each question is an outfit with one garment hidden and four candidates of the hidden category;
a method scores each candidate completing the outfit and picks the highest.

- ``vitrine``: ``CompatHead.outfit_score`` of the completed outfit (mean type-aware compatibility
  over its pairs). The candidates' category is the question's; the outfit items' categories are
  not in the file, so ``CompatHead.predict_category`` names them.
- ``visual``: cosine of the candidate's L2-normalised pooled ImageNet features (the untrained
  EfficientNet-Lite0: ``Lite0Backbone.pooled`` is ``EfficientNetEmbedder.core``, so these are the
  baseline pipeline's vectors) with the mean of the outfit items' ones, i.e. the candidate closest
  to the outfit's mean.
- ``random``: seeded uniform scores.

Figures per method: ``fitb_accuracy`` (the true candidate scores highest), ``compat_auc`` (AUC of
the true candidate against the three others of its question, each scored as the outfit it
completes: the share of (true, false) pairs ordered right, ties half), ``compat_auc_pooled`` (ROC AUC
of all completed outfits' scores, true vs false completions pooled over the questions, as
Polyvore's outfit-compatibility AUC: it also asks the scores to be comparable across outfits),
``by_category`` (accuracy by hidden category), ``n``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from vitrine_tools.training.compat_data import Question
from workers.vision.compat import CompatHead, category_ids

__all__ = ["METHODS", "fitb_report", "plot_by_category", "score_questions"]

METHODS = ("vitrine", "visual", "random")


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def score_questions(questions: Sequence[Question], index: dict[Path, int], features: np.ndarray,
                    head: CompatHead | None, seed: int = 0) -> dict[str, np.ndarray]:
    """{method: (Q, 4) float scores}; ``features`` (n, 1280 [+ 64]) rows addressed by ``index[path]``:
    pooled features first (the visual baseline reads those), then what else the head takes."""
    out: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(seed)
    out["random"] = rng.random((len(questions), 4))
    v = _unit(features[:, :1280].astype(np.float32))
    out["visual"] = np.array([v[[index[p] for p in q.candidates]] @ v[[index[p] for p in q.outfit]].mean(0)
                              for q in questions])
    if head is not None:
        pooled = features[:, : head.feature_dim]
        predicted = head.predict_category(pooled)  # (n,) int64
        # one style vector per (image, category it is used as); candidates take the question's category
        uses = sorted({(index[p], int(predicted[index[p]])) for q in questions for p in q.outfit}
                      | {(index[p], int(category_ids([q.category])[0])) for q in questions for p in q.candidates})
        at = {u: i for i, u in enumerate(uses)}
        vecs = head.embed(pooled[[r for r, _ in uses]], np.array([c for _, c in uses], np.int64))
        scores = np.zeros((len(questions), len(questions[0].candidates) if questions else 4))
        for qi, q in enumerate(questions):
            ctx = [at[(index[p], int(predicted[index[p]]))] for p in q.outfit]
            qc = int(category_ids([q.category])[0])
            for j, p in enumerate(q.candidates):
                rows = [*ctx, at[(index[p], qc)]]
                cats = np.array([uses[r][1] for r in rows], np.int64)
                scores[qi, j] = head.outfit_score(vecs[rows], cats)
        out["vitrine"] = scores
    return out


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + P(tie) / 2 (Mann-Whitney)."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    r = rankdata(np.concatenate([pos, neg]))
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fitb_report(questions: Sequence[Question], scores: np.ndarray) -> dict[str, Any]:
    """(Q, 4) scores of one method -> its figures."""
    answers = np.array([q.answer for q in questions])
    q = np.arange(len(questions))
    hit = scores.argmax(1) == answers
    true = scores[q, answers]
    false_mask = np.ones_like(scores, dtype=bool)
    false_mask[q, answers] = False
    within = (true[:, None] > scores).astype(float) + 0.5 * (true[:, None] == scores)
    by_cat: dict[str, float] = {}
    for c in sorted({x.category for x in questions}):
        sel = np.array([x.category == c for x in questions])
        by_cat[c] = round(float(hit[sel].mean()), 4)
    return {"fitb_accuracy": round(float(hit.mean()), 4) if len(hit) else float("nan"),
            "compat_auc": round(float(within[false_mask.nonzero()].mean()), 4) if len(hit) else float("nan"),
            "compat_auc_pooled": round(_auc(true, scores[false_mask]), 4),
            "n": len(questions), "by_category": by_cat,
            "n_by_category": {c: sum(x.category == c for x in questions) for c in by_cat}}


def plot_by_category(result: dict[str, Any], path: Path, title: str) -> None:
    """Grouped bars of accuracy by hidden category, one bar per method (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if m in result]
    cats = list(result[methods[0]]["by_category"])
    counts = result[methods[0]]["n_by_category"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(cats) + 2), 4))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        ax.bar([j + (i - (len(methods) - 1) / 2) * width for j in range(len(cats))],
               [result[m]["by_category"][c] for c in cats], width,
               label=f"{m} ({result[m]['fitb_accuracy']:.3f})")
    ax.axhline(0.25, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(cats)), [f"{c}\n(n={counts[c]})" for c in cats], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("FITB accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
