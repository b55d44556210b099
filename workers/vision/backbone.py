"""The shared backbone: one EfficientNet-Lite0 forward gives the detector, tagger and embedder inputs.

Pailitao-style joint detection and features: the detector head reads the stride-16 and stride-32
maps of the same forward pass whose pooled vector embeds and tags the whole image, so a catalogue
shot whose main region is (nearly) the whole image costs one forward, not three.

Contract:
  - ``preprocess(images)``: letterbox each (H, W, 3) uint8 image to 224x224 (see
    ``workers.vision.embedders.letterbox``) and return the (B, 3, 224, 224) float32 batch plus one
    ``Geometry`` per image (scale and offset) to map boxes between canvas and image pixels.
  - ``forward(batch)`` -> ``Features``: ``pooled`` (B, 1280) float32 (the same vector as
    ``EfficientNetEmbedder.core``), ``s16`` (B, 112, 14, 14) and ``s32`` (B, 1280, 7, 7) float32.
  - ``load()`` loads the ImageNet weights (idempotent); before it, ``forward`` raises
    ``ModelNotLoadedError``. No I/O at construction.
  - ``dtype``: the convolutions run under bf16 autocast when it resolves to bfloat16 ("auto" does on
    CUDA and on CPUs with AMX: ``workers.vision.embedders.resolve_dtype``); outputs are float32 either
    way. On this project's AMX CPU, bf16 ran a batch of 32 in 0.4-0.5x the float32 time, a batch of 1
    in about the same; the pooled features keep a cosine of 0.9986 with float32 ones (the vectors of
    a bf16 and a float32 worker are interchangeable in one index, so the model version does not name it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from workers.vision.efficientnet import INPUT_MEAN, INPUT_SIZE, INPUT_STD, load_efficientnet_lite0
from workers.vision.embedders import letterbox, resolve_dtype
from workers.vision.exceptions import ModelNotLoadedError
from workers.vision.fused import FusedLite0, fuse

__all__ = ["S16_CHANNELS", "Features", "Geometry", "Lite0Backbone", "geometry_of"]

S16_CHANNELS = 112
_S16_BLOCKS = 11  # blocks[0:11] end at stage 5 (112 channels, stride 16)


@dataclass(frozen=True)
class Geometry:
    """How an (h, w) image sits on the 224x224 canvas: canvas = image * scale + (ox, oy)."""

    h: int
    w: int
    scale: float
    ox: float
    oy: float

    def to_image(self, box: np.ndarray) -> tuple[int, int, int, int]:
        """(4,) canvas box x0, y0, x1, y1 -> integer image box clipped to the image, never empty."""
        x0 = (float(box[0]) - self.ox) / self.scale
        y0 = (float(box[1]) - self.oy) / self.scale
        x1 = (float(box[2]) - self.ox) / self.scale
        y1 = (float(box[3]) - self.oy) / self.scale
        ix0 = int(np.clip(np.floor(x0), 0, self.w - 1))
        iy0 = int(np.clip(np.floor(y0), 0, self.h - 1))
        ix1 = int(np.clip(np.ceil(x1), ix0 + 1, self.w))
        iy1 = int(np.clip(np.ceil(y1), iy0 + 1, self.h))
        return ix0, iy0, ix1, iy1

    def to_canvas(self, box: Sequence[float]) -> np.ndarray:
        """Image box -> (4,) float32 canvas box."""
        b = np.asarray(box, dtype=np.float32)
        return b * self.scale + np.array([self.ox, self.oy, self.ox, self.oy], dtype=np.float32)


def geometry_of(h: int, w: int, size: int = INPUT_SIZE) -> Geometry:
    """The letterbox geometry ``letterbox`` uses for an (h, w) image."""
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return Geometry(h, w, nw / w if w else scale, float((size - nw) // 2), float((size - nh) // 2))


@dataclass(frozen=True)
class Features:
    pooled: torch.Tensor  # (B, 1280) float32
    s16: torch.Tensor  # (B, 112, 14, 14) float32
    s32: torch.Tensor  # (B, 1280, 7, 7) float32


class Lite0Backbone:
    """EfficientNet-Lite0 (BatchNorm folded) returning pooled, stride-16 and stride-32 features."""

    name = "effnet-lite0"
    version = "1"

    def __init__(self, device: str = "cpu", dtype: str | torch.dtype = "auto") -> None:
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self._model: FusedLite0 | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        if self._model is None:
            self._model = fuse(load_efficientnet_lite0(self.device)).to(memory_format=torch.channels_last)

    @staticmethod
    def preprocess(images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[Geometry]]:
        """Images -> ((B, 3, 224, 224) float32 channels-last CPU batch, geometries)."""
        batch = np.empty((len(images), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)  # (B, H, W, 3)
        geoms = []
        for i, image in enumerate(images):
            batch[i] = letterbox(image)
            geoms.append(geometry_of(*image.shape[:2]))
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()  # (B, 3, 224, 224) float32
        return x.sub_(INPUT_MEAN).div_(INPUT_STD).contiguous(memory_format=torch.channels_last), geoms

    def forward(self, batch: torch.Tensor) -> Features:
        if self._model is None:
            raise ModelNotLoadedError(self.name)
        m = self._model
        with torch.inference_mode(), torch.autocast(self.device.type, self.dtype, enabled=self.dtype != torch.float32):
            x = batch.to(self.device).contiguous(memory_format=torch.channels_last)
            x = m.stem(x)
            for block in m.blocks[:_S16_BLOCKS]:
                x = block(x)
            s16 = x.clone()  # later blocks modify x in place (residual add_)
            for block in m.blocks[_S16_BLOCKS:]:
                x = block(x)
            s32 = m.head(x).float()  # pooled in float32 (a bf16 mean of 49 values loses a bit more)
            return Features(pooled=s32.mean(dim=(2, 3)), s16=s16.float(), s32=s32)

    def features(self, images: Sequence[np.ndarray]) -> tuple[Features, list[Geometry]]:
        """preprocess + forward."""
        x, geoms = self.preprocess(images)
        return self.forward(x), geoms
