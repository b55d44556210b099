"""The evaluation suites: vitrine (trained heads) and the untrained baseline, side by side.

Baseline = pooled ImageNet EfficientNet-Lite0 features (1280-d, L2-normalised), whole image, no
trained head: for retrieval the cosine neighbours, for tags and categories the majority vote of
the 10 nearest training-catalogue items (the "search engine without a model" answer).

vitrine = the serving path of ``TrainedVisionPipeline`` on cached backbone features: detector on
the whole-image maps, main region re-forwarded when small (``needs_crop``), projection, tagger,
fusion. Queries are held-out rows only (``vitrine_tools.training.data.is_heldout``, the same rule the
training used) unless ``split="all"``.

Conventions: larger score = more similar; P@k = share of the top k gallery items whose coarse
category equals the query's; MAP@10 = mean over queries of (1/10) * sum_{i<=10} P@i * rel_i.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitrine_tools.training import sets
from vitrine_tools.training.data import (
    SPLITS,
    GalleryItem,
    is_heldout,
    product_unit,
    read_boxes,
    read_gallery,
    read_queries,
)
from vitrine_tools.training.features import FeatureSet, Item, extract
from workers.vision.colour import ColourHistogramEmbedder
from workers.vision.fusion import fuse_category
from workers.vision.protocols import Region
from workers.vision.taxonomy import GROUPS
from workers.vision.trained import SharedHeads, _iou, needs_crop, read_manifest, regions_from_maps

__all__ = ["Evaluator"]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _topk(q: np.ndarray, g: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(Q, D), (G, D) unit rows -> top-k indices and scores (Q, k); ``exclude[i]`` = a gallery row to skip."""
    k = min(k, len(g) - (1 if exclude is not None else 0))
    if len(q) == 0 or k < 1:
        return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32)
    idx_out, sc_out = [], []
    for lo in range(0, len(q), 512):
        s = q[lo : lo + 512] @ g.T  # (b, G) float32
        if exclude is not None:
            ex = exclude[lo : lo + 512]
            s[np.arange(len(s))[ex >= 0], ex[ex >= 0]] = -np.inf
        i = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, i, 1), axis=1)
        i = np.take_along_axis(i, order, 1)
        idx_out.append(i)
        sc_out.append(np.take_along_axis(s, i, 1))
    return np.concatenate(idx_out), np.concatenate(sc_out)


def _category_metrics(top: np.ndarray, gal_cats: np.ndarray, q_cats: Sequence[str]) -> dict[str, float]:
    if len(q_cats) == 0 or top.shape[1] == 0:
        return {"category_p_at_1": None, "category_p_at_10": None, "category_map_at_10": None, "queries": 0}
    rel = gal_cats[top[:, :10]] == np.asarray(q_cats)[:, None]  # (Q, <=10) bool
    prec = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    return {"category_p_at_1": round(float(rel[:, 0].mean()), 4), "category_p_at_10": round(float(rel.mean()), 4),
            "category_map_at_10": round(float((prec * rel).sum(1).mean() / 10), 4), "queries": len(q_cats)}


def _crop_items(parents: Sequence[Item], boxes: Sequence[tuple[int, int, int, int]]) -> list[Item]:
    def make(p: Item, b: tuple[int, int, int, int]) -> tuple[np.ndarray, Any]:
        from workers.vision.pipeline import crop_region
        return crop_region(p.make()[0], b), None
    return [Item(f"{p.key}|crop:{b}", lambda p=p, b=b: make(p, b)) for p, b in zip(parents, boxes)]


@dataclass
class Served:
    vec: np.ndarray  # (N, 256) float32 unit rows
    pooled: np.ndarray  # (N, 1280) float32: main-region features
    regions: list[list[Region]]


