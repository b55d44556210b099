"""Which ``VisionPipeline`` a process runs: the factory above both pipelines.

- ``production_pipeline``: the trained heads from ``weights/`` (``TrainedVisionPipeline``). Weights
  that are missing or incomplete raise ``ModelWeightsMissing``; a worker then refuses to start.
  It never falls back to the untrained pipeline, whose 1280-d vectors belong to another model
  version: a silent fallback would leave the trained collection without writers and queries
  answering from the wrong model.
- The style (compatibility) head joins the production models when its record ``compat.json`` is in
  the weights folder (as shipped); its ``compat.pt`` must then be there too (``load()`` checks the
  digest). Weights without the record make a model version without style vectors: every query but
  ``complete_look`` works on it.
- ``baseline_pipeline``: the untrained pipeline (whole image, colour tagger, pooled ImageNet
  features, 1280-d), the baseline that evaluations and benchmarks compare with.

Neither loads weights; call ``load()``.
"""

from __future__ import annotations

from pathlib import Path

from workers.vision.colour import ColourHistogramEmbedder, ColourTagger
from workers.vision.detectors import WholeImageDetector
from workers.vision.embedders import EfficientNetEmbedder
from workers.vision.exceptions import ModelWeightsMissing
from workers.vision.pipeline import VisionPipeline
from workers.vision.style import COMPAT_RECORD, StyleEmbedder
from workers.vision.text import MiniLMTextEmbedder
from workers.vision.trained import HEADS, WEIGHTS_DIR, missing_heads, read_manifest
from workers.vision.trained_pipeline import TrainedVisionPipeline

__all__ = ["baseline_pipeline", "production_pipeline"]


def production_pipeline(device: str = "cpu", dtype: str = "auto", text_cache: int = 20_000,
                        weights_dir: Path = WEIGHTS_DIR) -> TrainedVisionPipeline:
    """The production models on ``device``, not loaded yet; ``ModelWeightsMissing`` without their weights."""
    manifest = read_manifest(weights_dir)
    if manifest is None:
        missing = missing_heads(weights_dir)
        raise ModelWeightsMissing(
            f"trained head weights missing under {weights_dir}: {', '.join(missing) or 'manifest.json'} "
            f"(of {', '.join(HEADS)}); run `vitrine train` or reinstall vitrine", missing=missing)
    style = StyleEmbedder(weights_dir, device) if (weights_dir / COMPAT_RECORD).is_file() else None
    return TrainedVisionPipeline.from_manifest(manifest, device=device, dtype=dtype, text_cache=text_cache,
                                               weights_dir=weights_dir, style=style)


def baseline_pipeline(device: str = "cpu", dtype: str = "auto", text_cache: int = 20_000) -> VisionPipeline:
    """The untrained pipeline: whole image, colour tagger, pooled ImageNet features (1280-d)."""
    return VisionPipeline(
        detector=WholeImageDetector(),
        tagger=ColourTagger(),
        embedder=EfficientNetEmbedder(device=device, dtype=dtype),
        colour=ColourHistogramEmbedder(),
        text=MiniLMTextEmbedder(device=device, cache_size=text_cache),
    )
