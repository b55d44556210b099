"""``vitrine train``: fit every vision head from the shared data and write weights plus records.

    vitrine train [--data ../shared/data] [--out <installed workers/vision/weights>] [--cache .vitrine/cache]
                  [--seed 0] [--device auto|cpu|cuda] [--limit N] [--views 1] [--composites 2500]

Backbone features are cached under ``--cache`` (outside the repository), so a second run only
refits the heads (about a minute on 2 cores). ``--limit N`` trains on every k-th row (N rows)
for smoke tests; never ship such weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vitrine_tools.paths import shared_data as default_data
from workers.vision.trained import WEIGHTS_DIR


def pick_device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cmd_train(args: argparse.Namespace) -> int:
    from vitrine_tools.training.train import run_training

    data = Path(args.data)
    if not (data / "catalog" / "catalog.csv").is_file():
        print(f"no data set at {data} (expected catalog/catalog.csv): pass --data DIR")
        return 2
    result = run_training(data, Path(args.out), Path(args.cache), seed=args.seed, device=pick_device(args.device),
                          limit=args.limit, views_per_item=args.views, composites=args.composites)
    print(json.dumps(result, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("train", help="train the detector, tagger and projection heads",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(default_data()), help="the shared data set (default: $VITRINE_SHARED_DATA, else ../shared/data)")
    p.add_argument("--out", default=str(WEIGHTS_DIR), help="where weights and records go")
    p.add_argument("--cache", default=".vitrine/cache", help="backbone feature cache (outside the repository)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    p.add_argument("--limit", type=int, default=None, help="train on about N rows per set (smoke tests)")
    p.add_argument("--views", type=int, default=1, help="generated views per training product")
    p.add_argument("--composites", type=int, default=2500, help="composite images for the detector")
    p.set_defaults(func=cmd_train)
