"""Ingest: catalogue events -> (fetch, decode, detect, tag, embed) -> ``index.enriched``.

Steps per event: validate -> skip if older than a delete seen -> fetch the main image -> micro-batch ->
models -> one ``IndexRecord`` to ``index.enriched``, or one dead-letter record with the original
bytes, the stage and the reason.

Contract:
- At-least-once (guarantee 1): an event is acknowledged (its offset becomes committable) only
  after the broker acknowledged the record it produced (enriched or dead-letter). A crash anywhere
  replays every unacknowledged event.
- ``RecentDeletes`` remembers deletes and skips events *strictly older* than a delete already seen
  (a replay of the delete itself is processed again; the index writer's guard makes it idempotent).
  It saves GPU work; it is not the authority (guarantee 2), so it lives in memory: a restarted
  worker forgets it, and the older events it would have skipped are superseded at the index writer.
- Per-product order is kept: events flow through the stages in offset order, patches and deletes
  (no GPU work) wait behind the upserts before them.
- Acknowledgements follow offset order: an invalid event (to the DLQ) or a superseded one (nothing
  to emit) also goes through the pipeline and is acknowledged only after every event before it.
  (``streams.source`` commits only a partition's acknowledged prefix, so this is belt and braces
  now; Faust, which read the events before, tolerated one unacknowledged offset before the first
  acknowledged run, so an out-of-order acknowledgement let it commit past an upsert still in the
  model, which a crash then lost: found by the chaos run).
- The event loop never runs model code (guarantee 4): decode runs in a thread pool, the models in
  model threads, and the next batch is fetched and decoded while the model runs.
- Emitting is a third stage: batch N's records go to the broker, and wait for its acknowledgement,
  while later batches are in the model (one emit loop, so batches are emitted and acknowledged in
  the order they were formed, whichever finished the model first).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.codecs import IndexRecord, SourceRef
from streams.exceptions import InvalidEvent
from streams.schema import HOT_ATTRIBUTES, DeleteEvent, Event, PatchEvent, UpsertEvent, parse_event
from workers import metrics as m
from workers.dlq import Delivery
from workers.exceptions import DeadLetter
from workers.fetch import ImageFetcher
from workers.runtime.batching import Batcher
from workers.runtime.stages import supervise
from workers.vision.exceptions import ImageDecodeError
from workers.vision.pipeline import VisionPipeline

log = logging.getLogger("vitrine.ingest")


@dataclass
class Work(Delivery):
    """One event on its way through the pipeline."""

    event: Event | None = None
    images: list[np.ndarray] | None = None  # (H, W, 3) uint8 per image, in the event's order; upserts only
    error: DeadLetter | None = None
    skip: bool = False  # superseded: acknowledged in its turn, nothing emitted


def hot_attributes(merchant: dict[str, str], tags: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Merchant values win where present; model tags fill the rest. Both are kept with their source."""
    from indexer.schema import normalise_value

    merchant_n = {k: normalise_value(v) for k, v in merchant.items()}
    model = {k: {"value": normalise_value(t.value), "confidence": round(float(t.confidence), 4)} for k, t in tags.items()}
    hot = {name: merchant_n.get(name) or model.get(name, {}).get("value", "") for name in HOT_ATTRIBUTES}
    return hot, {"merchant": merchant_n, "model": model}


def product_text(ev: UpsertEvent) -> str:
    """What the dense text vector embeds for a product: title, description and the merchant's
    attribute values (the colour, type and gender words a shopper types)."""
    attrs = " ".join(str(v) for _, v in sorted(ev.attributes.items()))
    return ". ".join(p for p in (ev.title, ev.description.strip(), attrs) if p)


