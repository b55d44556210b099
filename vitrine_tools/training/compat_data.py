"""Street outfits, garment cut-outs and fill-in-the-blank (FITB) questions for the compatibility head.

An *outfit* is one street photo (``street/photos.csv``); its *garments* are the coarse categories
(``taxonomy.csv``, dataset ``street``: blouse and vest are both ``top``, boots and pumps both
``shoes``) whose mask pixels cover at least ``MIN_AREA`` of the photo: one garment per category and
photo, the union of its labels' pixels. Smaller regions (most sunglasses, thin belts) are left
out, as in ``queries/fitb_sample`` (its items were matched to these cut-outs: none under 0.004).

``cutout``: the garment's pixels on white, cropped to their box grown by ``PAD`` of its longer side
on every side (the recipe of the ``fitb_sample`` items: their sizes agree to a pixel). The model
learns from the garment, not from the street behind it.

``cutout_view``: an augmented view for consistency regularisation: mirror, crop (keeps >= 80 % of
the area), white margin, and a *mild* brightness/contrast/saturation jitter (never hue: colour is
what compatibility is mostly about), then JPEG.

FITB questions (``read_questions`` / ``write_questions``): ``question_id,category,outfit,candidates,
answer`` with ``;``-separated item paths relative to the CSV's folder; the answer is the index of the
garment really worn with the outfit, the other three candidates are garments of the same category
from other photos of the same set. ``heldout_questions`` builds them from held-out photos only.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from vitrine_tools.training.data import GalleryItem, load_rgb
from vitrine_tools.training.features import Item
from vitrine_tools.training.sets import rng_for

__all__ = ["HIDEABLE", "MIN_AREA", "PAD", "Garment", "Outfit", "Question", "catalog_pool", "cutout",
           "cutout_items", "cutout_view", "heldout_questions", "photos_behind", "read_outfits",
           "read_questions", "write_questions"]

MIN_AREA = 0.004
PAD = 0.05
MAX_CONTEXT = 5  # outfit items shown with a question (fitb_sample: 2-5)
#: Categories a question may hide (those ``fitb_sample`` hides: garments, shoes and bags).
HIDEABLE = ("tshirt", "shirt", "top", "sweater", "outerwear", "dress", "skirt", "pants", "shorts", "shoes", "bag")


@dataclass(frozen=True)
class Garment:
    category: str
    labels: tuple[int, ...]  # indices into street/labels.csv whose pixels make the garment
    area: float  # fraction of the photo's pixels


@dataclass(frozen=True)
class Outfit:
    photo: str  # file name, the split unit ("0001.jpg")
    image: Path
    mask: Path
    garments: tuple[Garment, ...]  # one per category, largest first


@dataclass(frozen=True)
class Question:
    qid: str
    category: str
    outfit: tuple[Path, ...]
    candidates: tuple[Path, ...]
    answer: int


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_outfits(data: Path, min_area: float = MIN_AREA) -> list[Outfit]:
    """Every street photo with its garments (reads each mask once: a few seconds)."""
    data = data.resolve()
    label_ids = {r["name"]: int(r["index"]) for r in _rows(data / "street" / "labels.csv")}
    category = {r["source_label"]: r["category"] for r in _rows(data / "taxonomy.csv") if r["dataset"] == "street"}
    out = []
    for r in _rows(data / "street" / "photos.csv"):
        by_cat: dict[str, list[int]] = {}
        for label in r["labels"].split(";"):
            if label in category and label in label_ids:
                by_cat.setdefault(category[label], []).append(label_ids[label])
        with Image.open(data / r["mask"]) as m:
            mask = np.asarray(m)  # (H, W) uint8 label index
        counts = np.bincount(mask.ravel(), minlength=256)
        garments = [Garment(c, tuple(sorted(ids)), float(counts[ids].sum()) / mask.size) for c, ids in by_cat.items()]
        garments = sorted((g for g in garments if g.area >= min_area), key=lambda g: (-g.area, g.category))
        out.append(Outfit(Path(r["image"]).name, data / r["image"], data / r["mask"], tuple(garments)))
    return out


def cutout(image: np.ndarray, mask: np.ndarray, labels: Sequence[int], pad: float = PAD) -> np.ndarray:
    """(H, W, 3) uint8 photo, (H, W) uint8 label mask -> (h, w, 3) uint8 garment on white."""
    sel = np.isin(mask, labels)
    ys, xs = np.nonzero(sel)
    if len(xs) == 0:
        return np.full((8, 8, 3), 255, np.uint8)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    p = round(pad * max(x1 - x0, y1 - y0))
    h, w = mask.shape
    x0, y0, x1, y1 = max(0, x0 - p), max(0, y0 - p), min(w, x1 + p), min(h, y1 + p)
    return np.where(sel[y0:y1, x0:x1, None], image[y0:y1, x0:x1], np.uint8(255)).astype(np.uint8)


def _cut(outfit: Outfit, garment: Garment) -> np.ndarray:
    with Image.open(outfit.mask) as m:
        mask = np.asarray(m)
    return cutout(load_rgb(outfit.image), mask, garment.labels)


def cutout_view(cut: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) uint8 cut-out -> an augmented view (uint8, any size); deterministic given ``rng``."""
    img = cut[:, ::-1] if rng.random() < 0.5 else cut
    h, w = img.shape[:2]
    area, aspect = rng.uniform(0.8, 1.0), np.exp(rng.uniform(-0.15, 0.15))
    ch, cw = max(4, min(h, int(h * np.sqrt(area / aspect)))), max(4, min(w, int(w * np.sqrt(area * aspect))))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = img[y0 : y0 + ch, x0 : x0 + cw]
    m = int(rng.uniform(0.0, 0.15) * max(ch, cw))
    canvas = np.full((ch + 2 * m, cw + 2 * m, 3), 255, np.uint8)
    canvas[m : m + ch, m : m + cw] = img
    pil = Image.fromarray(canvas)
    pil = ImageEnhance.Brightness(pil).enhance(float(rng.uniform(0.9, 1.1)))
    pil = ImageEnhance.Contrast(pil).enhance(float(rng.uniform(0.9, 1.1)))
    pil = ImageEnhance.Color(pil).enhance(float(rng.uniform(0.9, 1.1)))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(rng.integers(60, 96)))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def _make_cut(o: Outfit, g: Garment) -> Callable[[], tuple[np.ndarray, Any]]:
    return lambda: (_cut(o, g), None)


