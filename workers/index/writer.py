"""Index writer: ``index.enriched`` -> version-guarded Milvus writes, then offsets.

Commit order (guarantee 1): batch -> ``ProductIndex.apply`` (Milvus acknowledged every write) ->
dead-letter records for refused patches (broker acknowledged) -> acknowledge the events, so Faust
may commit their offsets. A crash before the last step replays the batch; the guard makes the
replay a no-op. While Milvus is down the writer retries with capped exponential backoff and
acknowledges nothing, so lag grows on ``index.enriched`` and nothing is lost; it drains on recovery.

Bounded retries: a batch that cannot be written within ``retry_budget_s`` raises ``IndexUnavailable``
out of the write loop and ``on_give_up`` is called (the worker process exits with status 75,
EX_TEMPFAIL). Nothing of that batch was acknowledged, so the restarted worker (compose's restart
policy, a Kubernetes restart) reads it again: a long outage costs restarts, never events. The bound
exists so that an outage is visible as a crash-looping writer, not as a silently stuck one.

Rebalances (guarantee 2 across two owners): the guard's read-then-write is not atomic, so an old
owner's write still in flight when a partition moves could land after the new owner's newer one.
``fence(partitions)`` closes that: ``streams.source.BatchSource`` awaits it when the group revokes
partitions, before it commits them and before the group can hand them to another member. It marks
the partitions fenced and waits for the Milvus write in progress (one lock), and a write that starts
later leaves out every record of a fenced partition (outcome ``fenced``: neither written nor
acknowledged; the new owner reads it again). So every write of the old owner ends before the new
owner's first guard read. ``unfence`` runs on assignment. What this does not cover: an owner that
the group evicted without a revocation (its session expired while it was cut off from Kafka but not
from Milvus) can still land one write that was in flight; the next event of that product repairs it.

A flush task seals fresh segments once ``flush_rows`` records were written since the last flush, or
``flush_interval_s`` after it when there were any (unflushed rows are searched by brute force: 85 ms
against 4 ms at 100k rows in Milvus Lite, so what matters is how many rows wait, not how long). A
flush holds the writes back (about 0.23 s in Milvus Lite), so flushing every second put that pause in
the freshness of every event that met it (the p99 at half the maximum rate). Every 30 s it still
did: at a steady 22.6 events/s a 0.3 s flush delays ~1% of the events, exactly the p99 (half-rate p99
0.42 and 0.49 s with a flush in the window, 0.32 and 0.35 s without; 450 events each, same session),
so the time-based flush runs every 120 s (0.25% of the events). What a query pays for unflushed rows
is bounded by ``flush_rows`` either way. A flush never runs
while a batch is being written (one lock): in Milvus Lite 3.2.2 a partial upsert (a patch, a
delete) that overlaps a flush can merge into a stale copy of the row and so undo the full upsert
written just before it (found by the chaos test; reproduced in isolation in
``tests/chaos/test_chaos_flush_race.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from indexer.exceptions import IndexUnavailable
from indexer.guard import INDEXED, SUPERSEDED, Outcome
from indexer.store import ProductIndex
from streams.codecs import IndexRecord, decode_record
from streams.exceptions import InvalidEvent
from workers import metrics as m
from workers.dlq import DeadLetterWatch, Delivery
from workers.runtime.batching import Batcher
from workers.runtime.retry import retrying
from workers.runtime.stages import supervise

log = logging.getLogger("vitrine.index")

#: The outcome of a record left out because its partition was revoked (see ``IndexWriter.fence``).
FENCED = "fenced"


class IndexWriter:
    def __init__(
        self,
        index: ProductIndex,
        dead_letter: Callable[[Delivery, str, str, str], Awaitable[None]],
        *,
        max_batch: int = 512,
        max_wait_s: float = 0.02,
        flush_rows: int = 5000,
        flush_interval_s: float = 120.0,
        max_backoff_s: float = 5.0,
        retry_budget_s: float = 300.0,
        on_give_up: Callable[[BaseException], Any] | None = None,
        watch: DeadLetterWatch | None = None,
        on_indexed: Callable[[IndexRecord], Any] | None = None,
    ) -> None:
        self.index = index
        self._dead_letter = dead_letter
        self.batcher: Batcher[Delivery] = Batcher(max_batch, max_wait_s, capacity=max_batch * 2)
        self._flush_rows = flush_rows
        self._flush_interval = flush_interval_s
        self._max_backoff = max_backoff_s
        self._retry_budget = retry_budget_s
        self._on_give_up = on_give_up
        self._watch = watch  # told of every record written or superseded (dead letters: by the caller)
        self._on_indexed = on_indexed  # given a batch's last record written, once Milvus acknowledged it
        self._unflushed = 0  # records written since the last flush
        self._flushed_at = time.monotonic()
        self._milvus_lock = asyncio.Lock()  # writes and flushes, one at a time (see the module docstring)
        self._last_written: tuple[str, int] | None = None  # (product, version) of the last acknowledged write
        self._barrier = False  # after a failure: read the last write back before trusting the guard's reads
        self._tasks: list[asyncio.Task[None]] = []
        self._fenced: set[tuple[str, int]] = set()  # (topic, partition) revoked: never written from again
        self.written = 0
        self.fenced = 0  # records left out because their partition was revoked

    def start(self) -> None:
        self._tasks = [supervise(loop, "index", self._on_give_up) for loop in (self._write_loop, self._flush_loop)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def fence(self, partitions: set[tuple[str, int]]) -> None:
        """Stop writing records of ``partitions`` and return once no write of them is in flight."""
        self._fenced |= set(partitions)
        async with self._milvus_lock:  # the write in progress, if any, has ended
            pass

    def unfence(self, partitions: set[tuple[str, int]]) -> None:
        """``partitions`` are this writer's again (assigned): their new records are written."""
        self._fenced -= set(partitions)

    async def put(self, item: Delivery) -> None:
        await self.batcher.put(item)

    async def _write_loop(self) -> None:
        while True:
            batch = await self.batcher.take()
            try:
                await self.write(batch)
            except IndexUnavailable as exc:  # the retry budget is spent: give up, unacknowledged (on_give_up)
                log.critical("giving up on a batch of %d after %.0fs: %s", len(batch), self._retry_budget, exc)
                raise

    async def write(self, batch: Sequence[Delivery]) -> None:
        records: list[tuple[Delivery, IndexRecord]] = []
        left_out: set[int] = set()
        for item in batch:
            try:
                records.append((item, decode_record(item.raw)))
            except InvalidEvent as exc:
                await self._dead_letter(item, "index", exc.reason, str(exc))
        if records:
            m.BATCH_SIZE.labels("index").observe(len(records))
            outcomes = await self._apply_with_retry(records)
            acked_at = time.time()
            last_indexed: IndexRecord | None = None
            for (item, rec), outcome in zip(records, outcomes, strict=True):
                if outcome.result == FENCED:
                    left_out.add(id(item))  # not acknowledged: the new owner reads it again
                    continue
                if self._watch is not None and outcome.result in (INDEXED, SUPERSEDED):
                    self._watch.passed()
                if outcome.result == INDEXED:
                    m.EVENTS_INDEXED.labels(rec.op).inc()
                    m.FRESHNESS.observe(max(acked_at - rec.occurred_at, 0.0))
                    last_indexed = rec
                elif outcome.result == SUPERSEDED:
                    m.EVENTS_SUPERSEDED.labels("index").inc()
                else:
                    await self._dead_letter(item, "index", outcome.result,
                                            f"{rec.op} v{rec.version} of {rec.product_id}: {outcome.result}")
            self.written += len(records)
            self._unflushed += len(records)
            if self._on_indexed is not None and last_indexed is not None:
                self._on_indexed(last_indexed)  # the searchable probe: samples, never blocks (workers.index.probe)
        for item in batch:
            if id(item) in left_out:
                continue  # in offset order, never one before another (see workers.ingest.pipeline on Faust's commits)
            item.ack()

    async def _apply_with_retry(self, records: list[tuple[Delivery, IndexRecord]]) -> list[Outcome]:
        async for attempt in retrying("Milvus write", retry_on=IndexUnavailable, first_s=0.1, cap_s=self._max_backoff,
                                      budget_s=self._retry_budget, on_retry=self._after_failure):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    await asyncio.to_thread(self._reconnect)
                t0 = time.perf_counter()
                misses = self.index.read_misses
                async with self._milvus_lock:
                    outcomes = await asyncio.to_thread(self._apply_after_barrier, records)
                m.GUARD_READ_MISSES.inc(self.index.read_misses - misses)
                m.STAGE_SECONDS.labels("upsert").observe(time.perf_counter() - t0)
                for o in reversed(outcomes):
                    if o.result == INDEXED:
                        self._last_written = (o.record.product_id, o.record.version)
                        break
        return outcomes

    def _after_failure(self, exc: BaseException) -> None:
        self._barrier = True
        m.RETRIES.labels("milvus").inc()

    def _apply_after_barrier(self, records: list[tuple[Delivery, IndexRecord]]) -> list[Outcome]:
        """``index.apply``, but after a failure first check that Milvus shows the last write it
        acknowledged: the version guard must never read a server that has not caught up (a Milvus
        Lite server just restarted answered the guard's read with no rows for a moment, which
        dead-letters patches of known products and would let a late older upsert overwrite a newer row).
        """
        if self._barrier and self._last_written is not None:
            pid, version = self._last_written
            held = self.index.held([pid]).get(pid)
            if held is None or held.version < version:
                raise IndexUnavailable(f"Milvus does not show {pid} v{version} yet (it acknowledged it): waiting")
        self._barrier = False
        # read under the Milvus lock, which fence() waits for: a record of a partition revoked by
        # now is left out, and one revoked later waits until this write has ended
        fenced = frozenset(self._fenced)
        live = [rec for item, rec in records if (item.source.topic, item.source.partition) not in fenced]
        written = iter(self.index.apply(live) if live else [])
        outcomes = [Outcome(rec, FENCED) if (item.source.topic, item.source.partition) in fenced else next(written)
                    for item, rec in records]
        self.fenced += len(records) - len(live)
        return outcomes

    def _reconnect(self) -> None:
        try:
            self.index.close()
            self.index.start(create=True)
        except Exception as exc:  # still down: the next write attempt backs off again
            log.warning("Milvus reconnect failed: %s", exc)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(min(self._flush_interval, 0.25))
            due = self._unflushed >= self._flush_rows or \
                (self._unflushed > 0 and time.monotonic() - self._flushed_at >= self._flush_interval)
            if due:
                pending, self._unflushed = self._unflushed, 0
                t0 = time.perf_counter()
                try:
                    async with self._milvus_lock:
                        await asyncio.to_thread(self.index.flush)
                    self._flushed_at = time.monotonic()
                except IndexUnavailable as exc:
                    self._unflushed += pending
                    log.warning("flush failed: %s", exc)
                m.STAGE_SECONDS.labels("flush").observe(time.perf_counter() - t0)
