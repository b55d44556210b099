"""Reading the shared data set and splitting it, deterministically and by the right unit.

CSV formats (image paths relative to the folder above the CSV's folder, "the data root"):
  - gallery (catalog.csv): ``product_id,title,gender,master_category,sub_category,article_type,
    colour,season,year,usage,category,image,...``
  - real-shot queries (realshot.csv): ``image,label,category,kids``
  - street boxes (boxes.csv): ``image,label,category,x0,y0,x1,y1,area_frac``

Splits (``is_heldout``): a row is held out when sha1(f"{seed}:{unit}") falls below ``frac``.
The unit is what must not leak: the product for the catalogue with the ``-b`` suffix removed (a
product and its second rendering share a split), the photo for real-shot and street images.
The same function decides the split at train and at eval time, so evaluation sees only rows that
training never saw.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "SPLITS",
    "Box",
    "GalleryItem",
    "Photo",
    "is_heldout",
    "load_rgb",
    "product_unit",
    "read_boxes",
    "read_gallery",
    "read_queries",
]

#: Default held-out fractions per data set (seed 0): 20 % of catalogue products, half of the photos.
SPLITS: dict[str, float] = {"catalog": 0.2, "realshot": 0.5, "street": 0.5}


def product_unit(product_id: str) -> str:
    """The split unit of a catalogue product: its id without the ``-b`` twin suffix."""
    return product_id.removesuffix("-b")


def is_heldout(unit: str, frac: float, seed: int = 0) -> bool:
    h = hashlib.sha1(f"{seed}:{unit}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < frac


@dataclass(frozen=True)
class GalleryItem:
    product_id: str
    path: Path
    attrs: dict[str, str]  # group -> canonical (lower-case) value, "" when missing

    @property
    def category(self) -> str:
        return self.attrs.get("category", "")


@dataclass(frozen=True)
class Photo:
    path: Path
    category: str  # coarse category, "" when unusable


@dataclass(frozen=True)
class Box:
    path: Path
    category: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 image pixels


def _root(csv_path: Path) -> Path:
    return csv_path.resolve().parent.parent


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def read_gallery(csv_path: Path) -> list[GalleryItem]:
    from workers.vision.taxonomy import GROUPS

    root = _root(csv_path)
    out = []
    for r in _rows(csv_path):
        attrs = {g: (r.get(g) or "").strip().lower() for g in GROUPS}
        out.append(GalleryItem(r["product_id"], root / r["image"], attrs))
    return out


def read_queries(csv_path: Path) -> list[Photo]:
    """Real-shot style queries; rows without a coarse category are dropped."""
    root = _root(csv_path)
    return [Photo(root / r["image"], r["category"].strip().lower()) for r in _rows(csv_path) if r.get("category")]


def read_boxes(csv_path: Path) -> dict[Path, list[Box]]:
    """Street boxes grouped by photo (boxes without a coarse category dropped, photos kept)."""
    root = _root(csv_path)
    out: dict[Path, list[Box]] = {}
    for r in _rows(csv_path):
        p = root / r["image"]
        out.setdefault(p, [])
        if r.get("category"):
            box = (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"]))
            out[p].append(Box(p, r["category"].strip().lower(), box))
    return out


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))
