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

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
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
          partition_key: bool = False, metric: str = "COSINE", binary: bool = False, sync_index: bool = False) -> float:
    """Create ``name`` with the production layout, insert ``x``, flush, load, wait for the index.

    ``binary``: ``x`` is packed bits (``np.packbits``, uint8 rows of dim/8 bytes) for a BINARY_VECTOR
    field. ``sync_index``: release the collection before inserting, so that ``load`` builds the index
    of every segment itself (Milvus Lite builds in the background after a flush otherwise, and its
    describe_index always reports every row indexed; an index type it cannot build then surfaces
    as the error of ``load`` instead of a silent brute-force scan)."""
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
    if binary:
        s.add_field("image_vec", DataType.BINARY_VECTOR, dim=x.shape[1] * 8)
    else:
        s.add_field("image_vec", DataType.FLOAT_VECTOR, dim=x.shape[1])
    idx = client.prepare_index_params()
    idx.add_index("image_vec", index_type=index_type, metric_type=metric, params=params)
    client.create_collection(name, schema=s, index_params=idx, consistency_level="Strong")
    if sync_index:
        client.release_collection(name)
    t0 = time.perf_counter()
    step = 5000
    for i in range(0, len(x), step):
        rows = [{"product_id": f"p{j}", "category": CATEGORIES[cats[j]], "deleted": False, "in_stock": bool(j % 3),
                 "price": float(j % 200), "colour": COLOURS[j % len(COLOURS)], "brand": f"brand{j % 97}",
                 "image_vec": bytes(x[j]) if binary else x[j].tolist()} for j in range(i, min(i + step, len(x)))]
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


# --------------------------------------------------------------------------------------------
# Quantised indexes (``--index-types``): one collection per index type on the same vectors and
# queries, each against the exact float search.

HNSW_EFS = (64, 128, 256, 512)
IVF_NPROBES = (8, 16, 32, 64, 128)
RECALL_TARGET = 0.95


@dataclass
class Server:
    """Where one index type is measured. ``pid``: the server process (its RSS is the measured
    memory), ``data_dir``: where it writes index files (their size is measured too), ``fresh``:
    started for this index type alone (so its RSS holds nothing else)."""

    uri: str
    pid: int | None = None
    data_dir: Path | None = None
    fresh: bool = False


def is_binary(index_type: str) -> bool:
    return index_type.upper().startswith("BIN_")


def nlist_for(n: int) -> int:
    """IVF cells: about 4·sqrt(n) (Milvus's rule of thumb), at least 39 training points per cell
    (FAISS's minimum), a power of two, at least 8."""
    target = max(8.0, min(4 * n ** 0.5, n / 39))
    return 1 << int(np.log2(target))


