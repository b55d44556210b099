"""Detectors. For now only the whole-image fallback; a trained ROI detector plugs in later.

Contract (``Detector``): one non-empty list of regions per image, sorted by score descending;
the first region is the one the pipeline embeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.vision.protocols import Region, check_image

__all__ = ["WholeImageDetector", "whole_image_region"]


def whole_image_region(image: np.ndarray) -> Region:
    """The region covering all of an (H, W, 3) image, category "unknown", score 1.0."""
    h, w = image.shape[:2]
    return Region(box=(0, 0, int(w), int(h)), category="unknown", score=1.0)


class WholeImageDetector:
    """Returns the whole image as the single region (catalogue shots are already framed)."""

    name = "whole-image"
    version = "1"

    def load(self) -> None:
        """No weights; present so every model has the same lifecycle."""

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Region]]:
        out: list[list[Region]] = []
        for image in images:
            check_image(image)
            out.append([whole_image_region(image)])
        return out
