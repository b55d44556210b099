"""Benchmark images: real fashion photos from ../shared/data, else the bundled CC0 sample."""

from __future__ import annotations

import csv
from pathlib import Path

from vitrine_tools.devstack.demo import SAMPLE_DIR


def bench_images(data_dir: Path | None, limit: int) -> tuple[list[Path], Path]:
    """Up to ``limit`` image paths and the folder that contains them all (the file:// root)."""
    if data_dir is not None and (data_dir / "catalog" / "catalog.csv").is_file():
        rows = list(csv.DictReader((data_dir / "catalog" / "catalog.csv").open()))
        paths = [data_dir / r["image"] for r in rows[:limit]]
        if paths and all(p.is_file() for p in paths[:5]):
            return paths, data_dir
    rows = list(csv.DictReader((SAMPLE_DIR / "catalog.csv").open()))
    return [SAMPLE_DIR / r["image"] for r in rows][:limit], SAMPLE_DIR
