"""``vitrine bench query``: latency, QPS and recall of filtered vector search at 10k-1M items.

Synthetic unit vectors (a mixture of 64 clusters, so neighbourhoods exist as in real embeddings)
in the production layout (one vector field, the hot scalar filters), searched with and without a
category filter. Recall@10 is measured against an exact NumPy search over the same rows (over the
filtered subset for filtered queries). Each size is swept over HNSW ``ef`` to draw latency
against recall. Searches use Bounded consistency (the latency a shop's read path sees; one Strong row is added for
comparison: real Milvus makes a Strong search wait for the next time tick, ~200 ms). Runs on the Milvus Lite server by default, and on any Milvus by ``--milvus-uri``
(e.g. the real Milvus 2.3.5 server from the ``milvus`` wheel, which takes one vector field).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

CATEGORIES = ("tshirt", "shirt", "top", "sweater", "outerwear", "dress", "skirt", "pants", "shorts", "shoes")
COLOURS = ("black", "white", "blue", "red", "green", "grey", "navy blue", "pink", "brown", "beige", "yellow", "purple")
FACETS = ("category", "colour", "brand", "price")


def facet_costs(client: Any, name: str, queries: np.ndarray, k: int, relevant_set: int = 200, repeats: int = 30,
                scan_limit: int = 10_000) -> list[dict[str, Any]]:
    """What facets and the relevant set cost: the query worker's own facet code
    (``indexer.store.facet_rows`` + ``workers.query.page.count_facets``) under filters of three
    selectivities, and a search of ``relevant_set`` hits (what every query now ranks) against one
    of ``k``. Medians and p99 over ``repeats`` runs each."""
    from indexer.store import facet_rows
    from workers.query.page import count_facets

    cat = CATEGORIES[0]
    cases = {"narrow (category, in stock, price < 50)": f'deleted == false and category == "{cat}" and in_stock == true '
                                                         'and price < 50',
             "category (1/10)": f'deleted == false and category == "{cat}"',
             "none (above the scan limit: counted over the relevant set)": "deleted == false"}
    out = []
    for label, expr in cases.items():
        lat, counted, exact = [], 0, True
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = facet_rows(client, name, expr, FACETS, scan_limit)
            if rows is not None:
                count_facets(rows, FACETS, (25.0, 50.0, 100.0, 200.0, 500.0))
            lat.append(time.perf_counter() - t0)
            exact, counted = rows is not None, len(rows) if rows is not None else 0
        a = np.asarray(lat)
        out.append({"facets": label, "exact": exact, "rows_counted": counted,
                    "p50_ms": round(float(np.percentile(a, 50)) * 1e3, 2), "p99_ms": round(float(np.percentile(a, 99)) * 1e3, 2)})
    for limit in (k, relevant_set):
        lat = []
        for q in queries[:repeats * 2]:
            t0 = time.perf_counter()
            client.search(name, data=[q.tolist()], anns_field="image_vec", limit=limit, filter="deleted == false",
                          output_fields=["category", "colour", "brand", "price"], consistency_level="Bounded")
            lat.append(time.perf_counter() - t0)
        a = np.asarray(lat)
        out.append({"search_limit": limit, "p50_ms": round(float(np.percentile(a, 50)) * 1e3, 2),
                    "p99_ms": round(float(np.percentile(a, 99)) * 1e3, 2)})
    return out


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, dim)).astype(np.float32)
    labels = rng.integers(0, 64, n)
    x = centres[labels] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels % len(CATEGORIES)


def build(client: Any, name: str, x: np.ndarray, cats: np.ndarray, index_type: str, params: dict[str, Any],
          partition_key: bool = False) -> float:
    from pymilvus import DataType

    if client.has_collection(name):
        client.drop_collection(name)
    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("product_id", DataType.VARCHAR, is_primary=True, max_length=64)
    s.add_field("category", DataType.VARCHAR, max_length=64, is_partition_key=partition_key)
    s.add_field("deleted", DataType.BOOL)
    s.add_field("in_stock", DataType.BOOL)
    s.add_field("price", DataType.DOUBLE)
    s.add_field("colour", DataType.VARCHAR, max_length=64)
    s.add_field("brand", DataType.VARCHAR, max_length=128)
    s.add_field("image_vec", DataType.FLOAT_VECTOR, dim=x.shape[1])
    idx = client.prepare_index_params()
    idx.add_index("image_vec", index_type=index_type, metric_type="COSINE", params=params)
    client.create_collection(name, schema=s, index_params=idx, consistency_level="Strong")
    t0 = time.perf_counter()
    step = 5000
    for i in range(0, len(x), step):
        rows = [{"product_id": f"p{j}", "category": CATEGORIES[cats[j]], "deleted": False, "in_stock": bool(j % 3),
                 "price": float(j % 200), "colour": COLOURS[j % len(COLOURS)], "brand": f"brand{j % 97}",
                 "image_vec": x[j].tolist()} for j in range(i, min(i + step, len(x)))]
        client.insert(name, rows)
    client.flush(name)
    client.load_collection(name)
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:  # measure the index, not the brute-force scan of unindexed rows
        info = client.describe_index(name, "image_vec")
        if info.get("pending_index_rows", 0) == 0 and info.get("indexed_rows", len(x)) >= len(x):
            break
        time.sleep(0.5)
    return time.perf_counter() - t0


def exact(x: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[set[int]]:
    scores = q @ x.T  # (Q, N) cosine: rows are unit
    if mask is not None:
        scores[:, ~mask] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return [set(map(int, t)) for t in top]


def sweep(client: Any, name: str, x: np.ndarray, cats: np.ndarray, queries: np.ndarray, k: int,
          efs: tuple[int, ...], filtered: bool, consistency: str = "Bounded") -> list[dict[str, Any]]:
    cat = CATEGORIES[0]
    mask = cats == 0 if filtered else None
    truth = exact(x, queries, k, mask)
    expr = f'deleted == false and category == "{cat}"' if filtered else "deleted == false"
    out = []
    for q in queries[:20]:  # warm-up: the first searches load the index
        client.search(name, data=[q.tolist()], anns_field="image_vec", limit=k, filter=expr)
    for ef in efs:
        lat, recall = [], []
        for qi, q in enumerate(queries):
            t0 = time.perf_counter()
            res = client.search(name, data=[q.tolist()], anns_field="image_vec", limit=k, filter=expr,
                                output_fields=["category"], search_params={"metric_type": "COSINE", "params": {"ef": ef}},
                                consistency_level=consistency)
            lat.append(time.perf_counter() - t0)
            got = {int(str(h.get("id", h.get("product_id")))[1:]) for h in res[0]}
            recall.append(len(got & truth[qi]) / k)
        a = np.asarray(lat)
        out.append({"ef": ef, "filtered": filtered, "consistency": consistency, "p50_ms": round(float(np.percentile(a, 50)) * 1e3, 2),
                    "p99_ms": round(float(np.percentile(a, 99)) * 1e3, 2), "qps": round(len(a) / a.sum(), 1),
                    "recall_at_10": round(float(np.mean(recall)), 4)})
    return out


def run(uri: str, sizes: tuple[int, ...], dim: int = 256, queries: int = 200, k: int = 10,
        efs: tuple[int, ...] = (16, 32, 64, 128, 256), index_type: str = "HNSW",
        params: dict[str, Any] | None = None, partition_key: bool = False) -> dict[str, Any]:
    from indexer.store import connect

    params = params or {"M": 16, "efConstruction": 200}
    client = connect(uri)
    report: dict[str, Any] = {"uri": uri, "dim": dim, "index_type": index_type, "params": params,
                              "partition_key": partition_key, "sizes": {}}
    for n in sizes:
        x, cats = synthetic(n, dim)
        qs, _ = synthetic(queries, dim, seed=1)
        name = f"bench_q_{n}"
        build_s = build(client, name, x, cats, index_type, params, partition_key)
        print(f"{n} items: built in {build_s:.1f}s", flush=True)
        rows = sweep(client, name, x, cats, qs, k, efs, False) + sweep(client, name, x, cats, qs, k, efs, True)
        rows += sweep(client, name, x, cats, qs, k, (efs[len(efs) // 2],), True, consistency="Strong")
        for r in rows:
            print(f"  ef={r['ef']:4d} filtered={r['filtered']!s:5s} {r['consistency']:7s} p50={r['p50_ms']}ms p99={r['p99_ms']}ms "
                  f"qps={r['qps']} recall@10={r['recall_at_10']}", flush=True)
        facets = facet_costs(client, name, qs, k)
        for f in facets:
            print(f"  {f}", flush=True)
        report["sizes"][str(n)] = {"build_s": round(build_s, 1), "results": rows, "facets_and_pages": facets}
        client.drop_collection(name)
    client.close()
    return report


def plot(report: dict[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for n, r in report["sizes"].items():
        for filtered in (False, True):
            rows = [x for x in r["results"] if x["filtered"] == filtered and x["consistency"] == "Bounded"]
            ax.plot([x["recall_at_10"] for x in rows], [x["p99_ms"] for x in rows], marker="o",
                    label=f"{int(n):,} items{' + filter' if filtered else ''}")
    ax.set(xlabel="recall@10 (vs exact NumPy)", ylabel="p99 latency, ms", yscale="log",
           title=f"{report['index_type']} on {report['uri']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
