"""decode_image: bad bytes give ImageDecodeError with a reason; odd but valid images decode."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from workers.vision.decode import decode_image
from workers.vision.exceptions import ImageDecodeError, VisionError


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _jpeg(w: int = 64, h: int = 48, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    return _encode(Image.new("RGB", (w, h), colour), "JPEG", quality=90)


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is rewritten to claim width x height (CRC fixed)."""
    data = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def _reason(data: bytes, **kw: object) -> str:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, **kw)  # type: ignore[arg-type]
    assert isinstance(info.value, VisionError)
    return info.value.reason


def test_plain_jpeg_is_hwc_uint8_rgb() -> None:
    out = decode_image(_jpeg(64, 48))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert abs(int(out[..., 0].mean()) - 200) < 8 and int(out[..., 2].mean()) < 50


def test_empty() -> None:
    assert _reason(b"") == "empty"


def test_random_bytes() -> None:
    rng = np.random.default_rng(0)
    assert _reason(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()) in {
        "unsupported_format",
        "corrupt",
    }


def test_truncated_jpeg() -> None:
    data = _encode(
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (128, 128, 3), np.uint8)),
        "JPEG",
    )
    assert _reason(data[: len(data) // 2]) == "corrupt"


def test_decompression_bomb_refused_from_header() -> None:
    bomb = _png_claiming(50_000, 50_000)
    assert len(bomb) < 200
    assert _reason(bomb) == "too_many_pixels"
    # Below Pillow's own limit but above ours: our check, not Pillow's, refuses it.
    assert _reason(_png_claiming(5000, 5000), max_pixels=1_000_000) == "too_many_pixels"


def test_cmyk_jpeg() -> None:
    data = _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG")  # red in CMYK
    out = decode_image(data)
    assert out.shape == (32, 32, 3)
    r, g, b = (int(v) for v in out.reshape(-1, 3).mean(axis=0))
    assert r > 200 and g < 60 and b < 60


def test_16bit_greyscale_png_scaled_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))  # (8, 64) uint16
    data = _encode(Image.fromarray(ramp), "PNG")  # uint16 -> mode "I;16"
    out = decode_image(data)
    assert out.shape == (8, 64, 3)
    row = out[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and 120 <= row[32] <= 135
    assert np.all(np.diff(row) >= 0)


def test_rgba_composited_on_white() -> None:
    img = Image.new("RGBA", (10, 10), (0, 0, 255, 0))
    img.paste((255, 0, 0, 255), (0, 0, 5, 10))
    out = decode_image(_encode(img, "PNG"))
    assert tuple(out[5, 2]) == (255, 0, 0)
    assert tuple(out[5, 8]) == (255, 255, 255)


def test_la_and_palette() -> None:
    la = decode_image(_encode(Image.new("LA", (4, 4), (0, 0)), "PNG"))
    assert tuple(la[0, 0]) == (255, 255, 255)
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    assert tuple(decode_image(_encode(pal, "PNG"))[0, 0]) == (0, 200, 0)


def test_exif_orientation_applied() -> None:
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    out = decode_image(_encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape == (60, 20, 3)  # portrait after rotation
    assert out[:8].mean() > 200 and out[-20:].mean() < 50  # left band is now the top


def test_animated_gif_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = decode_image(buf.getvalue())
    assert out.shape == (16, 16, 3)
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 50


def test_draft_decodes_large_jpeg_smaller_but_not_below_target() -> None:
    data = _jpeg(1600, 1200)
    full = decode_image(data)
    small = decode_image(data, target=224)
    assert full.shape == (1200, 1600, 3)
    assert min(small.shape[:2]) >= 224 and small.shape[0] < 1200
    assert decode_image(_encode(Image.new("RGB", (300, 300)), "PNG"), target=64).shape == (
        300,
        300,
        3,
    )


def test_unsupported_format_not_opened() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert _reason(eps) == "unsupported_format"
