"""Collection layout: one collection per model version, behind one alias that queries read.

Fields: application primary key ``product_id`` (guarantee 3), ``version`` and ``deleted`` for the
version guard, one FLOAT_VECTOR field per embedding, the hot filters (category, article type,
colour, gender, usage, season, brand, price, in_stock) as scalar fields — an equality filter on a
VARCHAR is ~50x faster in Milvus Lite than JSON or ARRAY_CONTAINS — and the rest of the attributes
(merchant and model values, each with its source) in a JSON field. ``category`` is the partition
key: a category-filtered search visits only that category's partitions (measured with
``vitrine bench query``: filtered recall@10 at ef=256 went from 0.65 to 0.96 at 10k items).

Lexical search (``IndexLayout.lexical``, on by default): ``search_text`` (title, brand and the
attribute words) is a VARCHAR with an analyzer (standard tokenizer, lower case, English stemmer:
"dresses" matches "dress"), and Milvus's BM25 function turns it into the sparse vector
``text_sparse`` that ``ProductIndex.search_lexical`` and the hybrid text search query. The attribute
words are kept apart in ``attr_text``, so a patch of the title or brand can rebuild ``search_text``
(``compose_search_text``). Milvus 2.3.5 (the ``milvus`` wheel) has no BM25: ``lexical=False`` there.

**Every image of a product** (``IndexLayout.image_rows``): the first image lives in the product's
row (primary key = the product id, as before: the version guard, get-by-id and patches address it);
image i >= 1 gets a row of its own, primary key ``<product id>#<i>`` (``image_row_id``), a copy of the
product's fields with its own ``image_vec``, ``colour_vec`` and ``image_uri``, an empty ``search_text``
and ``image_index = i``. Every row carries ``item`` (the product id): photo searches group by it
(Milvus ``group_by``), so a product appears once, by its best-matching image; text searches, facets
and counts read the product rows only (``image_index == 0``). The product row holds ``image_count``
and the list ``images``. ``indexer.store.ProductIndex.apply`` keeps the image rows in step with the
product row (the product row is written last, so a crash before it replays the whole product).

**Style vectors** (``style_vec``, when the model has a style head): the garment's unit style
vector under the type-aware compatibility head (``workers.vision.compat``), on the product row (an
image row carries a copy, as of ``text_vec``). It is compared by inner product (``IP``), not
cosine: a complete-the-look query is ``w[ca, cb] ⊙ f(a)``, not unit length, and its inner product
with a stored ``f(b)`` *is* the compatibility, comparable across the categories of one look. Why a
second vector field of the same collection and not a collection of its own: the row is written
once, under the one version guard, with its filters (stock, price, gender) next to it, so a look
never shows a product deleted or out of stock since, and no second store has to converge. Milvus
2.3.5 (the ``milvus`` wheel) allows one vector field per collection: it serves the benchmarks only.

Convention: vectors are L2-normalised and compared by COSINE (``style_vec``: IP); larger score = more
similar.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.codecs import IndexRecord
from streams.schema import HOT_ATTRIBUTES

VECTOR_FIELDS = ("image_vec", "colour_vec", "text_vec", "style_vec")
#: The style vector (complete the look), when the model has one: compared by inner product.
STYLE_VECTOR = "style_vec"
_IP_FIELDS = frozenset({STYLE_VECTOR})


def metric_of(field: str) -> str:
    """The metric a vector field is indexed and searched with."""
    return "IP" if field in _IP_FIELDS else "COSINE"

SCALAR_OUTPUT = (
    "product_id", "version", "title", "brand", "price", "currency", "in_stock", "category",
    "article_type", "colour", "gender", "usage", "season", "image_uri", "event_time", "model_version",
    "item", "image_index",
)
#: The per-image vector fields: an image row has its own; ``text_vec`` is the product's, copied.
IMAGE_VECTORS = ("image_vec", "colour_vec")
MAX_IMAGES = 16


def image_row_id(product_id: str, index: int) -> str:
    """The primary key of a product's image ``index`` (>= 1; image 0 is the product's own row)."""
    return f"{product_id}#{index}"
_VARCHAR = {
    "attr_text": 1024,
    "title": 512, "description": 8192, "brand": 128, "currency": 8, "image_uri": 2048, "model_version": 256,
    **{name: 64 for name in HOT_ATTRIBUTES},
}

#: Index parameters per index type; HNSW is the default (good recall at low latency, no training).
#: The quantised ones (SQ8: 1 byte per dimension, PQ: ``m`` bytes per vector, RaBitQ: ~1 bit per
#: dimension) trade recall for memory: ``vitrine bench query --index-types`` measures them.
DEFAULT_INDEX_PARAMS: dict[str, dict[str, Any]] = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "HNSW_SQ": {"M": 16, "efConstruction": 200, "sq_type": "SQ8"},
    "HNSW_PQ": {"M": 16, "efConstruction": 200, "m": 16, "nbits": 8},
    "IVF_FLAT": {"nlist": 1024},
    "IVF_SQ8": {"nlist": 1024},
    "IVF_PQ": {"nlist": 1024, "m": 16, "nbits": 8},
    "IVF_RABITQ": {"nlist": 1024},
    "FLAT": {},
}
DEFAULT_SEARCH_PARAMS: dict[str, dict[str, Any]] = {
    "HNSW": {"ef": 512}, "HNSW_SQ": {"ef": 512}, "HNSW_PQ": {"ef": 512},
    "IVF_FLAT": {"nprobe": 32}, "IVF_SQ8": {"nprobe": 32}, "IVF_PQ": {"nprobe": 32}, "IVF_RABITQ": {"nprobe": 32},
    "FLAT": {},
}
INDEX_TYPES = tuple(DEFAULT_INDEX_PARAMS)


def layout_slug(index_type: str, params: dict[str, Any]) -> str:
    """The index layout as a name part: ``hnsw_m16_efconstruction200``, ``ivf_sq8_nlist1024``."""
    parts = [index_type.lower()] + [f"{k}{v}".lower() for k, v in sorted(params.items())]
    return "".join(c if c.isalnum() else "_" for c in "_".join(parts))


#: The analyzer of ``search_text``: words, lower case, English stems (Milvus Lite 3.x has no "english" type).
TEXT_ANALYZER = {"tokenizer": "standard", "filter": ["lowercase", {"type": "stemmer", "language": "english"}]}
SEARCH_TEXT_MAX = 4096
#: The attribute words of a row, in this order, then the merchant's other attribute values.
TEXT_ATTRIBUTES = ("article_type", "category", "colour", "gender", "usage", "season")


def attribute_words(fields: dict[str, Any]) -> str:
    """The attribute words of a row's fields: hot values (merchant or model) and merchant extras."""
    words = [str(fields.get(name, "")) for name in TEXT_ATTRIBUTES]
    merchant = (fields.get("attributes") or {}).get("merchant") or {}
    words += [str(v) for k, v in sorted(merchant.items()) if k not in TEXT_ATTRIBUTES]
    return " ".join(w for w in words if w)[:1024]


