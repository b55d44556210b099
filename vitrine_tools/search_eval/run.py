"""Set up and run a search suite: a Milvus Lite server (unless ``--milvus-uri``), the production
models, the gallery indexed as the workers index it, the ``QueryService`` the query worker runs.
Writes the JSON and a bar chart per measure (``.png`` beside it)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["cmd_search_eval", "plot_systems"]


def cmd_search_eval(a: argparse.Namespace) -> int:
    from indexer.schema import IndexLayout
    from indexer.store import ProductIndex
    from vitrine_tools.search_eval.gallery import index_gallery, read_gallery
    from workers.query.service import QueryService
    from workers.vision.factory import production_pipeline

    t0 = time.time()
    data = Path(a.data)
    gallery = read_gallery(Path(a.gallery or data / "catalog" / "catalog.csv"), a.gallery_limit)
    vision = production_pipeline(device="cpu" if a.device == "auto" else a.device, dtype=a.dtype)
    vision.load()
    with tempfile.TemporaryDirectory(prefix="vitrine-eval-") as tmp:
        service_handle = None
        uri = a.milvus_uri
        if uri is None:
            from vitrine_tools.devstack.services import start_milvus_lite

            service_handle = start_milvus_lite(Path(tmp) / "milvus")
            uri = service_handle.address
        try:
            layout = IndexLayout(model_version=vision.model_version, alias=f"eval_{uuid.uuid4().hex[:8]}",
                                 dims={"image_vec": vision.image_dim, "colour_vec": vision.colour_dim,
                                       "text_vec": vision.text_dim})
            index = ProductIndex(uri, layout).start(create=True)
            t_index = time.time()
            written = index_gallery(gallery, vision, index, images=a.suite == "modifier", cache_dir=Path(a.cache))
            index_s = time.time() - t_index
            service = QueryService(vision, index, None, max_pixels=40_000_000,  # type: ignore[arg-type]
                                   max_image_bytes=20_000_000)
            service.ready = True
            if a.suite == "text":
                from vitrine_tools.search_eval.text import read_text_queries, run_text_suite

                queries = read_text_queries(Path(a.queries or data / "queries" / "text_sample.csv"))
                result = run_text_suite(queries, gallery, service, index, vision)
            else:
                from vitrine_tools.search_eval.modifier import read_modifier_queries, run_modifier_suite

                queries = read_modifier_queries(Path(a.queries or data / "queries" / "modifier_sample.csv"))
                result = run_modifier_suite(queries, gallery, service, index, Path(a.data_root or data))
        finally:
            if service_handle is not None:
                service_handle.stop()
    result["indexed"] = written
    result["index_s"] = round(index_s, 1)
    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        path = Path(a.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        plot_systems(result, path.with_suffix(".png"))
    return 0


def plot_systems(result: dict[str, Any], path: Path) -> None:
    """One bar group per measure, one bar per system (the dicts of ``result`` with the same keys)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = {k: v for k, v in result.items() if isinstance(v, dict) and v and
               all(isinstance(x, (int, float)) for x in v.values())}
    measures = list(next(iter(systems.values())).keys()) if systems else []
    fig, ax = plt.subplots(figsize=(1.6 * max(len(measures), 1) + 2, 3.6))
    width = 0.8 / max(len(systems), 1)
    for i, (name, vals) in enumerate(systems.items()):
        xs = [j + i * width for j in range(len(measures))]
        ax.bar(xs, [vals[m] for m in measures], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(measures))], measures)
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title(path.stem)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
