"""What ``vitrine train compat`` reads and feeds the backbone: the split and the feature sets.

Split (unit = street photo file name, so no garment of a held-out photo is ever trained on):
held out when ``is_heldout(photo, holdout_frac, seed)`` (sha1 rule of ``data.is_heldout``) OR when
the photo is behind a given FITB question file (``compat_data.photos_behind``; by default the
shared ``queries/fitb_sample``, whose photos are also in ``street/``). The held-out photos become
the validation FITB questions (``compat_data.heldout_questions``, written under ``heldout_dir``);
the others are the training outfits.

Feature sets (``features.extract``, cached under ``cache``): the cut-outs of the training garments,
``views`` augmented views of each, a catalogue pool (``compat_data.catalog_pool``: the unlabelled
items of the pseudo-outfits), and the item images of the held-out questions, read from the JPEGs
written there exactly as ``vitrine eval fitb`` reads them (same cache entry, same numbers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitrine_tools.training import sets
from vitrine_tools.training.compat_data import (
    Garment,
    Outfit,
    Question,
    catalog_pool,
    cutout_items,
    heldout_questions,
    photos_behind,
    read_outfits,
    read_questions,
)
from vitrine_tools.training.data import GalleryItem, is_heldout, read_gallery
from vitrine_tools.training.features import FeatureSet, Item, extract
from workers.vision.backbone import Lite0Backbone
from workers.vision.compat import COLOUR_DIM, garment_colour
from workers.vision.taxonomy import GROUPS

__all__ = ["CompatPlan", "CompatSets", "colour_features", "compat_sets", "head_inputs", "make_compat_plan",
           "question_features"]

_CAT = {c: i for i, c in enumerate(GROUPS["category"])}


@dataclass(frozen=True)
class CompatPlan:
    data: Path
    seed: int
    holdout_frac: float
    train: list[Outfit]
    heldout: list[Outfit]
    behind_questions: list[str]  # photos held out because a question file was cut from them
    pool: list[GalleryItem]
    questions: Path  # the held-out FITB questions (CSV)
    views: int


@dataclass
class CompatSets:
    street: FeatureSet  # train cut-outs, garment order of ``pairs``
    street_cat: np.ndarray  # (N,) int64
    street_outfit: np.ndarray  # (N,) int64 index into plan.train
    views: FeatureSet | None  # (N * V) views, garment-major
    catalog: FeatureSet
    catalog_cat: np.ndarray  # (M,) int64
    pairs: list[tuple[Outfit, Garment]]
    street_colour: np.ndarray | None = None  # (N, COLOUR_DIM) garment_colour of the same images, or None
    views_colour: np.ndarray | None = None  # (N * V, COLOUR_DIM)
    catalog_colour: np.ndarray | None = None  # (M, COLOUR_DIM)


def make_compat_plan(data: Path, heldout_dir: Path, *, seed: int = 0, holdout_frac: float = 0.3,
                     holdout_questions: list[Path] | None = None, per_category: int = 300, views: int = 2,
                     limit: int | None = None) -> CompatPlan:
    """``limit``: keep about that many photos (every k-th) and at most ``max(4, limit // 2)`` catalogue
    items per category (smoke tests; never ship such weights)."""
    outfits = read_outfits(data)
    if limit:
        outfits = outfits[:: max(1, len(outfits) // limit)]
        per_category = max(4, min(per_category, limit // 2))
    behind: set[str] = set()
    for q in holdout_questions or []:
        behind |= photos_behind(read_questions(q), outfits)
    held = [o for o in outfits if o.photo in behind or is_heldout(o.photo, holdout_frac, seed)]
    train = [o for o in outfits if not (o.photo in behind or is_heldout(o.photo, holdout_frac, seed))]
    pool = catalog_pool(read_gallery(data / "catalog" / "catalog.csv"), per_category, seed)
    qpath = heldout_questions(held, heldout_dir, seed)
    return CompatPlan(data, seed, holdout_frac, train, held, sorted(behind), pool, qpath, views)


def colour_features(name: str, items: Sequence[Item], cache: Path, chunk: int = 256) -> np.ndarray:
    """(n, COLOUR_DIM) float32 ``garment_colour`` of the items' images, in order; cached under
    ``cache`` by the items' keys (no backbone: about 5 ms an image)."""
    digest = hashlib.sha1("\n".join([name, f"garment_colour:{COLOUR_DIM}", *(it.key for it in items)]).encode())
    path = Path(cache) / f"{name}-colour-{digest.hexdigest()[:16]}.npy"
    if path.is_file():
        return np.load(path)
    out = np.zeros((len(items), COLOUR_DIM), np.float32)
    for lo in range(0, len(items), chunk):
        out[lo : lo + chunk] = garment_colour([it.make()[0] for it in items[lo : lo + chunk]])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out


def compat_sets(plan: CompatPlan, backbone: Lite0Backbone, cache: Path, progress: bool = True,
                colour: bool = False) -> CompatSets:
    """``colour``: also ``garment_colour`` of every image (``street_colour`` ...)."""
    pairs = [(o, g) for o in plan.train for g in o.garments]
    street_items, view_items = cutout_items(pairs), cutout_items(pairs, plan.views, plan.seed)
    catalog_items = sets.whole([g.path for g in plan.pool])
    street = extract("compat-cutouts", street_items, backbone, cache, progress=progress)
    views = (extract("compat-cutout-views", view_items, backbone, cache, progress=progress) if plan.views else None)
    catalog = extract("compat-catalog", catalog_items, backbone, cache, progress=progress)
    pos = {o.photo: i for i, o in enumerate(plan.train)}
    cs = CompatSets(street, np.array([_CAT[g.category] for _, g in pairs], np.int64),
                    np.array([pos[o.photo] for o, _ in pairs], np.int64), views, catalog,
                    np.array([_CAT[g.category] for g in plan.pool], np.int64), pairs)
    if colour:
        cs.street_colour = colour_features("compat-cutouts", street_items, cache)
        cs.views_colour = colour_features("compat-cutout-views", view_items, cache) if plan.views else None
        cs.catalog_colour = colour_features("compat-catalog", catalog_items, cache)
    return cs


def head_inputs(fs: FeatureSet, hist: bool, colour: np.ndarray | None = None) -> np.ndarray:
    """The compatibility head's input rows: pooled (N, 1280), then the colour histogram (N, 64)
    when ``hist`` (the ``ColourHistogramEmbedder`` vector of the same image), then ``colour``
    (N, COLOUR_DIM: ``garment_colour`` of the same image) when given, float32."""
    parts = [fs.pooled, fs.hist] if hist else [fs.pooled]
    if colour is not None:
        parts.append(colour)
    return np.concatenate(parts, axis=1).astype(np.float32)


def question_features(questions: list[Question], backbone: Lite0Backbone, cache: Path, hist: bool = True,
                      progress: bool = True, colour: bool = False) -> tuple[dict[Path, int], np.ndarray]:
    """Features of every item image of ``questions``: ({path: row}, (n, 1280 [+ 64] [+ COLOUR_DIM]) float32)."""
    paths = sorted({p for q in questions for p in (*q.outfit, *q.candidates)})
    items = sets.whole(paths)
    fs = extract("fitb-items", items, backbone, cache, progress=progress)
    col = colour_features("fitb-items", items, cache) if colour else None
    return {p: i for i, p in enumerate(paths)}, head_inputs(fs, hist, col)
