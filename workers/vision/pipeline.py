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

from workers.vision.exceptions import StyleUnavailable
from workers.vision.protocols import Detector, Embedder, Region, Tag, Tagger, TextEmbedder, check_image
from workers.vision.style import StyleEmbedder

__all__ = ["Garment", "ImageAnalysis", "VisionPipeline", "crop_region"]


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
    # (F,) float32: the main region's input to the style (compatibility) head, when the pipeline has
    # one (``VisionPipeline.style``): its pooled backbone features and colour histogram. The style
    # vector itself needs the product's category, known only after the merchant's attributes are
    # read: ``VisionPipeline.style_vectors``.
    style_input: np.ndarray | None = None


@dataclass(frozen=True)
class Garment:
    """One garment of a look found in a photo: its region and its style vector."""

    region: Region
    style_vec: np.ndarray  # (Ds,) float32, unit L2 norm


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
        style: StyleEmbedder | None = None,
    ) -> None:
        self.detector = detector
        self.tagger = tagger
        self.embedder = embedder
        self.colour = colour
        self.text = text
        self.style = style

    def _models(self) -> tuple[object, ...]:
        base = (self.detector, self.tagger, self.embedder, self.colour, self.text)
        return base + ((self.style,) if self.style is not None else ())

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

    @property
    def style_dim(self) -> int:
        """The style vector's dimension; 0 without a style head (the index then has no ``style_vec``)."""
        return int(self.style.dim) if self.style is not None else 0

    def dims(self) -> dict[str, int]:
        """Vector field -> dimension, as the index lays them out."""
        dims = {"image_vec": self.image_dim, "colour_vec": self.colour_dim, "text_vec": self.text_dim}
        if self.style is not None:
            dims["style_vec"] = self.style_dim
        return dims

    def _style(self) -> StyleEmbedder:
        if self.style is None:
            raise StyleUnavailable(f"the models {self.model_version} have no style head: "
                                   "complete_look needs the trained models with compat.pt")
        return self.style

    def style_category(self, merchant_category: str, analysis: ImageAnalysis) -> str:
        """The category a product's style vector is computed under: the merchant's, when the style
        head knows it, else the model's own reading of the main image."""
        style = self._style()
        if merchant_category and style.known(merchant_category):
            return merchant_category
        tag = analysis.tags.get("category")
        if tag is not None and style.known(tag.value):
            return tag.value
        region = analysis.regions[0].category if analysis.regions else ""
        return region if style.known(region) else style.categories[0]

    def style_vectors(self, analyses: Sequence[ImageAnalysis], categories: Sequence[str]) -> np.ndarray:
        """(n, style_dim) float32 unit style vectors of the analyses' main regions under ``categories``."""
        style = self._style()
        if any(a.style_input is None for a in analyses):
            raise StyleUnavailable(f"{type(self).__name__} gives no style inputs")
        if not analyses:
            return np.zeros((0, style.dim), np.float32)
        return style.embed(np.stack([a.style_input for a in analyses]), categories)  # type: ignore[misc]

    def garments(self, image: np.ndarray) -> list[Garment]:
        """The garments of a photo (one per category, best region first) with their style vectors;
        the query side of complete-the-look. Needs a pipeline with a style head and its inputs."""
        self._style()
        raise StyleUnavailable(f"{type(self).__name__} cannot find the garments of a look")

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
