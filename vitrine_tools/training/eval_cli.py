"""``vitrine eval SUITE``: measure the trained heads against the untrained baseline, side by side.

    vitrine eval realshot --gallery G.csv --queries Q.csv     category P@1, P@10, MAP@10
    vitrine eval street   --gallery G.csv --photos P.csv --boxes B.csv   box recall, region P@10
    vitrine eval views    --gallery G.csv                     same-item recall of views, twins
    vitrine eval tags     --gallery G.csv                     top-1 per attribute group
    vitrine eval fusion   --gallery G.csv --queries Q.csv     category accuracy, model vs fused
    vitrine eval all                                          every suite on the shared data
    vitrine eval text --queries text_sample.csv [--gallery G.csv]   MRR, MAP@50, NDCG@10, P@50, R@50:
                                                              hybrid text search vs BM25 vs dense
    vitrine eval modifier --queries modifier_sample.csv [--data-root DIR] [--gallery G.csv]
                                                              P@10, NDCG@10: photo + modifier vs
                                                              image only vs text only
    vitrine eval fitb --questions questions.csv [--json OUT] [--plot PNG]
                                                              complete the look: FITB accuracy and
                                                              compat AUC, compat head vs visual
                                                              (pooled ImageNet features) vs random

Defaults come from ``--data`` (catalog/catalog.csv, realshot/realshot.csv, street/photos.csv,
street/boxes.csv). Queries and gallery probes are the held-out rows of the training split
(``--split heldout``, the default) or every row (``--split all``). Writes ``{"vitrine": {...},
"baseline": {...}}`` (per suite for ``all``) to ``--json`` and a bar chart next to it (``.png``).
``fitb`` writes ``{"vitrine": {...}, "visual": {...}, "random": {...}}`` (``fitb_accuracy``,
``compat_auc``, by hidden category; see ``vitrine_tools.training.fitb``) and plots accuracy by
hidden category to ``--plot`` (else next to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from vitrine_tools.training.cli import default_data, pick_device
from workers.settings import MODEL_DTYPES
from workers.vision.trained import WEIGHTS_DIR

SUITES = ("realshot", "street", "views", "tags", "fusion")
SEARCH_SUITES = ("text", "modifier")  # through the real query path (vitrine_tools.search_eval)


def run_suite(ev: Any, suite: str, a: argparse.Namespace) -> dict[str, Any]:
    data = Path(a.data)
    gallery = Path(a.gallery or data / "catalog" / "catalog.csv")
    queries = Path(a.queries or data / "realshot" / "realshot.csv")
    if suite == "realshot":
        return ev.realshot(gallery, queries)
    if suite == "fusion":
        return ev.fusion(gallery, queries)
    if suite == "views":
        return ev.views(gallery)
    if suite == "tags":
        return ev.tags(gallery)
    return ev.street(gallery, Path(a.photos or data / "street" / "photos.csv"), Path(a.boxes or data / "street" / "boxes.csv"))


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = result if "vitrine" not in result else {"": result}
    rows = [(f"{s}:{k}" if s else k, v, suites[s]["baseline"].get(k)) for s in suites
            for k, v in suites[s]["vitrine"].items()
            if isinstance(v, float) and 0 <= v <= 1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r[1] for r in rows], 0.4, label="vitrine")
    ax.barh([i - 0.2 for i in y], [r[2] if isinstance(r[2], float) else 0 for r in rows], 0.4, label="baseline")
    ax.set_yticks(list(y), [r[0] for r in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    ax.set_title("vitrine vs untrained baseline (held-out queries)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_eval(a: argparse.Namespace) -> int:
    from vitrine_tools.training.evaluate import Evaluator

    if a.suite in SEARCH_SUITES:
        from vitrine_tools.search_eval.run import cmd_search_eval

        return cmd_search_eval(a)
    if a.suite == "fitb":
        return cmd_fitb(a)
    t0 = time.time()
    ev = Evaluator(Path(a.data), Path(a.cache), Path(a.weights), device=pick_device(a.device), seed=a.seed,
                   split=a.split, dtype=a.dtype)
    if a.suite == "all":
        result: dict[str, Any] = {s: run_suite(ev, s, a) for s in SUITES}
    else:
        result = run_suite(ev, a.suite, a)
    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        path = Path(a.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        plot({k: v for k, v in result.items() if k != "seconds"}, path.with_suffix(".png"))
    return 0


def cmd_fitb(a: argparse.Namespace) -> int:
    from vitrine_tools.training.compat_data import read_questions
    from vitrine_tools.training.compat_plan import question_features
    from vitrine_tools.training.fitb import METHODS, fitb_report, plot_by_category, score_questions
    from workers.vision.backbone import Lite0Backbone
    from workers.vision.compat import COMPAT_FILE, load_compat

    t0 = time.time()
    path = Path(a.questions or Path(a.data) / "queries" / "fitb_sample" / "questions.csv")
    if not path.is_file():
        print(f"no FITB questions at {path}: pass --questions CSV")
        return 2
    if not (Path(a.weights) / COMPAT_FILE).is_file():
        print(f"no compatibility head at {Path(a.weights) / COMPAT_FILE}: run `vitrine train compat`")
        return 2
    questions = read_questions(path)
    print(f"{len(questions)} questions from {path}")
    device = pick_device(a.device)
    head = load_compat(Path(a.weights), device)
    # float32 features, as the head was trained on (the cache of `vitrine train compat` is reused)
    index, feats = question_features(questions, Lite0Backbone(device, "float32"), Path(a.cache),
                                     hist=bool(head.config["hist_dim"]), colour=bool(head.colour_dim))
    scores = score_questions(questions, index, feats, head, a.seed)
    result: dict[str, Any] = {m: fitb_report(questions, scores[m]) for m in METHODS}
    result.update({"n_questions": len(questions), "questions": str(path), "model": f"{head.name}@{head.version}",
                   "seconds": round(time.time() - t0, 1)})
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(text)
    png = Path(a.plot) if a.plot else (Path(a.json).with_suffix(".png") if a.json else None)
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        plot_by_category(result, png, f"FITB accuracy by hidden category: {path.parent.name} ({len(questions)} q)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("eval", help="evaluate the vision heads against the untrained baseline",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", choices=[*SUITES, "all", *SEARCH_SUITES, "fitb"])
    p.add_argument("--data", default=str(default_data()))
    p.add_argument("--gallery", default=None, help="catalog.csv-format gallery")
    p.add_argument("--queries", default=None,
                   help="realshot.csv-format queries (text: text_sample.csv's, modifier: modifier_sample.csv's)")
    p.add_argument("--data-root", default=None, help="modifier: the folder the queries' image paths are under")
    p.add_argument("--milvus-uri", default=None, help="text, modifier: a Milvus to use (default: a Milvus Lite server)")
    p.add_argument("--gallery-limit", type=int, default=None, help="text, modifier: index only the first N items")
    p.add_argument("--photos", default=None, help="street photos.csv")
    p.add_argument("--boxes", default=None, help="street boxes.csv")
    p.add_argument("--split", choices=["heldout", "all"], default="heldout")
    p.add_argument("--seed", type=int, default=0, help="the split seed the heads were trained with")
    p.add_argument("--weights", default=str(WEIGHTS_DIR))
    p.add_argument("--cache", default=".vitrine/cache")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=MODEL_DTYPES, default="auto",
                   help="backbone compute dtype; auto = bfloat16 on CUDA and on AMX CPUs, as the workers run it")
    p.add_argument("--questions", default=None,
                   help="fitb: questions.csv (default: the shared queries/fitb_sample/questions.csv)")
    p.add_argument("--plot", default=None, help="fitb: PNG of accuracy by hidden category (default: next to --json)")
    p.add_argument("--json", default=None, help="write the figures here (and a .png plot next to it)")
    p.set_defaults(func=cmd_eval)
