"""A tiny data root for smoke tests: a few rows of each CSV, images linked (never copied).

``tiny_data(shared, dest)`` writes ``dest/{catalog,realshot,street}/*.csv`` with every n-th row of
the shared data set and symlinks each ``images`` folder, so image paths stay relative to ``dest``.
"""

from __future__ import annotations

import csv
from pathlib import Path


def _subset(src: Path, dst: Path, keep: set[str] | None = None, every: int = 1, key: str = "image") -> list[dict[str, str]]:
    with open(src, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = reader.fieldnames or []
    rows = [r for r in rows if r[key] in keep] if keep is not None else rows[::every]
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return rows


def tiny_data(shared: Path, dest: Path, catalog_every: int = 200, realshot_every: int = 100, street_photos: int = 12) -> Path:
    for name in ("catalog", "realshot", "street"):
        (dest / name).mkdir(parents=True, exist_ok=True)
        link = dest / name / "images"
        if not link.exists():
            link.symlink_to(shared / name / "images", target_is_directory=True)
    rows = _subset(shared / "catalog" / "catalog.csv", dest / "catalog" / "catalog.csv", every=catalog_every)
    ids = {r["product_id"] for r in rows}
    twins = [f"{i}-b" for i in ids]
    with open(shared / "catalog" / "catalog.csv", newline="") as f:
        extra = [r for r in csv.DictReader(f) if r["product_id"] in twins or r["product_id"][:-2] in ids]
    with open(dest / "catalog" / "catalog.csv", "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writerows([r for r in extra if r["product_id"] not in ids][:10])
    _subset(shared / "realshot" / "realshot.csv", dest / "realshot" / "realshot.csv", every=realshot_every)
    photos = _subset(shared / "street" / "photos.csv", dest / "street" / "photos.csv", every=800 // street_photos)
    _subset(shared / "street" / "boxes.csv", dest / "street" / "boxes.csv", keep={r["image"] for r in photos})
    (dest / "taxonomy.csv").write_text((shared / "taxonomy.csv").read_text())
    return dest
