"""Query service: one search request in, one reply out, over Kafka or HTTP alike.

Kinds: ``similar`` (a product's own image vector, the product itself excluded), ``image`` (a photo by
URI or base64: main region embedded), ``text`` (MiniLM over titles and descriptions), ``image_text``
(a photo plus a text modifier: weighted fusion of both searches), ``complete_look`` (the items of
other categories that go with a product or with the garments of a photo: ``complete_look``). Filters are exact matches on the
scalar fields, escaped (``indexer.filters``).

Photo queries with the trained models also predict the main region's category by fusion (classifier +
neighbours' categories) and boost or restrict by it (``workers.query.fusion``); the reply says what it
predicted (``predicted_category``). Text queries boost hits whose attributes the text names (``parsed``).

No request can crash the worker (guarantee 5): every failure maps, in ``ERRORS`` below, to an error
reply ``{"ok": false, "error": {"code", "message", "field"}}`` and an HTTP status: the caller's fault is
4xx (a bad request, an unknown product, an image that cannot be fetched or decoded), a dependency
that is away is 503 and worth a retry (the index, or the object store behind an image URI: a
transient fetch error), anything else 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from indexer.exceptions import IndexUnavailable, ModelMismatch, NoStyleVectors
from indexer.schema import STYLE_VECTOR
from indexer.store import ProductIndex, SearchHit, SubRequest, TextFusion
from streams.exceptions import InvalidQuery
from streams.schema import Filters, SearchRequest, parse_search_request
from workers import metrics as m
from workers.exceptions import DeadLetter, FetchError
from workers.fetch import ImageFetcher
from workers.query.fusion import SEARCH_POOL, attribute_boost, category_rerank, prediction_json
from workers.query.modifier import COLOUR_WEIGHT, NEAR_DUPLICATE, modifier_plan
from workers.query.page import check_window, count_facets, sort_hits
from workers.query.parse import parse_query
from workers.query.text import text_plan
from workers.vision.exceptions import ImageDecodeError, StyleUnavailable
from workers.vision.fusion import FusionConfig
from workers.vision.pipeline import VisionPipeline

log = logging.getLogger("vitrine.query")


class NotFound(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class ErrorRule(NamedTuple):
    """Failures of type ``exc`` (and, when given, for which ``when`` holds) answer ``code`` and ``status``;
    ``prefix`` goes before the exception's text in the reply's message."""

    exc: type[BaseException]
    code: str
    status: int
    when: Callable[[BaseException], bool] | None = None
    prefix: str = ""

    def matches(self, exc: BaseException) -> bool:
        return isinstance(exc, self.exc) and (self.when is None or self.when(exc))


def _transient(exc: BaseException) -> bool:
    return bool(getattr(exc, "transient", False))


#: The one table that maps failures to replies: the first rule that matches wins.
ERRORS: list[ErrorRule] = [
    ErrorRule(InvalidQuery, "invalid_request", 400),
    ErrorRule(NotFound, "not_found", 404),
    ErrorRule(ImageDecodeError, "bad_image", 422),
    # the object store (or an image host) is away: not the caller's fault, retry later
    ErrorRule(FetchError, "image_store_unavailable", 503, _transient,
              "the image could not be fetched now (its store is unavailable); retry shortly: "),
    ErrorRule(DeadLetter, "bad_image", 422),  # permanent fetch errors: forbidden, not found, too large
    ErrorRule(ModelMismatch, "model_mismatch", 503),
    # the served models (or collection) have no style head: complete_look only; not worth a retry
    ErrorRule(StyleUnavailable, "style_unavailable", 501),
    ErrorRule(NoStyleVectors, "style_unavailable", 501),
    ErrorRule(IndexUnavailable, "unavailable", 503),
]


def error_rule(exc: BaseException) -> ErrorRule | None:
    """The rule of ``ERRORS`` for ``exc``; None for an unexpected failure (a 500)."""
    return next((rule for rule in ERRORS if rule.matches(exc)), None)


def error_reply(request_id: str | None, exc: BaseException) -> tuple[dict[str, Any], int]:
    rule = error_rule(exc)
    if rule is not None:
        field = getattr(exc, "field", None)
        return {"request_id": request_id, "ok": False,
                "error": {"code": rule.code, "message": (rule.prefix + str(exc))[:500], "field": field}}, rule.status
    return {"request_id": request_id, "ok": False,
            "error": {"code": "internal", "message": f"{type(exc).__name__}", "field": None}}, 500


def hit_json(hit: SearchHit, signals: dict[str, float] | None = None, *, explain: bool = False) -> dict[str, Any]:
    f = hit.fields
    out: dict[str, Any] = {"product_id": hit.product_id, "score": round(hit.score, 5)}
    for name in ("title", "brand", "price", "currency", "in_stock", "category", "article_type", "colour",
                 "gender", "image_uri", "image_index", "version"):
        if name in f:
            out[name] = f[name]
    if explain:
        out["explain"] = {"parts": {k: round(v, 6) for k, v in hit.parts.items()}, "signals": signals or {}}
    return out


@dataclass
class Ranked:
    """A search's relevant set (best first), what the reply adds about it, the filters it ran under
    (the request's plus what the parse applied: what facets count), and per hit the raw signals behind
    its score parts (``explain`` only)."""

    hits: list[SearchHit]
    extra: dict[str, Any]
    filters: Filters
    signals: dict[str, dict[str, float]] = field(default_factory=dict)


def split_fused(hits: list[SearchHit], explained: dict[str, tuple[dict[str, float], dict[str, float]]],
                ) -> tuple[list[SearchHit], dict[str, dict[str, float]]]:
    """Each hit's ``fused`` part replaced by its sub-searches' shares (``ProductIndex.score_parts``); what
    they do not account for stays as ``unexplained``, so the parts always add up to the score."""
    out, signals = [], {}
    for h in hits:
        if "fused" not in h.parts:
            out.append(h)
            continue
        parts, sig = explained.get(h.product_id, ({}, {}))
        new = {k: v for k, v in h.parts.items() if k != "fused"}
        new.update(parts)
        rest = h.parts["fused"] - sum(parts.values())
        if abs(rest) > 1e-6:
            new["unexplained"] = rest
        out.append(SearchHit(h.product_id, h.score, h.fields, new))
        signals[h.product_id] = sig
    return out, signals


PRODUCT_FIELDS = ("product_id", "version", "title", "description", "brand", "price", "currency", "in_stock",
                  "category", "article_type", "colour", "gender", "usage", "season", "attributes", "model_version",
                  "image_uri", "images", "image_count", "event_time", "indexed_at")


def product_json(row: dict[str, Any]) -> dict[str, Any]:
    """A product row as a reply: its fields and attributes with their source, no vectors."""
    return {name: row[name] for name in PRODUCT_FIELDS if name in row}


class QueryService:
    def __init__(self, vision: VisionPipeline, index: ProductIndex, fetcher: ImageFetcher, *, max_pixels: int,
                 max_image_bytes: int, text_fusion: TextFusion | None = None, relevant_set: int = 200,
                 facet_scan_limit: int = 10_000, price_bands: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0, 500.0),
                 ) -> None:
        self.text_fusion = text_fusion or TextFusion()
        self.relevant_set = relevant_set  # hits every search ranks: workers.query.page
        self.facet_scan_limit = facet_scan_limit
        self.price_bands = price_bands
        self.vision = vision
        self.index = index
        self.fetcher = fetcher
        self._max_pixels = max_pixels
        self._max_image_bytes = max_image_bytes
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="query-model")
        self.ready = False  # set once the index answered; until then requests get "unavailable"

    async def handle(self, raw: bytes | dict[str, Any], transport: str) -> tuple[dict[str, Any], int]:
        """Answer one request; never raises. Returns the reply and its HTTP status."""
        t0 = time.perf_counter()
        request_id, kind = None, "unknown"
        if isinstance(raw, dict):
            request_id = raw.get("request_id") if isinstance(raw.get("request_id"), str) else None
        try:
            req = parse_search_request(raw)
            request_id, kind = req.request_id, req.kind
            if not self.ready:
                raise IndexUnavailable("the index is not ready yet; retry shortly")
            reply = await self._search(req)
            reply.update(request_id=request_id, ok=True, kind=kind, took_ms=round((time.perf_counter() - t0) * 1e3, 2))
            status = 200
        except Exception as exc:
            if error_rule(exc) is None:
                log.exception("query failed")
                m.ERRORS.labels("query", "search").inc()
            reply, status = error_reply(request_id, exc)
        m.QUERIES.labels(kind, transport, "ok" if status == 200 else reply["error"]["code"]).inc()
        m.QUERY_SECONDS.labels(kind).observe(time.perf_counter() - t0)
        return reply, status

    async def _search(self, req: SearchRequest) -> dict[str, Any]:
        if req.kind == "get":
            return {"product": await self.product(req.product_id or ""), "model_version": self.vision.model_version}
        if req.kind == "complete_look":
            return await self.complete_look(req)
        check_window(req.offset, req.k, self.relevant_set)
        ranked = await self._rank(req)
        hits = sort_hits(ranked.hits, req.sort)
        page = hits[req.offset: req.offset + req.k]
        reply: dict[str, Any] = {
            "results": [hit_json(h, ranked.signals.get(h.product_id), explain=req.explain) for h in page],
            "page": {"offset": req.offset, "k": req.k, "sort": req.sort, "relevant": len(hits),
                     "more": req.offset + req.k < len(hits)},
            "model_version": self.vision.model_version, **ranked.extra}
        if req.facets:
            reply["facets"] = await self.facets(ranked.filters, req.facets, ranked.hits)
        return reply

    async def _rank(self, req: SearchRequest) -> Ranked:
        """The request's relevant set: ``relevant_set`` hits by relevance, after every re-rank."""
        pool = self.relevant_set
        if req.kind == "similar":
            row = await asyncio.to_thread(self.index.get, req.product_id, with_vectors=True)
            if row is None or row.get("deleted"):
                raise NotFound(f"product {req.product_id!r} is not in the index", "product_id")
            vec = np.asarray(row["image_vec"], dtype=np.float32)
            hits = await asyncio.to_thread(self.index.search, vec, "image_vec", req.filters, pool,
                                           exclude_ids=(req.product_id,))
            return Ranked(hits, {}, req.filters)
        if req.kind == "text":
            return await self.text_search(req.text or "", req.filters, req.k, pool=pool, explain=req.explain)
        extra: dict[str, Any] = {}
        image = await self._query_image(req)
        analysis = await self._in_model(lambda: self.vision.analyse([image])[0])
        if req.all_regions:
            extra["regions"] = [{"box": list(r.box), "category": r.category, "score": round(r.score, 4)}
                                for r in analysis.regions]
        if req.kind == "image_text":
            ranked = await self.modified_search(analysis, req.text or "", req.filters, req.k, pool=pool,
                                                explain=req.explain)
            ranked.extra = {**extra, **ranked.extra}
            return ranked
        hits = await asyncio.to_thread(self.index.search, analysis.image_vec, "image_vec", req.filters, pool)
        if analysis.category_probs is not None and hits and not req.filters.category:
            hits, pred = category_rerank(hits, analysis.category_probs, req.k,
                                         getattr(self.vision, "fusion", FusionConfig()))
            extra["predicted_category"] = prediction_json(pred, self.vision.model_version)
        return Ranked(hits, extra, req.filters)

    async def facets(self, filters: Filters, names: list[str], relevant: list[SearchHit]) -> dict[str, Any]:
        """Facet counts over what ``filters`` match, exact up to ``facet_scan_limit`` products, else over
        the relevant set (``workers.query.page``)."""
        rows = await asyncio.to_thread(self.index.facet_rows, filters, names, self.facet_scan_limit)
        exact = rows is not None
        counted = rows if rows is not None else [h.fields for h in relevant]
        return {"exact": exact, "counted_over": len(counted), "over": "filters" if exact else "relevant_set",
                "counts": count_facets(counted, names, self.price_bands)}

    async def product(self, product_id: str) -> dict[str, Any]:
        """What the index holds for a product, never its vectors; ``NotFound`` when unknown or deleted."""
        row = await asyncio.to_thread(self.index.get, product_id)
        if row is None or row.get("deleted"):
            raise NotFound(f"product {product_id!r} is not in the index", "product_id")
        return product_json(row)

    async def text_search(self, text: str, filters: Filters, k: int, *, pool: int | None = None,
                          explain: bool = False) -> Ranked:
        """Hybrid text search under the parsed filters, relaxed until ``k`` hits (``workers.query.text``):
        the best ``pool`` hits (default: the relevant set)."""
        vec = await self._in_model(lambda: self.vision.embed_text([text])[0])
        parsed = parse_query(text)
        plan = text_plan(parsed.filters(), parsed.boosts(), filters)
        pool = max(k, pool or self.relevant_set)
        hits: list[SearchHit] = []
        relaxed: list[str] = []
        attempt = filters
        for attempt, relaxed in plan.attempts():
            hits = await asyncio.to_thread(self.index.search_text, text, vec, attempt, pool, fusion=self.text_fusion)
            if len(hits) >= k:
                break
        signals: dict[str, dict[str, float]] = {}
        if explain and hits and "fused" in hits[0].parts:
            fusion = self.text_fusion
            explained = await asyncio.to_thread(
                self.index.score_parts, self.index.text_requests(text, vec, fusion), attempt, max(pool, fusion.pool),
                fusion.method, rrf_k=fusion.rrf_k)
            hits, signals = split_fused(hits, explained)
        applied = {g: v for g, v in plan.parsed_filters.items() if g not in relaxed}
        boosts = {**plan.boosts, **{g: plan.parsed_filters[g] for g in relaxed}}
        hits = attribute_boost(hits, boosts)
        understood = {"attributes": parsed.attributes, "filters": applied, "relaxed": relaxed, "boosts": boosts,
                      "fuzzy": sorted(parsed.fuzzy)}
        return Ranked(hits, {"parsed": parsed.attributes, "understood": understood}, attempt, signals)

    async def modified_search(self, analysis: Any, modifier: str, filters: Filters, k: int, *, pool: int | None = None,
                              exclude_ids: tuple[str, ...] = (), explain: bool = False) -> Ranked:
        """The photo's neighbourhood under the modifier's attribute changes (``workers.query.modifier``):
        the best ``pool`` hits (default: the relevant set)."""
        parsed = parse_query(modifier)
        pool = max(k, pool or self.relevant_set)
        reference = {g: (t.value, t.confidence) for g, t in analysis.tags.items()}
        prediction = None
        near = await asyncio.to_thread(self.index.search, analysis.image_vec, "image_vec", filters, max(k, SEARCH_POOL))
        if near and near[0].score >= NEAR_DUPLICATE:  # a catalogue product's own photo: its indexed attributes
            same = near[0].fields
            reference.update({g: (str(same.get(g, "")), 1.0) for g in ("article_type", "category", "colour", "gender")
                              if same.get(g)})
        elif analysis.category_probs is not None and near:
            _, prediction = category_rerank(near, analysis.category_probs, k,
                                            getattr(self.vision, "fusion", FusionConfig()))
            reference["category"] = (prediction.value, prediction.confidence)
        plan = modifier_plan(parsed.attributes, reference, filters)
        hits: list[SearchHit] = []
        relaxed: list[str] = []
        attempt = filters
        subs = [SubRequest("visual", "image_vec", analysis.image_vec, 1 - COLOUR_WEIGHT),
                SubRequest("colour", "colour_vec", analysis.colour_vec, COLOUR_WEIGHT)]
        for attempt, relaxed in plan.attempts():
            if plan.keeps_colour:
                hits = await asyncio.to_thread(
                    self.index.search_multi, {s.field: s.data for s in subs}, {s.field: s.weight for s in subs},
                    attempt, pool + len(exclude_ids))
                hits = [h for h in hits if h.product_id not in exclude_ids]
            else:
                hits = await asyncio.to_thread(self.index.search, analysis.image_vec, "image_vec", attempt, pool,
                                               exclude_ids=exclude_ids)
            if len(hits) >= k:
                break
        signals: dict[str, dict[str, float]] = {}
        if explain and plan.keeps_colour and hits:
            explained = await asyncio.to_thread(self.index.score_parts, subs, attempt,
                                                self.index.multi_pool(pool + len(exclude_ids)), "weighted")
            hits, signals = split_fused(hits, explained)
        category_known = "category" in plan.changes or "category" in plan.kept or bool(filters.category)
        if (not category_known or "category" in relaxed) and analysis.category_probs is not None and hits:
            # the kind of item is unsure: prefer the predicted category (a boost, a restriction only when sure)
            hits, prediction = category_rerank(hits, analysis.category_probs, k,
                                               getattr(self.vision, "fusion", FusionConfig()))
        understood = {"attributes": parsed.attributes, "changes": plan.changes, "kept": plan.kept,
                      "relaxed": relaxed, "colour_kept": plan.keeps_colour,
                      "reference": {g: [v, round(c, 3)] for g, (v, c) in reference.items()}}
        more: dict[str, Any] = {"parsed": parsed.attributes, "understood": understood}
        if prediction is not None:
            more["predicted_category"] = prediction_json(prediction, self.vision.model_version)
        return Ranked(hits[:pool], more, attempt, signals)

    async def complete_look(self, req: SearchRequest) -> dict[str, Any]:
        """Complementary items for a product (``product_id``) or a photo of a look, per category.

        The look's garments: the product's stored style vector and category, or the garments the
        detector finds in the photo (``VisionPipeline.garments``: a street photo of a person is a
        look of several). The categories: ``req.categories``, else those that complete every
        garment's category (``StyleEmbedder.complements``), never one the look already has. Per
        category one inner-product search of ``style_vec`` (``StyleEmbedder.query``: the mean
        compatibility with the look's garments) under the request's filters, ``k`` items each;
        the product itself is never among them."""
        style = self.vision.style
        if style is None:
            raise StyleUnavailable(f"the models {self.vision.model_version} have no style head: "
                                   "complete_look needs the trained models with compat.pt")
        exclude: tuple[str, ...] = ()
        look: list[dict[str, Any]] = []
        if req.product_id is not None:
            row = await asyncio.to_thread(self.index.get, req.product_id, with_vectors=True)
            if row is None or row.get("deleted"):
                raise NotFound(f"product {req.product_id!r} is not in the index", "product_id")
            vec = row.get(STYLE_VECTOR)
            if vec is None:
                raise NoStyleVectors(f"product {req.product_id!r} has no style vector (model "
                                     f"{row.get('model_version')})")
            category = str(row.get("category", ""))
            if not style.known(category):
                raise InvalidQuery(f"product {req.product_id!r} is of category {category!r}, which no look "
                                   f"is learnt for (known: {', '.join(style.categories)})", "product_id")
            items = [(category, np.asarray(vec, np.float32))]
            look.append({"product_id": req.product_id, "category": category})
            exclude = (req.product_id,)
        else:
            image = await self._query_image(req)
            garments = await self._in_model(lambda: self.vision.garments(image))
            items = [(g.region.category, g.style_vec) for g in garments]
            look += [{"category": g.region.category, "box": list(g.region.box), "score": round(g.region.score, 4)}
                     for g in garments]
        present = [c for c, _ in items]
        unknown = [c for c in req.categories if not style.known(c)]
        if unknown:
            raise InvalidQuery(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} "
                               f"(known: {', '.join(style.categories)})", "categories")
        wanted = list(req.categories) or style.complements(present)
        if not wanted:
            raise InvalidQuery(f"no categories are learnt to complete {', '.join(present)}: name the categories "
                               "wanted", "categories")

        def search(category: str) -> list[SearchHit]:
            return self.index.search_style(style.query(items, category), category, req.filters, req.k,
                                           exclude_ids=exclude)

        found = await asyncio.gather(*(asyncio.to_thread(search, c) for c in wanted))
        groups = [{"category": c, "results": [hit_json(h, explain=req.explain) for h in hits]}
                  for c, hits in zip(wanted, found)]
        return {"look": {"items": look, "categories": wanted, "defaulted": not req.categories},
                "complements": groups, "model_version": self.vision.model_version}

    async def _query_image(self, req: SearchRequest) -> np.ndarray:
        from workers.vision.decode import decode_image

        assert req.image is not None
        if req.image.b64 is not None:
            try:
                data = base64.b64decode(req.image.b64, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidQuery("not valid base64", "image.b64") from None
            if len(data) > self._max_image_bytes:
                raise InvalidQuery(f"image is {len(data)} bytes, the limit is {self._max_image_bytes}", "image.b64")
        else:
            data = await self.fetcher.fetch(req.image.uri or "")
        return await asyncio.to_thread(decode_image, data, max_pixels=self._max_pixels, target=224)

    async def _in_model(self, fn: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._model_pool, fn)
