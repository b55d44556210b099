"""Helpers for the vision tests.

A uniquely named module rather than ``conftest``: with rootdir-relative test folders and no
``__init__.py``, ``from conftest import ...`` can resolve to another folder's conftest.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[3]


def data_dir() -> Path | None:
    """``$VITRINE_DATA_DIR`` if set, else ``<repo>/../shared/data``; None when absent."""
    env = os.environ.get("VITRINE_DATA_DIR")
    path = Path(env) if env else (REPO_ROOT / ".." / "shared" / "data").resolve()
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