def upsert_record(ev: UpsertEvent, analyses: Sequence[Any], text_vec: np.ndarray, model_version: str,
                  source: SourceRef, style_vec: np.ndarray | None = None) -> IndexRecord:
    """The record of an upsert from its images' analyses, in the event's order: the first image's gives
    the attributes (the main photo) and the product row's vectors; every further image adds its own
    image and colour vectors. ``style_vec``: the main image's style vector, when the models have a
    style head."""
    analysis, *more = analyses
    hot, attrs = hot_attributes(ev.attributes, analysis.tags)
    fields = {
        "title": ev.title, "description": ev.description, "brand": ev.brand, "price": ev.price,
        "currency": ev.currency, "in_stock": ev.in_stock, "image_uri": ev.images[0], "attributes": attrs, **hot,
    }
    vectors = {"image_vec": analysis.image_vec, "colour_vec": analysis.colour_vec, "text_vec": text_vec}
    if style_vec is not None:
        vectors["style_vec"] = style_vec
    extra = tuple((uri, {"image_vec": a.image_vec, "colour_vec": a.colour_vec}) for uri, a in zip(ev.images[1:], more))
    return IndexRecord("upsert", ev.product_id, ev.version, ev.occurred_at, fields, vectors, model_version, source,
                       extra)


def light_record(ev: PatchEvent | DeleteEvent, source: SourceRef) -> IndexRecord:
    fields = ev.fields.model_dump(exclude_none=True) if isinstance(ev, PatchEvent) else {}
    return IndexRecord(ev.type, ev.product_id, ev.version, ev.occurred_at, fields, {}, "", source)