def index_config(index_type: str, n: int, dim: int, m: int = 16) -> dict[str, Any]:
    """Build params, the swept search param and its values, and the metric of one index type."""
    t = index_type.upper()
    metric = "HAMMING" if is_binary(t) else "COSINE"
    if t.startswith("HNSW"):
        params: dict[str, Any] = {"M": m, "efConstruction": 200}
        if t == "HNSW_SQ":
            params["sq_type"] = "SQ8"
        elif t in ("HNSW_PQ", "HNSW_PRQ"):
            params.update({"m": dim // 8, "nbits": 8})
        return {"params": params, "search_key": "ef", "values": HNSW_EFS, "metric": metric}
    if t in ("FLAT", "BIN_FLAT", "BRUTE_FORCE"):
        return {"params": {}, "search_key": None, "values": (0,), "metric": metric}
    params = {"nlist": nlist_for(n)}
    if t == "IVF_PQ":
        params.update({"m": dim // 8, "nbits": 8})
    return {"params": params, "search_key": "nprobe", "values": IVF_NPROBES, "metric": metric}


def estimated_bytes_per_vector(index_type: str, dim: int, params: dict[str, Any]) -> tuple[float, str]:
    """The index's own bytes per vector from its documented layout (codes + graph links + ids);
    not the scalar fields, nor the raw vectors a server may keep beside the index."""
    t = index_type.upper()
    links = 2 * int(params.get("M", 16)) * 4  # HNSW level 0: 2·M int32 neighbours
    table = {
        "FLAT": (4 * dim, "float32: 4·dim"),
        "BRUTE_FORCE": (4 * dim, "float32: 4·dim"),
        "IVF_FLAT": (4 * dim + 8, "float32 4·dim + 8 (id)"),
        "IVF_SQ8": (dim + 8, "SQ8 1·dim + 8 (id)"),
        "IVF_PQ": (int(params.get("m", dim // 8)) + 8, "PQ m bytes + 8 (id)"),
        "SCANN": (dim / 4 + 4 * dim + 8, "4-bit PQ dim/4 + raw float32 4·dim for refine + 8 (id)"),
        "IVF_RABITQ": (dim / 8 + 16, "RaBitQ dim/8 + ~8 (per-vector factors) + 8 (id)"),
        "HNSW": (4 * dim + links, "float32 4·dim + HNSW links 2·M·4"),
        "HNSW_SQ": (dim + links, "SQ8 1·dim + HNSW links 2·M·4"),
        "HNSW_PQ": (int(params.get("m", dim // 8)) + links, "PQ m bytes + HNSW links 2·M·4"),
        "BIN_FLAT": (dim / 8, "sign bits dim/8"),
        "BIN_IVF_FLAT": (dim / 8 + 8, "sign bits dim/8 + 8 (id)"),
    }
    return table.get(t, (float("nan"), "unknown layout"))


def listening_pid(uri: str) -> int | None:
    """The pid of the local process listening on ``uri``'s port (via /proc), or None (not on this
    host, not Linux, another user's process)."""
    from urllib.parse import urlparse

    u = urlparse(uri if "://" in uri else f"http://{uri}")
    if u.hostname not in ("127.0.0.1", "localhost", "::1") or u.port is None:
        return None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == u.port:  # 0A: LISTEN
                inodes.add(f"socket:[{f[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def server_rss(pid: int | None) -> int | None:
    """Resident bytes of ``pid`` and its descendants, or None."""
    if pid is None:
        return None
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(proc.name)] = int(fields.get("PPid", "0").strip())
        if "VmRSS" in fields:
            rss[int(proc.name)] = int(fields["VmRSS"].split()[0]) * 1024
    if pid not in parents:
        return None
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        children = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(p, 0) for p in tree)


def _index_files(data_dir: Path | None) -> dict[str, int]:
    """Index files under a server's data dir (Milvus Lite: ``.../indexes/*.idx``; Milvus:
    ``data/index_files/...``), path → size."""
    if data_dir is None or not Path(data_dir).is_dir():
        return {}
    out = {}
    for root, _dirs, files in os.walk(data_dir):
        parts = Path(root).relative_to(data_dir).parts
        if "indexes" in parts or "index_files" in parts:
            for f in files:
                try:
                    out[os.path.join(root, f)] = os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
    return out


def sign_bits(x: np.ndarray) -> np.ndarray:
    """Sign quantisation: one bit per component (1 where > 0), packed to dim/8 bytes a row."""
    return np.packbits(x > 0, axis=1)


def _hit_ids(res: Any) -> list[int]:
    return [int(str(h.get("id", h.get("product_id")))[1:]) for h in res[0]]


def _search_rows(client: Any, name: str, x: np.ndarray, qs: np.ndarray, qdata: list[Any],
                 truth: dict[bool, list[set[int]]], k: int, cfg: dict[str, Any], rerank: int | None) -> list[dict[str, Any]]:
    """Latency and recall@k of every search param value, unfiltered and filtered; with ``rerank``
    each search fetches ``rerank`` candidates and re-ranks them by the float vectors (client side,
    inside the timed region)."""
    limit = rerank or k
    out = []
    for filtered in (False, True):
        expr = f'deleted == false and category == "{CATEGORIES[0]}"' if filtered else "deleted == false"
        for q in qdata[:20]:  # warm-up: the first searches load the index
            client.search(name, data=[q], anns_field="image_vec", limit=limit, filter=expr,
                          output_fields=["category"], consistency_level="Bounded",
                          search_params={"metric_type": cfg["metric"], "params": {}})
        for value in cfg["values"]:
            sp = {cfg["search_key"]: value} if cfg["search_key"] else {}
            lat, recall = [], []
            for qi, q in enumerate(qdata):
                t0 = time.perf_counter()
                res = client.search(name, data=[q], anns_field="image_vec", limit=limit, filter=expr,
                                    output_fields=["category"], consistency_level="Bounded",
                                    search_params={"metric_type": cfg["metric"], "params": sp})
                ids = _hit_ids(res)
                if rerank and ids:
                    cand = np.asarray(ids)
                    ids = cand[np.argsort(-(x[cand] @ qs[qi]), kind="stable")[:k]].tolist()
                lat.append(time.perf_counter() - t0)
                recall.append(len(set(ids[:k]) & truth[filtered][qi]) / k)
            a = np.asarray(lat)
            out.append({"search_params": sp, "filtered": filtered, "rerank": rerank,
                        "p50_ms": round(float(np.percentile(a, 50)) * 1e3, 2),
                        "p99_ms": round(float(np.percentile(a, 99)) * 1e3, 2), "qps": round(len(a) / a.sum(), 1),
                        "recall_at_10": round(float(np.mean(recall)), 4)})
    return out


def operating_point(rows: list[dict[str, Any]], target: float = RECALL_TARGET) -> dict[str, Any]:
    """The cheapest search param whose unfiltered recall reaches ``target`` (else the best one),
    with its unfiltered and filtered figures side by side."""
    unf = [r for r in rows if not r["filtered"]]
    pick = next((r for r in unf if r["recall_at_10"] >= target), max(unf, key=lambda r: r["recall_at_10"]))
    filt = next((r for r in rows if r["filtered"] and r["search_params"] == pick["search_params"]), None)
    return {"search_params": pick["search_params"], "reaches_target": pick["recall_at_10"] >= target,
            "recall_at_10": pick["recall_at_10"], "p50_ms": pick["p50_ms"], "p99_ms": pick["p99_ms"],
            "filtered_recall_at_10": filt["recall_at_10"] if filt else None,
            "filtered_p50_ms": filt["p50_ms"] if filt else None, "filtered_p99_ms": filt["p99_ms"] if filt else None}


def probe_index(client: Any, index_type: str, dim: int, m: int = 16) -> str | None:
    """None when the server builds and searches ``index_type`` on a small collection, else why not.
    Milvus rejects an unknown type at create_index; Milvus Lite accepts any name there and fails
    only when it builds the index (``load`` with ``sync_index``)."""
    name = f"bench_probe_{index_type.lower()}"
    n = 2000
    cfg = index_config(index_type, n, dim, m)
    x, cats = synthetic(n, dim, seed=7)
    data = sign_bits(x) if is_binary(index_type) else x
    try:
        build(client, name, data, cats, index_type, cfg["params"], metric=cfg["metric"], binary=is_binary(index_type),
              sync_index=True)
        q = bytes(data[0]) if is_binary(index_type) else x[0].tolist()
        sp = {cfg["search_key"]: cfg["values"][0]} if cfg["search_key"] else {}
        res = client.search(name, data=[q], anns_field="image_vec", limit=10, filter="deleted == false",
                            output_fields=["category"], search_params={"metric_type": cfg["metric"], "params": sp})
        if not res or not res[0]:
            return "the probe search returned no hits"
        return None
    except Exception as exc:  # noqa: BLE001 - the server's refusal is the finding
        return f"{type(exc).__name__}: {str(exc)[:400]}"
    finally:
        try:
            if client.has_collection(name):
                client.drop_collection(name)
        except Exception:  # noqa: BLE001
            pass


def compare_one(server: Server, n: int, x: np.ndarray, cats: np.ndarray, qs: np.ndarray,
                truth: dict[bool, list[set[int]]], index_type: str, k: int = 10, m: int = 16,
                rerank: tuple[int, ...] = (100,)) -> dict[str, Any]:
    from indexer.store import connect

    t = index_type.upper()
    dim = x.shape[1]
    cfg = index_config(t, n, dim, m)
    est, formula = estimated_bytes_per_vector(t, dim, cfg["params"])
    client = connect(server.uri, timeout=600)
    try:
        error = probe_index(client, t, dim, m)
        if error is not None:
            return {"index_type": t, "supported": False, "error": error}
        name = f"bench_cmp_{t.lower()}_{n}"
        binary = is_binary(t)
        data = sign_bits(x) if binary else x
        qdata = [bytes(b) for b in sign_bits(qs)] if binary else [q.tolist() for q in qs]
        rss0, files0 = server_rss(server.pid), _index_files(server.data_dir)
        try:
            build_s = build(client, name, data, cats, t, cfg["params"], metric=cfg["metric"], binary=binary,
                            sync_index=True)
            t0 = time.perf_counter()  # a reload: the index every segment has, not an interim scan
            client.release_collection(name)
            client.load_collection(name)
            reload_s = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001
            return {"index_type": t, "supported": True, "params": cfg["params"],
                    "error": f"{type(exc).__name__}: {str(exc)[:400]}"}
        print(f"{t}: built {n} in {build_s:.1f}s (reload {reload_s:.1f}s)", flush=True)
        rows = _search_rows(client, name, x, qs, qdata, truth, k, cfg, None)
        for r in rerank if binary else ():
            rows += _search_rows(client, name, x, qs, qdata, truth, k, cfg, r)
        rss1 = server_rss(server.pid)
        files1 = _index_files(server.data_dir)
        new_files = {p: s for p, s in files1.items() if files0.get(p) != s}
        for r in rows:
            print(f"  {t:12s} {r['search_params']!s:16s} filtered={r['filtered']!s:5s} rerank={r['rerank']!s:4s} "
                  f"p50={r['p50_ms']}ms p99={r['p99_ms']}ms recall@10={r['recall_at_10']}", flush=True)
        per_m = 1e6 / n
        memory: dict[str, Any] = {
            "index_estimated_mb_per_1m": round(est * 1e6 / 2**20, 1), "index_estimated_bytes_per_vector": est,
            "index_estimated_formula": formula,
            "server_rss_delta_mb_per_1m": (round((rss1 - rss0) * per_m / 2**20, 1)
                                           if rss0 is not None and rss1 is not None else None),
            "server_rss_measured": rss0 is not None and rss1 is not None,
            "server_rss_note": ("server RSS after build, load and the searches minus before: every field of the "
                                "rows, the raw vectors where the server keeps them, the index, allocator slack; "
                                + ("a server started for this index type alone" if server.fresh else
                                   "a shared server: memory freed by earlier types may be reused, so it can read low")),
            "index_files_mb_per_1m": (round(sum(new_files.values()) * per_m / 2**20, 1) if server.data_dir else None),
            "index_files": len(new_files) if server.data_dir else None,
        }
        entry: dict[str, Any] = {"index_type": t, "supported": True, "metric": cfg["metric"], "params": cfg["params"],
                                 "build_s": round(build_s, 1), "reload_s": round(reload_s, 1), "memory": memory,
                                 "results": rows,
                                 "operating_point": operating_point([r for r in rows if r["rerank"] is None])}
        if binary:
            for r in rerank:
                entry[f"operating_point_rerank_{r}"] = operating_point([row for row in rows if row["rerank"] == r])
            entry["binary_note"] = (f"sign bits of the same float vectors (dim={dim} bits), HAMMING; recall against the "
                                    f"exact float cosine top-{k}. rerank=R: R Hamming candidates re-ranked by the "
                                    "float vectors the client holds (a server doing it needs those too: +4·dim bytes "
                                    "a vector in memory, or a read per candidate)")
        client.drop_collection(name)
        return entry
    finally:
        client.close()


def sign_bits_exact(x: np.ndarray, cats: np.ndarray, qs: np.ndarray, k: int, truth: dict[bool, list[set[int]]],
                    rerank: tuple[int, ...] = (100,)) -> dict[str, Any]:
    """What any binary index can reach at best: exact Hamming search over the sign bits (NumPy), and
    its top-``rerank`` re-ranked by the float vectors, recall@k against the exact float top-k."""
    xs, qb = np.where(x > 0, 1.0, -1.0).astype(np.float32), np.where(qs > 0, 1.0, -1.0).astype(np.float32)
    out: dict[str, Any] = {"note": "NumPy, no server: Hamming = (dim - sign·sign)/2; ties broken by row order"}
    for filtered in (False, True):
        s = qb @ xs.T
        if filtered:
            s[:, cats != 0] = -np.inf
        order = np.argsort(-s, axis=1, kind="stable")[:, :max((k, *rerank))]
        ham = np.mean([len(set(order[i, :k].tolist()) & truth[filtered][i]) / k for i in range(len(qs))])
        key = "filtered" if filtered else "unfiltered"
        out[key] = {"hamming_recall_at_10": round(float(ham), 4)}
        for r in rerank:
            rr = []
            for i in range(len(qs)):
                cand = order[i, :r]
                top = cand[np.argsort(-(x[cand] @ qs[i]), kind="stable")[:k]]
                rr.append(len(set(top.tolist()) & truth[filtered][i]) / k)
            out[key][f"rerank_{r}_recall_at_10"] = round(float(np.mean(rr)), 4)
    return out


def compare_indexes(servers: Callable[[str], ContextManager[Server]], sizes: tuple[int, ...],
                    index_types: tuple[str, ...], dim: int = 256, queries: int = 200, k: int = 10, m: int = 16,
                    rerank: tuple[int, ...] = (100, 1000)) -> dict[str, Any]:
    """Every index type in ``index_types`` on the same synthetic vectors and queries: build seconds,
    recall@k against the exact NumPy search (unfiltered and category-filtered) and p50/p99 latency over
    a small sweep of ``ef`` (HNSW*) or ``nprobe`` (IVF*, BIN_IVF*), memory per million vectors
    (estimated from each index's layout; measured as server RSS and index file bytes where the server
    is local). ``servers(index_type)`` gives the server each type is measured on. A type the server
    does not support is reported ``{"index_type", "supported": false, "error"}``."""
    report: dict[str, Any] = {"dim": dim, "queries": queries, "k": k, "hnsw_m": m, "rerank": list(rerank),
                              "recall_target": RECALL_TARGET, "index_types": list(index_types), "sizes": {}}
    for n in sizes:
        x, cats = synthetic(n, dim)
        qs, _ = synthetic(queries, dim, seed=1)
        truth = {False: exact(x, qs, k), True: exact(x, qs, k, cats == 0)}
        entries = []
        for t in index_types:
            with servers(t) as server:
                report.setdefault("uri", server.uri)
                entries.append(compare_one(server, n, x, cats, qs, truth, t, k, m, rerank))
            if not entries[-1]["supported"]:
                print(f"{t}: not supported: {entries[-1]['error']}", flush=True)
        flat = next((e["memory"]["server_rss_delta_mb_per_1m"] for e in entries
                     if e["index_type"] in ("FLAT", "BRUTE_FORCE") and e.get("memory")), None)
        for e in entries:
            mem = e.get("memory")
            if flat is not None and mem and mem["server_rss_delta_mb_per_1m"] is not None:
                # where the server keeps the rows and raw vectors beside every index (Milvus Lite), this is
                # the index's own RSS; where it does not (Milvus drops raw vectors an index holds), it reads low
                mem["server_rss_over_flat_mb_per_1m"] = round(mem["server_rss_delta_mb_per_1m"] - flat, 1)
        report["sizes"][str(n)] = {"indexes": entries, "sign_bits_exact": sign_bits_exact(x, cats, qs, k, truth, rerank)}
        print(f"sign bits, exact NumPy: {report['sizes'][str(n)]['sign_bits_exact']}", flush=True)
    return report


def plot_compare(report: dict[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for n, r in report["sizes"].items():
        for e in r["indexes"]:
            if not e.get("results"):
                continue
            for ax, filtered in zip(axes, (False, True)):
                for rr in sorted({x["rerank"] for x in e["results"]}, key=str):
                    rows = [x for x in e["results"] if x["filtered"] == filtered and x["rerank"] == rr]
                    label = f"{e['index_type']}{f'+rerank{rr}' if rr else ''} ({int(n):,})"
                    ax.plot([x["recall_at_10"] for x in rows], [x["p99_ms"] for x in rows], marker="o", label=label)
    for ax, filtered in zip(axes, (False, True)):
        ax.set(xlabel="recall@10 (vs exact float search)", yscale="log",
               title=f"{'category-filtered' if filtered else 'unfiltered'}, {report.get('uri', '')}")
    axes[0].set_ylabel("p99 latency, ms")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