def _make_view(o: Outfit, g: Garment, seed: int, j: int) -> Callable[[], tuple[np.ndarray, Any]]:
    return lambda: (cutout_view(_cut(o, g), rng_for(seed, "cutout-view", o.photo, g.category, j)), None)


def cutout_items(pairs: Sequence[tuple[Outfit, Garment]], views: int = 0, seed: int = 0) -> list[Item]:
    """Feature-cache items: each garment's cut-out (``views == 0``) or ``views`` augmented views of
    each, garment-major (item ``i * views + j`` is view ``j`` of garment ``i``)."""
    out = []
    for o, g in pairs:
        key = f"{o.image}|cutout:{g.category}:{PAD}:{MIN_AREA}"
        if views == 0:
            out.append(Item(key, _make_cut(o, g)))
        out += [Item(f"{key}|view:{seed}:{j}", _make_view(o, g, seed, j)) for j in range(views)]
    return out


def catalog_pool(gallery: Sequence[GalleryItem], per_category: int, seed: int) -> list[GalleryItem]:
    """Up to ``per_category`` catalogue items of each coarse category (women's, girls' and unisex
    first: the street photos are mostly of women), a seeded draw; the unlabelled items of the
    pseudo-outfits. Their labels are never used, only their coarse category."""
    rng = rng_for(seed, "catalog-pool")
    by_cat: dict[str, list[GalleryItem]] = {}
    for g in gallery:
        if g.category:
            by_cat.setdefault(g.category, []).append(g)
    out = []
    for cat in sorted(by_cat):
        items = by_cat[cat]
        drawn = [int(i) for i in rng.permutation(len(items))]
        drawn.sort(key=lambda i: items[i].attrs.get("gender") not in ("women", "girls", "unisex"))  # stable
        out += [items[i] for i in drawn[:per_category]]
    return out


