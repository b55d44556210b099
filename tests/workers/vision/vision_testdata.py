"""Helpers for the vision tests.

A uniquely named module rather than ``conftest``: with rootdir-relative test folders and no
``__init__.py``, ``from conftest import ...`` can resolve to another folder's conftest.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from vitrine_tools.paths import shared_data

REPO_ROOT = Path(__file__).resolve().parents[3]


def data_dir() -> Path | None:
    """The shared data set (``vitrine_tools.paths.shared_data``); None when absent."""
    path = shared_data()
    return path if (path / "catalog" / "catalog.csv").is_file() else None


def read_catalog(root: Path) -> list[dict[str, str]]:
    """Rows of catalog/catalog.csv with ``path`` (absolute image path) added."""
    with open(root / "catalog" / "catalog.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["path"] = str(root / row["image"])  # the image column is relative to the data dir
    return rows


def load_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def pick(rows: list[dict[str, str]], n: int, **match: str) -> list[dict[str, str]]:
    """``n`` rows matching every column=value, spread evenly over the file."""
    hits = [r for r in rows if all(r[k] == v for k, v in match.items())]
    step = max(1, len(hits) // n)
    return hits[::step][:n]
