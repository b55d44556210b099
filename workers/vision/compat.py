"""The style-compatibility head ("complete the look"), type-aware, on the shared backbone features.

Input: ``features`` (B, ``feature_dim``) float32 and the garment's coarse category (an index into
``workers.vision.taxonomy.GROUPS["category"]``, or its name). ``features`` is the EfficientNet-Lite0
pooled vector (``workers.vision.backbone.Features.pooled``, 1280, the vector the other heads read),
followed, when the head was trained with it (``config["hist_dim"] == 64``, as shipped), by the
64-d ``ColourHistogramEmbedder`` vector of the same image: the ingest pipeline computes both for
every main region already. Why the histogram: colour is most of what street outfits agree on, and
pooled ImageNet features keep little of it; on the held-out questions it added 3-4 FITB points.
Then, when ``config["colour_dim"]`` is set, ``garment_colour`` of the same crop (Lab moments,
hue/lightness histograms, dominant colours of the garment's own pixels, the white background
left out): ``style_inputs(pooled, hist, crops)`` computes it, so serving passes the crops the
histogram was computed from. On the held-out questions it added 4-5 FITB points over pooled +
histogram (0.446 -> 0.50 at the same split and recipe).
Output: ``f(x, c)``, a (B, ``dim``) unit style vector (128-d as shipped): what the index stores.

Compatibility (type-aware embedding, Vasileva et al., ECCV 2018): two garments are compared in a
subspace chosen by their pair of categories, a learned non-negative mask ``m[ca, cb]`` (symmetric,
one per unordered pair) applied elementwise to both vectors:

    compat(a, ca, b, cb) = <m ⊙ f(a), m ⊙ f(b)> = <w[ca, cb] ⊙ f(a), f(b)>,   w = m² >= 0

Larger = more compatible (the convention everywhere here). ``w`` is normalised to mean 1 over the
dimensions (of each ensemble member's block: see ``CompatHead``), so an untrained pair is plain
cosine and no pair can win by scale alone.

Serving (one Milvus vector field, metric IP): the stored vector is ``f(b)`` of each product; to
complete a look for garment ``a`` with garments of category ``cb``, search with
``query_vector(f(a), ca, cb) = w[ca, cb] ⊙ f(a)`` filtered by ``category == cb``: the inner product
then IS ``compat``. The transform touches the query only, never the stored vectors.

``outfit_score``: mean pairwise compatibility over the outfit's items (the FITB score: the
candidate that maximises it completes the outfit). ``predict_category``: a linear category
classifier on the same features, for inputs whose category is unknown (FITB question files name
only the hidden item's category). ``complements``: the default categories that complete a look
for each category, derived at training from co-occurrence in the street outfits (stored with the
weights: ``compat.json`` says how).

Weights: ``weights/compat.pt`` (``{"kind": "compat", "config", "state_dict", "extra"}``, float16
on disk, ``weights_only`` load) with ``compat.json``, the record of how they were made.
``load_compat`` reads them; ``version`` is the sha256 prefix of the file, as for the other heads.
Nothing happens at import; construction does no I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workers.vision import _colour
from workers.vision.heads import Whiten
from workers.vision.taxonomy import GROUPS

__all__ = ["COLOUR_DIM", "COMPAT_FILE", "CompatHead", "category_ids", "garment_colour", "load_compat", "save_compat"]

COMPAT_FILE = "compat.pt"
_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CATEGORIES: tuple[str, ...] = GROUPS["category"]

Categories = Sequence[int | str] | np.ndarray | torch.Tensor


def category_ids(categories: Categories) -> torch.Tensor:
    """Names or indices of ``GROUPS["category"]`` -> (n,) int64 tensor; KeyError on an unknown name."""
    if isinstance(categories, torch.Tensor):
        return categories.long()
    if isinstance(categories, np.ndarray) and categories.dtype.kind in "iu":
        return torch.from_numpy(categories.astype(np.int64))
    idx = {c: i for i, c in enumerate(CATEGORIES)}
    return torch.tensor([c if isinstance(c, (int, np.integer)) else idx[str(c)] for c in categories], dtype=torch.long)


_HUES, _FINE_HUES = 12, 16
#: Width of ``garment_colour``: 7 Lab moments, a coarse (4 + 12 x 2) and a fine (5 + 16 x 3) hue /
#: lightness histogram, 3 dominant colours (L, a, b, share) and the mean Lab of the upper and lower half.
COLOUR_DIM = 7 + (4 + 2 * _HUES) + (5 + 3 * _FINE_HUES) + 3 * 4 + 2 * 3


def _dominant(lab: np.ndarray, p: np.ndarray, k: int = 3, iters: int = 8) -> np.ndarray:
    """(n, 3) Lab pixels with weights p (sum 1) -> (4k,) weighted k-means centres (L, a, b / 100 and
    share), largest share first; deterministic (initialised at weighted lightness quantiles)."""
    order = np.argsort(lab[:, 0], kind="stable")
    cum = np.cumsum(p[order])
    cent = lab[order[np.searchsorted(cum, (np.arange(k) + 0.5) / k).clip(0, len(order) - 1)]].copy()
    for _ in range(iters):
        a = ((lab[:, None] - cent[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            m = a == j
            if p[m].sum() > 0:
                cent[j] = (p[m] @ lab[m]) / p[m].sum()
    a = ((lab[:, None] - cent[None]) ** 2).sum(-1).argmin(1)
    share = np.bincount(a, weights=p, minlength=k)
    return np.concatenate([np.append(cent[j] / 100.0, share[j]) for j in np.argsort(-share, kind="stable")])


def garment_colour(crops: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W, 3) uint8 garment crops -> (n, COLOUR_DIM) float32 colour of the garment's own pixels.

    The crop is reduced to at most 64 px (``_colour.reduce``) and its background (near-white pixels
    connected to the border, ``_colour.background_mask``: the white of cut-outs and catalogue shots)
    gets weight 0 (all pixels count when under 3 % are left), so, unlike the 64-d histogram (which
    keeps 0.05 on the background and a centre prior), only the garment's colour is described, in
    CIE Lab: mean L/100, a/100, b/100, std L/50, a/50, b/50, mean chroma/100; two Hellinger-mapped
    (sqrt of shares) histograms, coarse (4 lightness bins of the achromatic pixels, C* < 12, and 12
    hues x 2 lightness bins) and fine (5 achromatic lightness bins under C* < 10, 16 hues x 3
    lightness bins); 3 dominant colours (weighted k-means: Lab/100 and share, largest first); the
    mean Lab/100 of the garment's upper and lower half. No size, shape or resolution enters."""
    out = np.zeros((len(crops), COLOUR_DIM), np.float32)
    for i, crop in enumerate(crops):
        small = _colour.reduce(np.ascontiguousarray(crop[..., :3], dtype=np.uint8))
        h, w = small.shape[:2]
        wgt = (~_colour.background_mask(small)).astype(np.float64)
        if wgt.sum() < 0.03 * h * w:
            wgt = np.ones((h, w))
        lab2 = _colour.srgb_to_lab(small).astype(np.float64)  # (h, w, 3)
        halves = []
        for rows in (slice(0, h // 2), slice(h // 2, h)):
            m = np.zeros_like(wgt)
            m[rows] = wgt[rows]
            m = m if m.sum() > 0 else wgt
            halves.append((m.reshape(-1) / m.sum()) @ lab2.reshape(-1, 3) / 100.0)
        lab, p = lab2.reshape(-1, 3), wgt.reshape(-1) / wgt.sum()
        mean = p @ lab
        std = np.sqrt(np.maximum(p @ (lab - mean) ** 2, 0.0))
        chroma = np.hypot(lab[:, 1], lab[:, 2])
        turn = (np.arctan2(lab[:, 2], lab[:, 1]) / (2 * np.pi)) % 1.0
        light = np.clip(lab[:, 0], 0, 99.999)
        hue = (turn * _HUES).astype(np.int64) % _HUES
        coarse = np.where(chroma < 12.0, (light // 25).astype(np.int64), 4 + hue * 2 + (light >= 50).astype(np.int64))
        fine_hue = (turn * _FINE_HUES).astype(np.int64) % _FINE_HUES
        fine = np.where(chroma < 10.0, (light // 20).astype(np.int64), 5 + fine_hue * 3 + np.digitize(light, [35, 65]))
        out[i] = np.concatenate([mean / 100.0, std / 50.0, [float(p @ chroma) / 100.0],
                                 np.sqrt(np.bincount(coarse, weights=p, minlength=4 + 2 * _HUES)),
                                 np.sqrt(np.bincount(fine, weights=p, minlength=5 + 3 * _FINE_HUES)),
                                 _dominant(lab, p), *halves])
    return out


def _cat(c: int | str) -> int:
    return int(category_ids([c])[0])


class _Member(nn.Module):
    """One member of the ensemble: prepared features + category -> (B, d) unit rows."""

    def __init__(self, width: int, n_categories: int, cat_dim: int, hidden: int, d: int, dropout: float) -> None:
        super().__init__()
        self.cat_emb = nn.Embedding(n_categories, cat_dim)
        self.mlp = nn.Sequential(nn.Linear(width + cat_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, d))
        self.skip = nn.Linear(width, d, bias=False)

    def forward(self, z: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        h = self.mlp(torch.cat([z, self.cat_emb(cats)], dim=1)) + self.skip(z)
        return F.normalize(h, dim=1, eps=1e-12)


class CompatHead(nn.Module):
    """features (B, in_dim [+ hist_dim]) + category (B,) -> (B, dim) unit style vectors, and the masks.

    ``members`` small networks, trained side by side with a loss each, fill consecutive blocks of
    ``dim / members`` dimensions, each block unit length divided by sqrt(members): the vector stays
    unit length and, each block's pair weights having mean 1, the inner product is the ensemble's
    mean compatibility. Why: on a few hundred outfits one network overfits; averaging members
    fitted from other initialisations gained 1-2 FITB points (held-out), at no serving cost.
    """

    name = "style-compat"
    hist_mean: torch.Tensor
    hist_std: torch.Tensor
    pair_index: torch.Tensor

    def __init__(self, dim: int = 64, hidden: int = 512, in_dim: int = 1280, pcs: int = 256,
                 n_categories: int = len(CATEGORIES), cat_dim: int = 16, dropout: float = 0.1,
                 hist_dim: int = 0, members: int = 1, cls_pcs: int = 128, colour_dim: int = 0) -> None:
        super().__init__()
        if dim % members:
            raise ValueError(f"dim {dim} is not a multiple of members {members}")
        self.config: dict[str, Any] = {
            "dim": dim, "hidden": hidden, "in_dim": in_dim, "pcs": pcs, "n_categories": n_categories,
            "cat_dim": cat_dim, "dropout": dropout, "hist_dim": hist_dim, "members": members, "cls_pcs": cls_pcs}
        if colour_dim:  # absent from the config of heads trained without it (they load unchanged)
            if colour_dim != COLOUR_DIM:
                raise ValueError(f"colour_dim {colour_dim}: garment_colour gives {COLOUR_DIM}")
            self.config["colour_dim"] = colour_dim
        tail = hist_dim + colour_dim
        self.version = "untrained"
        self.complements: dict[str, tuple[str, ...]] = {}
        self.whiten = Whiten(in_dim, pcs)  # fixed PCA whitening, fitted once at training
        # fixed standardisation of the colour columns (histogram, then garment_colour when present)
        self.register_buffer("hist_mean", torch.zeros(tail))
        self.register_buffer("hist_std", torch.ones(tail))
        width = pcs + tail
        self.members = nn.ModuleList([_Member(width, n_categories, cat_dim, hidden, dim // members, dropout)
                                      for _ in range(members)])
        iu = torch.triu_indices(n_categories, n_categories)
        pair = torch.zeros(n_categories, n_categories, dtype=torch.long)
        pair[iu[0], iu[1]] = torch.arange(iu.shape[1])
        pair[iu[1], iu[0]] = torch.arange(iu.shape[1])
        self.register_buffer("pair_index", pair)  # (C, C) int64: unordered pair -> row of pair_logits
        self.pair_logits = nn.Parameter(torch.zeros(iu.shape[1], dim))  # softplus -> mask² before norm
        # garment category from the same forward (its own, wider whitening: 32 components name
        # categories poorly); used where a category is unknown, never by the style vectors
        self.cls_whiten = Whiten(in_dim, cls_pcs)
        self.classifier = nn.Linear(cls_pcs + tail, n_categories)

    @property
    def colour_dim(self) -> int:
        """Width of the ``garment_colour`` columns (0: the head does not read them)."""
        return int(self.config.get("colour_dim", 0))

    @property
    def _tail(self) -> int:
        return int(self.config["hist_dim"]) + self.colour_dim

    @property
    def feature_dim(self) -> int:
        """Width of the ``features`` rows: pooled (in_dim), then the colour histogram (hist_dim) if any,
        then ``garment_colour`` of the crop (colour_dim) if any."""
        return int(self.config["in_dim"]) + self._tail

    def style_inputs(self, pooled: torch.Tensor | np.ndarray, hist: np.ndarray,
                     crops: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """The ``features`` rows of ``embed`` from what the ingest and query pipelines have for a
        garment: its pooled backbone features (n, 1280), its colour histogram (n, 64), float32, and,
        for a head with ``colour_dim`` (``garment_colour``), the garment crops themselves (the same
        crops the histogram was computed from)."""
        p = pooled.detach().float().cpu().numpy() if isinstance(pooled, torch.Tensor) else np.asarray(pooled, np.float32)
        parts = [p.astype(np.float32)]
        if self.config["hist_dim"]:
            parts.append(np.asarray(hist, np.float32))
        if self.colour_dim:
            if crops is None or len(crops) != len(p):
                raise ValueError("this style head reads garment_colour: pass the garment crops (one per row)")
            parts.append(garment_colour(crops))
        return np.concatenate(parts, axis=1).astype(np.float32)

    # --- torch (training and batch use) -------------------------------------------------------
    def _hist(self, features: torch.Tensor) -> torch.Tensor:
        return (features[..., int(self.config["in_dim"]):] - self.hist_mean) / self.hist_std

    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        """(..., feature_dim) -> (..., pcs + hist_dim): whitened pooled features and standardised
        histogram, the fixed part (training computes it once)."""
        z = self.whiten(features[..., : int(self.config["in_dim"])])
        return torch.cat([z, self._hist(features)], dim=-1) if self._tail else z

    def prepare_cls(self, features: torch.Tensor) -> torch.Tensor:
        """(..., feature_dim) -> (..., cls_pcs + hist_dim): the classifier's fixed input."""
        z = self.cls_whiten(features[..., : int(self.config["in_dim"])])
        return torch.cat([z, self._hist(features)], dim=-1) if self._tail else z

    def reduced(self, z: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        """Prepared (B, pcs + hist_dim) + (B,) int64 -> (B, dim) unit rows (member blocks)."""
        k = len(self.members)
        return torch.cat([m(z, cats) for m in self.members], dim=1) / math.sqrt(k)

    def forward(self, features: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) float32, (B,) int64 -> (B, dim) float32 unit rows."""
        return self.reduced(self.prepare(features), cats)

    def pair_weights(self, ca: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
        """(...,) int64 pairs of categories -> (..., dim) float32 w = m² >= 0, mean 1 over each member's block."""
        w = F.softplus(self.pair_logits[self.pair_index[ca, cb]])
        blocks = w.unflatten(-1, (len(self.members), -1))
        return (blocks / blocks.mean(dim=-1, keepdim=True)).flatten(-2)

    def compat(self, fa: torch.Tensor, ca: torch.Tensor, fb: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
        """(..., dim) style vectors and (...,) categories -> (...,) compatibility."""
        return (self.pair_weights(ca, cb) * fa * fb).sum(-1)

    def category_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) -> (B, n_categories) logits."""
        return self.classifier(self.prepare_cls(features))

    # --- NumPy (serving and evaluation): eval mode, no grad, deterministic ---------------------
    def _eval(self, fn: Any, *args: Any) -> Any:
        was = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return fn(*args)
        finally:
            self.train(was)

    def embed(self, features: torch.Tensor | np.ndarray, categories: Categories) -> np.ndarray:
        """(n, feature_dim) features + n categories -> (n, dim) float32 L2-normalised rows."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32) if isinstance(features, np.ndarray) else features)
        if x.ndim != 2 or x.shape[1] != self.feature_dim:
            raise ValueError(f"features must be (n, {self.feature_dim}), got {tuple(x.shape)}")
        cats = category_ids(categories)
        if len(cats) != len(x):
            raise ValueError(f"{len(x)} feature rows but {len(cats)} categories")
        if len(x) == 0:
            return np.zeros((0, self.config["dim"]), np.float32)
        dev = self.pair_index.device
        return self._eval(lambda: self(x.float().to(dev), cats.to(dev)).cpu().numpy().astype(np.float32))

    def predict_category(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """(n, feature_dim) -> (n,) int64 indices of ``GROUPS["category"]``."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32) if isinstance(features, np.ndarray) else features)
        dev = self.pair_index.device
        return self._eval(lambda: self.category_logits(x.float().to(dev)).argmax(1).cpu().numpy().astype(np.int64))

    def weights_for(self, from_category: int | str, to_category: int | str) -> np.ndarray:
        """(dim,) float32 w[from, to] (symmetric in the pair)."""
        dev = self.pair_index.device
        a, b = torch.tensor(_cat(from_category), device=dev), torch.tensor(_cat(to_category), device=dev)
        return self._eval(lambda: self.pair_weights(a, b).cpu().numpy().astype(np.float32))

    def query_vector(self, vec: np.ndarray, from_category: int | str, to_category: int | str) -> np.ndarray:
        """Style vector(s) (dim,) or (n, dim) of ``from_category`` garments -> the IP-search query for
        ``to_category`` garments: ``w[from, to] ⊙ vec`` (float32, not unit length: its inner product
        with a stored ``f(b)`` equals ``compat``, so scores are comparable across products)."""
        return (np.asarray(vec, np.float32) * self.weights_for(from_category, to_category)).astype(np.float32)

    def pair_scores(self, vecs: np.ndarray, categories: Categories) -> np.ndarray:
        """(k, dim) vectors of one outfit -> (k, k) float32 compat of every pair (diagonal: self-pairs)."""
        v = torch.from_numpy(np.asarray(vecs, np.float32))
        c = category_ids(categories).to(self.pair_index.device)
        w = self._eval(lambda: self.pair_weights(c[:, None], c[None, :]).cpu())  # (k, k, dim)
        return (w * v[:, None, :] * v[None, :, :]).sum(-1).numpy().astype(np.float32)

    def outfit_score(self, vecs: np.ndarray, categories: Categories) -> float:
        """Mean compatibility over the unordered pairs of an outfit's items (k >= 2)."""
        s = self.pair_scores(vecs, categories)
        k = len(s)
        if k < 2:
            raise ValueError("an outfit needs at least two items")
        return float(s[np.triu_indices(k, 1)].mean())

    def complements_of(self, category: str) -> tuple[str, ...]:
        """The default categories that complete a look with ``category`` (most co-worn first)."""
        return self.complements.get(category, ())


def save_compat(head: CompatHead, path: Path, extra: dict[str, Any] | None = None) -> None:
    # float16 on disk, as the other heads (~1e-3 relative rounding)
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in head.state_dict().items()}
    torch.save({"kind": "compat", "config": head.config, "state_dict": state,
                "extra": {"complements": {k: list(v) for k, v in head.complements.items()}, **(extra or {})}}, path)


def load_compat(weights_dir: Path = _WEIGHTS_DIR, device: str | torch.device = "cpu",
                file: str = COMPAT_FILE) -> CompatHead:
    """``weights_dir/compat.pt`` -> a CompatHead in eval mode, no grad, ``version`` = sha256[:10] of
    the file. FileNotFoundError when it is absent (run ``vitrine train compat``)."""
    path = Path(weights_dir) / file
    raw = path.read_bytes()
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("kind") != "compat":
        raise ValueError(f"{path}: a {blob.get('kind')!r} head, expected 'compat'")
    head = CompatHead(**blob["config"])
    head.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    head.version = hashlib.sha256(raw).hexdigest()[:10]
    head.complements = {k: tuple(v) for k, v in blob.get("extra", {}).get("complements", {}).items()}
    return head.eval().requires_grad_(False).to(device)
