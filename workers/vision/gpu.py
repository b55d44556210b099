"""The GPU input path: JPEG bytes decoded by nvJPEG on the device, letterboxed there, in bf16.

``decode_jpegs(blobs, device)`` -> (B, 3, 224, 224) float normalised as the backbone expects, all
on ``device`` (torchvision ``decode_jpeg`` on CUDA, batched). On a CPU-only machine the CPU path
(``workers.vision.decode`` in a thread pool) is used instead; this module is for CUDA devices.
Pure tensor code: no I/O, no Faust, no Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from workers.vision.efficientnet import INPUT_MEAN, INPUT_SIZE, INPUT_STD

__all__ = ["decode_jpegs", "letterbox_batch"]


def letterbox_batch(images: Sequence[torch.Tensor], size: int = INPUT_SIZE) -> torch.Tensor:
    """(3, H, W) uint8 images -> (B, 3, size, size) float32, aspect kept, padded with 127 (= 0 after scaling)."""
    out = torch.full((len(images), 3, size, size), INPUT_MEAN, device=images[0].device, dtype=torch.float32)
    for i, img in enumerate(images):
        h, w = img.shape[-2:]
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        resized = F.interpolate(img[None].float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (size - nh) // 2, (size - nw) // 2
        out[i, :, top:top + nh, left:left + nw] = resized[0]
    return out.sub_(INPUT_MEAN).div_(INPUT_STD)


def decode_jpegs(blobs: Sequence[bytes], device: str | torch.device = "cuda") -> torch.Tensor:
    """JPEG bytes -> (B, 3, 224, 224) normalised float32 on ``device`` (nvJPEG when CUDA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    return letterbox_batch(images)