def compose_search_text(title: str, brand: str, attr_text: str) -> str:
    """What BM25 indexes for a product: its title, brand and attribute words."""
    return " ".join(p for p in (title, brand, attr_text) if p)[:SEARCH_TEXT_MAX]


def normalise_value(value: Any) -> str:
    """Canonical form of a filterable attribute value: stripped, lower case (``"Navy Blue" -> "navy blue"``)."""
    return str(value).strip().lower()


def model_key(model_version: str, dims: dict[str, int]) -> str:
    """A short digest of a model version and its vector dimensions: names its feature log, its ingest
    group and (as the first part after the alias) every collection of its vectors."""
    return hashlib.sha1(f"{model_version}|{sorted(dims.items())}".encode()).hexdigest()[:10]


#: Bumped when the row layout changes incompatibly (image rows were generation 2): a new collection.
SCHEMA_GENERATION = 2


@dataclass(frozen=True)
class IndexLayout:
    """Everything that fixes a collection's shape: the model version, the vector dimensions, the vector
    index (type and build parameters) and the lexical field.

    The collection's name spells all of it: ``<alias>_<model key>_<index layout>[_bm25]_g<generation>``,
    e.g. ``vitrine_products_3fa2c1d9e0_hnsw_m16_efconstruction200_bm25_g2``: a rebuild with other index
    parameters, or by another model, always writes a collection of its own, never the live one.
    ``search_params`` override the index type's defaults (``DEFAULT_SEARCH_PARAMS``)."""

    model_version: str
    dims: dict[str, int]  # vector field -> dimension, e.g. {"image_vec": 1280, "colour_vec": 64, "text_vec": 384}
    alias: str = "vitrine_products"
    index_type: str = "HNSW"
    index_params: dict[str, Any] = field(default_factory=dict)
    lexical: bool = True  # search_text + BM25 sparse vector (needs Milvus 2.5+ or Milvus Lite 3.x)
    search_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.index_type not in DEFAULT_INDEX_PARAMS:
            raise ValueError(f"index type {self.index_type!r} is not one of {', '.join(INDEX_TYPES)}")

    @property
    def model_key(self) -> str:
        return model_key(self.model_version, self.dims)

    @property
    def build_params(self) -> dict[str, Any]:
        return {**DEFAULT_INDEX_PARAMS[self.index_type], **self.index_params}

    @property
    def collection(self) -> str:
        lexical = "_bm25" if self.lexical else ""
        return f"{self.alias}_{self.model_key}_{layout_slug(self.index_type, self.build_params)}{lexical}" \
               f"_g{SCHEMA_GENERATION}"

    def same_model(self, collection: str) -> bool:
        """Whether ``collection`` holds this model version's vectors (any index layout)."""
        return collection.startswith(f"{self.alias}_{self.model_key}_")

    def build_schema(self, client: Any) -> tuple[Any, Any]:
        from pymilvus import DataType

        s = client.create_schema(auto_id=False, enable_dynamic_field=False, description=self.model_version)
        s.add_field("product_id", DataType.VARCHAR, is_primary=True, max_length=160)  # or <id>#<image>
        s.add_field("item", DataType.VARCHAR, max_length=128)  # the product id, on every image row
        s.add_field("image_index", DataType.INT64)
        s.add_field("image_count", DataType.INT64)
        s.add_field("images", DataType.JSON)  # the product row: every image URI, in order
        s.add_field("version", DataType.INT64)
        s.add_field("deleted", DataType.BOOL)
        s.add_field("event_time", DataType.DOUBLE)
        s.add_field("indexed_at", DataType.DOUBLE)
        s.add_field("price", DataType.DOUBLE)
        s.add_field("in_stock", DataType.BOOL)
        for name, length in _VARCHAR.items():
            s.add_field(name, DataType.VARCHAR, max_length=length, is_partition_key=name == "category")
        s.add_field("attributes", DataType.JSON)
        for name, dim in self.dims.items():
            s.add_field(name, DataType.FLOAT_VECTOR, dim=dim)
        idx = client.prepare_index_params()
        params = self.build_params
        for name in self.dims:
            idx.add_index(name, index_type=self.index_type, metric_type=metric_of(name), params=params)
        if self.lexical:
            from pymilvus import Function, FunctionType

            s.add_field("search_text", DataType.VARCHAR, max_length=SEARCH_TEXT_MAX, enable_analyzer=True,
                        analyzer_params=TEXT_ANALYZER)
            s.add_field("text_sparse", DataType.SPARSE_FLOAT_VECTOR)
            s.add_function(Function(name="search_text_bm25", function_type=FunctionType.BM25,
                                    input_field_names=["search_text"], output_field_names=["text_sparse"]))
            idx.add_index("text_sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        return s, idx

    def search_params(self, index_type: str | None = None, field: str = "image_vec") -> dict[str, Any]:
        """Search parameters for this layout's index, or for ``index_type`` (a collection of the same
        model built with another index, which a query worker follows the alias to), on ``field``."""
        kind = index_type or self.index_type
        params = {**DEFAULT_SEARCH_PARAMS.get(kind, {}), **(self.search_overrides if kind == self.index_type else {})}
        return {"metric_type": metric_of(field), "params": params}

    @property
    def has_style(self) -> bool:
        return STYLE_VECTOR in self.dims

    # ------------------------------------------------------------------ rows

    def refusal(self, rec: IndexRecord) -> str | None:
        """Why this collection must not take ``rec``, as a dead-letter reason, or None.

        An upsert carries vectors: they must come from this collection's model version (a record of
        another version, during a model change, belongs in that version's collection) and have
        this layout's fields and dimensions, with finite values. Patches and deletes carry no
        vectors and fit every version.
        """
        if rec.op != "upsert":
            return None
        if rec.model_version != self.model_version:
            return "model_version_mismatch"
        images = [rec.vectors, *(vecs for _, vecs in rec.extra_images)]
        if len(images) > MAX_IMAGES:
            return "too_many_images"
        for n, vectors in enumerate(images):
            for name, dim in self.dims.items():
                if n and name not in IMAGE_VECTORS:
                    continue
                vec = vectors.get(name)
                if vec is None:
                    return "vector_missing"
                if vec.shape != (dim,):
                    return "vector_dimension_mismatch"
                if not np.isfinite(vec).all():
                    return "vector_not_finite"
        return None

    def full_row(self, rec: IndexRecord) -> dict[str, Any]:
        """A complete row for an upsert, or a tombstone row for a delete of a never-indexed product."""
        f = rec.fields
        row: dict[str, Any] = {
            "product_id": rec.product_id,
            "item": rec.product_id,
            "image_index": 0,
            "image_count": 1 + len(rec.extra_images) if rec.op == "upsert" else 1,
            "images": [str(f.get("image_uri", "")), *(uri for uri, _ in rec.extra_images)] if rec.op == "upsert" else [],
            "version": rec.version,
            "deleted": rec.op == "delete",
            "event_time": rec.occurred_at,
            "indexed_at": time.time(),
            "price": float(f.get("price", 0.0)),
            "in_stock": bool(f.get("in_stock", False)),
            "attributes": f.get("attributes", {}),
            "model_version": rec.model_version if rec.op == "upsert" else self.model_version,
        }
        for name, length in _VARCHAR.items():
            if name not in ("model_version", "attr_text"):
                row[name] = str(f.get(name, ""))[:length]
        row["attr_text"] = attribute_words(f) if rec.op == "upsert" else ""
        if self.lexical:
            row["search_text"] = compose_search_text(row["title"], row["brand"], row["attr_text"])
        for name, dim in self.dims.items():
            vec = rec.vectors.get(name)
            if vec is None or vec.shape != (dim,):
                if rec.op == "upsert":
                    raise ValueError(f"{rec.product_id}: vector {name} missing or not ({dim},)")
                vec = _placeholder(rec.product_id, dim)
            row[name] = vec.astype(np.float32).tolist()
        if rec.op == "upsert" and rec.extra_images:  # taken out by ProductIndex.apply, never written as is
            row[EXTRA_IMAGES] = [(uri, {k: np.asarray(v, np.float32).tolist() for k, v in vecs.items()})
                                 for uri, vecs in rec.extra_images]
        return row

    @staticmethod
    def image_rows(product_row: dict[str, Any], extra: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """The image rows of a product row: its fields, each image's own vectors and URI, no BM25 text."""
        out = []
        for i, (uri, vecs) in enumerate(extra, 1):
            row = {**product_row, "product_id": image_row_id(product_row["product_id"], i), "image_index": i,
                   "image_uri": uri[: _VARCHAR["image_uri"]], "images": [], **{k: vecs[k] for k in IMAGE_VECTORS}}
            if "search_text" in row:
                row["search_text"] = ""
            out.append(row)
        return out

    @staticmethod
    def scalar_update(rec: IndexRecord) -> dict[str, Any]:
        """The fields a patch or delete changes; vectors are never part of it."""
        update: dict[str, Any] = {"version": rec.version, "event_time": rec.occurred_at, "indexed_at": time.time()}
        if rec.op == "delete":
            update["deleted"] = True
            update["image_count"] = 1  # ProductIndex.apply deletes the image rows
            return update
        for name, value in rec.fields.items():
            if name in ("price",):
                update[name] = float(value)
            elif name == "in_stock":
                update[name] = bool(value)
            elif name in _VARCHAR and name != "attr_text":
                update[name] = str(value)[: _VARCHAR[name]]
        return update


#: The key under which ``full_row`` hands an upsert's further images to ``ProductIndex.apply``.
EXTRA_IMAGES = "_extra_images"


def _placeholder(product_id: str, dim: int) -> np.ndarray:
    """A unit vector derived from the product id: tombstones scatter instead of piling on one point."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha1(product_id.encode()).digest()[:8], "little"))
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)
