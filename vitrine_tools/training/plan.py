"""What the training run feeds the backbone: the splits and sets, in one place.

``training_sets(data, ...)`` returns every feature set the heads are fitted on, built only from
training rows (``data.is_heldout`` false): catalogue products, real-shot photos and street photos
of the held-out parts are never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vitrine_tools.training import sets
from vitrine_tools.training.data import (
    SPLITS,
    Box,
    GalleryItem,
    Photo,
    is_heldout,
    product_unit,
    read_boxes,
    read_gallery,
    read_queries,
)
from vitrine_tools.training.features import FeatureSet, extract
from workers.vision.backbone import Lite0Backbone

__all__ = ["Plan", "TrainingSets", "make_plan", "training_sets"]


@dataclass(frozen=True)
class Plan:
    data: Path
    seed: int
    gallery: list[GalleryItem]
    gallery_train: list[GalleryItem]
    realshot_train: list[Photo]
    street_train: dict[Path, list[Box]]
    views_per_item: int
    composites: int


@dataclass
class TrainingSets:
    catalog: FeatureSet  # every gallery item (train rows selected by the trainer), maps, fg boxes
    views: FeatureSet  # views of train products, meta = product id
    realshot: FeatureSet  # train half
    street: FeatureSet  # train half, maps
    street_flip: FeatureSet  # train half mirrored, maps
    street_crops: FeatureSet  # crops of train-half boxes
    street_crop_labels: list[str]
    composites: FeatureSet  # maps, meta = boxes


def make_plan(data: Path, seed: int = 0, views_per_item: int = 1, composites: int = 2500,
              limit: int | None = None) -> Plan:
    """Read the CSVs and split them; ``limit`` keeps every n-th row (smoke tests)."""
    gallery = read_gallery(data / "catalog" / "catalog.csv")
    realshot = read_queries(data / "realshot" / "realshot.csv")
    street = read_boxes(data / "street" / "boxes.csv")
    if limit:
        gallery = gallery[:: max(1, len(gallery) // limit)]
        realshot = realshot[:: max(1, len(realshot) // limit)]
        street = dict(list(street.items())[:: max(1, len(street) // max(4, limit // 4))])
    g_train = [g for g in gallery if not is_heldout(product_unit(g.product_id), SPLITS["catalog"], seed)]
    r_train = [p for p in realshot if not is_heldout(p.path.name, SPLITS["realshot"], seed)]
    s_train = {p: b for p, b in street.items() if not is_heldout(p.name, SPLITS["street"], seed)}
    return Plan(data, seed, gallery, g_train, r_train, s_train, views_per_item, composites)


def training_sets(plan: Plan, backbone: Lite0Backbone, cache: Path, progress: bool = True) -> TrainingSets:
    seed = plan.seed
    catalog = extract("catalog", sets.whole([g.path for g in plan.gallery], fg_box=True), backbone, cache,
                      maps=True, progress=progress)
    views = extract("views-train", sets.views(plan.gallery_train, seed, plan.views_per_item, "train"),
                    backbone, cache, progress=progress)
    realshot = extract("realshot-train", sets.whole([p.path for p in plan.realshot_train]), backbone, cache,
                       maps=True, progress=progress)
    spaths = sorted(plan.street_train)
    street = extract("street-train", sets.whole(spaths), backbone, cache, maps=True, progress=progress)
    street_flip = extract("street-train-flip", sets.flipped(spaths), backbone, cache, maps=True, progress=progress)
    boxes = [b for p in spaths for b in plan.street_train[p]]
    crops = extract("street-train-crops", sets.box_crops([(b.path, b.box) for b in boxes]), backbone, cache,
                    progress=progress)
    pool = [g for g in plan.gallery_train if g.category]
    comps = extract("composites", sets.composites(pool, plan.composites, seed), backbone, cache, maps=True,
                    progress=progress)
    return TrainingSets(catalog, views, realshot, street, street_flip, crops, [b.category for b in boxes], comps)