def read_questions(path: Path) -> list[Question]:
    root = path.resolve().parent
    out = []
    for r in _rows(path):
        out.append(Question(r["question_id"], r["category"].strip().lower(),
                            tuple(root / p for p in r["outfit"].split(";") if p),
                            tuple(root / p for p in r["candidates"].split(";") if p), int(r["answer"])))
    return out


def write_questions(path: Path, rows: Sequence[tuple[str, str, Sequence[str], Sequence[str], int]]) -> None:
    """rows: (question_id, category, outfit paths, candidate paths, answer), paths relative to the CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question_id", "category", "outfit", "candidates", "answer"])
        for qid, cat, outfit, cands, ans in rows:
            w.writerow([qid, cat, ";".join(outfit), ";".join(cands), ans])


def _item_name(o: Outfit, g: Garment) -> str:
    return "items/" + hashlib.sha1(f"{o.photo}|{g.category}".encode()).hexdigest()[:12] + ".jpg"


def heldout_questions(outfits: Sequence[Outfit], dest: Path, seed: int = 0) -> Path:
    """Write ``dest/questions.csv`` + ``dest/items/*.jpg`` (+ ``items.csv``: item, category, photo) from
    ``outfits``: one question per outfit and hideable garment with >= 2 other garments; distractors
    from the other outfits given. Idempotent: items already written are kept."""
    rng = rng_for(seed, "fitb-heldout")
    by_cat: dict[str, list[tuple[Outfit, Garment]]] = {}
    for o in outfits:
        for g in o.garments:
            by_cat.setdefault(g.category, []).append((o, g))
    (dest / "items").mkdir(parents=True, exist_ok=True)
    used: dict[str, tuple[Outfit, Garment]] = {}
    rows: list[tuple[str, str, list[str], list[str], int]] = []
    for o in sorted(outfits, key=lambda o: o.photo):
        for g in o.garments:
            others = [x for x in o.garments if x is not g][:MAX_CONTEXT]
            pool = [x for x in by_cat.get(g.category, []) if x[0].photo != o.photo]
            if g.category not in HIDEABLE or len(others) < 2 or len(pool) < 3:
                continue
            picks = [pool[i] for i in rng.choice(len(pool), size=3, replace=False)]
            answer = int(rng.integers(0, 4))
            cands = picks[:answer] + [(o, g)] + picks[answer:]
            for x in [(o, y) for y in others] + cands:
                used[_item_name(*x)] = x
            rows.append((f"h{len(rows):04d}", g.category, [_item_name(o, y) for y in others],
                         [_item_name(*x) for x in cands], answer))
    for name, (o, g) in used.items():
        if not (dest / name).is_file():
            Image.fromarray(_cut(o, g)).save(dest / name, quality=90)
    with open(dest / "items.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item", "category", "photo"])
        w.writerows(sorted((n, g.category, o.photo) for n, (o, g) in used.items()))
    write_questions(dest / "questions.csv", rows)
    return dest / "questions.csv"


def _thumb(img: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((12, 12), Image.Resampling.BILINEAR), np.float32).ravel()


def photos_behind(questions: Sequence[Question], outfits: Sequence[Outfit]) -> set[str]:
    """The street photos a question file was cut from (so training can hold them out): each
    question's outfit items and answer are matched to the nearest cut-out (12x12 thumbnails), and
    the question's photo is the one most of them come from. About 20 s for all 795 photos."""
    thumbs, photo = [], []
    for o in outfits:
        image = load_rgb(o.image)
        with Image.open(o.mask) as m:
            mask = np.asarray(m)
        for g in o.garments:
            thumbs.append(_thumb(cutout(image, mask, g.labels)))
            photo.append(o.photo)
    if not thumbs:
        return set()
    table = np.stack(thumbs)  # (N, 432) float32
    out = set()
    for q in questions:
        votes: Counter[str] = Counter()
        for p in [*q.outfit, q.candidates[q.answer]]:
            d = ((table - _thumb(load_rgb(p))) ** 2).mean(1)
            votes[photo[int(d.argmin())]] += 1
        out.add(votes.most_common(1)[0][0])
    return out
