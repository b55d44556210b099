"""The model contracts the workers code against, and the values they exchange.

Every model sits behind one of these protocols, with a cheap deterministic implementation for
unit tests (``workers.vision.fakes``) and a real one for integration tests and production.

Conventions, stated once:
  - Images and crops are (H, W, 3) uint8 RGB NumPy arrays, H, W >= 1 (``decode_image`` output).
  - Boxes are (x0, y0, x1, y1) integer pixels, half-open: the crop is ``image[y0:y1, x0:x1]``,
    with 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H.
  - Vectors are float32 rows with unit L2 norm, so inner product = cosine similarity and a
    larger score means more similar.
  - ``name`` and ``version`` identify the weights and the pre/post-processing: any change that
    moves a vector bumps ``version``, and every stored vector records ``name@version``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from workers.vision.exceptions import InvalidImageError

__all__ = ["Detector", "Embedder", "Region", "Tag", "Tagger", "TextEmbedder"]


@dataclass(frozen=True)
class Region:
    """A region of interest in one image."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 pixels, half-open, x1 > x0, y1 > y0
    category: str  # coarse category (taxonomy.csv) or "unknown"
    score: float  # detector confidence in [0, 1]

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.box
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"empty box {self.box}: need x1 > x0 and y1 > y0")


@dataclass(frozen=True)
class Tag:
    """One attribute value with its confidence and who asserted it."""

    value: str
    confidence: float  # in [0, 1]
    source: str  # "model" or "merchant"


@runtime_checkable
class Detector(Protocol):
    """Finds regions of interest."""

    name: str
    version: str

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Region]]:
        """One list per image, sorted by score descending, never empty (whole-image fallback)."""
        ...


@runtime_checkable
class Tagger(Protocol):
    """Predicts attributes of a crop."""

    name: str
    version: str

    def tag(self, crops: Sequence[np.ndarray]) -> list[dict[str, Tag]]:
        """One dict per crop, attribute name -> Tag."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Maps crops to vectors."""

    name: str
    version: str
    dim: int

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32, rows L2-normalised; (0, dim) for no crops."""
        ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Maps texts to vectors."""

    name: str
    version: str
    dim: int

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, rows L2-normalised; (0, dim) for no texts."""
        ...


def check_image(image: np.ndarray) -> None:
    """Raise InvalidImageError unless ``image`` is an (H, W, 3) uint8 array with H, W >= 1."""
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] != 3
        or image.shape[0] < 1
        or image.shape[1] < 1
    ):
        desc = (
            f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image)
        )
        raise InvalidImageError(f"expected an (H, W, 3) uint8 RGB array, got {desc}")