class RecentDeletes(dict[str, int]):
    """Product -> version of the newest delete seen, for the last ``capacity`` products deleted.

    In-process (it was a Faust table, which needs Faust's consumer on ``catalog.events``, and saved
    only GPU work): about 100 bytes a product, so the default million costs about 100 MB at most.
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, product_id: str, version: int) -> None:
        self.pop(product_id, None)  # newest last, so the oldest is dropped first
        super().__setitem__(product_id, version)
        if len(self) > self.capacity:
            del self[next(iter(self))]


class IngestPipeline:
    """The stages after the guard: fetch+decode, models, emit; batches overlap across the stages.

    ``model_workers`` batches may be in the model at once, each in its own thread. On a CPU two
    halves beat one whole: each batch's Python and NumPy parts (letterbox, colour histograms,
    tokenising, the detector's decode) run on one core while torch spreads only the convolutions
    over both, so one batch at a time kept 2 cores 1.5 busy; two batches with one torch thread each
    keep them 1.9 busy (63 against 47 images/s at batch 32, 56 against 37 at batch 8, on 2 cores).
    A batch alone in the model gets all the torch threads (``_infer``), so low load keeps its latency.
    On a GPU one model worker is the default (``Settings.model_workers``).
    """

    def __init__(
        self,
        vision: VisionPipeline,
        fetcher: ImageFetcher,
        emit: Callable[[Sequence[tuple[Work, IndexRecord | None]]], Awaitable[None]],
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.02,
        max_pixels: int = 40_000_000,
        decode_workers: int = 2,
        model_workers: int = 1,
        worker: str = "ingest",
        on_failure: Callable[[BaseException], Any] | None = None,
    ) -> None:
        self.vision = vision
        self.fetcher = fetcher
        self._emit = emit
        self.worker = worker
        self._on_failure = on_failure  # a stage loop died (see workers.runtime.stages)
        self._max_pixels = max_pixels
        # Patches and deletes need no model: 64 of them weigh what one image does.
        self.batcher: Batcher[Work] = Batcher(max_batch, max_wait_s, capacity=max_batch * 64,
                                              weigh=lambda w: 1.0 if _needs_image(w) else 1 / 64)
        self.model_workers = max(1, model_workers)
        # A batch is formed when a model worker is free or about to be: one more than the workers, so
        # the next batch is fetched and decoded while the model runs, and fills until then.
        self._slots = asyncio.Semaphore(self.model_workers + 1)
        # Batches in formation order with the future of their records: emitted in that order.
        self._inflight: asyncio.Queue[asyncio.Future[list[tuple[Work, IndexRecord | None]]]] = \
            asyncio.Queue(self.model_workers + 1)
        self._decode_pool = ThreadPoolExecutor(decode_workers, thread_name_prefix="decode")
        self._model_pool = ThreadPoolExecutor(self.model_workers, thread_name_prefix="model")
        self._in_model = 0  # batches inside _infer, across the model threads
        self._in_model_lock = threading.Lock()
        self._threads = _torch_threads() if self.model_workers > 1 else 0
        self._tasks: list[asyncio.Task[None]] = []

    async def put(self, work: Work) -> None:
        await self.batcher.put(work)

    def start(self) -> None:
        self._tasks = [supervise(loop, self.worker, self._on_failure) for loop in (self._fetch_loop, self._emit_loop)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._decode_pool.shutdown(wait=False, cancel_futures=True)
        self._model_pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ stage 1: fetch + decode

    async def _fetch_loop(self) -> None:
        """Form a batch when a model worker is (about to be) free, fetch + decode it, hand it to the model.

        Forming the next batch only then (not as soon as the previous one is decoded) lets it fill
        while the model works, so batches grow with load instead of staying small.
        """
        while True:
            await self._slots.acquire()
            batch = await self.batcher.take()
            t0 = time.perf_counter()
            await asyncio.gather(*(self._load(w) for w in batch if _needs_image(w)))
            m.STAGE_SECONDS.labels("fetch_decode").observe(time.perf_counter() - t0)
            await self._inflight.put(asyncio.ensure_future(self._model(batch)))

    async def _load(self, work: Work) -> None:
        """Fetch and decode every image of the upsert, at once. Any image that cannot be had sends the
        event to the DLQ, naming the image (``images.N``): a product is indexed with all its photos or
        not at all, never silently with some of them."""
        assert isinstance(work.event, UpsertEvent)
        images = await asyncio.gather(*(self._load_one(uri) for uri in work.event.images), return_exceptions=True)
        for n, got in enumerate(images):
            if isinstance(got, DeadLetter):
                work.error = got if len(images) == 1 else DeadLetter(got.stage, got.reason, f"images.{n}: {got}")
                return
            if isinstance(got, BaseException):
                raise got
        work.images = list(images)  # type: ignore[arg-type]

    async def _load_one(self, uri: str) -> np.ndarray:
        from workers.vision.decode import decode_image

        try:
            t0 = time.perf_counter()
            data = await self.fetcher.fetch(uri)
            t1 = time.perf_counter()
            m.STAGE_SECONDS.labels("fetch").observe(t1 - t0)
            loop = asyncio.get_running_loop()
            image = await loop.run_in_executor(
                self._decode_pool, lambda: decode_image(data, max_pixels=self._max_pixels, target=224))
            m.STAGE_SECONDS.labels("decode").observe(time.perf_counter() - t1)
            return image
        except DeadLetter:
            raise
        except ImageDecodeError as exc:
            raise DeadLetter("decode", exc.reason, str(exc)) from None
        except Exception as exc:  # a bug in a decoder must not stop the worker: record it and carry on
            m.ERRORS.labels(self.worker, "decode").inc()
            raise DeadLetter("decode", "decode_failed", f"{type(exc).__name__}: {exc}"[:500]) from None

    # ------------------------------------------------------------------ stage 2: models

    async def _model(self, batch: list[Work]) -> list[tuple[Work, IndexRecord | None]]:
        """One batch through the models (in a model thread); its records, in batch order."""
        try:
            loop = asyncio.get_running_loop()
            ready = [w for w in batch if w.images is not None and w.error is None]
            results: dict[int, IndexRecord] = {}
            if ready:
                m.BATCH_SIZE.labels("model").observe(sum(len(w.images or ()) for w in ready))
                t0 = time.perf_counter()
                try:
                    analyses, text_vecs, styles = await loop.run_in_executor(self._model_pool, self._infer, ready)
                    for i, (w, a, tv) in enumerate(zip(ready, analyses, text_vecs, strict=True)):
                        assert isinstance(w.event, UpsertEvent)
                        results[id(w)] = upsert_record(w.event, a, tv, self.vision.model_version, w.source,
                                                       None if styles is None else styles[i])
                except Exception as exc:  # a batch the model cannot take: each event to the DLQ, worker goes on
                    log.exception("model failed on a batch of %d", len(ready))
                    m.ERRORS.labels(self.worker, "model").inc()
                    for w in ready:
                        w.error = DeadLetter("model", "model_failed", f"{type(exc).__name__}: {exc}"[:500])
                m.STAGE_SECONDS.labels("model").observe(time.perf_counter() - t0)
            out: list[tuple[Work, IndexRecord | None]] = []
            for w in batch:
                w.images = None  # the pixels are done with: do not hold them until the broker acknowledges
                if w.error is not None or w.skip:
                    out.append((w, None))
                elif isinstance(w.event, UpsertEvent):
                    out.append((w, results[id(w)]))
                else:
                    assert isinstance(w.event, PatchEvent | DeleteEvent)
                    out.append((w, light_record(w.event, w.source)))
            return out
        finally:
            self._slots.release()

    def _infer(self, works: list[Work]) -> tuple[list[Any], np.ndarray, np.ndarray | None]:
        """One model batch of every image of ``works``: per work the list of its images' analyses, the
        text vectors, and (with a style head) the style vectors of the main images, each under the
        product's category (the merchant's when the head knows it: ``VisionPipeline.style_category``)."""
        images = [img for w in works for img in (w.images or ())]
        texts = [product_text(w.event) for w in works]  # type: ignore[arg-type]
        with self._in_model_lock:
            self._in_model += 1
            sharing = self._in_model
        try:
            if self._threads:  # this thread's share of the torch threads: all of them when alone
                _set_torch_threads(max(1, self._threads // sharing))
            analyses, text_vecs = self.vision.analyse(images), self.vision.embed_text(texts)
            per_work, start = [], 0
            for w in works:
                n = len(w.images or ())
                per_work.append(list(analyses[start:start + n]))
                start += n
            styles = None
            if self.vision.style is not None:
                from indexer.schema import normalise_value

                mains = [a[0] for a in per_work]
                cats = [self.vision.style_category(normalise_value(w.event.attributes.get("category", "")), a)  # type: ignore[union-attr]
                        for w, a in zip(works, mains)]
                styles = self.vision.style_vectors(mains, cats)
        finally:
            with self._in_model_lock:
                self._in_model -= 1
        return per_work, text_vecs, styles

    # ------------------------------------------------------------------ stage 3: emit, in batch order

    async def _emit_loop(self) -> None:
        """Send each batch's records in formation order and wait for the broker; later batches meanwhile
        run in the model."""
        while True:
            records = await self._inflight.get()
            out = await records
            t0 = time.perf_counter()
            await self._emit(out)
            m.STAGE_SECONDS.labels("emit").observe(time.perf_counter() - t0)


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _set_torch_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:  # per calling thread (OpenMP): the other model thread keeps its own
        torch.set_num_threads(n)


def _needs_image(work: Work) -> bool:
    return isinstance(work.event, UpsertEvent) and work.error is None and not work.skip


def triage(work: Work, versions: MutableMapping[str, int]) -> Work:
    """Validate one consumed event and check it against the deletes seen (``RecentDeletes``), in place.

    Sets ``work.event``; ``work.error`` when it is invalid (to the DLQ), ``work.skip`` when a newer
    delete was already seen. Only deletes are remembered, because only they cannot fail after this
    point: remembering an upsert here let a replay skip an older upsert for a newer one whose image
    then could not be fetched, so the product was never indexed (found by the crash test). Every
    outcome still goes through the pipeline, so that acknowledgements follow offset order (see the
    module docstring).
    """
    ev, err = admit(work.raw)
    work.event = ev
    if err is not None:
        work.error = err
        return work
    assert ev is not None
    seen = versions.get(ev.product_id)
    if seen is not None and ev.version < seen:
        m.EVENTS_SUPERSEDED.labels("ingest").inc()
        work.skip = True
    elif ev.type == "delete" and (seen is None or ev.version > seen):
        versions[ev.product_id] = ev.version
    return work


def admit(raw: bytes) -> tuple[Event | None, DeadLetter | None]:
    """Validate one raw event: ``(event, None)``, or ``(None, DeadLetter)`` naming the field and reason."""
    try:
        return parse_event(raw), None
    except InvalidEvent as exc:
        return None, DeadLetter("validate", exc.reason, str(exc))
