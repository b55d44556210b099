"""The trained heads on the shared EfficientNet-Lite0 features (pure torch modules).

- ``TaggerHeads``: pooled (B, 1280) + colour histogram (B, 64) -> one logit vector per attribute
  group (``workers.vision.taxonomy.GROUPS``). Softmax gives each group's value and confidence.
- ``ProjectionHead``: pooled (B, 1280) -> (B, 256) unit vectors, the retrieval embedding
  (inner product = cosine; larger = more similar).
- ``DetectorHead``: stride-16 (B, 112, 14, 14) and stride-32 (B, 1280, 7, 7) maps -> CenterNet-style
  outputs on the 14x14 grid: class heatmap logits (B, C, 14, 14), box size (B, 2, 14, 14) as
  log(width, height / 224) and sub-cell centre offset (B, 2, 14, 14) in cells; ``decode`` turns
  them into canvas boxes with a class and a score.

Each module carries its own input normalisation (feature mean and std as buffers, fixed at
training time) so serving cannot drift from training. ``save_head`` / ``load_head`` store a
module as ``{"kind", "config", "state_dict"}`` in a ``.pt`` file (loaded with ``weights_only``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DetectorHead", "ProjectionHead", "TaggerHeads", "decode", "load_head", "save_head"]

GRID = 14
STRIDE = 16.0
CANVAS = 224.0


class _Norm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Whiten(nn.Module):
    """Fixed PCA whitening (B, in_dim) -> (B, dim): ``(x - mean) @ proj``, fitted once at training.

    Why: the heads then train on ``dim`` numbers instead of 1280 (4-5x less compute on a 2-core
    CPU), and whitened pooled CNN features retrieve better than raw ones (equalised variances).
    """

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("proj", torch.zeros(in_dim, dim))

    def fit(self, x: torch.Tensor) -> None:
        """x: (N, in_dim) float32 sample, N >= dim preferred."""
        mean = x.mean(0)
        xc = x - mean
        cov = xc.T @ xc / max(1, len(x) - 1)
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        k = self.proj.shape[1]
        evals, evecs = evals.flip(0)[:k], evecs.flip(1)[:, :k]
        self.mean.copy_(mean)
        self.proj.copy_(evecs / torch.sqrt(evals.clamp_min(0) + evals[0] * 1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) @ self.proj


class TaggerHeads(nn.Module):
    def __init__(self, groups: dict[str, int], hidden: int = 512, in_dim: int = 1280, pcs: int = 512) -> None:
        super().__init__()
        self.config = {"groups": dict(groups), "hidden": hidden, "in_dim": in_dim, "pcs": pcs}
        self.whiten = Whiten(in_dim, pcs)
        self.hist_norm = _Norm(64)
        self.trunk = nn.Sequential(nn.Linear(pcs + 64, hidden), nn.GELU(), nn.Dropout(0.25))
        self.heads = nn.ModuleDict({g: nn.Linear(hidden + pcs + 64, n) for g, n in groups.items()})

    def reduced(self, z: torch.Tensor, hist: torch.Tensor) -> dict[str, torch.Tensor]:
        """Whitened (B, pcs) + raw hist (B, 64) -> {group: (B, n_values) logits}."""
        x = torch.cat([z, self.hist_norm(hist)], dim=1)
        h = torch.cat([self.trunk(x), x], dim=1)
        return {g: head(h) for g, head in self.heads.items()}

    def forward(self, pooled: torch.Tensor, hist: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 1280), (B, 64) float32 -> {group: (B, n_values) logits}."""
        return self.reduced(self.whiten(pooled), hist)


