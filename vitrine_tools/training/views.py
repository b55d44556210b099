"""Generated training and evaluation images: views of a catalogue item and composites.

Every function is a pure function of its inputs and the ``numpy.random.Generator`` passed in,
so a view is reproducible from (image, seed).

- ``foreground_mask``: the product pixels of a studio shot: not near-white-and-connected-to-the
  border (the same background rule as ``workers.vision._colour``, at full resolution).
- ``background``: a procedural backdrop (flat, gradient, or blotchy texture, with grain): stands in
  for the floor, bed, wall or street behind a real-shot garment.
- ``make_view``: a "same product" query of a catalogue shot: background composite, rotation,
  crop, colour (brightness / contrast / saturation, never hue: colour is an attribute), blur, JPEG.
- ``make_composite``: 1-3 catalogue items pasted on a backdrop, with their boxes: detector
  training data for the real-shot domain.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from scipy import ndimage

__all__ = ["background", "foreground_box", "foreground_mask", "make_composite", "make_view"]


def foreground_mask(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 studio shot -> (H, W) bool, True on the product."""
    lo = image.min(axis=2).astype(np.int16)
    hi = image.max(axis=2).astype(np.int16)
    white = (lo >= 225) & (hi - lo <= 24)
    labels, _ = ndimage.label(white)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    bg = np.isin(labels, border[border > 0])
    fg = ~bg
    return ndimage.binary_opening(fg, iterations=1) if fg.sum() > 50 else fg


def foreground_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Half-open bounding box of a (H, W) bool mask; the whole image when the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0, 0, mask.shape[1], mask.shape[0]
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8 procedural backdrop."""
    base = rng.integers(20, 236, 3).astype(np.float32)
    kind = rng.integers(0, 3)
    if kind == 0:
        img = np.broadcast_to(base, (h, w, 3)).copy()
    elif kind == 1:
        other = rng.integers(20, 236, 3).astype(np.float32)
        t = np.linspace(0, 1, h if rng.random() < 0.5 else w, dtype=np.float32)
        ramp = t[:, None, None] if len(t) == h else t[None, :, None]
        img = np.broadcast_to(base + (other - base) * ramp, (h, w, 3)).copy()
    else:
        small = rng.normal(0, 1, (max(2, h // 32), max(2, w // 32), 3)).astype(np.float32)
        blot = np.asarray(Image.fromarray(((small - small.min()) / (np.ptp(small) + 1e-6) * 255).astype(np.uint8))
                          .resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
        img = base + (blot - 128.0) * rng.uniform(0.1, 0.5)
    img = img + rng.normal(0, rng.uniform(2, 12), (h, w, 1))  # grain
    return np.clip(img, 0, 255).astype(np.uint8)


def _paste(canvas: np.ndarray, item: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    h, w = item.shape[:2]
    region = canvas[y : y + h, x : x + w]
    m = mask[: region.shape[0], : region.shape[1], None]
    region[:] = np.where(m, item[: region.shape[0], : region.shape[1]], region)


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((max(1, w), max(1, h)), Image.Resampling.BILINEAR))


def make_view(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 catalogue shot -> a generated view of the same product (uint8, any size)."""
    img = image
    h, w = img.shape[:2]
    if rng.random() < 0.5:  # background composite: the product on a backdrop, with margin
        mask = foreground_mask(img)
        pad = rng.uniform(0.0, 0.4)
        H, W = int(h * (1 + pad)), int(w * (1 + pad))
        canvas = background(rng, H, W)
        x, y = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
        _paste(canvas, img, mask, x, y)
        img = canvas
    pil = Image.fromarray(img)
    if rng.random() < 0.5:
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        fill = tuple(int(v) for v in np.median(border, axis=0))
        pil = pil.rotate(float(rng.uniform(-15, 15)), Image.Resampling.BILINEAR, expand=False, fillcolor=fill)
    W, H = pil.size
    area = rng.uniform(0.65, 1.0)
    aspect = np.exp(rng.uniform(-0.2, 0.2))
    cw, ch = min(W, int(W * np.sqrt(area * aspect))), min(H, int(H * np.sqrt(area / aspect)))
    x0, y0 = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
    pil = pil.crop((x0, y0, x0 + cw, y0 + ch))
    pil = ImageEnhance.Brightness(pil).enhance(float(rng.uniform(0.75, 1.2)))
    pil = ImageEnhance.Contrast(pil).enhance(float(rng.uniform(0.75, 1.2)))
    pil = ImageEnhance.Color(pil).enhance(float(rng.uniform(0.8, 1.2)))
    if rng.random() < 0.35:
        pil = pil.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.5))))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(rng.integers(35, 91)))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def make_composite(
    items: Sequence[tuple[np.ndarray, str]], rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[tuple[int, int, int, int], str]]]:
    """Paste studio shots (image, category) on a backdrop -> (image uint8, [(box, category)])."""
    H, W = int(rng.integers(300, 481)), int(rng.integers(300, 481))
    canvas = background(rng, H, W)
    boxes: list[tuple[tuple[int, int, int, int], str]] = []
    taken = np.zeros((H, W), dtype=bool)
    for img, category in items:
        mask = foreground_mask(img)
        x0, y0, x1, y1 = foreground_box(mask)
        if (x1 - x0) < 8 or (y1 - y0) < 8:
            continue
        item, m = img[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        side = rng.uniform(0.25, 0.75) * min(H, W) if len(items) > 1 else rng.uniform(0.35, 0.9) * min(H, W)
        s = side / max(item.shape[:2])
        nw, nh = max(8, int(item.shape[1] * s)), max(8, int(item.shape[0] * s))
        item = _resize(item, nw, nh)
        m = _resize(m.astype(np.uint8) * 255, nw, nh) > 127
        for _ in range(10):
            x, y = int(rng.integers(0, W - nw + 1)), int(rng.integers(0, H - nh + 1))
            if taken[y : y + nh, x : x + nw].mean() < 0.1:
                break
        else:
            continue
        _paste(canvas, item, m, x, y)
        taken[y : y + nh, x : x + nw] = True
        bx0, by0, bx1, by1 = foreground_box(m)
        boxes.append(((x + bx0, y + by0, x + bx1, y + by1), category))
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="JPEG", quality=int(rng.integers(60, 93)))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB")), boxes
