"""A catalogue CSV (``catalog.csv``'s format) indexed the way the workers index it.

Every row becomes an ``UpsertEvent`` (title, the CSV's attributes as the merchant's, the image as
``file://``), then ``workers.ingest.pipeline.upsert_record`` (with ``product_text`` for the dense
text vector) and ``ProductIndex.apply`` into a Milvus Lite collection: the same records, guard and
layout as production. With ``images=True`` the image and colour vectors are the real models'
(cached under ``cache_dir`` by model version, ~3 minutes for 12.5k images on 2 cores the first
time); without, they are deterministic placeholders, which the text suite never reads.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.store import ProductIndex
from streams.codecs import SourceRef
from streams.schema import UpsertEvent
from workers.ingest.pipeline import product_text, upsert_record
from workers.vision.pipeline import ImageAnalysis, VisionPipeline

__all__ = ["GALLERY_ATTRIBUTES", "GalleryItem", "index_gallery", "read_gallery"]

GALLERY_ATTRIBUTES = ("gender", "article_type", "colour", "usage", "season", "category")


@dataclass(frozen=True)
class GalleryItem:
    product_id: str
    title: str
    image: Path
    attributes: dict[str, str]  # group -> canonical (lower-case) value, as the index holds them


def read_gallery(csv_path: Path, limit: int | None = None) -> list[GalleryItem]:
    root = csv_path.parent.parent  # catalog/catalog.csv: image paths are relative to the data root
    out = []
    with csv_path.open(newline="") as f:
        for row in csv.DictReader(f):
            attrs = {g: row[g].strip().lower() for g in GALLERY_ATTRIBUTES if row.get(g, "").strip()}
            out.append(GalleryItem(row["product_id"], row["title"], (root / row["image"]).resolve(), attrs))
    return out[:limit] if limit else out


def _event(item: GalleryItem) -> UpsertEvent:
    return UpsertEvent(schema_version=1, type="upsert", product_id=item.product_id, version=1, occurred_at=time.time(),
                       title=item.title, price=10.0, attributes=item.attributes, images=[item.image.as_uri()])


def _placeholder(pid: str, dim: int) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha1(pid.encode()).digest()[:8], "little"))
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _analyses(items: list[GalleryItem], vision: VisionPipeline, images: bool, cache_dir: Path) -> Iterator[Any]:
    if not images:
        for it in items:
            yield ImageAnalysis(_placeholder(it.product_id, vision.image_dim), _placeholder(it.product_id + "c",
                                                                                          vision.colour_dim))
        return
    from workers.vision.decode import decode_image

    key = hashlib.sha1((vision.model_version + "|" + "|".join(str(i.image) for i in items)).encode()).hexdigest()[:16]
    path = cache_dir / f"gallery-{key}.npz"
    if path.is_file():
        z = np.load(path)
        for i, _ in enumerate(items):
            yield ImageAnalysis(z["image"][i], z["colour"][i])
        return
    image_vecs, colour_vecs = [], []
    for start in range(0, len(items), 32):
        batch = [decode_image(it.image.read_bytes(), target=224) for it in items[start:start + 32]]
        for a in vision.analyse(batch):
            image_vecs.append(a.image_vec)
            colour_vecs.append(a.colour_vec)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=np.stack(image_vecs), colour=np.stack(colour_vecs))
    for iv, cv in zip(image_vecs, colour_vecs, strict=True):
        yield ImageAnalysis(iv, cv)


def index_gallery(items: list[GalleryItem], vision: VisionPipeline, index: ProductIndex, *, images: bool,
                  cache_dir: Path, batch: int = 256) -> int:
    """Index ``items`` as the workers would; the number of rows written."""
    written = 0
    analyses = _analyses(items, vision, images, cache_dir)
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        events = [_event(it) for it in chunk]
        text_vecs = vision.embed_text([product_text(ev) for ev in events])
        records = [upsert_record(ev, [next(analyses)], tv, vision.model_version, SourceRef("eval", 0, start + i))
                   for i, (ev, tv) in enumerate(zip(events, text_vecs, strict=True))]
        written += sum(o.result == "indexed" for o in index.apply(records))
    index.flush()
    return written
