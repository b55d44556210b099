"""``ProductIndex``: the version-guarded writer and the filtered search over one Milvus collection.

Write path (guarantee 1 and 2): ``apply(records)`` reads the versions Milvus holds for the batch's
products, folds the batch with ``plan_writes``, and writes full rows with ``upsert`` and patches and
deletes with partial ``upsert`` (vectors untouched). It returns only after Milvus acknowledged
every write, so the caller may then commit the offsets the batch covers. A crash before that
leaves the offsets uncommitted: the batch is consumed again and the guard makes the replay a no-op
for what was already written.

Reads use Strong consistency, so a query sees every write acknowledged before it (real Milvus's
default Bounded consistency hides fresh upserts for ~0.5 s).

The read-then-write of the guard is not atomic across writers. Kafka gives one writer per
partition, and a product lives on one partition, so two writers could race only while a partition
moves; the index writer fences a revoked partition before the group moves it and waits out its write
in flight (``workers.index.writer``, ``IndexWriter.fence``), so the new owner's first read comes after
the old owner's last write. Left open: an owner evicted without a revocation (cut off from Kafka
but not from Milvus) may land one in-flight write late; the next event of that product repairs it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.exceptions import IndexUnavailable, ModelMismatch, NoStyleVectors
from indexer.filters import build_filter, quote
from indexer.guard import PATCH_UNKNOWN, Held, Outcome, plan_writes
from indexer.schema import (
    EXTRA_IMAGES,
    IMAGE_VECTORS,
    SCALAR_OUTPUT,
    STYLE_VECTOR,
    IndexLayout,
    compose_search_text,
    image_row_id,
)
from streams.codecs import IndexRecord
from streams.schema import Filters

#: gRPC keepalive for every Milvus client: ping only while a call is in flight, once a minute. The
#: pymilvus default (every 10 s, also when idle) makes a gRPC server that enforces the default 5-minute
#: idle ping interval (the Milvus Lite server does) answer "Too many pings" and drop the channel.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 60_000, "grpc.keepalive_permit_without_calls": False}

log = logging.getLogger("vitrine.index")


def connect(uri: str, *, token: str = "", timeout: float = 10.0) -> Any:
    """A ``MilvusClient`` with vitrine's gRPC options."""
    from pymilvus import MilvusClient

    return MilvusClient(uri=uri, token=token, timeout=timeout, grpc_options=GRPC_OPTIONS)


@dataclass(frozen=True)
class TextFusion:
    """How the hybrid text search fuses BM25 and the dense text vector.

    ``rrf`` (default): reciprocal rank fusion, score = sum 1 / (rrf_k + rank): needs no calibration
    between BM25's unbounded scores and cosine similarities. ``weighted``: Milvus's WeightedRanker
    over the two normalised scores. ``bm25_weight=0`` turns the lexical signal off (dense only).
    ``pool``: candidates each signal contributes before fusion.
    """

    method: str = "rrf"
    rrf_k: int = 60
    bm25_weight: float = 1.0
    dense_weight: float = 1.0
    pool: int = 100


@dataclass(frozen=True)
class SearchHit:
    product_id: str
    score: float  # larger = more similar: cosine, BM25, or the fused score
    fields: dict[str, Any]
    #: the parts that add up to ``score``: what the search returned (``visual``, ``dense``, ``colour``,
    #: ``bm25`` or ``fused``) plus each re-rank's bonus (``workers.query.fusion``)
    parts: dict[str, float] = field(default_factory=dict, compare=False)


#: The part a plain search's score is named by, per vector field.
PART = {"image_vec": "visual", "text_vec": "dense", "colour_vec": "colour", "text_sparse": "bm25", "style_vec": "style"}


@dataclass(frozen=True)
class SubRequest:
    """One search of a hybrid request, for ``ProductIndex.score_parts``: what to search and its weight."""

    name: str  # the part it explains: bm25, dense, visual, colour
    field: str
    data: Any  # a vector, or the text for BM25
    weight: float = 1.0


