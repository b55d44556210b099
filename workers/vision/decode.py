"""Image bytes -> (H, W, 3) uint8 RGB array, safely.

Contract (architecture guarantee 5, "no input can crash a worker or exhaust its memory"):
  - Every failure raises :class:`ImageDecodeError` with a ``reason`` slug; nothing else escapes
    for bad bytes.
  - The pixel count is checked from the header before any pixel is decoded: an image declaring
    more than ``max_pixels`` pixels is refused with ``"too_many_pixels"``, so a 50 kB PNG that
    claims 50000x50000 never allocates 7.5 GB. Pillow's own ``DecompressionBombError`` (raised
    at ``open`` above 2x ``Image.MAX_IMAGE_PIXELS``) maps to the same reason.
  - Only raster formats with in-process decoders are opened (JPEG incl. MPO, PNG, GIF, WebP,
    BMP, TIFF). Pillow's EPS plugin would start Ghostscript on attacker bytes, so it is never tried.
  - Accepted inputs come out upright and in sRGB-ish 8-bit RGB: EXIF orientation applied,
    CMYK / palette / greyscale converted, 16-bit greyscale scaled to 8 bits (not clipped),
    alpha composited on white (the catalogue background), animated images give their first
    frame.

``target``: when given, a JPEG is decoded with DCT scaling (``Image.draft``) to the smallest
1/1, 1/2, 1/4 or 1/8 size whose shorter side stays >= ``target``. A 4000x3000 photo feeding a
224-pixel model decodes 8x faster and in 1/64 of the memory.

The function holds no global state (Pillow's ``MAX_IMAGE_PIXELS`` is read, never written), so
it is safe to call from several executor threads at once.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from workers.vision.exceptions import ImageDecodeError

__all__ = ["ALLOWED_FORMATS", "decode_image"]

# MPO (multi-picture JPEG) is opened by the JPEG plugin, so it needs no entry of its own.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_WHITE = (255, 255, 255)


def decode_image(
    data: bytes, *, max_pixels: int = 40_000_000, target: int | None = None
) -> np.ndarray:
    """Decode ``data`` to an (H, W, 3) uint8 RGB array; see the module docstring for the rules.

    Raises:
        ImageDecodeError: empty, unsupported, corrupt, or more than ``max_pixels`` pixels.
    """
    if not data:
        raise ImageDecodeError("empty", "zero bytes")
    try:
        img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)  # header only
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too_many_pixels", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            "unsupported_format", f"not one of {', '.join(ALLOWED_FORMATS)}"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError("corrupt", f"unreadable header: {exc}") from exc

    with img:
        width, height = img.size
        if width < 1 or height < 1:
            raise ImageDecodeError("corrupt", f"header declares size {width}x{height}")
        if width * height > max_pixels:
            raise ImageDecodeError(
                "too_many_pixels",
                f"{width}x{height} = {width * height} pixels > max_pixels={max_pixels}",
            )
        if target is not None and img.format in ("JPEG", "MPO"):
            img.draft(img.mode, (target, target))
        try:
            img.load()  # first frame of an animation
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb_array(img)
        except Image.DecompressionBombError as exc:
            raise ImageDecodeError("too_many_pixels", str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
            # Pillow reports truncation and bad streams as OSError ("image file is truncated",
            # "broken data stream"), others as SyntaxError/ValueError.
            raise ImageDecodeError("corrupt", str(exc) or type(exc).__name__) from exc


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert any decoded mode to an (H, W, 3) uint8 RGB array."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        grey = _high_depth_to_uint8(img)  # (H, W) uint8
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")
    out = np.asarray(rgb, dtype=np.uint8)  # (H, W, 3) uint8
    return np.array(out, copy=True, order="C")


def _high_depth_to_uint8(img: Image.Image) -> np.ndarray:
    """(H, W) uint8 from a 16-bit, 32-bit integer or float greyscale image.

    16-bit data use the full 0..65535 range, so divide by 257 (65535 -> 255), not clip at 255.
    Pillow opens some 16-bit PNGs as mode "I" (int32); those are treated as 16-bit when any
    value exceeds 255. Float images in 0..1 are scaled by 255.
    """
    arr = np.asarray(img)
    if img.mode == "F":
        f = arr.astype(np.float32)  # (H, W) float32
        if f.size and float(np.nanmax(f)) <= 1.0:
            f = f * 255.0
        return np.clip(np.nan_to_num(f), 0, 255).round().astype(np.uint8)
    a = arr.astype(np.int64)  # (H, W) int64
    if img.mode in _SIXTEEN_BIT_MODES or (a.size and int(a.max()) > 255):
        a = np.clip(a, 0, 65535)
        return ((a * 255 + 32767) // 65535).astype(np.uint8)
    return np.clip(a, 0, 255).astype(np.uint8)

