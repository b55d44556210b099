"""The searchable probe: event time -> first seen by a read as the query worker reads (guarantee 6).

``vitrine_index_freshness_seconds`` stops at Milvus acknowledging the write. What a user waits for is
the product being *searchable*, so after a batch is acknowledged the index writer offers the probe one
record it wrote (``IndexWriter(on_indexed=...)``); at most every ``PROBE_EVERY_S`` and with at most one
probe in flight, the probe reads that product back every ``POLL_S`` until Milvus shows its version or
a newer one, then observes ``vitrine_searchable_freshness_seconds`` (the event's ``occurred_at`` to
the read that first showed it) and counts ``vitrine_searchable_probe_total{outcome="seen"}``. Not seen
within ``TIMEOUT_S``: ``outcome="timeout"`` (nothing observed). A read that fails: ``outcome="error"``,
and the next offer probes again; the probe never raises into the writer.

What "searchable" means here: the product's row (its primary key is the product id; the writer
writes a product's image rows before it, ``indexer.store``) read by id on a connection of its own,
at the collection's consistency level, which is the level every query-worker read uses (the
collection is created Strong and the query path passes no level of its own: ``indexer.store``). A
row a Strong read shows is in the same snapshot a search at that level filters, so the read stands
for the search without paying for one. A version check rather than ``deleted == false``: a delete's
tombstone becoming visible is what makes a deleted product leave the results, and a newer version
seen means this write was visible too.

Why the probe can never slow the writer: ``offer`` is a clock read and a comparison on the event
loop; the reads run on one thread of the probe's own (not the default executor the writer's Milvus
calls use), over their own connection, so a hung read holds only the probe. One probe in flight at
most bounds the extra load to one point read per ``POLL_S``; on a Strong read the first read after the
acknowledgement normally shows the row already, so that is one read per ``PROBE_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from indexer.store import ProductIndex
from streams.codecs import IndexRecord
from workers import metrics as m

__all__ = ["POLL_S", "PROBE_EVERY_S", "TIMEOUT_S", "IndexReader", "SearchableProbe"]

log = logging.getLogger("vitrine.index")

#: The most often a write is probed (seconds between the starts of two probes).
PROBE_EVERY_S = 5.0
#: Seconds between two reads of one probe.
POLL_S = 0.075
#: A write not seen within this many seconds of the probe's start counts as a timeout.
TIMEOUT_S = 30.0

SEEN, TIMEOUT, ERROR = "seen", "timeout", "error"
OUTCOMES = (SEEN, TIMEOUT, ERROR)

#: product id -> the version Milvus shows for it (None: no row), read as the query worker reads.
ReadVersion = Callable[[str], int | None]


class IndexReader:
    """``ReadVersion`` over a ``ProductIndex`` of its own (not the writer's: the writer closes and reopens
    its client after a failure), opened on first use and reopened after a failed read. Blocking: call it
    from a thread."""

    def __init__(self, open_index: Callable[[], ProductIndex]) -> None:
        self._open = open_index
        self._index: ProductIndex | None = None

    def __call__(self, product_id: str) -> int | None:
        if self._index is None:
            self._index = self._open().start(create=False)
        try:
            held = self._index.held([product_id]).get(product_id)
        except Exception:
            self.close()
            raise
        return None if held is None else held.version

    def close(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            try:
                index.close()
            except Exception as exc:  # a connection already gone
                log.debug("closing the probe's connection: %r", exc)


class SearchableProbe:
    """Samples acknowledged writes and measures when they become visible (see the module docstring).

    ``read`` is blocking and runs on the probe's own thread; ``clock`` (wall time: ``occurred_at`` is
    epoch seconds) and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        read: ReadVersion,
        *,
        every_s: float = PROBE_EVERY_S,
        poll_s: float = POLL_S,
        timeout_s: float = TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._read = read
        self._every = every_s
        self._poll = poll_s
        self._timeout = timeout_s
        self._clock = clock
        self._sleep = sleep
        self._next_at = -math.inf
        self._task: asyncio.Task[str] | None = None
        self._executor: ThreadPoolExecutor | None = None
        for outcome in OUTCOMES:  # exported at 0 from the start, so a rate() over them has series
            m.SEARCHABLE_PROBES.labels(outcome)

    @property
    def in_flight(self) -> asyncio.Task[str] | None:
        """The probe running now, if any."""
        return self._task if self._task is not None and not self._task.done() else None

    def offer(self, rec: IndexRecord) -> bool:
        """A write of ``rec`` was just acknowledged: probe it if one is due and none is in flight (True).
        Called on the event loop by the writer; never blocks, never raises."""
        try:
            now = self._clock()
            if self.in_flight is not None or now < self._next_at:
                return False
            self._next_at = now + self._every
            self._task = asyncio.get_running_loop().create_task(
                self.probe(rec.product_id, rec.version, rec.occurred_at), name=f"probe {rec.product_id}")
            return True
        except Exception as exc:  # the writer goes on whatever the probe does
            log.warning("searchable probe not started: %r", exc)
            return False

    async def probe(self, product_id: str, version: int, occurred_at: float) -> str:
        """Read ``product_id`` until Milvus shows ``version`` or newer; observe and count; the outcome."""
        deadline = self._clock() + self._timeout
        outcome = TIMEOUT
        while True:
            try:
                held = await self._read_in_thread(product_id)
            except Exception as exc:  # Milvus away or failing: counted; the next offer probes again
                log.debug("searchable probe of %s v%d: %r", product_id, version, exc)
                outcome = ERROR
                break
            seen_at = self._clock()
            if held is not None and held >= version:
                m.SEARCHABLE_FRESHNESS.observe(max(seen_at - occurred_at, 0.0))
                outcome = SEEN
                break
            if seen_at >= deadline:
                log.warning("%s v%d not visible %.0fs after its write was acknowledged (Milvus shows %s)",
                            product_id, version, self._timeout, held)
                break
            await self._sleep(self._poll)
        m.SEARCHABLE_PROBES.labels(outcome).inc()
        return outcome

    async def _read_in_thread(self, product_id: str) -> int | None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="vitrine-probe")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._read, product_id)

    async def stop(self) -> None:
        """Cancel the probe in flight and release the probe's thread."""
        task = self.in_flight
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
