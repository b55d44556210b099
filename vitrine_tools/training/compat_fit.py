"""Fitting the compatibility head (``workers.vision.compat.CompatHead``) on cached backbone features.

The semi-supervised recipe of Revanur et al., "Semi-Supervised Visual Representation Learning for
Fashion Compatibility" (RecSys 2021), on street outfits and unlabelled catalogue items:

1. Outfit loss (labelled): for an outfit, hide one garment; score it and ``negatives`` garments of
   the same category from other training outfits against the rest of the outfit, with the FITB
   score itself (mean type-aware compatibility with each remaining garment); softmax
   cross-entropy at ``temperature`` picks the hidden one. Every batch is a set of outfits.
2. Pseudo-outfits (``pseudo``): each outfit of the batch is rebuilt from catalogue items: every
   garment is replaced by one of its ``knn`` nearest catalogue items of the same category in
   backbone feature space (cosine of pooled features, fixed); the same loss is applied, with
   pseudo-negatives drawn from the catalogue items of that category in the far half (least
   similar to the hidden garment). Weight ``pseudo_weight``.
3. Consistency regularisation (``consistency``): each street garment of the batch is also embedded
   from one of its cached augmented views (``compat_data.cutout_view``); the view's vector is
   pulled onto the clean one's (1 - cosine, weight ``consistency_weight``) and stands in for it in
   the outfit loss with probability ``view_prob``.

The category classifier (``CompatHead.classifier``) is fitted separately (``fit_classifier``, on
street cut-outs, their views and the catalogue pool) and shared by every variant, so an ablation
changes only the style space. All randomness comes from generators seeded by ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from workers.vision.compat import CompatHead

__all__ = ["CompatData", "FitConfig", "fit_classifier", "fit_compat"]


@dataclass
class CompatData:
    x: np.ndarray  # (N, F) float32 clean cut-out features of the training garments: pooled (1280) [+ hist (64)]
    cat: np.ndarray  # (N,) int64 category
    outfit: np.ndarray  # (N,) int64 outfit id
    views: np.ndarray | None  # (N, V, F) float32 augmented views, or None
    cx: np.ndarray  # (M, F) float32 catalogue pool features
    ccat: np.ndarray  # (M,) int64
    colour_dim: int = 0  # the last colour_dim columns of every row are garment_colour (0: none)


@dataclass(frozen=True)
class FitConfig:
    """Defaults: the recipe chosen on the held-out questions (see compat.json for the ablation):
    pseudo-outfits lowered held-out FITB accuracy in every setting tried, so they are off by default."""

    pseudo: bool = False
    consistency: bool = True
    hist: bool = True  # the colour histogram is an input (next to the pooled features)
    colour: bool = True  # workers.vision.compat.garment_colour of the crop is an input too (after the histogram)
    dim: int = 128
    pcs: int = 32
    hidden: int = 64
    members: int = 4
    cls_pcs: int = 128
    dropout: float = 0.5
    input_dropout: float = 0.0
    mask_l2: float = 0.0
    epochs: int = 120
    batch: int = 64
    negatives: int = 15
    lr: float = 2e-3
    weight_decay: float = 1e-2
    temperature: float = 0.1
    pseudo_weight: float = 0.2
    consistency_weight: float = 0.3
    view_prob: float = 0.25
    knn: int = 5
    seed: int = 0

    def variant(self, pseudo: bool, consistency: bool) -> FitConfig:
        return replace(self, pseudo=pseudo, consistency=consistency)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def _members(outfit: np.ndarray) -> np.ndarray:
    """(O, K) int64 garment indices per outfit with >= 2 garments, -1 padded."""
    groups: dict[int, list[int]] = {}
    for i, o in enumerate(outfit.tolist()):
        groups.setdefault(o, []).append(i)
    rows = [g for _, g in sorted(groups.items()) if len(g) >= 2]
    k = max((len(g) for g in rows), default=2)
    out = np.full((len(rows), k), -1, np.int64)
    for r, g in enumerate(rows):
        out[r, : len(g)] = g
    return out


def _neighbours(d: CompatData, knn: int, far: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, knn) nearest and (N, far) far-half catalogue items of each garment's category (-1: none)."""
    near = np.full((len(d.x), knn), -1, np.int64)
    away = np.full((len(d.x), far), -1, np.int64)
    ux, uc = _unit(d.x[:, :1280]), _unit(d.cx[:, :1280])  # backbone feature space only
    for c in np.unique(d.cat):
        rows, pool = np.flatnonzero(d.cat == c), np.flatnonzero(d.ccat == c)
        if len(pool) == 0:
            continue
        order = np.argsort(-(ux[rows] @ uc[pool].T), axis=1)  # (n_c, m_c) most similar first
        near[rows] = pool[order[:, np.minimum(np.arange(knn), len(pool) - 1)]]
        half = order[:, len(pool) // 2 :] if len(pool) > 1 else order
        pick = rng.integers(0, half.shape[1], size=(len(rows), far))
        away[rows] = pool[np.take_along_axis(half, pick, axis=1)]
    return near, away


class _Pools:
    """Uniform draws of garments of a given category (by index array per category)."""

    def __init__(self, cats: np.ndarray, n_categories: int) -> None:
        order = np.argsort(cats, kind="stable")
        self.items = torch.from_numpy(order)
        counts = np.bincount(cats, minlength=n_categories)
        self.start = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)[:-1]]))
        self.count = torch.from_numpy(counts)

    def draw(self, cats: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
        """(B,) categories -> (B, n) garment indices of those categories (needs count >= 1)."""
        u = torch.rand(len(cats), n, generator=gen)
        off = (u * self.count[cats, None]).long().clamp_max(self.count[cats, None] - 1)
        return self.items[self.start[cats, None] + off]


def _fitb_logits(head: CompatHead, ctx: torch.Tensor, ctx_cat: torch.Tensor, mask: torch.Tensor,
                 cand: torch.Tensor, cand_cat: torch.Tensor) -> torch.Tensor:
    """ctx (B, K, D), ctx_cat (B, K), mask (B, K) bool, cand (B, J, D), cand_cat (B,) -> (B, J, M) mean
    compatibility of each candidate with the context garments, per ensemble member (each member's
    own scale: its block's share of the vector times M)."""
    n = len(head.members)
    w = head.pair_weights(ctx_cat, cand_cat[:, None].expand_as(ctx_cat))  # (B, K, D)
    s = torch.einsum("bkmd,bjmd->bkjm", (w * ctx).unflatten(-1, (n, -1)), cand.unflatten(-1, (n, -1))) * n
    m = mask.float()
    return (s * m[:, :, None, None]).sum(1) / m.sum(1)[:, None, None].clamp_min(1)


def _member_ce(logits: torch.Tensor) -> torch.Tensor:
    """(B, J, M) logits, the true candidate at 0 -> mean cross-entropy over rows and members."""
    b, j, m = logits.shape
    flat = logits.permute(0, 2, 1).reshape(b * m, j)
    return F.cross_entropy(flat, torch.zeros(b * m, dtype=torch.long))


def fit_classifier(head: CompatHead, z: torch.Tensor, cats: torch.Tensor, *, epochs: int = 30, seed: int = 0,
                   progress: bool = True) -> None:
    """Fit ``head.classifier`` on whitened features z (n, pcs) with labels (n,), label smoothing 0.1."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.classifier.parameters(), lr=3e-3, weight_decay=1e-3)
    counts = torch.bincount(cats, minlength=int(head.config["n_categories"])).float()
    weight = (counts.sum() / counts.clamp_min(1)).sqrt()  # rare categories count more (sqrt balance)
    for _ in tqdm(range(epochs), desc="compat classifier", disable=not progress):
        for idx in torch.randperm(len(z), generator=gen).split(256):
            loss = F.cross_entropy(head.classifier(z[idx]), cats[idx], weight=weight / weight.mean(),
                                   label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()


def fit_compat(d: CompatData, cfg: FitConfig, *, classifier: CompatHead | None = None,
               progress: bool = True, desc: str = "compat") -> CompatHead:
    """Train a CompatHead on ``d`` with ``cfg``; ``classifier``: copy its whitening and classifier
    (fitted once for all variants) instead of fitting them here.

    Runs on one intra-op thread: the matrices are tiny (about 1,500 rows of 100 numbers a step),
    and on this project's 2-core machine two threads ran a step 3-7 times slower whenever anything
    else was running (thread hand-off dominates such small kernels)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(d, cfg, classifier, progress, desc)
    finally:
        torch.set_num_threads(threads)


def _fit(d: CompatData, cfg: FitConfig, classifier: CompatHead | None, progress: bool, desc: str) -> CompatHead:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    tail = d.x.shape[1] - 1280  # histogram (hist_dim) then garment_colour (d.colour_dim)
    hist_dim = tail - d.colour_dim
    head = CompatHead(dim=cfg.dim, hidden=cfg.hidden, pcs=cfg.pcs, dropout=cfg.dropout, hist_dim=hist_dim,
                      members=cfg.members, cls_pcs=cfg.cls_pcs, colour_dim=d.colour_dim)
    x, cx = torch.from_numpy(d.x.astype(np.float32)), torch.from_numpy(d.cx.astype(np.float32))
    with torch.no_grad():
        if classifier is not None:
            head.whiten.load_state_dict(classifier.whiten.state_dict())
            head.cls_whiten.load_state_dict(classifier.cls_whiten.state_dict())
            head.hist_mean.copy_(classifier.hist_mean)
            head.hist_std.copy_(classifier.hist_std)
            head.classifier.load_state_dict(classifier.classifier.state_dict())
        else:
            both = torch.cat([x, cx])
            head.whiten.fit(both[:, :1280])
            head.cls_whiten.fit(both[:, :1280])
            if tail:
                head.hist_mean.copy_(both[:, 1280:].mean(0))
                head.hist_std.copy_(both[:, 1280:].std(0).clamp_min(1e-3))
        z, zc = head.prepare(x), head.prepare(cx)  # (N, P), (M, P): fixed inputs, P = pcs + hist_dim
        zv = head.prepare(torch.from_numpy(d.views.astype(np.float32))) if d.views is not None else None  # (N, V, P)
    if classifier is None:
        rows, labels = [x, cx], [d.cat, d.ccat]
        if d.views is not None:  # the street domain is the smaller one: its views count too
            rows.append(torch.from_numpy(d.views.reshape(-1, d.views.shape[-1]).astype(np.float32)))
            labels.append(np.repeat(d.cat, d.views.shape[1]))
        with torch.no_grad():
            zcls = head.prepare_cls(torch.cat(rows))
        fit_classifier(head, zcls, torch.from_numpy(np.concatenate(labels)), seed=cfg.seed, progress=progress)
    head.classifier.requires_grad_(False)
    cat, ccat = torch.from_numpy(d.cat), torch.from_numpy(d.ccat)
    members = torch.from_numpy(_members(d.outfit))  # (O, K)
    n_cat = int(head.config["n_categories"])
    street_pool = _Pools(d.cat, n_cat)
    near, away = (torch.from_numpy(a) for a in _neighbours(d, cfg.knn, 64, rng))
    use_pseudo = cfg.pseudo and len(d.cx) > 0
    use_views = cfg.consistency and zv is not None
    params = [p for n, p in head.named_parameters() if not n.startswith("classifier")]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_out = len(members)
    steps = cfg.epochs * max(1, math.ceil(n_out / cfg.batch))
    warm = max(1, steps // 10)  # linear warm-up, then cosine decay to zero
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, i / steps))))
    head.train()
    bar = tqdm(total=steps, desc=desc, disable=not progress, unit="step")
    for _ in range(cfg.epochs):
        for ob in torch.randperm(n_out, generator=gen).split(cfg.batch):
            mem = members[ob]  # (B, K)
            valid = mem >= 0
            b, k = mem.shape
            # hide one garment per outfit, uniformly among its members
            hide_pos = (torch.rand(b, generator=gen) * valid.sum(1)).long()
            hidden = mem[torch.arange(b), hide_pos]  # (B,)
            ctx_mask = valid.clone()
            ctx_mask[torch.arange(b), hide_pos] = False
            safe = mem.clamp_min(0)
            hcat = cat[hidden]
            negs = street_pool.draw(hcat, cfg.negatives, gen)  # (B, Nn)
            neg_ok = negs != hidden[:, None]
            # labelled outfit loss (clean inputs, or views when consistency is on)
            items = torch.cat([safe, negs], 1)  # (B, K + Nn)
            zin = F.dropout(z[items], cfg.input_dropout) if cfg.input_dropout else z[items]
            loss_c = torch.zeros(())
            if use_views:
                assert zv is not None
                vpick = torch.randint(0, zv.shape[1], items.shape, generator=gen)
                zview = zv[items, vpick]
                swap = torch.rand(items.shape, generator=gen) < cfg.view_prob
                f_clean = head.reduced(zin.reshape(-1, zin.shape[-1]), cat[items].reshape(-1))
                f_view = head.reduced(zview.reshape(-1, zin.shape[-1]), cat[items].reshape(-1))
                loss_c = (1 - (f_clean * f_view).sum(-1)).mean()
                f = torch.where(swap.reshape(-1, 1), f_view, f_clean).reshape(b, -1, cfg.dim)
            else:
                f = head.reduced(zin.reshape(-1, zin.shape[-1]), cat[items].reshape(-1)).reshape(b, -1, cfg.dim)
            f_mem, f_neg = f[:, :k], f[:, k:]
            f_hid = f_mem[torch.arange(b), hide_pos]
            cand = torch.cat([f_hid[:, None], f_neg], 1)  # (B, 1 + Nn, D)
            logits = _fitb_logits(head, f_mem, cat[safe], ctx_mask, cand, hcat) / cfg.temperature  # (B, J, M)
            logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(~neg_ok[:, :, None], -1e4)], 1)
            loss = _member_ce(logits)
            if use_pseudo:
                r = torch.randint(0, near.shape[1], mem.shape, generator=gen)
                pmem = near[safe, r]  # (B, K) catalogue stand-ins
                pvalid = valid & (pmem >= 0)
                phid = pmem[torch.arange(b), hide_pos]
                pick = torch.randint(0, away.shape[1], (b, cfg.negatives), generator=gen)
                pneg = away[hidden[:, None], pick]  # (B, Nn) far-half catalogue items
                ok = (phid >= 0) & (pvalid & ctx_mask).any(1)
                if ok.any():
                    pitems = torch.cat([pmem, pneg], 1).clamp_min(0)
                    pf = head.reduced(zc[pitems].reshape(-1, zc.shape[-1]), ccat[pitems].reshape(-1)).reshape(b, -1, cfg.dim)
                    pf_mem, pf_neg = pf[:, :k], pf[:, k:]
                    pcand = torch.cat([pf_mem[torch.arange(b), hide_pos][:, None], pf_neg], 1)
                    pl = _fitb_logits(head, pf_mem, cat[safe], pvalid & ctx_mask, pcand, hcat) / cfg.temperature
                    loss = loss + cfg.pseudo_weight * _member_ce(pl[ok])
            if use_views:
                loss = loss + cfg.consistency_weight * loss_c
            if cfg.mask_l2:
                loss = loss + cfg.mask_l2 * head.pair_logits.pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return head.eval().requires_grad_(False)
