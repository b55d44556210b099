"""Colour helpers shared by ColourTagger and ColourHistogramEmbedder (pure NumPy).

Background: catalogue shots put the product on a near-white studio background. A pixel is
background when it is near-white (min channel >= 225, spread <= 24) *and* connected to the image
border through near-white pixels (flood fill). The connectivity rule keeps a white garment's
interior as foreground when its outline separates it from the background, which a plain
brightness threshold would not.

Palette matching is nearest-neighbour in CIE L*a*b* (D65), where Euclidean distance roughly
follows perceived difference; each name has a few reference shades (navy vs blue, beige vs
brown) so the boundaries follow how merchants name colours rather than an RGB grid.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WORK_SIZE = 64  # crops are reduced so the longer side is at most this many pixels

PALETTE: dict[str, tuple[tuple[int, int, int], ...]] = {
    "black": ((0, 0, 0), (35, 35, 38), (62, 62, 64)),
    "white": ((255, 255, 255), (238, 236, 230)),
    "grey": ((108, 108, 110), (135, 135, 135), (180, 180, 180)),
    "red": ((200, 25, 35), (150, 15, 30), (230, 60, 60), (110, 20, 30)),
    "pink": ((250, 160, 190), (225, 90, 150), (245, 200, 210)),
    "orange": ((250, 130, 20), (225, 95, 40)),
    "yellow": ((250, 215, 20), (240, 230, 110)),
    "green": ((35, 140, 60), (95, 110, 45), (110, 195, 110), (25, 75, 45)),
    "blue": ((35, 95, 200), (95, 150, 220), (60, 115, 165), (150, 190, 230), (150, 166, 186), (90, 108, 140)),
    "navy": ((20, 30, 80), (38, 45, 72), (30, 40, 110)),
    "purple": ((110, 45, 140), (160, 110, 185), (75, 30, 85)),
    "brown": ((110, 65, 35), (75, 50, 35), (150, 100, 60)),
    "beige": ((220, 200, 160), (200, 180, 140), (235, 220, 195)),
}
NAMES: tuple[str, ...] = tuple(PALETTE)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 or float sRGB in 0..255 -> (..., 3) float32 CIE L*a*b* (D65)."""
    c = np.asarray(rgb, dtype=np.float32) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
        dtype=np.float32,
    )
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )
    return lab.astype(np.float32)


_REF_RGB = np.array([c for shades in PALETTE.values() for c in shades], dtype=np.uint8)  # (R, 3)
_REF_LAB = srgb_to_lab(_REF_RGB)  # (R, 3) float32
_REF_NAME = np.array(
    [i for i, shades in enumerate(PALETTE.values()) for _ in shades], dtype=np.int64
)  # (R,) index into NAMES


def reduce(crop: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 with max(h, w) <= WORK_SIZE (box filter)."""
    h, w = crop.shape[:2]
    if max(h, w) <= WORK_SIZE:
        return crop
    img = Image.fromarray(crop)
    img.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.BOX)
    return np.asarray(img)


def background_mask(small: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 -> (h, w) bool: near-white pixels connected to the border."""
    lo = small.min(axis=2).astype(np.int16)
    hi = small.max(axis=2).astype(np.int16)
    candidate = (lo >= 225) & (hi - lo <= 24)  # (h, w) bool
    seen = np.zeros_like(candidate)
    seen[0, :] = candidate[0, :]
    seen[-1, :] = candidate[-1, :]
    seen[:, 0] |= candidate[:, 0]
    seen[:, -1] |= candidate[:, -1]
    # 4-connected flood fill by repeated dilation; converges in at most h*w/2 steps and in a
    # handful on real images (cheap at 64x64).
    for _ in range(small.shape[0] * small.shape[1]):
        grown = seen.copy()
        grown[1:, :] |= seen[:-1, :]
        grown[:-1, :] |= seen[1:, :]
        grown[:, 1:] |= seen[:, :-1]
        grown[:, :-1] |= seen[:, 1:]
        grown &= candidate
        if np.array_equal(grown, seen):
            break
        seen = grown
    return seen


def centre_prior(h: int, w: int) -> np.ndarray:
    """(h, w) float32 Gaussian weight peaking at the centre (sigma = 0.3 of each side).

    The product is centred in catalogue shots and detector crops; edges carry more skin,
    props and background.
    """
    y = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
    x = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * 0.3**2)).astype(np.float32)


def palette_votes(crop: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (len(NAMES),) float64 vote shares summing to 1.

    Foreground pixels vote for their nearest palette name, weighted by the centre prior. When
    almost everything is background (a white product on white), all pixels vote instead.
    """
    small = reduce(crop)
    h, w = small.shape[:2]
    weight = centre_prior(h, w) * ~background_mask(small)  # (h, w) float32
    if weight.sum() < 0.03 * h * w:
        weight = centre_prior(h, w)
    lab = srgb_to_lab(small).reshape(-1, 3)  # (h*w, 3) float32
    d = ((lab[:, None, :] - _REF_LAB[None, :, :]) ** 2).sum(axis=2)  # (h*w, R)
    nearest = _REF_NAME[d.argmin(axis=1)]  # (h*w,)
    votes = np.bincount(nearest, weights=weight.reshape(-1), minlength=len(NAMES))
    return votes / max(float(votes.sum()), 1e-12)
