"""``workers.vision``: the models, as pure tensor code.

Owns image decoding (bytes -> RGB array, with the decompression-bomb guard), the model
protocols (Detector, Tagger, Embedder, TextEmbedder), their real implementations
(EfficientNet-Lite0 appearance embedder, colour tagger and histogram, all-MiniLM-L6-v2 text
embedder, whole-image detector), deterministic fakes (``fakes``, for tests; production never imports them), the ``VisionPipeline``
that combines them and the ``factory`` that picks one (production or baseline). The trained heads (``trained``, ``trained_pipeline``, ``heads``: ROI detector, attribute
tagger over the ``taxonomy``, 256-d retrieval projection; weights shipped in ``weights/``) share
one backbone forward (``backbone``); ``fusion`` fuses the category classifier with neighbours.

Must not import: Faust, Kafka clients (kafka-python, aiokafka), pymilvus, MinIO/S3 or any network
code, and must not read ``os.environ``. Importing it loads no weights; ``load()`` does. Tested by
``tests/workers/vision/test_vision_pipeline.py``.
"""

from __future__ import annotations

from workers.vision.colour import ColourHistogramEmbedder, ColourTagger
from workers.vision.decode import decode_image
from workers.vision.detectors import WholeImageDetector
from workers.vision.efficientnet import EfficientNetLite0, load_efficientnet_lite0
from workers.vision.embedders import EfficientNetEmbedder
from workers.vision.exceptions import (
    ImageDecodeError,
    InvalidImageError,
    ModelNotLoadedError,
    VisionError,
)
from workers.vision.pipeline import ImageAnalysis, VisionPipeline
from workers.vision.protocols import Detector, Embedder, Region, Tag, Tagger, TextEmbedder
from workers.vision.text import MiniLMTextEmbedder

__all__ = [
    "ColourHistogramEmbedder",
    "ColourTagger",
    "Detector",
    "EfficientNetEmbedder",
    "EfficientNetLite0",
    "Embedder",
    "ImageAnalysis",
    "ImageDecodeError",
    "InvalidImageError",
    "MiniLMTextEmbedder",
    "ModelNotLoadedError",
    "Region",
    "Tag",
    "Tagger",
    "TextEmbedder",
    "VisionError",
    "VisionPipeline",
    "WholeImageDetector",
    "decode_image",
    "load_efficientnet_lite0",
]