class Evaluator:
    def __init__(self, data: Path, cache: Path, weights: Path, *, device: str = "cpu", seed: int = 0,
                 split: str = "heldout", progress: bool = True, dtype: str = "auto") -> None:
        manifest = read_manifest(weights)
        if manifest is None:
            raise FileNotFoundError(f"no trained heads in {weights}: run `vitrine train` first")
        self.shared = SharedHeads(manifest, weights, device, dtype)  # "auto": as the workers serve
        self.shared.load()
        self.data, self.cache, self.seed, self.split, self.progress = data, cache, seed, split, progress
        self.det_version = manifest["detector"]["version"]

    # ----------------------------------------------------------------- shared steps
    def _extract(self, name: str, items: Sequence[Item], maps: bool = False) -> FeatureSet:
        return extract(name, items, self.shared.backbone, self.cache, maps=maps, progress=self.progress)

    def _detect(self, fs: FeatureSet, threshold: float = 0.2) -> list[list[Region]]:
        from workers.vision.backbone import Geometry
        assert fs.s16 is not None and fs.s32 is not None and self.shared.detector is not None
        out: list[list[Region]] = []
        for lo in range(0, len(fs), 256):
            s16 = torch.from_numpy(np.asarray(fs.s16[lo : lo + 256], dtype=np.float32))
            s32 = torch.from_numpy(np.asarray(fs.s32[lo : lo + 256], dtype=np.float32))
            geoms = [Geometry(int(g[0]), int(g[1]), float(g[2]), float(g[3]), float(g[4])) for g in fs.geom[lo : lo + 256]]
            out += regions_from_maps(self.shared.detector, s16, s32, geoms, threshold)
        return out

    def served(self, name: str, items: Sequence[Item]) -> Served:
        """The pipeline's main-region vectors for ``items`` (whole forward, detect, crop when small)."""
        fs = self._extract(name, items, maps=True)
        regions = self._detect(fs)
        pooled = np.asarray(fs.pooled, dtype=np.float32).copy()
        small = [i for i, r in enumerate(regions) if needs_crop(r[0], int(fs.geom[i][0]), int(fs.geom[i][1]))]
        if small:
            crops = self._extract(f"{name}-crops-{self.det_version}", _crop_items([items[i] for i in small],
                                                                                  [regions[i][0].box for i in small]))
            pooled[small] = crops.pooled
        return Served(self.shared.embed_pooled(torch.from_numpy(pooled)), pooled, regions)

    def gallery(self, csv: Path) -> tuple[list[GalleryItem], list[Item], Served, FeatureSet]:
        items = read_gallery(csv)
        whole = sets.whole([g.path for g in items], fg_box=True)
        name = "catalog" if csv.resolve() == (self.data / "catalog" / "catalog.csv").resolve() else f"gallery-{csv.stem}"
        served = self.served(name, whole)
        return items, whole, served, self._extract(name, whole, maps=True)

    def _heldout_gallery(self, items: Sequence[GalleryItem]) -> np.ndarray:
        if self.split == "all":
            return np.ones(len(items), dtype=bool)
        return np.array([is_heldout(product_unit(g.product_id), SPLITS["catalog"], self.seed) for g in items])

    def _knn_vote(self, q: np.ndarray, g: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
        top, _ = _topk(q, g, k)
        out = []
        for row in labels[top]:
            vals, counts = np.unique(row[row != ""], return_counts=True)
            out.append(vals[counts.argmax()] if len(vals) else "")
        return np.array(out)

    # ----------------------------------------------------------------- suites
    def realshot(self, gallery_csv: Path, queries_csv: Path) -> dict[str, Any]:
        items, _, served, whole = self.gallery(gallery_csv)
        photos = [p for p in read_queries(queries_csv)
                  if self.split == "all" or is_heldout(p.path.name, SPLITS["realshot"], self.seed)]
        gal_cats = np.array([g.category for g in items])
        q_items = sets.whole([p.path for p in photos])
        q = self.served(f"queries-{queries_csv.stem}-{self.split}", q_items)
        top_v, _ = _topk(q.vec, served.vec, 10)
        qfs = self._extract(f"queries-{queries_csv.stem}-{self.split}", q_items, maps=True)
        top_b, _ = _topk(_unit(qfs.pooled), _unit(whole.pooled), 10)
        cats = [p.category for p in photos]
        vitrine = _category_metrics(top_v, gal_cats, cats)
        served_top = self._served_rerank(q, q_items, served.vec, gal_cats)
        vitrine["category_p_at_10_reranked"] = _category_metrics(served_top, gal_cats, cats)["category_p_at_10"]
        return {"vitrine": vitrine, "baseline": _category_metrics(top_b, gal_cats, cats)}

    def _served_rerank(self, q: Served, q_items: Sequence[Item], gal_vec: np.ndarray, gal_cats: np.ndarray) -> np.ndarray:
        """Top 10 as the query worker returns them: 50 nearest, re-ranked by the fused category."""
        from indexer.store import SearchHit
        from workers.query.fusion import SEARCH_POOL, category_rerank

        hists = ColourHistogramEmbedder().embed([_crop(it, r[0]) for it, r in zip(q_items, q.regions)])
        probs = self.shared.tag_probs(torch.from_numpy(q.pooled), hists)["category"]
        top, sc = _topk(q.vec, gal_vec, SEARCH_POOL)
        out = np.zeros((len(top), 10), dtype=np.int64)
        for i in range(len(top)):
            hits = [SearchHit(str(j), float(s), {"category": gal_cats[j]}) for j, s in zip(top[i], sc[i])]
            ranked, _ = category_rerank(hits, probs[i], 10, self.shared.fusion)
            out[i] = [int(h.product_id) for h in ranked[:10]]
        return out

    def fusion(self, gallery_csv: Path, queries_csv: Path) -> dict[str, Any]:
        items, _, served, whole = self.gallery(gallery_csv)
        photos = [p for p in read_queries(queries_csv)
                  if self.split == "all" or is_heldout(p.path.name, SPLITS["realshot"], self.seed)]
        q_items = sets.whole([p.path for p in photos])
        q = self.served(f"queries-{queries_csv.stem}-{self.split}", q_items)
        hists = ColourHistogramEmbedder().embed([_crop(it, r[0]) for it, r in zip(q_items, q.regions)])
        probs = self.shared.tag_probs(torch.from_numpy(q.pooled), hists)["category"]
        cfg = self.shared.fusion
        top, sc = _topk(q.vec, served.vec, max(cfg.k, 10))
        gal_cats = np.array([g.category for g in items])
        truth = np.array([p.category for p in photos])
        model = np.array([GROUPS["category"][int(p.argmax())] for p in probs])
        fused = np.array([fuse_category(probs[i], gal_cats[top[i]], sc[i], cfg).value for i in range(len(photos))])
        qfs = self._extract(f"queries-{queries_csv.stem}-{self.split}", q_items, maps=True)
        knn = self._knn_vote(_unit(qfs.pooled), _unit(whole.pooled), gal_cats, 10)
        return {"vitrine": {"category_acc_model": round(float((model == truth).mean()), 4),
                            "category_acc_fused": round(float((fused == truth).mean()), 4),
                            "fusion": cfg.__dict__, "queries": len(photos)},
                "baseline": {"category_acc_model": None, "category_acc_fused": round(float((knn == truth).mean()), 4),
                             "note": "no classifier: majority category of the 10 nearest gallery items"}}

    def views(self, gallery_csv: Path) -> dict[str, Any]:
        items, _, served, whole = self.gallery(gallery_csv)
        held = np.flatnonzero(self._heldout_gallery(items))
        units = np.array([product_unit(g.product_id) for g in items])
        v_items = sets.views([items[i] for i in held], self.seed, 1, "eval")
        q = self.served(f"views-eval-{gallery_csv.stem}-{self.split}", v_items)
        vfs = self._extract(f"views-eval-{gallery_csv.stem}-{self.split}", v_items, maps=True)
        out: dict[str, Any] = {}
        pos = {g.product_id: i for i, g in enumerate(items)}
        twins = [(pos[g.product_id], pos[g.product_id[:-2]]) for i, g in enumerate(items)
                 if g.product_id.endswith("-b") and g.product_id[:-2] in pos and i in set(held.tolist())]
        ta = np.array([a for a, b in twins] + [b for a, b in twins], dtype=np.int64)
        tb = np.array([b for a, b in twins] + [a for a, b in twins], dtype=np.int64)
        for name, qv, gv in (("vitrine", q.vec, served.vec), ("baseline", _unit(vfs.pooled), _unit(whole.pooled))):
            top, _ = _topk(qv, gv, 10)
            hit = units[top] == units[held][:, None]
            res = {"recall_at_1": round(float(hit[:, 0].mean()), 4), "recall_at_10": round(float(hit.any(1).mean()), 4),
                   "queries": len(held)}
            if len(ta):
                ttop, _ = _topk(gv[ta], gv, 1, exclude=ta)
                res["twin_recall_at_1"] = round(float((ttop[:, 0] == tb).mean()), 4)
                res["twin_queries"] = len(ta)
            out[name] = res
        return out

    def tags(self, gallery_csv: Path) -> dict[str, Any]:
        items, whole_items, served, whole = self.gallery(gallery_csv)
        held = np.flatnonzero(self._heldout_gallery(items))
        train = np.flatnonzero(~self._heldout_gallery(items)) if self.split != "all" else np.arange(len(items))
        hists = ColourHistogramEmbedder().embed([_crop(whole_items[i], served.regions[i][0]) for i in held])
        probs = self.shared.tag_probs(torch.from_numpy(served.pooled[held]), hists)
        g_unit = _unit(whole.pooled)
        v, b = {}, {}
        for grp in GROUPS:
            truth = np.array([items[i].attrs.get(grp, "") for i in held])
            known = np.isin(truth, GROUPS[grp])
            pred = np.array([GROUPS[grp][int(p.argmax())] for p in probs[grp]])
            v[f"{grp}_top1"] = round(float((pred == truth)[known].mean()), 4)
            labels = np.array([items[i].attrs.get(grp, "") for i in train])
            knn = self._knn_vote(g_unit[held], g_unit[train], labels, 10)
            b[f"{grp}_top1"] = round(float((knn == truth)[known].mean()), 4)
        v["items"] = b["items"] = len(held)
        return {"vitrine": v, "baseline": b}

    def street(self, gallery_csv: Path, photos_csv: Path, boxes_csv: Path) -> dict[str, Any]:
        items, _, served, whole = self.gallery(gallery_csv)
        gal_cats = np.array([g.category for g in items])
        boxes = read_boxes(boxes_csv)
        root = photos_csv.resolve().parent.parent
        import csv as _csv
        with open(photos_csv, newline="") as f:
            listed = [root / r["image"] for r in _csv.DictReader(f)]
        paths = [p for p in listed if p in boxes and (self.split == "all" or is_heldout(p.name, SPLITS["street"], self.seed))]
        p_items = sets.whole(paths)
        fs = self._extract(f"street-{self.split}", p_items, maps=True)
        dets = self._detect(fs, threshold=0.05)
        gts = [(i, b) for i, p in enumerate(paths) for b in boxes[p]]
        hit, hit_cls, matched = 0, 0, []
        for i, b in gts:
            ious = [(_iou(d.box, b.box), d) for d in dets[i]]
            best = max(ious, key=lambda t: t[0], default=(0.0, None))
            if best[0] >= 0.5 and best[1] is not None:
                hit += 1
                hit_cls += any(iou >= 0.5 and d.category == b.category for iou, d in ious)
                matched.append((i, best[1].box, b.category))
        crops = self._extract(f"street-det-crops-{self.split}-{self.det_version}",
                              _crop_items([p_items[i] for i, _, _ in matched], [bx for _, bx, _ in matched]))
        top_v, _ = _topk(self.shared.embed_pooled(torch.from_numpy(np.asarray(crops.pooled, np.float32))), served.vec, 10)
        gt_crops = self._extract(f"street-gt-crops-{self.split}", sets.box_crops([(paths[i], b.box) for i, b in gts]))
        top_b, _ = _topk(_unit(gt_crops.pooled), _unit(whole.pooled), 10)
        whole_hit = sum(_iou((0, 0, int(fs.geom[i][1]), int(fs.geom[i][0])), b.box) >= 0.5 for i, b in gts)
        n = max(1, len(gts))
        v = {"box_recall_iou50": round(hit / n, 4), "box_recall_iou50_with_class": round(hit_cls / n, 4),
             "detections_per_photo": round(float(np.mean([len(d) for d in dets])), 2),
             **{k: val for k, val in _category_metrics(top_v, gal_cats, [c for _, _, c in matched]).items()
                if k in ("category_p_at_10", "queries")}, "photos": len(paths), "gt_boxes": len(gts)}
        b = {"box_recall_iou50": round(whole_hit / n, 4),
             **{k: val for k, val in _category_metrics(top_b, gal_cats, [bb.category for _, bb in gts]).items()
                if k in ("category_p_at_10", "queries")},
             "note": "whole image as the only box; P@10 on ground-truth box crops (oracle boxes)"}
        return {"vitrine": v, "baseline": b}


def _crop(item: Item, region: Region) -> np.ndarray:
    from workers.vision.pipeline import crop_region
    return crop_region(item.make()[0], region.box)