def normalised(metric: str, score: float) -> float:
    """A sub-search's score as Milvus's WeightedRanker normalises it before weighting (``norm_score``):
    2 arctan(s) / pi for BM25 (s >= 0), 1/2 + arctan(s) / pi for IP, (1 + cos) / 2 for cosine. Checked
    against Milvus Lite's fused scores (the parts add up to them)."""
    if metric == "COSINE":
        return (1.0 + score) / 2.0
    if metric == "BM25":
        return 2.0 * math.atan(score) / math.pi
    if metric == "L2":
        return 1.0 - 2.0 * math.atan(score) / math.pi
    return 0.5 + math.atan(score) / math.pi


class ProductIndex:
    def __init__(self, uri: str, layout: IndexLayout, *, token: str = "", timeout: float = 10.0) -> None:
        self._uri = uri
        self._token = token
        self._timeout = timeout
        self.layout = layout
        self._client: Any = None
        self.collection = layout.collection
        self.live = True  # serving the collection the alias points at (see start(via_alias=True))
        self._index_type: str | None = None  # the served collection's vector index, once read
        self.read_misses = 0  # rows a confirming re-read found that the guard's first read missed

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, create: bool = True, via_alias: bool = False) -> ProductIndex:
        """Connect; create this layout's collection (and the alias, if none yet) when ``create``.

        With ``via_alias`` (the query worker) the index serves the collection the alias points at when
        it holds this model version's vectors (any index layout: a rebuild with another index is
        followed), and otherwise keeps serving this model's own collection, not live (``live`` False:
        during a model rollout the old model's workers still answer, from their model's collection,
        until they are replaced). ``ModelMismatch`` when no collection of this model exists.
        """
        try:
            self._client = connect(self._uri, token=self._token, timeout=self._timeout)
            c = self._client
            if create and not c.has_collection(self.collection):
                schema, index = self.layout.build_schema(c)
                c.create_collection(self.collection, schema=schema, index_params=index, consistency_level="Strong")
            if create and self.layout.alias not in c.list_aliases(collection_name=self.collection).get("aliases", []):
                try:
                    c.describe_alias(self.layout.alias)
                except Exception:  # no alias yet: the first model version becomes live
                    c.create_alias(self.collection, self.layout.alias)
            if via_alias:
                self._serve(self._alias_target())
            c.load_collection(self.collection)
        except (ModelMismatch, IndexUnavailable):
            raise
        except Exception as exc:
            raise IndexUnavailable(f"Milvus at {self._uri}: {exc}") from exc
        return self

    def _alias_target(self) -> str | None:
        """The collection behind the alias, or None when there is no alias yet."""
        c = self._c()
        if self.layout.alias not in c.list_aliases().get("aliases", []):
            return None
        return str(c.describe_alias(self.layout.alias)["collection_name"])

    def _serve(self, target: str | None) -> None:
        """Serve ``target`` if it holds this model's vectors, else this model's own collection, not live."""
        c = self._c()
        if target is not None and self.layout.same_model(target):
            chosen, live = target, True
        else:
            own = sorted(n for n in c.list_collections() if self.layout.same_model(n))
            if not own and target is None:  # a fresh deployment: the index worker has not created it yet
                raise IndexUnavailable(f"no alias {self.layout.alias} and no collection of model "
                                       f"{self.layout.model_version!r} yet (the index worker creates them)")
            if not own:
                raise ModelMismatch(
                    f"alias {self.layout.alias} points at {target}, built by another model version, and no "
                    f"collection of this worker's model {self.layout.model_version!r} exists "
                    f"(expected {self.collection})")
            chosen, live = (self.layout.collection if self.layout.collection in own else own[0]), False
        if chosen != self.collection or self._index_type is None:
            c.load_collection(chosen)
            info = c.describe_index(chosen, next(iter(self.layout.dims))) or {}
            self._index_type = str(info.get("index_type") or self.layout.index_type)
            self.collection = chosen  # one assignment: a search in flight finishes on the old one
        if live != self.live:
            log.warning("serving %s: %s", chosen, "the live collection" if live else
                        f"NOT live (the alias points at {target}, another model version's)")
        self.live = live

    def follow_alias(self) -> bool:
        """Read where the alias points and follow it (``_serve``); True when the served collection changed.
        The query worker calls this every ``alias_refresh_s``: a ``vitrine reindex swap`` or ``rollback``
        is followed without a restart, and every search runs on one collection from start to end."""
        before = self.collection
        try:
            self._serve(self._alias_target())
        except ModelMismatch as exc:  # this model's collections are gone (gc): keep what is served, say so
            self.live = False
            log.error("%s", exc)
        except Exception as exc:
            raise IndexUnavailable(f"Milvus at {self._uri}: {exc}") from exc
        return self.collection != before

    def search_params(self, field: str = "image_vec") -> dict[str, Any]:
        """The search parameters of the served collection's vector index on ``field``."""
        return self.layout.search_params(self._index_type, field)

    def _c(self) -> Any:
        if self._client is None:
            raise RuntimeError("ProductIndex: call start() first")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ writes

    def held(self, product_ids: Sequence[str]) -> dict[str, Held]:
        if not product_ids:
            return {}
        expr = f"product_id in [{', '.join(quote(p) for p in set(product_ids))}]"
        rows = self._call("query", self.collection, filter=expr, output_fields=["version", "deleted", "image_count"])
        return {r["product_id"]: Held(int(r["version"]), bool(r["deleted"]), int(r.get("image_count") or 1))
                for r in rows}

    #: Seconds before each re-read of a batch whose guard read left a patch without its product.
    CONFIRM_UNKNOWN_S = (0.2, 1.0)

    def apply(self, records: Sequence[IndexRecord]) -> list[Outcome]:
        """Write a batch under the version guard; return one outcome per record (see ``indexer.guard``).

        A patch whose product the guard read did not find goes to the DLQ, so that miss is confirmed
        first: the batch's versions are read again (``CONFIRM_UNKNOWN_S``) and the plan redone with
        what the re-read found. The chaos run saw Milvus Lite answer a primary-key read without a row it
        held (``read_misses`` counts the rows a re-read found); a real unknown product costs 1.2 s.
        """
        ids = [r.product_id for r in records]
        held = self.held(ids)
        plan = plan_writes(records, held, self.layout.full_row, self.layout.scalar_update, self.layout.refusal)
        for wait in self.CONFIRM_UNKNOWN_S:
            if not any(o.result == PATCH_UNKNOWN for o in plan.outcomes):
                break
            time.sleep(wait)
            again = self.held(ids)
            found = {p: h for p, h in again.items() if p not in held or h.version > held[p].version}
            if found:
                self.read_misses += len(found)
                log.warning("guard re-read found %d row(s) the first read missed: %s", len(found), sorted(found)[:5])
                held = {**held, **found}
                plan = plan_writes(records, held, self.layout.full_row, self.layout.scalar_update,
                                   self.layout.refusal)
        if self.layout.lexical:
            self._rebuild_search_text(plan.full_rows, plan.partial_rows)
        self._write_images(plan.full_rows, plan.partial_rows, held, plan.images_seen)  # before the product rows
        if plan.full_rows:
            self._call("upsert", self.collection, list(plan.full_rows.values()))
        self._upsert_partial(list(plan.partial_rows.values()))
        return plan.outcomes

    def _upsert_partial(self, rows: list[dict[str, Any]]) -> None:
        by_keys: dict[frozenset[str], list[dict[str, Any]]] = {}
        for row in rows:
            by_keys.setdefault(frozenset(row), []).append(row)
        for group in by_keys.values():
            self._call("upsert", self.collection, group, partial_update=True)

    def _write_images(self, full_rows: dict[str, dict[str, Any]], partial_rows: dict[str, dict[str, Any]],
                      held: dict[str, Held], seen: Mapping[str, int] | None = None) -> None:
        """Bring each written product's image rows (``indexer.schema``) to its new state, before its
        product row is written: an upsert's further images as full rows, the image rows it no longer
        has (fewer images than the version held) deleted, a patch's fields on every image row, a delete's
        image rows deleted. The product row, written after, is what the version guard reads: a crash
        before it leaves the old version there, so the replay redoes all of this (upserts and deletes by
        primary key are idempotent) and no image row outlives its product or mixes two versions for
        longer than that replay takes. ``seen`` (``WritePlan.images_seen``): image rows an earlier,
        interrupted attempt at one of this batch's upserts may have written count as held too."""
        seen = seen or {}

        def before_of(pid: str) -> int:
            return max(held[pid].images if pid in held else 1, seen.get(pid, 1))

        upserts: list[dict[str, Any]] = []
        partial: list[dict[str, Any]] = []
        gone: list[str] = []
        for pid, row in full_rows.items():
            extra = row.pop(EXTRA_IMAGES, [])
            before = before_of(pid)
            if row.get("deleted"):
                extra = []
                row["image_count"], row["images"] = 1, []
            upserts += self.layout.image_rows(row, extra)
            gone += [image_row_id(pid, i) for i in range(1 + len(extra), before)]
        for pid, update in partial_rows.items():
            before = held[pid].images if pid in held else 1
            if update.get("deleted"):
                gone += [image_row_id(pid, i) for i in range(1, before_of(pid))]
                continue
            fields = {k: v for k, v in update.items() if k not in ("product_id", "search_text")}
            partial += [{**fields, "product_id": image_row_id(pid, i)} for i in range(1, before)]
        if gone:
            self._call("delete", self.collection, ids=gone)
        if upserts:
            self._call("upsert", self.collection, upserts)
        self._upsert_partial(partial)

    def _rebuild_search_text(self, full_rows: dict[str, dict[str, Any]], partial_rows: dict[str, dict[str, Any]]) -> None:
        """``search_text`` from each written row's final title, brand and attribute words: a patch folded
        into a full row changed its title; a partial row that changes the title or brand takes the rest
        from what Milvus holds (one read for the batch)."""
        for row in full_rows.values():
            row["search_text"] = compose_search_text(row["title"], row["brand"], row["attr_text"])
        changed = [pid for pid, row in partial_rows.items() if "title" in row or "brand" in row]
        if not changed:
            return
        expr = f"product_id in [{', '.join(quote(p) for p in changed)}]"
        held = {r["product_id"]: r for r in self._call("query", self.collection, filter=expr,
                                                        output_fields=["title", "brand", "attr_text"])}
        for pid in changed:
            row, was = partial_rows[pid], held.get(pid, {})
            row["search_text"] = compose_search_text(str(row.get("title", was.get("title", ""))),
                                                     str(row.get("brand", was.get("brand", ""))),
                                                     str(was.get("attr_text", "")))

    def flush(self) -> None:
        """Seal fresh segments so they are searched through the index rather than by brute force."""
        self._call("flush", self.collection)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._c(), method)(*args, **kwargs)
        except Exception as exc:
            raise IndexUnavailable(f"Milvus {method} failed: {exc}"[:500]) from exc

    # ------------------------------------------------------------------ reads

    def get(self, product_id: str, *, with_vectors: bool = False) -> dict[str, Any] | None:
        fields = [*SCALAR_OUTPUT, "deleted", "attributes", "indexed_at", "description", "images", "image_count"]
        if with_vectors:
            fields += list(self.layout.dims)
        rows = self._call("get", self.collection, ids=[product_id], output_fields=fields)
        return dict(rows[0]) if rows else None

    def search(
        self, vector: np.ndarray, field: str, filters: Filters, k: int, *, exclude_ids: tuple[str, ...] = (),
    ) -> list[SearchHit]:
        """The ``k`` products nearest ``vector`` in ``field``: by their best-matching image (grouped by
        product) for the image fields, by their product row for ``text_vec``."""
        per_image = field in IMAGE_VECTORS
        return self._nearest(vector, field, build_filter(filters, exclude_ids=exclude_ids, main_only=not per_image),
                             k, per_image=per_image)

    def _nearest(self, vector: np.ndarray, field: str, expr: str, k: int, *, per_image: bool) -> list[SearchHit]:
        """One vector search under ``expr``; ``per_image``: every image row, grouped by product."""
        group = {"group_by_field": "item", "group_size": 1} if per_image else {}
        res = self._call(
            "search", self.collection, data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field=field,
            filter=expr, limit=k, output_fields=list(SCALAR_OUTPUT), search_params=self.search_params(field),
            **group,
        )
        return _hits(res, PART.get(field, field))

    def search_style(self, vector: np.ndarray, category: str, filters: Filters, k: int, *,
                     exclude_ids: tuple[str, ...] = ()) -> list[SearchHit]:
        """The ``k`` products of ``category`` whose style vectors have the largest inner product with
        ``vector`` (a complete-the-look query, ``workers.vision.style``), under ``filters``, by
        their product rows. The category filter also picks the partition (the partition key)."""
        if not self.layout.has_style:
            raise NoStyleVectors(f"collection {self.collection} holds no style vectors (model "
                                 f"{self.layout.model_version} has no style head)")
        wanted = filters.model_copy(update={"category": category})
        return self._nearest(vector, STYLE_VECTOR, build_filter(wanted, exclude_ids=exclude_ids, main_only=True),
                             k, per_image=False)

    def search_lexical(self, text: str, filters: Filters, k: int, *,
                       exclude_ids: tuple[str, ...] = ()) -> list[SearchHit]:
        """BM25 over ``search_text`` (Milvus's BM25 function): the lexical signal alone."""
        if not self.layout.lexical:
            raise IndexUnavailable(f"collection {self.collection} has no lexical field (Milvus without BM25)")
        res = self._call("search", self.collection, data=[text], anns_field="text_sparse",
                         filter=build_filter(filters, exclude_ids=exclude_ids, main_only=True), limit=k,
                         output_fields=list(SCALAR_OUTPUT), search_params={"metric_type": "BM25"})
        return _lexical_hits(res)

    def search_text(self, text: str, vector: np.ndarray, filters: Filters, k: int, *, fusion: TextFusion,
                    exclude_ids: tuple[str, ...] = ()) -> list[SearchHit]:
        """Hybrid text search: BM25 over ``search_text`` and the dense ``text_vec`` fused by Milvus
        (``fusion``: RRF or weighted); dense alone where the collection has no lexical field. Product rows only."""
        expr = build_filter(filters, exclude_ids=exclude_ids, main_only=True)
        if not self.layout.lexical or fusion.bm25_weight <= 0:
            return self.search(vector, "text_vec", filters, k, exclude_ids=exclude_ids)
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        pool = max(k, fusion.pool)
        reqs = [AnnSearchRequest([text], "text_sparse", {"metric_type": "BM25"}, limit=pool, expr=expr),
                AnnSearchRequest([np.asarray(vector, dtype=np.float32).tolist()], "text_vec", self.search_params(),
                                 limit=pool, expr=expr)]
        ranker = RRFRanker(fusion.rrf_k) if fusion.method == "rrf" else \
            WeightedRanker(fusion.bm25_weight, fusion.dense_weight)
        res = self._call("hybrid_search", self.collection, reqs, ranker, limit=k, output_fields=list(SCALAR_OUTPUT))
        return _hits(res, "fused")

    def text_requests(self, text: str, vector: np.ndarray, fusion: TextFusion) -> list[SubRequest]:
        """The sub-searches of ``search_text``, for ``score_parts``."""
        return [SubRequest("bm25", "text_sparse", text, fusion.bm25_weight),
                SubRequest("dense", "text_vec", vector, fusion.dense_weight)]

    def score_parts(self, subs: Sequence[SubRequest], filters: Filters, pool: int, method: str, *, rrf_k: int = 60,
                    exclude_ids: tuple[str, ...] = ()) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
        """Why a fused search scored what it did: each sub-search run alone with the fused search's filter
        and pool, and each product's share of the fused score: ``1 / (rrf_k + rank)`` per list it is in
        (RRF), or ``weight * normalised(score)`` (weighted). Returns product id -> (parts, signals), the
        signals being each list's rank and raw score. Like the fused searches (``search_text``,
        ``search_multi``), the sub-searches read product rows only: the image rows of further images
        would give a product another image's score. Costs one more search per sub-search: only for
        ``explain``."""
        out: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
        rows = build_filter(filters, exclude_ids=exclude_ids, main_only=True)  # the rows the fused searches read
        for sub in subs:
            if sub.field == "text_sparse":
                hits, metric = self.search_lexical(str(sub.data), filters, pool, exclude_ids=exclude_ids), "BM25"
            else:
                hits = self._nearest(sub.data, sub.field, rows, pool, per_image=False)
                metric = str(self.search_params().get("metric_type", "COSINE"))
            for rank, hit in enumerate(hits, 1):
                parts, signals = out.setdefault(hit.product_id, ({}, {}))
                parts[sub.name] = 1.0 / (rrf_k + rank) if method == "rrf" else sub.weight * normalised(metric, hit.score)
                signals[f"{sub.name}_rank"] = rank
                signals[f"{sub.name}_score"] = round(hit.score, 5)
        return out

    def search_multi(
        self, vectors: dict[str, np.ndarray], weights: dict[str, float], filters: Filters, k: int,
    ) -> list[SearchHit]:
        """Weighted fusion of several vector fields (e.g. a photo plus a text modifier), over the product
        rows (their first images: Milvus fuses rows, and one image's shape with another's colour would
        be no product's look)."""
        from pymilvus import AnnSearchRequest, WeightedRanker

        expr = build_filter(filters, main_only=True)
        names = list(vectors)
        reqs = [
            AnnSearchRequest([np.asarray(vectors[n], dtype=np.float32).tolist()], n,
                             self.search_params(), limit=self.multi_pool(k), expr=expr)
            for n in names
        ]
        res = self._call("hybrid_search", self.collection, reqs, WeightedRanker(*[weights[n] for n in names]),
                         limit=k, output_fields=list(SCALAR_OUTPUT))
        return _hits(res, "fused")

    @staticmethod
    def multi_pool(k: int) -> int:
        """Candidates each vector field of ``search_multi`` contributes before the fusion."""
        return min(16_384, max(2 * k, 100))

    def facet_rows(self, filters: Filters, fields: Sequence[str], limit: int) -> list[dict[str, Any]] | None:
        """The ``fields`` of every product under ``filters`` (one query), or None when more than ``limit``
        products match: the caller then counts facets over its relevant set instead."""
        try:
            return facet_rows(self._c(), self.collection, build_filter(filters, main_only=True), fields, limit)
        except Exception as exc:
            raise IndexUnavailable(f"Milvus query failed: {exc}"[:500]) from exc

    def count(self, *, include_deleted: bool = False) -> int:
        expr = "image_index == 0" if include_deleted else "deleted == false and image_index == 0"
        res = self._call("query", self.collection, filter=expr, output_fields=["count(*)"])
        return int(res[0]["count(*)"])


