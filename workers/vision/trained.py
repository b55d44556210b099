"""The trained models, sharing one backbone forward: ROI detector, attribute tagger, retrieval embedder.

Each is a protocol implementation (``Detector``, ``Tagger``, ``Embedder``) usable on its own, and
``TrainedVisionPipeline`` runs them together at the cost of one backbone forward per image, plus
one per image whose main region is small (``needs_crop``).

Weights: ``workers/vision/weights/{detector,tagger,projection}.pt`` with a JSON record each
(how they were made) and ``manifest.json`` (name and version of each head; the version is a
digest of the weights, so retraining changes ``model_version`` and therefore the collection).
``read_manifest`` is called by the factory ``workers.vision.factory.production_pipeline``; constructors do no I/O and
``load()`` loads the weights (idempotent; before it, calls raise ``ModelNotLoadedError``).

Main region rule (``needs_crop``): the detector's first region is embedded from a second forward
on its crop when it covers less than ``CROP_BELOW`` of the image, otherwise from the whole-image
forward (a catalogue shot or a close real-shot photo: the crop would only trim background).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.vision.backbone import Features, Geometry, Lite0Backbone
from workers.vision.colour import ColourHistogramEmbedder
from workers.vision.exceptions import ModelNotLoadedError
from workers.vision.fusion import FusionConfig
from workers.vision.heads import DetectorHead, ProjectionHead, TaggerHeads, decode, load_head
from workers.vision.protocols import Region, Tag, check_image
from workers.vision.taxonomy import GROUPS

__all__ = ["CROP_BELOW", "WEIGHTS_DIR", "SharedHeads", "TrainedDetector", "TrainedEmbedder", "TrainedTagger",
           "missing_heads", "needs_crop", "read_manifest", "regions_from_maps"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CROP_BELOW = 0.2
REGION_THRESHOLD = 0.2
HEADS = ("detector", "tagger", "projection")


def read_manifest(weights_dir: Path = WEIGHTS_DIR) -> dict[str, dict[str, Any]] | None:
    """{head: {"name", "version", "file"}} when every head's weights are present, else None."""
    path = weights_dir / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if not all(h in manifest and (weights_dir / manifest[h]["file"]).is_file() for h in HEADS):
        return None
    return manifest


