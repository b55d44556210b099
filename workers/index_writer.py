"""Index writer: ``index.enriched`` -> version-guarded Milvus writes, then offsets.

Commit order (guarantee 1): batch -> ``ProductIndex.apply`` (Milvus acknowledged every write) ->
dead-letter records for refused patches (broker acknowledged) -> acknowledge the events, so Faust
may commit their offsets. A crash before the last step replays the batch; the guard makes the
replay a no-op. While Milvus is down the writer retries with capped exponential backoff and
acknowledges nothing, so lag grows on ``index.enriched`` and nothing is lost; it drains on recovery.

A flush task seals fresh segments every ``flush_interval_s`` when there were writes (unflushed rows
are searched by brute force: 85 ms against 4 ms at 100k rows in Milvus Lite).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from indexer.exceptions import IndexUnavailable
from indexer.guard import INDEXED, SUPERSEDED
from indexer.store import ProductIndex
from streams.codecs import IndexRecord, SourceRef, decode_record
from streams.exceptions import InvalidEvent
from workers import metrics as m
from workers.batching import Batcher

log = logging.getLogger("vitrine.index")


@dataclass
class Item:
    raw: bytes
    source: SourceRef
    key: str | None
    ack: Callable[[], Any]


class IndexWriter:
    def __init__(
        self,
        index: ProductIndex,
        dead_letter: Callable[[Item, str, str, str], Awaitable[None]],
        *,
        max_batch: int = 512,
        max_wait_s: float = 0.02,
        flush_interval_s: float = 1.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.index = index
        self._dead_letter = dead_letter
        self.batcher: Batcher[Item] = Batcher(max_batch, max_wait_s, capacity=max_batch * 2)
        self._flush_interval = flush_interval_s
        self._max_backoff = max_backoff_s
        self._dirty = False
        self._tasks: list[asyncio.Task[None]] = []
        self.written = 0

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._write_loop()), asyncio.ensure_future(self._flush_loop())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def put(self, item: Item) -> None:
        await self.batcher.put(item)

    async def _write_loop(self) -> None:
        while True:
            batch = await self.batcher.take()
            await self.write(batch)

    async def write(self, batch: Sequence[Item]) -> None:
        records: list[tuple[Item, IndexRecord]] = []
        for item in batch:
            try:
                records.append((item, decode_record(item.raw)))
            except InvalidEvent as exc:
                await self._dead_letter(item, "index", exc.reason, str(exc))
                item.ack()
        if records:
            m.BATCH_SIZE.labels("index").observe(len(records))
            outcomes = await self._apply_with_retry([r for _, r in records])
            acked_at = time.time()
            for (item, rec), outcome in zip(records, outcomes, strict=True):
                if outcome.result == INDEXED:
                    m.EVENTS_INDEXED.labels(rec.op).inc()
                    m.FRESHNESS.observe(max(acked_at - rec.occurred_at, 0.0))
                elif outcome.result == SUPERSEDED:
                    m.EVENTS_SUPERSEDED.labels("index").inc()
                else:
                    await self._dead_letter(item, "index", outcome.result,
                                            f"{rec.op} v{rec.version} of {rec.product_id}: {outcome.result}")
            self.written += len(records)
            self._dirty = True
        for item, _ in records:
            item.ack()

    async def _apply_with_retry(self, records: list[IndexRecord]) -> list[Any]:
        delay = 0.1
        while True:
            t0 = time.perf_counter()
            try:
                outcomes = await asyncio.to_thread(self.index.apply, records)
                m.STAGE_SECONDS.labels("upsert").observe(time.perf_counter() - t0)
                return outcomes
            except IndexUnavailable as exc:
                m.RETRIES.labels("milvus").inc()
                log.warning("Milvus write failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                await asyncio.to_thread(self._reconnect)

    def _reconnect(self) -> None:
        try:
            self.index.close()
            self.index.start(create=True)
        except Exception as exc:  # still down: the next write attempt backs off again
            log.warning("Milvus reconnect failed: %s", exc)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            if self._dirty:
                self._dirty = False
                t0 = time.perf_counter()
                try:
                    await asyncio.to_thread(self.index.flush)
                except IndexUnavailable as exc:
                    self._dirty = True
                    log.warning("flush failed: %s", exc)
                m.STAGE_SECONDS.labels("flush").observe(time.perf_counter() - t0)
