"""Backbone-feature cache: each image (or generated view) goes through EfficientNet-Lite0 once.

A *set* is a named, ordered list of ``Item`` s (a key that says exactly what image is made and how,
and a function that makes it). ``extract`` returns the set's arrays, computing them only when the
cache folder lacks them:

  pooled (N, 1280) float16   global-average-pooled features (``Lite0Backbone``)
  hist   (N, 64)   float16   colour histogram (``ColourHistogramEmbedder``) of the same image
  geom   (N, 5)    float32   h, w, scale, ox, oy of the letterbox (``backbone.Geometry``)
  s16    (N, 112, 14, 14) float16, s32 (N, 1280, 7, 7) float16   only when ``maps=True``
  meta   list of JSON values the item makers returned (boxes of a composite, ...)

Cache key: sha1 of the backbone version, ``CACHE_VERSION`` and every item key, so a change of
data, split, seed, view recipe or preprocessing gives a new folder instead of stale features.
Folders are written under a temporary name and renamed, so a crash never leaves a half set that
looks complete. float16 storage halves the disk and RAM; the heads are trained on these values
and the rounding (~1e-3 relative) is far below what they can resolve.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from workers.vision.backbone import S16_CHANNELS, Lite0Backbone
from workers.vision.colour import ColourHistogramEmbedder

__all__ = ["CACHE_VERSION", "FeatureSet", "Item", "extract"]

CACHE_VERSION = "2"


@dataclass(frozen=True)
class Item:
    key: str  # says what is made: "<path>|whole", "<path>|view:7", "composite:3:a,b,c", ...
    make: Callable[[], tuple[np.ndarray, Any]]  # -> ((H, W, 3) uint8 image, JSON-able meta)


@dataclass
class FeatureSet:
    keys: list[str]
    pooled: np.ndarray  # (N, 1280) float16
    hist: np.ndarray  # (N, 64) float16
    geom: np.ndarray  # (N, 5) float32
    meta: list[Any]
    s16: np.ndarray | None = None  # (N, 112, 14, 14) float16
    s32: np.ndarray | None = None  # (N, 1280, 7, 7) float16

    def __len__(self) -> int:
        return len(self.keys)


def _digest(name: str, items: Sequence[Item], maps: bool, backbone: Lite0Backbone) -> str:
    dtype = "" if backbone.dtype == torch.float32 else f"|{backbone.dtype}"  # float32 keeps the old caches
    h = hashlib.sha1(f"{backbone.name}@{backbone.version}{dtype}|{CACHE_VERSION}|{name}|{maps}".encode())
    for it in items:
        h.update(it.key.encode() + b"\n")
    return h.hexdigest()[:16]


def _load(folder: Path, maps: bool) -> FeatureSet:
    keys = json.loads((folder / "keys.json").read_text())
    meta = json.loads((folder / "meta.json").read_text())
    fs = FeatureSet(keys, np.load(folder / "pooled.npy"), np.load(folder / "hist.npy"),
                    np.load(folder / "geom.npy"), meta)
    if maps:
        fs.s16 = np.load(folder / "s16.npy", mmap_mode="r")
        fs.s32 = np.load(folder / "s32.npy", mmap_mode="r")
    return fs


def extract(
    name: str,
    items: Sequence[Item],
    backbone: Lite0Backbone,
    cache_dir: Path,
    *,
    maps: bool = False,
    batch_size: int = 32,
    progress: bool = True,
) -> FeatureSet:
    """The features of ``items`` in order, from ``cache_dir`` or computed (then cached)."""
    folder = Path(cache_dir) / f"{name}-{_digest(name, items, maps, backbone)}"
    if (folder / "done").is_file():
        return _load(folder, maps)
    backbone.load()
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = len(items)
    pooled = np.zeros((n, 1280), np.float16)
    hist = np.zeros((n, 64), np.float16)
    geom = np.zeros((n, 5), np.float32)
    s16 = s32 = None
    if maps:
        s16 = np.lib.format.open_memmap(tmp / "s16.npy", "w+", np.float16, (n, S16_CHANNELS, 14, 14))
        s32 = np.lib.format.open_memmap(tmp / "s32.npy", "w+", np.float16, (n, 1280, 7, 7))
    meta: list[Any] = [None] * n
    colour = ColourHistogramEmbedder()

    def make_batch(lo: int) -> tuple[list[np.ndarray], list[Any]]:
        made = [items[i].make() for i in range(lo, min(n, lo + batch_size))]
        return [m[0] for m in made], [m[1] for m in made]

    starts = list(range(0, n, batch_size))
    with ThreadPoolExecutor(1) as pool, tqdm(total=n, desc=name, unit="img", disable=not progress) as bar:
        pending = pool.submit(make_batch, starts[0]) if starts else None
        for j, lo in enumerate(starts):
            assert pending is not None
            images, metas = pending.result()
            pending = pool.submit(make_batch, starts[j + 1]) if j + 1 < len(starts) else None
            feats, geoms = backbone.features(images)
            hi = lo + len(images)
            pooled[lo:hi] = feats.pooled.numpy()
            hist[lo:hi] = colour.embed(images)
            geom[lo:hi] = [(g.h, g.w, g.scale, g.ox, g.oy) for g in geoms]
            if s16 is not None and s32 is not None:
                s16[lo:hi] = feats.s16.numpy()
                s32[lo:hi] = feats.s32.numpy()
            meta[lo:hi] = metas
            bar.update(len(images))
    np.save(tmp / "pooled.npy", pooled)
    np.save(tmp / "hist.npy", hist)
    np.save(tmp / "geom.npy", geom)
    if s16 is not None and s32 is not None:
        s16.flush()
        s32.flush()
        del s16, s32
    (tmp / "keys.json").write_text(json.dumps([it.key for it in items]))
    (tmp / "meta.json").write_text(json.dumps(meta))
    (tmp / "done").write_text("ok")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return _load(folder, maps)
