"""``vitrine eval modifier``: photo + text modifier against image only and text only, in one run.

Queries are ``modifier_sample.csv``'s format (``image,modifier,exclude_product_id,category,
article_type,colour,gender``): ``image`` is a path under the data root (a real-shot photo or a
catalogue shot), sent as bytes (never its product id); ``exclude_product_id`` is dropped from
every system's results. Relevance: 2 when every named column matches, 1 when the category or
article type matches and exactly one other named column differs, 0 otherwise.

- ``vitrine``: ``QueryService.modified_search`` (the ``image_text`` kind of the query worker);
- ``image_only``: the photo's neighbours (``image`` kind: image vector, category fusion);
- ``text_only``: the modifier as a text query (``QueryService.text_search``).

Measures: ``p_at_10`` (grade 2 counts) and ``ndcg_at_10``.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streams.schema import Filters
from vitrine_tools.search_eval.gallery import GalleryItem
from vitrine_tools.search_eval.metrics import ndcg_at, precision_at, summarise

__all__ = ["grade", "read_modifier_queries", "run_modifier_suite"]

NAMED = ("category", "article_type", "colour", "gender")
K = 10


def read_modifier_queries(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f)]


def grade(named: Mapping[str, str], attrs: Mapping[str, str]) -> int:
    misses = [g for g, v in named.items() if attrs.get(g, "") != v]
    if not misses:
        return 2
    kind = {"category", "article_type"} & set(named)
    if len(misses) == 1 and kind and misses[0] not in kind:
        return 1
    return 0


def run_modifier_suite(queries: Sequence[dict[str, str]], gallery: Sequence[GalleryItem], service: Any,
                       index: Any, data_root: Path) -> dict[str, Any]:
    from workers.query.fusion import SEARCH_POOL, category_rerank
    from workers.vision.decode import decode_image
    from workers.vision.fusion import FusionConfig

    by_id = {g.product_id: g for g in gallery}

    async def all_queries() -> tuple[dict[str, list[dict[str, float]]], list[dict[str, Any]]]:
        out: dict[str, list[dict[str, float]]] = {"vitrine": [], "image_only": [], "text_only": []}
        rows: list[dict[str, Any]] = []
        for q in queries:
            named = {g: q[g].lower() for g in NAMED if q.get(g)}
            exclude = (q["exclude_product_id"],) if q.get("exclude_product_id") else ()
            image = decode_image((data_root / q["image"]).read_bytes(), target=224)
            analysis = (await asyncio.to_thread(service.vision.analyse, [image]))[0]
            answer = await service.modified_search(analysis, q["modifier"], Filters(), K, exclude_ids=exclude)
            hits, extra = answer.hits[:K], answer.extra
            near = await asyncio.to_thread(index.search, analysis.image_vec, "image_vec", Filters(), SEARCH_POOL,
                                           exclude_ids=exclude)
            if analysis.category_probs is not None and near:
                near, _ = category_rerank(near, analysis.category_probs, K, getattr(service.vision, "fusion",
                                                                                    FusionConfig()))
            text_hits = (await service.text_search(q["modifier"], Filters(), K + len(exclude))).hits
            text_hits = [h for h in text_hits if h.product_id not in exclude]
            gallery_grades = [grade(named, g.attributes) for g in gallery if g.product_id not in exclude]
            for name, ranked in (("vitrine", hits), ("image_only", near), ("text_only", text_hits)):
                grades = [grade(named, by_id[h.product_id].attributes) if h.product_id in by_id else 0
                          for h in ranked[:K]]
                out[name].append({"p_at_10": precision_at(grades, K),
                                  "ndcg_at_10": ndcg_at(grades, K, gallery_grades)})
            rows.append({"image": q["image"], "modifier": q["modifier"], "named": named,
                         "understood": extra.get("understood"),
                         **{f"{n}_p_at_10": out[n][-1]["p_at_10"] for n in out}})
        return out, rows

    per, rows = asyncio.run(all_queries())
    result: dict[str, Any] = {name: summarise(ms) for name, ms in per.items()}
    best = max(result["image_only"]["p_at_10"], result["text_only"]["p_at_10"])
    result["p_at_10_over_best_baseline"] = round(result["vitrine"]["p_at_10"] / best, 3) if best else None
    result["queries"] = len(queries)
    result["gallery"] = len(gallery)
    result["worst"] = sorted(rows, key=lambda r: r["vitrine_p_at_10"])[:10]
    return result
