"""``vitrine bench look``: ``complete_look`` latency at 100k items on CPU, p50 and p99, against one
style search (the unit a look is made of) and a ``similar`` query, answered in turn in the same run.

Both go through the real ``QueryService`` (parse, the product read, the searches, the reply) on the
production layout (``IndexLayout`` with ``style_vec``, HNSW, category as the partition key) in a
Milvus Lite server, with the shipped compatibility head (``StyleEmbedder``: the defaults and the
type-aware query vectors). A look of a product is one ``get`` and one inner-product search per
wanted category (the defaults: up to five), run concurrently; the photo path adds the detector and
the backbone, which ``vitrine bench ingest`` measures. The stored vectors are synthetic unit vectors
(the search cost does not depend on what they mean); the categories follow the catalogue's mix.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import numpy as np

# the catalogue's coarse categories, roughly in its proportions
MIX = {"top": 0.16, "tshirt": 0.12, "shirt": 0.08, "pants": 0.1, "shoes": 0.14, "bag": 0.1, "dress": 0.08,
       "outerwear": 0.06, "skirt": 0.05, "shorts": 0.04, "sweater": 0.04, "belt": 0.03}


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def run(uri: str, n: int = 100_000, queries: int = 200, k: int = 10, seed: int = 0) -> dict[str, Any]:
    """Milvus Lite 3.x or Milvus 2.4+: the production layout has four vector fields and JSON lists,
    which Milvus 2.3.5 (the ``milvus`` wheel) refuses."""
    from indexer.schema import IndexLayout
    from indexer.store import ProductIndex
    from streams.codecs import IndexRecord
    from vitrine_tools.bench.text_query import _wait_indexed
    from workers.query.service import QueryService
    from workers.vision.fakes import fake_pipeline
    from workers.vision.style import StyleEmbedder
    from workers.vision.trained import WEIGHTS_DIR

    style = StyleEmbedder(WEIGHTS_DIR)
    style.load()
    rng = np.random.default_rng(seed)
    dims = {"image_vec": 256, "colour_vec": 64, "text_vec": 384, "style_vec": style.dim}
    layout = IndexLayout(model_version="bench@look", dims=dims, alias=f"bench_look_{uuid.uuid4().hex[:6]}")
    index = ProductIndex(uri, layout).start(create=True)
    cats = list(MIX)
    p = np.array(list(MIX.values()))
    category = rng.choice(len(cats), n, p=p / p.sum())
    t0 = time.perf_counter()
    for start in range(0, n, 2000):
        m = min(2000, n - start)
        vecs = {name: _unit(rng, m, d) for name, d in dims.items()}
        recs = [IndexRecord("upsert", f"b{start + i}", 1, 1.0,
                            {"title": f"item {start + i}", "category": cats[category[start + i]],
                             "price": float(rng.integers(5, 300)), "in_stock": bool(rng.random() < 0.8),
                             "gender": "women" if rng.random() < 0.6 else "men"},
                            {name: v[i] for name, v in vecs.items()}, "bench@look") for i in range(m)]
        index.apply(recs)
    index.flush()
    build_s = time.perf_counter() - t0
    index_wait_s = _wait_indexed(index, n)

    vision = fake_pipeline()
    vision.style = style
    svc = QueryService(vision, index, None, max_pixels=1, max_image_bytes=1)  # type: ignore[arg-type]
    svc.ready = True
    picks = rng.integers(0, n, queries)

    from streams.schema import Filters

    def filters(filtered: bool) -> dict[str, Any]:
        return {"in_stock": True, "price_max": 150.0, "gender": "women"} if filtered else {}

    async def timed(body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        t = time.perf_counter()
        reply, status = await svc.handle(body, "http")
        if status != 200:
            raise RuntimeError(f"bench query failed: {reply}")
        return time.perf_counter() - t, reply

    async def one_search(pid: int, filtered: bool) -> float:
        """One style search of one category (the unit a look is made of), on the index directly."""
        vec = style.query([(cats[category[pid]], query_vecs[pid % len(query_vecs)])], "shoes")
        t = time.perf_counter()
        await asyncio.to_thread(index.search_style, vec, "shoes", Filters(**filters(filtered)), k)
        return time.perf_counter() - t

    query_vecs = _unit(np.random.default_rng(seed + 1), 64, style.dim)

    async def sweep() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label, filtered in (("unfiltered", False), ("filtered", True)):
            f = filters(filtered)
            look = {"request_id": "l", "kind": "complete_look", "k": k, "filters": f}
            similar = {"request_id": "s", "kind": "similar", "k": k, "filters": f}
            for pid in picks[:10]:  # warm up
                await timed({**look, "product_id": f"b{pid}"})
                await one_search(pid, filtered)
                await timed({**similar, "product_id": f"b{pid}"})
            times: dict[str, list[float]] = {"complete_look": [], "one_search": [], "similar": []}
            groups, per_group = [], []
            for pid in picks:  # in turn, so the ratios are fair on a shared machine
                t, reply = await timed({**look, "product_id": f"b{pid}"})
                times["complete_look"].append(t)
                groups.append(len(reply["complements"]))
                per_group.append(np.mean([len(g["results"]) for g in reply["complements"]]))
                times["one_search"].append(await one_search(pid, filtered))
                times["similar"].append((await timed({**similar, "product_id": f"b{pid}"}))[0])
            stats: dict[str, Any] = {name: {"p50_ms": round(float(np.percentile(ts, 50)) * 1e3, 2),
                                            "p99_ms": round(float(np.percentile(ts, 99)) * 1e3, 2)}
                                     for name, ts in times.items() if ts}
            for peer in ("one_search", "similar"):
                if peer in stats:
                    stats[f"p99_ratio_look_over_{peer}"] = round(
                        stats["complete_look"]["p99_ms"] / stats[peer]["p99_ms"], 3)
            stats["categories_per_look_mean"] = round(float(np.mean(groups)), 2)
            stats["results_per_category_mean"] = round(float(np.mean(per_group)), 2)
            out[label] = stats
        return out

    report: dict[str, Any] = {"items": n, "queries": queries, "k": k, "style_dim": style.dim,
                              "model": f"{style.name}@{style.version}", "index_type": layout.index_type,
                              "build_s": round(build_s, 1), "index_wait_s": round(index_wait_s, 1)}
    report.update(asyncio.run(sweep()))
    index._c().drop_collection(index.collection)
    index.close()
    return report