class ProjectionHead(nn.Module):
    def __init__(self, dim: int = 256, hidden: int = 512, in_dim: int = 1280, pcs: int = 384,
                 n_categories: int = 19) -> None:
        super().__init__()
        self.config = {"dim": dim, "hidden": hidden, "in_dim": in_dim, "pcs": pcs, "n_categories": n_categories}
        self.whiten = Whiten(in_dim, pcs)
        self.mlp = nn.Sequential(nn.Linear(pcs, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.skip = nn.Linear(pcs, dim, bias=False)
        self.proxies = nn.Parameter(torch.randn(n_categories, dim) * 0.05)  # category proxies (training)

    def reduced(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(z) + self.skip(z), dim=1, eps=1e-12)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, 1280) float32 -> (B, dim) float32, unit rows."""
        return self.reduced(self.whiten(pooled))


class DetectorHead(nn.Module):
    """Per-cell head on [s16 (112), upsampled PCA of s32 (``s32_pcs``)]: depthwise 3x3 for
    neighbourhood context, then two 1x1 layers; cheap enough to train on 2 CPU cores."""

    def __init__(self, n_classes: int = 19, width: int = 96, s16: int = 112, s32: int = 1280, s32_pcs: int = 64) -> None:
        super().__init__()
        self.config = {"n_classes": n_classes, "width": width, "s16": s16, "s32": s32, "s32_pcs": s32_pcs}
        self.s32_whiten = Whiten(s32, s32_pcs)
        c = s16 + s32_pcs
        self.s16_norm = _Norm(s16)
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, width, 1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1), nn.ReLU(inplace=True),
        )
        self.hm = nn.Conv2d(width, n_classes, 1)
        self.wh = nn.Conv2d(width, 2, 1)
        self.off = nn.Conv2d(width, 2, 1)
        nn.init.constant_(self.hm.bias, -2.19)  # prior 0.1: stable focal-loss start (CenterNet)

    def reduce_s32(self, s32: torch.Tensor) -> torch.Tensor:
        """(B, 1280, 7, 7) -> (B, s32_pcs, 7, 7) fixed PCA of the per-cell vectors."""
        b, c, h, w = s32.shape
        z = self.s32_whiten(s32.permute(0, 2, 3, 1).reshape(-1, c))
        return z.reshape(b, h, w, -1).permute(0, 3, 1, 2)

    def reduced(self, s16: torch.Tensor, r32: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n16 = (s16 - self.s16_norm.mean[None, :, None, None]) / self.s16_norm.std[None, :, None, None]
        up = F.interpolate(r32, size=s16.shape[-2:], mode="bilinear", align_corners=False)
        h = self.body(torch.cat([n16, up], dim=1))
        return self.hm(h), self.wh(h), torch.sigmoid(self.off(h))

    def forward(self, s16: torch.Tensor, s32: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 112, 14, 14), (B, 1280, 7, 7) -> heatmap logits (B, C, 14, 14), log size (B, 2, 14, 14),
        offset (B, 2, 14, 14) in [0, 1] cells."""
        return self.reduced(s16, self.reduce_s32(s32))


def decode(hm: torch.Tensor, wh: torch.Tensor, off: torch.Tensor, k: int = 20,
           threshold: float = 0.05) -> list[list[tuple[list[float], int, float]]]:
    """Per image: up to ``k`` (canvas box [x0, y0, x1, y1], class, score) with score >= threshold,
    peaks of the class heatmap (3x3 max-pool NMS), sorted by score descending."""
    heat = torch.sigmoid(hm)  # (B, C, G, G)
    keep = (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).float()
    heat = heat * keep
    b, c, g, _ = heat.shape
    scores, idx = heat.reshape(b, -1).topk(min(k, c * g * g), dim=1)  # (B, k)
    out: list[list[tuple[list[float], int, float]]] = []
    for i in range(b):
        dets = []
        for s, j in zip(scores[i].tolist(), idx[i].tolist()):
            if s < threshold:
                break
            cls, cell = divmod(j, g * g)
            cy, cx = divmod(cell, g)
            x = (cx + float(off[i, 0, cy, cx])) * STRIDE
            y = (cy + float(off[i, 1, cy, cx])) * STRIDE
            w = float(torch.exp(wh[i, 0, cy, cx])) * CANVAS
            h = float(torch.exp(wh[i, 1, cy, cx])) * CANVAS
            dets.append(([x - w / 2, y - h / 2, x + w / 2, y + h / 2], cls, s))
        out.append(dets)
    return out


_KINDS: dict[str, type[nn.Module]] = {"tagger": TaggerHeads, "projection": ProjectionHead, "detector": DetectorHead}


def save_head(module: nn.Module, kind: str, path: Path, extra: dict[str, Any] | None = None) -> None:
    # float16 on disk (half the size; ~1e-3 relative rounding, far below what the heads resolve)
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in module.state_dict().items()}
    torch.save({"kind": kind, "config": module.config, "state_dict": state, "extra": extra or {}}, path)


def load_head(path: Path, kind: str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("kind") != kind:
        raise ValueError(f"{path}: a {blob.get('kind')!r} head, expected {kind!r}")
    module = _KINDS[kind](**blob["config"])
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    return module.eval().requires_grad_(False).to(device), blob.get("extra", {})
