"""``vitrine eval text``: hybrid text search against BM25 alone and dense alone, in one run.

Queries are ``text_sample.csv``'s format (``query,gender,article_type,colour,usage``); relevance is
graded from the attributes a query names (an empty column is unconstrained): 2 when every named
attribute matches the item, 1 when the article type matches and exactly one other named attribute
differs, 0 otherwise. Each query runs three ways over the same Milvus Lite collection:

- ``vitrine``: ``QueryService.text_search``, what the query worker answers (parse, filters with
  relaxation, BM25 + dense fused by Milvus, boosts);
- ``bm25``: ``ProductIndex.search_lexical`` (Milvus's BM25 function alone);
- ``dense``: ``ProductIndex.search`` on ``text_vec`` (MiniLM alone).

Measures (``vitrine_tools.search_eval.metrics``): ``mrr``, ``map_at_50``, ``ndcg_at_10``, ``p_at_50``,
``r_at_50``, means over the queries.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streams.schema import Filters
from vitrine_tools.search_eval.gallery import GalleryItem
from vitrine_tools.search_eval.metrics import map_at, mrr, ndcg_at, precision_at, recall_at, summarise

__all__ = ["TextQuery", "grade", "read_text_queries", "run_text_suite"]

NAMED = ("gender", "article_type", "colour", "usage")
K = 50


class TextQuery(dict[str, str]):
    """One row: ``query`` plus the attributes it names (canonical lower case; absent = unconstrained)."""

    @property
    def text(self) -> str:
        return self["query"]

    @property
    def named(self) -> dict[str, str]:
        return {g: self[g] for g in NAMED if self.get(g)}


def read_text_queries(path: Path) -> list[TextQuery]:
    with path.open(newline="") as f:
        return [TextQuery({k: (v or "").strip().lower() if k != "query" else (v or "").strip() for k, v in r.items()})
                for r in csv.DictReader(f)]


def grade(named: Mapping[str, str], attrs: Mapping[str, str]) -> int:
    """2: every named attribute matches; 1: the article type matches and exactly one other differs."""
    misses = [g for g, v in named.items() if attrs.get(g, "") != v]
    if not misses:
        return 2
    if len(misses) == 1 and "article_type" in named and misses[0] != "article_type":
        return 1
    return 0


def _measures(ranked: Sequence[str], named: Mapping[str, str], gallery: Mapping[str, GalleryItem],
              gallery_grades: Sequence[int]) -> dict[str, float]:
    grades = [grade(named, gallery[p].attributes) if p in gallery else 0 for p in ranked]
    n_rel = sum(g >= 2 for g in gallery_grades)
    return {"mrr": mrr(grades), "map_at_50": map_at(grades, K, n_rel), "ndcg_at_10": ndcg_at(grades, 10, gallery_grades),
            "p_at_50": precision_at(grades, K), "r_at_50": recall_at(grades, K, n_rel)}


def run_text_suite(queries: Sequence[TextQuery], gallery: Sequence[GalleryItem], service: Any, index: Any,
                   vision: Any) -> dict[str, Any]:
    """The three systems over ``queries`` (the gallery already indexed behind ``index``)."""
    by_id = {g.product_id: g for g in gallery}

    async def all_queries() -> dict[str, list[dict[str, float]]]:
        out: dict[str, list[dict[str, float]]] = {"vitrine": [], "bm25": [], "dense": []}
        for q in queries:
            gallery_grades = [grade(q.named, g.attributes) for g in gallery]
            answer = await service.text_search(q.text, Filters(), K)
            hits, extra = answer.hits[:K], answer.extra  # the first page of K, as the worker answers it
            lexical = await asyncio.to_thread(index.search_lexical, q.text, Filters(), K)
            vec = vision.embed_text([q.text])[0]
            dense = await asyncio.to_thread(index.search, vec, "text_vec", Filters(), K)
            for name, ranked in (("vitrine", hits), ("bm25", lexical), ("dense", dense)):
                m = _measures([h.product_id for h in ranked], q.named, by_id, gallery_grades)
                out[name].append(m)
            out.setdefault("_rows", []).append({  # type: ignore[arg-type]
                "query": q.text, "named": q.named, "understood": extra.get("understood"),
                **{f"{n}_ndcg_at_10": round(out[n][-1]["ndcg_at_10"], 3) for n in ("vitrine", "bm25", "dense")}})
        return out

    per = asyncio.run(all_queries())
    rows = per.pop("_rows")
    result: dict[str, Any] = {name: summarise(ms) for name, ms in per.items()}
    best = max(result["bm25"]["mrr"], result["dense"]["mrr"])
    result["mrr_over_best_baseline"] = round(result["vitrine"]["mrr"] / best, 3) if best else None
    result["queries"] = len(queries)
    result["gallery"] = len(gallery)
    misparsed = [r for r in rows if r["understood"] and any(
        (r["understood"].get("attributes") or {}).get(g) != v for g, v in r["named"].items())]
    result["misparsed"] = [{"query": r["query"], "named": r["named"], "parsed": r["understood"]["attributes"]}
                           for r in misparsed][:20]
    result["worst"] = sorted(rows, key=lambda r: r["vitrine_ndcg_at_10"])[:10]
    return result
