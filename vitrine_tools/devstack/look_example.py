"""``vitrine look-example``: the README's example look, a query item of the bundled sample and its
complements, drawn to a PNG (and the figures to JSON).

The sample's 264 CC0 photos go through the production models (``production_pipeline``: detector,
backbone, the compatibility head) exactly as the ingest worker embeds a product: the main region's
style vector under the product's category. The complements of the query item are ranked as the
query worker ranks them (``StyleEmbedder.query`` and the inner product with every stored style
vector of the category: exact, where the served HNSW index approximates it), per default category
(``StyleEmbedder.complements``), or per ``--categories``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "run"]


def _embed(rows: list[dict[str, str]], sample_dir: Path, batch: int = 16) -> tuple[Any, np.ndarray, list[str]]:
    from PIL import Image

    from workers.vision.factory import production_pipeline

    vision = production_pipeline()
    vision.load()
    if vision.style is None:
        raise SystemExit("the shipped models have no compatibility head (workers/vision/weights/compat.*)")
    vecs, cats = [], []
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        images = [np.asarray(Image.open(sample_dir / r["image"]).convert("RGB")) for r in chunk]
        analyses = vision.analyse(images)
        chunk_cats = [vision.style_category(r["category"], a) for r, a in zip(chunk, analyses)]
        vecs.append(vision.style_vectors(analyses, chunk_cats))
        cats += chunk_cats
    return vision, np.concatenate(vecs), cats


def run(query: str, categories: list[str], k: int = 4, limit: int = 0) -> dict[str, Any]:
    """``limit``: only the first ``limit`` sample products (their shuffled order, every category early)."""
    from vitrine_tools.devstack.demo import SAMPLE_DIR, load_sample

    rows = load_sample(limit)
    by_id = {r["product_id"]: i for i, r in enumerate(rows)}
    if query in by_id:
        qi = by_id[query]
    else:  # a category: its first product in the sample's order
        qi = next((i for i, r in enumerate(rows) if r["category"] == query), None)
        if qi is None:
            raise SystemExit(f"{query!r} is neither a sample product id nor a sample category")
    vision, vecs, cats = _embed(rows, SAMPLE_DIR)
    style = vision.style
    wanted = categories or style.complements([cats[qi]])
    present = sorted(set(cats))
    wanted = [c for c in wanted if c in present]  # the sample has, e.g., no bags
    groups = []
    for c in wanted:
        q = style.query([(cats[qi], vecs[qi])], c)
        idx = [i for i, cat in enumerate(cats) if cat == c and i != qi]
        scores = vecs[idx] @ q
        order = np.argsort(-scores)[:k]
        groups.append({"category": c, "results": [
            {"product_id": rows[idx[j]]["product_id"], "title": rows[idx[j]]["title"],
             "image": rows[idx[j]]["image"], "score": round(float(scores[j]), 4)} for j in order]})
    return {"query": {"product_id": rows[qi]["product_id"], "category": cats[qi], "image": rows[qi]["image"]},
            "categories": wanted, "sample_categories": present, "model_version": vision.model_version,
            "complements": groups}


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from vitrine_tools.devstack.demo import SAMPLE_DIR

    groups = result["complements"]
    k = max((len(g["results"]) for g in groups), default=1)
    fig, axes = plt.subplots(max(1, len(groups)), k + 1, figsize=(2.2 * (k + 1), 2.4 * max(1, len(groups))),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    q = result["query"]
    axes[0][0].imshow(Image.open(SAMPLE_DIR / q["image"]).convert("RGB"))
    axes[0][0].set_title(f"query: {q['category']}\n{q['product_id']}", fontsize=9, color="darkred")
    for r, g in enumerate(groups):
        axes[r][1].text(-0.15, 0.5, g["category"], rotation=90, va="center", ha="right",
                        transform=axes[r][1].transAxes, fontsize=11)
        for c, hit in enumerate(g["results"]):
            ax = axes[r][c + 1]
            ax.imshow(Image.open(SAMPLE_DIR / hit["image"]).convert("RGB"))
            ax.set_title(f"{hit['score']:.3f}", fontsize=9)
    fig.suptitle(f"complete_look on the bundled sample ({result['model_version'].split('+')[-1]})", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def cmd_look_example(a: argparse.Namespace) -> int:
    result = run(a.query, [c for c in a.categories.split(",") if c], a.k, a.limit)
    plot(result, Path(a.out))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    print(json.dumps({"query": result["query"], "categories": result["categories"],
                      "top": {g["category"]: g["results"][0]["product_id"] for g in result["complements"]
                              if g["results"]}, "png": a.out}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("look-example", help="draw a complete-the-look example on the bundled sample (README figure)")
    p.add_argument("--query", default="top", help="a sample product id, or a category (its first product)")
    p.add_argument("--categories", default="", help="comma list of categories (default: the learnt complements)")
    p.add_argument("--k", type=int, default=4, help="items per category")
    p.add_argument("--limit", type=int, default=0, help="only the first N sample products (0 = all 264)")
    p.add_argument("--out", default="docs/look/look-example.png")
    p.add_argument("--json", default="docs/look/look-example.json")
    p.set_defaults(func=cmd_look_example)
