"""The image sets training and evaluation run through the backbone, as lists of cache ``Item`` s.

Each builder returns items whose key names the source image and the recipe, so the feature cache
(``vitrine_tools.training.features``) recomputes exactly what changed. Views and composites draw from a
``numpy.random.Generator`` seeded by (seed, purpose, item), so the same arguments make the same
pixels on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitrine_tools.training.data import GalleryItem, load_rgb
from vitrine_tools.training.views import foreground_box, foreground_mask, make_composite, make_view

__all__ = ["box_crops", "composites", "flipped", "rng_for", "views", "whole"]

from vitrine_tools.training.features import Item


def rng_for(*parts: object) -> np.random.Generator:
    digest = hashlib.sha1("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _whole(path: Path, fg: bool) -> tuple[np.ndarray, Any]:
    img = load_rgb(path)
    return img, (list(foreground_box(foreground_mask(img))) if fg else None)


def whole(paths: Sequence[Path], *, fg_box: bool = False) -> list[Item]:
    """Each image as it is; meta = the studio foreground box when ``fg_box``."""
    return [Item(f"{p}|whole", lambda p=p: _whole(p, fg_box)) for p in paths]


def flipped(paths: Sequence[Path]) -> list[Item]:
    """Each image mirrored left-right (meta: the image width, to mirror its boxes)."""
    def make(p: Path) -> tuple[np.ndarray, Any]:
        img = load_rgb(p)[:, ::-1]
        return np.ascontiguousarray(img), img.shape[1]
    return [Item(f"{p}|hflip", lambda p=p: make(p)) for p in paths]


def views(items: Sequence[GalleryItem], seed: int, k: int, purpose: str) -> list[Item]:
    """``k`` generated views of each item (``make_view``); meta = the product id."""
    out = []
    for it in items:
        for j in range(k):
            out.append(Item(f"{it.path}|view:{purpose}:{seed}:{j}",
                            lambda it=it, j=j: (make_view(load_rgb(it.path), rng_for(seed, purpose, it.product_id, j)),
                                                it.product_id)))
    return out


def box_crops(boxes: Sequence[tuple[Path, tuple[int, int, int, int]]], pad: float = 0.05) -> list[Item]:
    """The crop of each (photo, box), padded by ``pad`` of the box size on every side."""
    def make(p: Path, b: tuple[int, int, int, int]) -> tuple[np.ndarray, Any]:
        img = load_rgb(p)
        h, w = img.shape[:2]
        px, py = pad * (b[2] - b[0]), pad * (b[3] - b[1])
        x0, y0 = max(0, int(b[0] - px)), max(0, int(b[1] - py))
        x1, y1 = min(w, int(b[2] + px) + 1), min(h, int(b[3] + py) + 1)
        return (img[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else img), None
    return [Item(f"{p}|crop:{pad}:{b}", lambda p=p, b=b: make(p, b)) for p, b in boxes]


def composites(pool: Sequence[GalleryItem], n: int, seed: int) -> list[Item]:
    """``n`` composites of 1-3 items of ``pool`` on backdrops; meta = [[x0, y0, x1, y1, category]]."""
    out = []
    for i in range(n):
        rng = rng_for(seed, "composite", i)
        picks = [pool[j] for j in rng.choice(len(pool), size=int(rng.integers(1, 4)), replace=False)]

        def make(picks: list[GalleryItem] = picks, i: int = i) -> tuple[np.ndarray, Any]:
            img, boxes = make_composite([(load_rgb(p.path), p.category) for p in picks], rng_for(seed, "paste", i))
            return img, [[*b, c] for b, c in boxes]
        out.append(Item(f"composite:{seed}:{i}:" + ",".join(p.product_id for p in picks), make))
    return out
