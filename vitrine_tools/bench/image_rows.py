"""``vitrine bench images``: what every image of a product costs against one image per product.

Two collections in the production layout on one Milvus, the same products (synthetic vectors and
fields), one with one image per product, one with ``--images`` (default 3): rows held, the write rate
of ``ProductIndex.apply`` (the index writer's write path: guard read, image rows, product row), and
photo-search latency (grouped by product: ``group_by`` on ``item``) pair by pair in one run.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run(uri: str, products: int = 20_000, images: int = 3, queries: int = 200, seed: int = 0) -> dict[str, Any]:
    from indexer.schema import IndexLayout
    from indexer.store import ProductIndex
    from streams.codecs import IndexRecord
    from streams.schema import Filters

    rng = np.random.default_rng(seed)
    dims = {"image_vec": 256, "colour_vec": 64, "text_vec": 384}
    img = _unit(rng, products * images, dims["image_vec"])
    col = _unit(rng, products * images, dims["colour_vec"])
    txt = _unit(rng, products, dims["text_vec"])
    report: dict[str, Any] = {"products": products, "queries": queries}
    indexes = {}
    for n in (1, images):
        layout = IndexLayout(model_version="bench@1", dims=dims, alias=f"bench_img_{n}_{uuid.uuid4().hex[:6]}")
        index = ProductIndex(uri, layout).start(create=True)
        t0 = time.perf_counter()
        for start in range(0, products, 500):
            recs = []
            for p in range(start, min(start + 500, products)):
                first = p * images
                extra = tuple((f"s3://b/{p}-{i}", {"image_vec": img[first + i], "colour_vec": col[first + i]})
                              for i in range(1, n))
                recs.append(IndexRecord("upsert", f"p{p}", 1, 1.0,
                                        {"title": f"product {p}", "category": "shoes", "price": 10.0,
                                         "image_uri": f"s3://b/{p}-0"},
                                        {"image_vec": img[first], "colour_vec": col[first], "text_vec": txt[p]},
                                        "bench@1", extra_images=extra))
            index.apply(recs)
        index.flush()
        write_s = time.perf_counter() - t0
        rows = int(index._c().query(index.collection, filter="", output_fields=["count(*)"])[0]["count(*)"])
        report[f"{n}_image"] = {"rows": rows, "write_s": round(write_s, 1),
                                "products_per_s": round(products / write_s, 1), "rows_per_s": round(rows / write_s, 1)}
        indexes[n] = index
    qs = _unit(np.random.default_rng(seed + 1), queries, dims["image_vec"])
    times: dict[int, list[float]] = {n: [] for n in indexes}
    for q in qs[:10]:
        for index in indexes.values():
            index.search(q, "image_vec", Filters(), 10)
    for q in qs:
        for n, index in indexes.items():
            t = time.perf_counter()
            index.search(q, "image_vec", Filters(), 10)
            times[n].append(time.perf_counter() - t)
    for n, ts in times.items():
        report[f"{n}_image"]["search_p50_ms"] = round(float(np.percentile(ts, 50)) * 1e3, 2)
        report[f"{n}_image"]["search_p99_ms"] = round(float(np.percentile(ts, 99)) * 1e3, 2)
    one, many = report["1_image"], report[f"{images}_image"]
    report["ratios"] = {"rows": round(many["rows"] / one["rows"], 2),
                        "write_time": round(many["write_s"] / one["write_s"], 2),
                        "search_p50": round(many["search_p50_ms"] / one["search_p50_ms"], 2),
                        "search_p99": round(many["search_p99_ms"] / one["search_p99_ms"], 2)}
    for index in indexes.values():
        index._c().drop_collection(index.collection)
        index.close()
    return report
