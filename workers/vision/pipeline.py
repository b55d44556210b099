"""The vision pipeline the ingest and query workers call: detect -> crop -> tag + embed.

Contract:
  - ``analyse(images)`` returns one ``ImageAnalysis`` per input image, in order. The main
    region is the detector's first (highest-score) region; ``image_vec``, ``colour_vec`` and
    ``tags`` describe that region's crop. A box reaching outside the image is clipped; a box
    that clips to nothing falls back to the whole image.
  - ``model_version`` names every model and its version (``name@version`` joined by "+", in the
    order detector, tagger, embedder, colour, text). A vector is comparable only with vectors of
    the same ``model_version``; a change means re-embedding into a new collection.
  - Built by ``workers.vision.factory`` (production, baseline) or ``workers.vision.fakes``
    (``fake_pipeline``, unit tests). Construction loads nothing; ``load()`` loads all weights (idempotent). A learned model used
    before ``load()`` raises ``ModelNotLoadedError`` ("call load() first").
  - Pure compute: no I/O, no threads of its own. Callers run it in an executor so it never
    blocks an event loop (architecture guarantee 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from workers.vision.protocols import Detector, Embedder, Region, Tag, Tagger, TextEmbedder, check_image

__all__ = ["ImageAnalysis", "VisionPipeline", "crop_region"]


@dataclass(frozen=True)
class ImageAnalysis:
    """What the pipeline learns from one image."""

    image_vec: np.ndarray  # (Di,) float32, unit L2 norm, from the main region
    colour_vec: np.ndarray  # (Dc,) float32, unit L2 norm, from the main region
    regions: list[Region] = field(default_factory=list)  # all regions, main first
    tags: dict[str, Tag] = field(default_factory=dict)  # attributes of the main region
    # (C,) float32 classifier probabilities over GROUPS["category"] for the main region, when the
    # tagger gives them (trained models); the query worker fuses them with the neighbours' categories.
    category_probs: np.ndarray | None = None


def crop_region(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W, 3) image -> the (h, w, 3) view inside ``box`` clipped to the image (never empty)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    x0, x1 = max(0, min(int(x0), w)), max(0, min(int(x1), w))
    y0, y1 = max(0, min(int(y0), h)), max(0, min(int(y1), h))
    if x1 <= x0 or y1 <= y0:
        return image
    return image[y0:y1, x0:x1]


class VisionPipeline:
    """Detector, tagger, appearance embedder, colour embedder and text embedder, together."""

    def __init__(
        self,
        detector: Detector,
        tagger: Tagger,
        embedder: Embedder,
        colour: Embedder,
        text: TextEmbedder,
    ) -> None:
        self.detector = detector
        self.tagger = tagger
        self.embedder = embedder
        self.colour = colour
        self.text = text

    def _models(self) -> tuple[object, ...]:
        return (self.detector, self.tagger, self.embedder, self.colour, self.text)

    def load(self) -> None:
        """Load every model's weights (idempotent; models without weights are skipped)."""
        for model in self._models():
            load = getattr(model, "load", None)
            if callable(load):
                load()

    @property
    def dtype(self) -> str:
        """The backbone's compute dtype, e.g. "bfloat16": what "auto" resolved to on this machine."""
        return str(getattr(self.embedder, "dtype", "float32")).removeprefix("torch.")

    @property
    def model_version(self) -> str:
        """e.g. "whole-image@1+colour-tag@1+effnet-lite0-gap@1+colour-hist@1+all-MiniLM-L6-v2@1"."""
        return "+".join(f"{m.name}@{m.version}" for m in self._models())  # type: ignore[attr-defined]

    @property
    def image_dim(self) -> int:
        return int(self.embedder.dim)

    @property
    def colour_dim(self) -> int:
        return int(self.colour.dim)

    @property
    def text_dim(self) -> int:
        return int(self.text.dim)

    def analyse(self, images: Sequence[np.ndarray]) -> list[ImageAnalysis]:
        """Batch: detect, crop each image's main region, then tag and embed the crops."""
        if len(images) == 0:
            return []
        for image in images:
            check_image(image)
        regions = self.detector.detect(images)
        if len(regions) != len(images) or any(not r for r in regions):
            raise ValueError(f"{self.detector.name}: must return >= 1 region per image")
        crops = [crop_region(img, regs[0].box) for img, regs in zip(images, regions)]
        image_vecs = self.embedder.embed(crops)  # (N, Di) float32
        colour_vecs = self.colour.embed(crops)  # (N, Dc) float32
        tags = self.tagger.tag(crops)
        return [
            ImageAnalysis(
                image_vec=image_vecs[i], colour_vec=colour_vecs[i], regions=list(regions[i]),
                tags=dict(tags[i]),
            )
            for i in range(len(images))
        ]

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(N, text_dim) float32 unit rows."""
        return self.text.embed_text(texts)
