"""Fitting the heads on cached backbone features (CPU or GPU), each a plain function.

- ``fit_tagger``: every attribute group on catalogue train products (the clean shot and its
  generated views); the coarse ``category`` group also on real-shot and street crops of the
  train halves, so the category classifier has seen the query domains. Cross-entropy with label
  smoothing, samples whose value is outside the taxonomy ignored.
- ``fit_projection``: two losses on one 256-d space. Instance InfoNCE (temperature 0.05, in-batch
  negatives) pulls a generated view and a ``-b`` twin onto its source product; a normalised-softmax
  category loss (scale 16) over proxies pulls catalogue, real-shot and street crops of one coarse
  category together, domains balanced in every batch: the real-shot vs catalogue gap is closed by
  sharing the proxies.
- ``fit_detector``: CenterNet on the 14x14 grid: focal loss on Gaussian class heatmaps, L1 on
  log box size and centre offset at object centres.

All randomness comes from ``torch.Generator`` / NumPy generators seeded by ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from workers.vision.heads import CANVAS, GRID, STRIDE, DetectorHead, ProjectionHead, TaggerHeads

__all__ = ["DetSample", "fit_detector", "fit_projection", "fit_tagger"]


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


def fit_tagger(pooled: np.ndarray, hist: np.ndarray, labels: dict[str, np.ndarray], groups: dict[str, int],
               *, epochs: int = 30, seed: int = 0, device: str = "cpu", progress: bool = True) -> TaggerHeads:
    """pooled (N, 1280), hist (N, 64), labels {group: (N,) int64, -1 = unknown}."""
    torch.manual_seed(seed)
    model = TaggerHeads(groups).to(device)
    x, hx = _t(pooled).to(device), _t(hist).to(device)
    with torch.no_grad():
        model.whiten.fit(x[:: max(1, len(x) // 20000)])
        model.hist_norm.set(hx)
        z = model.whiten(x)  # (N, pcs): the fixed part, computed once
    y = {g: torch.from_numpy(labels[g]).long().to(device) for g in groups}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    n, bs = len(x), 256
    steps = epochs * math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(epochs), desc="tagger", disable=not progress):
        for idx in torch.randperm(n, generator=gen).split(bs):
            idx = idx.to(device)
            out = model.reduced(z[idx], hx[idx])
            loss = sum(F.cross_entropy(out[g], y[g][idx], ignore_index=-1, label_smoothing=0.1)
                       for g in groups if bool((y[g][idx] >= 0).any()))
            opt.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            sched.step()
    return model.eval().requires_grad_(False).cpu()


def fit_projection(
    domains: Sequence[tuple[np.ndarray, np.ndarray]],
    pairs: tuple[np.ndarray, np.ndarray],
    n_categories: int,
    *, steps: int = 1000, seed: int = 0, device: str = "cpu", progress: bool = True,
) -> ProjectionHead:
    """domains: [(pooled (N_d, 1280), category (N_d,) int64, -1 unknown)], catalogue first;
    pairs: (anchors (P, 1280), positives (P, 1280)) of the same product."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ProjectionHead(n_categories=n_categories).to(device)
    with torch.no_grad():
        model.whiten.fit(_t(np.concatenate([d[0] for d in domains] + [pairs[0]])[:: 2]).to(device))
        labelled = [(model.whiten(_t(x[c >= 0]).to(device)), torch.from_numpy(c[c >= 0]).long().to(device))
                    for x, c in domains]
        a, p = model.whiten(_t(pairs[0]).to(device)), model.whiten(_t(pairs[1]).to(device))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps)
    per_domain = [256] + [128] * (len(labelled) - 1)
    model.train()
    for _ in tqdm(range(steps), desc="projection", disable=not progress):
        j = torch.from_numpy(rng.choice(len(a), min(384, len(a)), replace=False)).to(device)
        za, zp = model.reduced(a[j]), model.reduced(p[j])
        logits = za @ zp.T / 0.05
        target = torch.arange(len(j), device=device)
        inst = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        xs, ys = [], []
        for (x, c), k in zip(labelled, per_domain):
            i = torch.from_numpy(rng.choice(len(x), min(k, len(x)), replace=False)).to(device)
            xs.append(x[i])
            ys.append(c[i])
        z = model.reduced(torch.cat(xs))
        cat = F.cross_entropy(16.0 * z @ F.normalize(model.proxies, dim=1).T, torch.cat(ys), label_smoothing=0.1)
        loss = inst + cat
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval().requires_grad_(False).cpu()


