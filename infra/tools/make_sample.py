"""Rebuild the bundled demo catalogue (vitrine_tools/devstack/sample/) from ../shared/data/realshot (CC0 1.0).

Picks up to 24 photos per coarse category (seeded), skipping kids' items and unusable labels,
copies them unchanged, and writes catalog.csv: product_id,title,category,label,image.
Usage: python infra/tools/make_sample.py [DATA_DIR]
"""

from __future__ import annotations

import csv
import random
import shutil
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PER_CATEGORY = 24


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    rows = list(csv.DictReader((data / "realshot" / "realshot.csv").open()))
    by_cat: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        if r["category"] and r["kids"] == "False":
            by_cat[r["category"]].append(r)
    rng = random.Random(20261126)
    out = ROOT / "workers" / "sample"
    shutil.rmtree(out / "images", ignore_errors=True)
    (out / "images").mkdir(parents=True)
    picked = []
    for cat in sorted(by_cat):
        for r in rng.sample(by_cat[cat], min(PER_CATEGORY, len(by_cat[cat]))):
            name = Path(r["image"]).name
            shutil.copyfile(data / r["image"], out / "images" / name)
            picked.append({"product_id": f"rs-{name[:8]}", "title": r["label"], "category": cat,
                           "label": r["label"], "image": f"images/{name}"})
    with (out / "catalog.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(picked[0]))
        w.writeheader()
        w.writerows(picked)
    print(f"{len(picked)} images in {out}")


if __name__ == "__main__":
    main()