def missing_heads(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """The heads whose weights ``read_manifest`` does not find (all of them without a manifest)."""
    path = weights_dir / "manifest.json"
    if not path.is_file():
        return list(HEADS)
    manifest = json.loads(path.read_text())
    return [h for h in HEADS if h not in manifest or not (weights_dir / manifest[h]["file"]).is_file()]


def needs_crop(region: Region, h: int, w: int) -> bool:
    x0, y0, x1, y1 = region.box
    return (x1 - x0) * (y1 - y0) < CROP_BELOW * h * w


def _nms(dets: list[tuple[list[float], int, float]], iou: float = 0.7) -> list[tuple[list[float], int, float]]:
    kept: list[tuple[list[float], int, float]] = []
    for d in dets:
        if all(_iou(d[0], k[0]) < iou for k in kept):
            kept.append(d)
    return kept


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def regions_from_maps(head: DetectorHead, s16: torch.Tensor, s32: torch.Tensor, geoms: Sequence[Geometry],
                      threshold: float = REGION_THRESHOLD, k: int = 20) -> list[list[Region]]:
    """Maps of a batch -> regions per image (image pixels), best first; whole image when none."""
    with torch.inference_mode():
        hm, wh, off = head(s16, s32)
    out = []
    for dets, g in zip(decode(hm, wh, off, k=k, threshold=threshold), geoms):
        regions = [Region(g.to_image(np.asarray(b)), GROUPS["category"][c], round(float(s), 4))
                   for b, c, s in _nms(dets)]
        out.append(regions or [Region((0, 0, g.w, g.h), "unknown", 0.0)])
    return out


class SharedHeads:
    """The backbone and the three heads, loaded once and shared by the model objects below."""

    def __init__(self, manifest: dict[str, dict[str, Any]], weights_dir: Path = WEIGHTS_DIR,
                 device: str = "cpu", dtype: str = "auto") -> None:
        self.manifest = manifest
        self.weights_dir = weights_dir
        self.device = device
        self.backbone = Lite0Backbone(device, dtype)  # the heads run in float32 on its float32 outputs
        self.detector: DetectorHead | None = None
        self.tagger: TaggerHeads | None = None
        self.projection: ProjectionHead | None = None
        self.fusion = FusionConfig()

    def load(self) -> None:
        if self.projection is not None:
            return
        self.backbone.load()
        f = {h: self.weights_dir / self.manifest[h]["file"] for h in HEADS}
        self.detector = load_head(f["detector"], "detector", self.device)[0]  # type: ignore[assignment]
        self.tagger = load_head(f["tagger"], "tagger", self.device)[0]  # type: ignore[assignment]
        proj, extra = load_head(f["projection"], "projection", self.device)
        self.fusion = FusionConfig(**extra.get("fusion", {}))
        self.projection = proj  # type: ignore[assignment]

    def _ready(self) -> tuple[DetectorHead, TaggerHeads, ProjectionHead]:
        if self.detector is None or self.tagger is None or self.projection is None:
            raise ModelNotLoadedError("trained-heads")
        return self.detector, self.tagger, self.projection

    def embed_pooled(self, pooled: torch.Tensor) -> np.ndarray:
        """(N, 1280) -> (N, 256) float32 unit rows."""
        with torch.inference_mode():
            return self._ready()[2](pooled.float().to(self.device)).cpu().numpy().astype(np.float32)

    def tag_probs(self, pooled: torch.Tensor, hist: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 1280), (N, 64) -> {group: (N, n_values) float32 probabilities}."""
        with torch.inference_mode():
            logits = self._ready()[1](pooled.float().to(self.device), torch.from_numpy(hist).float().to(self.device))
            return {g: torch.softmax(v, dim=1).cpu().numpy() for g, v in logits.items()}

    def detect(self, feats: Features, geoms: Sequence[Geometry], threshold: float = REGION_THRESHOLD) -> list[list[Region]]:
        return regions_from_maps(self._ready()[0], feats.s16, feats.s32, geoms, threshold)


def tags_from_probs(probs: dict[str, np.ndarray], i: int) -> dict[str, Tag]:
    out = {}
    for g, p in probs.items():
        j = int(p[i].argmax())
        out[g] = Tag(GROUPS[g][j], round(float(p[i, j]), 4), "model")
    return out


class TrainedDetector:
    name = "roi-centernet"

    def __init__(self, shared: SharedHeads) -> None:
        self.shared = shared
        self.version = str(shared.manifest["detector"]["version"])

    def load(self) -> None:
        self.shared.load()

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Region]]:
        for image in images:
            check_image(image)
        if self.shared.detector is None:
            raise ModelNotLoadedError(self.name)
        feats, geoms = self.shared.backbone.features(images)
        return self.shared.detect(feats, geoms)


class TrainedTagger:
    name = "attr-tagger"

    def __init__(self, shared: SharedHeads) -> None:
        self.shared = shared
        self.version = str(shared.manifest["tagger"]["version"])
        self._colour = ColourHistogramEmbedder()

    def load(self) -> None:
        self.shared.load()

    def tag(self, crops: Sequence[np.ndarray]) -> list[dict[str, Tag]]:
        if self.shared.tagger is None:
            raise ModelNotLoadedError(self.name)
        if not crops:
            return []
        feats, _ = self.shared.backbone.features(crops)
        probs = self.shared.tag_probs(feats.pooled, self._colour.embed(crops))
        return [tags_from_probs(probs, i) for i in range(len(crops))]


class TrainedEmbedder:
    name = "effnet-lite0-proj"
    dim = 256

    def __init__(self, shared: SharedHeads) -> None:
        self.shared = shared
        self.version = str(shared.manifest["projection"]["version"])

    def load(self) -> None:
        self.shared.load()

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if self.shared.projection is None:
            raise ModelNotLoadedError(self.name)
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        feats, _ = self.shared.backbone.features(crops)
        return self.shared.embed_pooled(feats.pooled)
