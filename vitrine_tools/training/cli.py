"""``vitrine train``: fit the vision heads from the shared data and write weights plus records.

    vitrine train [heads] [--data ../shared/data] [--out <installed workers/vision/weights>] [--cache .vitrine/cache]
                  [--seed 0] [--device auto|cpu|cuda] [--limit N] [--views 1] [--composites 2500]
    vitrine train compat  [--data ..] [--out ..] [--cache ..] [--seed 0] [--device ..] [--limit N]
                  [--cutout-views 2] [--per-category 300] [--holdout-frac 0.3] [--epochs 120]
                  [--holdout-questions CSV ...] [--heldout-dir .vitrine/compat/fitb-heldout] [--no-ablation]

``heads`` (the default): detector, tagger and projection, with ``manifest.json``. ``compat``: the
style-compatibility head (``compat.pt`` + ``compat.json``; the manifest is left alone): street
outfits, pseudo-outfits from the catalogue, consistency over augmented cut-out views; the
ablation (outfits only, + pseudo-outfits, + both, + consistency alone) is scored on FITB questions
written from the held-out photos to ``--heldout-dir`` and the best variant there ships
(``--no-ablation``: only the default recipe). The photos behind ``--holdout-questions`` (default:
the shared ``queries/fitb_sample``) are held out too. About 5 minutes on 2 cores once the
features are cached (the first run computes about 12,000 backbone forwards: 353 s here, shared machine).

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
    if args.what == "compat":
        return cmd_train_compat(args, data)
    result = run_training(data, Path(args.out), Path(args.cache), seed=args.seed, device=pick_device(args.device),
                          limit=args.limit, views_per_item=args.views, composites=args.composites)
    print(json.dumps(result, indent=1))
    return 0


def cmd_train_compat(args: argparse.Namespace, data: Path) -> int:
    from vitrine_tools.training.compat_train import run_compat_training

    if not (data / "street" / "photos.csv").is_file():
        print(f"no street photos at {data} (expected street/photos.csv): pass --data DIR")
        return 2
    if args.holdout_questions is None:
        sample = data / "queries" / "fitb_sample" / "questions.csv"
        questions = [sample] if sample.is_file() else []
    else:
        questions = [Path(q) for q in args.holdout_questions]
    result = run_compat_training(data, Path(args.out), Path(args.cache), Path(args.heldout_dir), seed=args.seed,
                                 device=pick_device(args.device), limit=args.limit, views=args.cutout_views,
                                 per_category=args.per_category, holdout_frac=args.holdout_frac,
                                 holdout_questions=questions, epochs=args.epochs, ablation=args.ablation)
    print(json.dumps(result, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("train", help="train the detector, tagger and projection heads",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="?", choices=["heads", "compat"], default="heads",
                   help="heads: detector, tagger, projection (default); compat: the style-compatibility head")
    p.add_argument("--data", default=str(default_data()), help="the shared data set (default: $VITRINE_SHARED_DATA, else ../shared/data)")
    p.add_argument("--out", default=str(WEIGHTS_DIR), help="where weights and records go")
    p.add_argument("--cache", default=".vitrine/cache", help="backbone feature cache (outside the repository)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    p.add_argument("--limit", type=int, default=None, help="train on about N rows per set (smoke tests)")
    p.add_argument("--views", type=int, default=1, help="generated views per training product")
    p.add_argument("--composites", type=int, default=2500, help="composite images for the detector")
    c = p.add_argument_group("compat")
    c.add_argument("--cutout-views", type=int, default=2, help="augmented views per garment cut-out (consistency)")
    c.add_argument("--per-category", type=int, default=300, help="catalogue items per category for pseudo-outfits")
    c.add_argument("--holdout-frac", type=float, default=0.3, help="street photos held out for validation")
    c.add_argument("--holdout-questions", nargs="*", default=None,
                   help="FITB question files whose photos are held out too (default: the shared fitb_sample)")
    c.add_argument("--heldout-dir", default=".vitrine/compat/fitb-heldout",
                   help="where the held-out FITB questions and their cut-outs are written (outside the repository)")
    c.add_argument("--epochs", type=int, default=None, help="passes over the training outfits (default 120)")
    c.add_argument("--no-ablation", dest="ablation", action="store_false",
                   help="train only the default recipe (outfits + consistency), not the four ablation variants")
    p.set_defaults(func=cmd_train)
