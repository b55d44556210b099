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
from typing import Any

import numpy as np
import torch

from workers.vision.colour import ColourHistogramEmbedder
from workers.vision.fusion import FusionConfig
from workers.vision.pipeline import ImageAnalysis, VisionPipeline, crop_region
from workers.vision.protocols import Region, check_image
from workers.vision.text import MiniLMTextEmbedder
from workers.vision.trained import (
    SharedHeads,
    TrainedDetector,
    TrainedEmbedder,
    TrainedTagger,
    needs_crop,
    tags_from_probs,
)

__all__ = ["TrainedVisionPipeline"]


class TrainedVisionPipeline(VisionPipeline):
    detector: TrainedDetector
    tagger: TrainedTagger
    embedder: TrainedEmbedder

    @classmethod
    def from_manifest(cls, manifest: dict[str, dict[str, Any]], device: str = "cpu",
                      dtype: str = "auto", text_cache: int = 20_000) -> TrainedVisionPipeline:
        shared = SharedHeads(manifest, device=device, dtype=dtype)
        return cls(TrainedDetector(shared), TrainedTagger(shared), TrainedEmbedder(shared),
                   ColourHistogramEmbedder(), MiniLMTextEmbedder(device=device, cache_size=text_cache))

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
        # histogram); the version string names the five models that make the stored vectors/tags.
        return (self.detector, self.tagger, self.embedder, self.colour, self.text)

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
        probs = shared.tag_probs(pooled, colour_vecs)
        out = []
        for i in range(len(images)):
            tags = tags_from_probs(probs, i)
            regs = list(regions[i])
            if regs[0].category == "unknown":  # whole-image fallback: name it with the classifier
                regs[0] = Region(regs[0].box, tags["category"].value, regs[0].score)
            out.append(ImageAnalysis(image_vec=vecs[i], colour_vec=colour_vecs[i], regions=regs, tags=tags,
                                     category_probs=probs["category"][i].astype(np.float32)))
        return out
