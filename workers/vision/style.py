"""``StyleEmbedder``: the compatibility head (``workers.vision.compat``) as a model of the pipeline.

It turns a garment's features (pooled backbone features and colour histogram: ``style_inputs``) and
its coarse category into the style vector the index stores (``style_vec``, unit length, compared by
inner product), and builds the query vectors that complete a look:

    query(items, to) = mean over the look's garments a of  w[c_a, to] ⊙ f(a)

whose inner product with a stored ``f(b)`` of category ``to`` is the mean type-aware compatibility
of ``b`` with the garments of the look: the score the fill-in-the-blank evaluation ranks candidates
by (``CompatHead.outfit_score`` less the pairs among the look's own garments, the same for every
candidate). One search per wanted category, filtered by that category.

``name@version`` joins the pipeline's ``model_version``: the version is the digest of ``compat.pt``
recorded in ``compat.json``, read when the pipeline is built (no weights are loaded then); ``load()``
checks the file against it (a mismatch is ``ModelWeightsMissing``: the record and the weights
belong together).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workers.vision.exceptions import ModelNotLoadedError, ModelWeightsMissing

__all__ = ["COMPAT_RECORD", "StyleEmbedder"]

COMPAT_RECORD = "compat.json"


class StyleEmbedder:
    name = "style-compat"

    def __init__(self, weights_dir: Path, device: str = "cpu") -> None:
        record_path = Path(weights_dir) / COMPAT_RECORD
        try:
            record = json.loads(record_path.read_text())
        except FileNotFoundError:
            raise ModelWeightsMissing(f"{record_path} is missing: run `vitrine train compat`",
                                      missing=["compat"]) from None
        self.weights_dir = Path(weights_dir)
        self.device = device
        self.version = str(record["version"])
        self.dim = int(record["dim"])
        self.record = record
        self._head = None

    def load(self) -> None:
        if self._head is not None:
            return
        from workers.vision.compat import load_compat

        try:
            head = load_compat(self.weights_dir, self.device)
        except FileNotFoundError as exc:
            raise ModelWeightsMissing(f"{exc}: run `vitrine train compat`", missing=["compat"]) from None
        if head.version != self.version:
            raise ModelWeightsMissing(
                f"{self.weights_dir}/compat.pt is version {head.version}, its record {COMPAT_RECORD} says "
                f"{self.version}: retrain or reinstall", missing=["compat"])
        self._head = head

    @property
    def head(self):  # type: ignore[no-untyped-def]
        if self._head is None:
            raise ModelNotLoadedError(self.name)
        return self._head

    @property
    def categories(self) -> tuple[str, ...]:
        from workers.vision.compat import CATEGORIES

        return CATEGORIES

    def inputs(self, pooled: np.ndarray, hist: np.ndarray, crops: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """(n, 1280) pooled features and (n, 64) colour histograms (+ the n garment crops they came
        from, which a head with ``colour_dim`` reads: ``garment_colour``) -> the head's (n, F) input rows."""
        return self.head.style_inputs(pooled, hist, crops)

    def embed(self, inputs: np.ndarray, categories: Sequence[str]) -> np.ndarray:
        """(n, F) input rows and their coarse categories -> (n, dim) float32 unit style vectors."""
        if len(inputs) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.head.embed(np.asarray(inputs, np.float32), list(categories))

    def query(self, items: Sequence[tuple[str, np.ndarray]], to_category: str) -> np.ndarray:
        """The search vector for garments of ``to_category`` completing the look ``items``
        ((category, style vector) pairs): the mean of ``w[c, to] ⊙ f`` over the items."""
        if not items:
            raise ValueError("a look needs at least one garment")
        q = [self.head.query_vector(np.asarray(v, np.float32), c, to_category) for c, v in items]
        return np.mean(q, axis=0).astype(np.float32)

    def complements(self, present: Sequence[str]) -> list[str]:
        """The categories that complete a look of the ``present`` categories, most co-worn first:
        those that complement every present one (a look with trousers gets no skirt), else, when
        none does, those that complement any; never one already present."""
        lists = [list(self.head.complements_of(c)) for c in present]
        lists = [x for x in lists if x]
        if not lists:
            return []
        every = [d for d in lists[0] if all(d in x for x in lists[1:])]
        pool = every or [d for x in lists for d in x]
        out: list[str] = []
        for d in pool:
            if d not in present and d not in out:
                out.append(d)
        return out

    def known(self, category: str) -> bool:
        return category in self.categories