def facet_rows(client: Any, collection: str, expr: str, fields: Sequence[str], limit: int) -> list[dict[str, Any]] | None:
    """``ProductIndex.facet_rows`` on a client and a filter expression: one query of at most ``limit`` + 1
    rows' ``fields``; None when more than ``limit`` match. (No ``count(*)`` first: with a filter it
    scans, 3.7 s over 100k rows on Milvus Lite, against 0.4-0.9 s for the rows themselves.) Bounded
    consistency: counts may miss the last second's writes, and a real Milvus answers without waiting for
    the next time tick (~200 ms under Strong). ``vitrine bench query`` times this same code."""
    rows = client.query(collection, filter=expr or 'product_id != ""', output_fields=list(fields), limit=limit + 1,
                        consistency_level="Bounded")
    return None if len(rows) > limit else list(rows)


def _hits(res: Any, part: str) -> list[SearchHit]:
    """Hits by product: ``item`` is the product id on every row (an image row's own key is ``<id>#<i>``)."""
    out = []
    for h in res[0]:
        score, entity = float(h["distance"]), dict(h["entity"])
        pid = str(entity.get("item") or h.get("id", h.get("product_id")))
        entity["product_id"] = pid
        out.append(SearchHit(pid, score, entity, {part: score}))
    return out


def _lexical_hits(res: Any) -> list[SearchHit]:
    """BM25 hits with score = the BM25 score (Milvus Lite reports it negated, Milvus as is)."""
    return [SearchHit(h.product_id, abs(h.score), h.fields, {"bm25": abs(h.score)}) for h in _hits(res, "bm25")]
