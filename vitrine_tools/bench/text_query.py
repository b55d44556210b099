"""``vitrine bench text``: hybrid text search (BM25 + dense, RRF) against dense-only text search, p50
and p99, at 100k items, filtered and not, in one run on one collection.

Rows are built in the production layout (``indexer.schema.IndexLayout`` with the lexical field, via
``ProductIndex.apply``): synthetic titles from a fashion vocabulary (so BM25 has real postings), a
synthetic 384-d ``text_vec`` per row, placeholder image and colour vectors. Queries are 2-3 word
phrases from the same vocabulary; the filtered case adds a category filter, as a parsed query
would. BM25 alone is timed too, so the report shows what the hybrid request is made of. All three answer the same queries in turn (pair by pair), so the ratio is fair on a
shared machine. Milvus Lite by default; ``--milvus-uri`` for another Milvus (2.5+: BM25).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

COLOURS = ("black", "white", "blue", "red", "green", "grey", "navy blue", "pink", "brown", "beige", "yellow", "purple")
TYPES = ("tshirts", "shirts", "jeans", "dresses", "sweaters", "jackets", "casual shoes", "sports shoes", "heels",
         "handbags", "watches", "kurtas", "shorts", "skirts", "trousers", "sandals")
CATEGORY = {"tshirts": "tshirt", "shirts": "shirt", "jeans": "pants", "dresses": "dress", "sweaters": "sweater",
            "jackets": "outerwear", "casual shoes": "shoes", "sports shoes": "shoes", "heels": "shoes",
            "handbags": "bag", "watches": "watch", "kurtas": "top", "shorts": "shorts", "skirts": "skirt",
            "trousers": "pants", "sandals": "shoes"}
BRANDS = ("nike", "puma", "adidas", "levis", "zara", "mango", "roadster", "wrogn", "fossil", "titan")
WORDS = ("slim", "fit", "printed", "solid", "striped", "cotton", "leather", "casual", "party", "summer", "winter",
         "men", "women", "classic", "regular", "round", "neck", "hooded", "running", "formal")


def _rows(n: int, rng: np.random.Generator) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i in range(n):
        art, col, brand = TYPES[rng.integers(len(TYPES))], COLOURS[rng.integers(len(COLOURS))], BRANDS[rng.integers(len(BRANDS))]
        extra = " ".join(WORDS[j] for j in rng.choice(len(WORDS), 3, replace=False))
        out.append((f"b{i}", {"title": f"{brand} {extra} {col} {art}", "brand": brand, "price": 10.0,
                              "article_type": art, "colour": col, "category": CATEGORY[art]}))
    return out


def _wait_indexed(index: Any, n: int, timeout_s: float = 900.0) -> float:
    """Wait until every vector index (dense and sparse) covers all ``n`` rows, so neither system is
    timed on brute-force search of growing segments; the seconds waited."""
    c, t0 = index._c(), time.perf_counter()
    names = c.list_indexes(index.collection)
    while time.perf_counter() - t0 < timeout_s:
        done = [c.describe_index(index.collection, name).get("indexed_rows", 0) >= n for name in names]
        if all(done):
            break
        time.sleep(2)
    return time.perf_counter() - t0


def run(uri: str, n: int = 100_000, queries: int = 200, seed: int = 0) -> dict[str, Any]:
    from indexer.schema import IndexLayout
    from indexer.store import ProductIndex, TextFusion
    from streams.codecs import IndexRecord
    from streams.schema import Filters

    rng = np.random.default_rng(seed)
    dims = {"image_vec": 256, "colour_vec": 64, "text_vec": 384}
    layout = IndexLayout(model_version="bench@1", dims=dims, alias=f"bench_text_{uuid.uuid4().hex[:6]}")
    index = ProductIndex(uri, layout).start(create=True)
    t0 = time.perf_counter()
    rows = _rows(n, rng)
    for start in range(0, n, 2000):
        recs = []
        for pid, fields in rows[start:start + 2000]:
            vecs = {k: rng.standard_normal(d).astype(np.float32) for k, d in dims.items()}
            vecs = {k: v / np.linalg.norm(v) for k, v in vecs.items()}
            recs.append(IndexRecord("upsert", pid, 1, 1.0, fields, vecs, "bench@1"))
        index.apply(recs)
    index.flush()
    build_s = time.perf_counter() - t0
    index_wait_s = _wait_indexed(index, n)
    fusion = TextFusion()
    qs = []
    for _ in range(queries):
        art, col = TYPES[rng.integers(len(TYPES))], COLOURS[rng.integers(len(COLOURS))]
        text = f"{col} {art}" if rng.random() < 0.5 else f"{WORDS[rng.integers(len(WORDS))]} {col} {art}"
        vec = rng.standard_normal(384).astype(np.float32)
        qs.append((text, vec / np.linalg.norm(vec), CATEGORY[art]))
    report: dict[str, Any] = {"items": n, "queries": queries, "build_s": round(build_s, 1),
                              "index_wait_s": round(index_wait_s, 1)}
    for label, filtered in (("unfiltered", False), ("filtered", True)):
        times: dict[str, list[float]] = {"hybrid": [], "dense": [], "bm25": []}
        for text, vec, cat in qs[:10]:  # warm up both paths
            f = Filters(category=cat) if filtered else Filters()
            index.search_text(text, vec, f, 10, fusion=fusion)
            index.search(vec, "text_vec", f, 10)
            index.search_lexical(text, f, 10)
        for text, vec, cat in qs:
            f = Filters(category=cat) if filtered else Filters()
            t = time.perf_counter()
            index.search_text(text, vec, f, 10, fusion=fusion)
            times["hybrid"].append(time.perf_counter() - t)
            t = time.perf_counter()
            index.search(vec, "text_vec", f, 10)
            times["dense"].append(time.perf_counter() - t)
            t = time.perf_counter()
            index.search_lexical(text, f, 10)
            times["bm25"].append(time.perf_counter() - t)
        stats = {name: {"p50_ms": round(float(np.percentile(ts, 50)) * 1e3, 2),
                        "p99_ms": round(float(np.percentile(ts, 99)) * 1e3, 2)} for name, ts in times.items()}
        stats["p99_ratio_hybrid_over_dense"] = round(stats["hybrid"]["p99_ms"] / stats["dense"]["p99_ms"], 3)
        # the hybrid request is the two sub-searches plus the fusion: how much of it each one is
        stats["p50_ratio_hybrid_over_dense_plus_bm25"] = round(
            stats["hybrid"]["p50_ms"] / (stats["dense"]["p50_ms"] + stats["bm25"]["p50_ms"]), 3)
        report[label] = stats
    index._c().drop_collection(index.collection)
    index.close()
    return report
