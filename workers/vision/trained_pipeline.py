"""``TrainedVisionPipeline``: the ``VisionPipeline`` contract on one shared backbone forward.

Per batch: one backbone forward on the letterboxed images gives the detector maps and the
whole-image pooled features; the main (first) region is re-forwarded from its crop only when it
covers less than ``CROP_BELOW`` of the image (``needs_crop``); the tagger and the projection then
read the main region's pooled features, and the colour vector and histogram come from the main
region's crop. Output equals calling the three models one by one on the main crop, except that a
large main region reuses the whole-image forward (documented in ``workers.vision.trained``).

``model_version``: detector, tagger, embedder, colour and text, each ``name@version`` where a
trained head's version is the digest of its weights, e.g.
``roi-centernet@3f2a9c1d+attr-tagger@...+effnet-lite0-proj@...+colour-hist@1+all-MiniLM-L6-v2@1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.vision.colour import ColourHistogramEmbedder
from workers.vision.fusion import FusionConfig
from workers.vision.pipeline import Garment, ImageAnalysis, VisionPipeline, crop_region
from workers.vision.protocols import Region, check_image
from workers.vision.style import StyleEmbedder
from workers.vision.text import MiniLMTextEmbedder
from workers.vision.trained import (
    WEIGHTS_DIR,
    SharedHeads,
    TrainedDetector,
    TrainedEmbedder,
    TrainedTagger,
    needs_crop,
    tags_from_probs,
)

__all__ = ["GARMENTS_MAX", "TrainedVisionPipeline"]

#: At most this many garments of a photo make a look (the street outfits have 2-7).
GARMENTS_MAX = 6


class TrainedVisionPipeline(VisionPipeline):
    detector: TrainedDetector
    tagger: TrainedTagger
    embedder: TrainedEmbedder

    @classmethod
    def from_manifest(cls, manifest: dict[str, dict[str, Any]], device: str = "cpu",
                      dtype: str = "auto", text_cache: int = 20_000, weights_dir: Path = WEIGHTS_DIR,
                      style: StyleEmbedder | None = None) -> TrainedVisionPipeline:
        shared = SharedHeads(manifest, weights_dir=weights_dir, device=device, dtype=dtype)
        return cls(TrainedDetector(shared), TrainedTagger(shared), TrainedEmbedder(shared),
                   ColourHistogramEmbedder(), MiniLMTextEmbedder(device=device, cache_size=text_cache), style)

    @property
    def shared(self) -> SharedHeads:
        return self.embedder.shared

    @property
    def dtype(self) -> str:
        return str(self.shared.backbone.dtype).removeprefix("torch.")

    @property
    def fusion(self) -> FusionConfig:
        """Category-fusion parameters shipped with the projection (defaults before ``load()``)."""
        return self.shared.fusion

    def _models(self) -> tuple[object, ...]:
        # The colour tagger is folded into the attribute tagger (its colour head reads the ROI
        # histogram); the version string names the models that make the stored vectors/tags: five,
        # and the style head when there is one.
        base = (self.detector, self.tagger, self.embedder, self.colour, self.text)
        return base + ((self.style,) if self.style is not None else ())

    def analyse(self, images: Sequence[np.ndarray]) -> list[ImageAnalysis]:
        if len(images) == 0:
            return []
        for image in images:
            check_image(image)
        shared = self.shared
        shared._ready()
        feats, geoms = shared.backbone.features(images)
        regions = shared.detect(feats, geoms)
        pooled = feats.pooled.clone()  # (N, 1280) float32
        crops = [crop_region(img, regs[0].box) for img, regs in zip(images, regions)]
        small = [i for i, (img, regs) in enumerate(zip(images, regions)) if needs_crop(regs[0], *img.shape[:2])]
        if small:
            crop_feats, _ = shared.backbone.features([crops[i] for i in small])
            pooled[torch.tensor(small)] = crop_feats.pooled
        colour_vecs = self.colour.embed(crops)  # (N, 64) float32, also the tagger's colour input
        vecs = shared.embed_pooled(pooled)  # (N, 256) float32
        style_inputs = None if self.style is None else self.style.inputs(pooled.float().cpu().numpy(), colour_vecs, crops)
        probs = shared.tag_probs(pooled, colour_vecs)
        out = []
        for i in range(len(images)):
            tags = tags_from_probs(probs, i)
            regs = list(regions[i])
            if regs[0].category == "unknown":  # whole-image fallback: name it with the classifier
                regs[0] = Region(regs[0].box, tags["category"].value, regs[0].score)
            out.append(ImageAnalysis(image_vec=vecs[i], colour_vec=colour_vecs[i], regions=regs, tags=tags,
                                     category_probs=probs["category"][i].astype(np.float32),
                                     style_input=None if style_inputs is None else style_inputs[i]))
        return out

    def garments(self, image: np.ndarray, max_garments: int = GARMENTS_MAX) -> list[Garment]:
        """The garments of a photo, for complete-the-look: every detected region of a category the
        style head knows, the best-scoring one per category (an outfit has one garment of each,
        as the head was trained), at most ``max_garments``; each region's crop is forwarded again
        and embedded under the detected category. A photo where the detector finds nothing (the
        whole-image fallback) is one garment, of the category the tagger reads. The training
        garments were cut out by their masks onto white; here the crop keeps its background (no
        masks at query time), which a product photo on white does not have anyway."""
        check_image(image)
        style = self._style()
        shared = self.shared
        shared._ready()
        feats, geoms = shared.backbone.features([image])
        regions = shared.detect(feats, geoms)[0]
        picked: dict[str, Region] = {}
        for r in regions:
            if r.category not in picked and style.known(r.category):
                picked[r.category] = r
        chosen = list(picked.values())[:max_garments]
        if not chosen:
            probs = shared.tag_probs(feats.pooled, self.colour.embed([image]))
            category = tags_from_probs(probs, 0)["category"].value
            chosen = [Region((0, 0, image.shape[1], image.shape[0]), category, 0.0)]
        crops = [crop_region(image, r.box) for r in chosen]
        crop_feats, _ = shared.backbone.features(crops)
        inputs = style.inputs(crop_feats.pooled.float().cpu().numpy(), self.colour.embed(crops), crops)
        vecs = style.embed(inputs, [r.category for r in chosen])
        return [Garment(r, vecs[i]) for i, r in enumerate(chosen)]
