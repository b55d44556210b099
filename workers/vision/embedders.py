"""EfficientNet-Lite0 appearance embedder, split into pre (CPU), core (device), post.

``embed(crops) == postprocess(core(preprocess(crops)))``; a batcher may run the three stages in
different threads so decode/resize of batch k+1 overlaps the network on batch k.

Vectors: global-average-pooled ``forward_features`` (1280-d), L2-normalised, float32. The
preprocessing below is part of the model version: changing it changes every vector, so it
bumps ``version``.

Preprocessing: letterbox, not resize-and-centre-crop. The whole crop is scaled so its longer
side is 224 and pasted centred on a 224x224 canvas filled with the median colour of the crop's
border. Why: catalogue shots are portrait (225x300) and a centre crop would cut the collar and
hem off a dress or the toe off a shoe, which matter for same-product search; padding with the
border colour (white in the catalogue, the room in a real-shot photo) adds no new edges, so it
disturbs features less than black bars.

Determinism: on CPU the same crop gives bit-identical vectors across calls with the same batch
composition; across different batch sizes rows agree to ~1e-6 (oneDNN may pick other kernels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from workers.vision.efficientnet import (
    FEATURE_DIM,
    INPUT_MEAN,
    INPUT_SIZE,
    INPUT_STD,
    load_efficientnet_lite0,
)
from workers.vision.exceptions import ModelNotLoadedError
from workers.vision.fused import FusedLite0, fuse
from workers.vision.protocols import check_image

__all__ = ["EfficientNetEmbedder", "letterbox", "native_bf16", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` multiplies bf16 in hardware: a CUDA GPU that supports it, or a CPU with AMX tiles.

    On a CPU without AMX, oneDNN emulates or half-uses bf16 and the backbone gains little or loses,
    so "auto" stays float32 there (AVX512-BF16 alone, e.g. Zen 4, is not measured, so not assumed).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, hence the guard
    return dev.type == "cpu" and probe is not None and bool(probe())


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device) -> torch.dtype:
    """The backbone's compute dtype: "auto" is bfloat16 where ``native_bf16(device)``, else float32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {['auto', *_DTYPES]}, got {dtype!r}")
    return _DTYPES[dtype]


def letterbox(crop: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: fit inside, centre, pad with the border median."""
    check_image(crop)
    h, w = crop.shape[:2]
    border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])  # (2W+2H, 3) uint8
    fill = tuple(int(v) for v in np.median(border, axis=0))
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    img = Image.fromarray(crop)
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(img, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas)


class EfficientNetEmbedder:
    """Appearance embedder: EfficientNet-Lite0 ImageNet features, 1280-d, unit norm.

    Args:
        device: torch device for ``core`` ("cpu", "cuda", "cuda:1").
        dtype: compute dtype of ``core``: "float32" (default), "bfloat16" / "float16" via autocast
            (weights stay float32), or "auto" (``resolve_dtype``: bf16 on CUDA and on AMX CPUs).
    """

    name = "effnet-lite0-gap"
    version = "1"
    dim = FEATURE_DIM

    def __init__(self, device: str = "cpu", dtype: str | torch.dtype = "float32") -> None:
        self.device = torch.device(device)
        self.dtype: torch.dtype = resolve_dtype(dtype, device)
        self._model: FusedLite0 | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the ImageNet weights onto ``device`` (idempotent)."""
        if self._model is not None:
            return
        model = fuse(load_efficientnet_lite0(self.device))  # BN folded: same features, ~2x faster
        self._model = model.to(memory_format=torch.channels_last)

    def preprocess(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """CPU stage: crops -> (B, 3, 224, 224) float32 on CPU, (p - 127) / 128."""
        batch = np.empty((len(crops), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)  # (B,H,W,3)
        for i, crop in enumerate(crops):
            batch[i] = letterbox(crop)
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()  # (B, 3, 224, 224) float32
        return x.sub_(INPUT_MEAN).div_(INPUT_STD).contiguous()

    def core(self, batch: torch.Tensor) -> torch.Tensor:
        """Device stage: (B, 3, 224, 224) -> (B, 1280) pooled features, float32, on device."""
        if self._model is None:
            raise ModelNotLoadedError(self.name)
        with torch.inference_mode():
            x = batch.to(self.device, non_blocking=True)
            x = x.contiguous(memory_format=torch.channels_last)
            if self.dtype == torch.float32:
                fmap = self._model.forward_features(x)
            else:
                with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                    fmap = self._model.forward_features(x)
            return fmap.float().mean(dim=(2, 3))  # (B, 1280) float32

    def postprocess(self, features: torch.Tensor) -> np.ndarray:
        """(B, 1280) tensor -> (B, 1280) float32 NumPy rows with unit L2 norm."""
        with torch.inference_mode():
            f = torch.nn.functional.normalize(features.float(), dim=1, eps=1e-12)
            return f.cpu().numpy().astype(np.float32, copy=False)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 1280) float32, unit rows; (0, 1280) for no crops."""
        if self._model is None:
            raise ModelNotLoadedError(self.name)
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.postprocess(self.core(self.preprocess(crops)))