class DetSample:
    """One detector training image: its maps and its boxes on the 224 canvas."""

    def __init__(self, s16: np.ndarray, s32: np.ndarray, boxes: np.ndarray, classes: np.ndarray) -> None:
        self.s16, self.s32 = s16, s32  # (112, 14, 14), (1280, 7, 7) float16
        self.boxes, self.classes = boxes, classes  # (K, 4) float32 canvas, (K,) int64


def _targets(samples: Sequence[DetSample], n_classes: int) -> tuple[torch.Tensor, ...]:
    b = len(samples)
    hm = torch.zeros(b, n_classes, GRID, GRID)
    wh = torch.zeros(b, 2, GRID, GRID)
    off = torch.zeros(b, 2, GRID, GRID)
    mask = torch.zeros(b, GRID, GRID)
    ys, xs = torch.meshgrid(torch.arange(GRID).float(), torch.arange(GRID).float(), indexing="ij")
    for i, s in enumerate(samples):
        for box, c in zip(s.boxes, s.classes):
            w, h = max(box[2] - box[0], 2.0), max(box[3] - box[1], 2.0)
            cx, cy = (box[0] + box[2]) / 2 / STRIDE, (box[1] + box[3]) / 2 / STRIDE
            gx, gy = int(np.clip(cx, 0, GRID - 1e-3)), int(np.clip(cy, 0, GRID - 1e-3))
            sigma = max(0.5, min(w, h) / STRIDE / 4)
            g = torch.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * sigma**2))
            hm[i, c] = torch.maximum(hm[i, c], g)
            wh[i, :, gy, gx] = torch.tensor([math.log(w / CANVAS), math.log(h / CANVAS)])
            off[i, :, gy, gx] = torch.tensor([float(np.clip(cx - gx, 0, 1)), float(np.clip(cy - gy, 0, 1))])
            mask[i, gy, gx] = 1.0
    return hm, wh, off, mask


def _focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp_min(1.0)


def fit_detector(samples: Sequence[DetSample], n_classes: int, *, epochs: int = 10, seed: int = 0,
                 device: str = "cpu", progress: bool = True) -> DetectorHead:
    torch.manual_seed(seed)
    model = DetectorHead(n_classes=n_classes).to(device)
    s16_all = np.stack([s.s16 for s in samples])  # (N, 112, 14, 14) float16, in RAM
    with torch.no_grad():
        cells = np.concatenate([np.asarray(s.s32, np.float32).reshape(1280, -1).T for s in samples[:: max(1, len(samples) // 600)]])
        model.s32_whiten.fit(torch.from_numpy(cells).to(device))
        model.s16_norm.set(torch.from_numpy(np.asarray(s16_all[:: max(1, len(samples) // 600)], np.float32))
                           .permute(0, 2, 3, 1).reshape(-1, s16_all.shape[1]).to(device))
        r32_all = torch.cat([model.reduce_s32(torch.from_numpy(np.stack([s.s32 for s in samples[lo : lo + 256]])
                                                               .astype(np.float32)).to(device))
                             for lo in range(0, len(samples), 256)])  # (N, 64, 7, 7): fixed, once
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    bs = 64
    steps = epochs * math.ceil(len(samples) / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    bar = tqdm(total=steps, desc="detector", disable=not progress)
    for _ in range(epochs):
        for idx in torch.randperm(len(samples), generator=gen).split(bs):
            ids = idx.tolist()
            batch = [samples[i] for i in ids]
            s16 = torch.from_numpy(s16_all[ids].astype(np.float32)).to(device)
            hm_t, wh_t, off_t, mask = (t.to(device) for t in _targets(batch, n_classes))
            hm, wh, off = model.reduced(s16, r32_all[idx.to(device)])
            m = mask.unsqueeze(1)
            npos = mask.sum().clamp_min(1.0)
            loss = (_focal(hm, hm_t) + (F.l1_loss(wh * m, wh_t * m, reduction="sum") / npos)
                    + (F.l1_loss(off * m, off_t * m, reduction="sum") / npos))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.3f}")
    bar.close()
    return model.eval().requires_grad_(False).cpu()
