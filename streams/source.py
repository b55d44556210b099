"""``BatchSource``: one topic read in batches below Faust's per-message stream, committing what was acknowledged.

Why not a Faust agent: an agent costs about 225 µs per message on a 2-core machine before any work
(an agent that only acknowledges read 4,437 events/s; ``AIOKafkaConsumer.getmany`` read 233,000;
``python -m vitrine_tools.bench.consume``). Patch events need no model work, so the agent was their
ceiling, and a GPU worker's image events would meet it too. The ingest and index workers read
their input here; they are still Faust apps (web server, metrics, producer, tasks).

Contract (ARCHITECTURE.md guarantee 1, at-least-once):
- Every record handed to ``handle`` carries ``ack()``. A partition's committed offset is its first
  record not yet acknowledged: records may be acknowledged in any order, and one acknowledged early
  is committed only once every record before it was.
- Commits run every ``commit_interval_s``, for the revoked partitions when the group takes them away
  (before it moves them), and on ``stop``.
- ``on_revoke(partitions)``, when given, is awaited first when the group takes partitions away, before
  their commit and before the group can move them: the index writer fences them there, so that none
  of its writes of those partitions is still in flight when the new owner starts (guarantee 2).
  ``on_assign(partitions)`` is called when partitions are assigned. Both get ``{(topic, partition)}``.
- Records of a revoked partition still in flight are not waited for: their acknowledgements are
  dropped, and the new owner reads them again from the committed offset. That costs duplicates,
  never a loss (the index writer's version guard makes a replay a no-op).
- A rebalance while a fetched batch is being handed out drops the rest of that batch (it is read
  again from the committed offsets), so a partition handed straight back never starts its
  tracking past records still unacknowledged from before the rebalance.
- Flow: ``handle`` is awaited per record, so a handler that blocks (a full batcher) stops the reads;
  aiokafka's fetcher holds at most ``fetch_max_bytes`` meanwhile. Heartbeats run in aiokafka's
  background task, and ``max_poll_interval_s`` is 1,000 s (Faust's default), so a long stall of the
  next stage (a Milvus outage, bounded by the index writer's retry budget) does not evict the consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.abc import ConsumerRebalanceListener

__all__ = ["BatchSource", "PartitionProgress", "Record"]

log = logging.getLogger("vitrine.source")


@dataclass(slots=True)
class Record:
    """One consumed record. ``ack()`` once whatever it caused was acknowledged downstream."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    _entry: list[Any]  # the partition tracker's [offset, acknowledged]

    def ack(self) -> None:
        self._entry[1] = True


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """Where the group stands on one assigned partition (``BatchSource.progress``)."""

    topic: str
    partition: int
    committed: int  # the group's committed offset: a restart reads from here
    unacknowledged: int  # records handed out and not acknowledged yet (in flight)
    end: int | None  # the log end offset (high watermark) as of the last fetch; None before one

    @property
    def lag(self) -> int | None:
        """Records past the committed offset: not read yet, or read and not yet acknowledged."""
        return None if self.end is None else max(0, self.end - self.committed)


class _Partition:
    """The records of one partition handed out in this assignment, in offset order, and what was committed."""

    __slots__ = ("committed", "next", "pending")

    def __init__(self, start: int) -> None:
        self.pending: deque[list[Any]] = deque()  # [offset, acknowledged]
        self.next = start  # the offset after the last record handed out
        self.committed = start  # the offset committed last (the position the assignment started at)

    def add(self, offset: int) -> list[Any]:
        entry = [offset, False]
        self.pending.append(entry)
        self.next = offset + 1
        return entry

    def committable(self) -> int:
        """The first offset not yet acknowledged: everything before it is done."""
        pending = self.pending
        while pending and pending[0][1]:
            pending.popleft()
        return pending[0][0] if pending else self.next


class BatchSource:
    def __init__(
        self,
        topic: str,
        bootstrap: str,
        group_id: str,
        handle: Callable[[Record], Awaitable[None]],
        *,
        session_timeout_s: float = 10.0,
        commit_interval_s: float = 0.5,
        max_records: int = 2000,
        max_poll_interval_s: float = 1000.0,
        client_id: str | None = None,
        on_revoke: Callable[[set[tuple[str, int]]], Awaitable[None]] | None = None,
        on_assign: Callable[[set[tuple[str, int]]], None] | None = None,
        **security: Any,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self.group = group_id
        self._handle = handle
        self._session_timeout_s = session_timeout_s
        self._commit_interval_s = commit_interval_s
        self._max_records = max_records
        self._max_poll_interval_s = max_poll_interval_s
        self._client_id = client_id or group_id
        self._on_revoke = on_revoke
        self._on_assign = on_assign
        self._security = _aiokafka_security(security)
        self._consumer: Any = None
        self._parts: dict[Any, _Partition] = {}
        self._commit_lock = asyncio.Lock()
        self._committer: asyncio.Task[None] | None = None
        self._generation = 0  # bumped by every revocation: a batch fetched before it is not handed out
        self._positions: dict[Any, int] = {}  # assigned partitions with no record handed out yet: their position

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        session_ms = int(self._session_timeout_s * 1000)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=self.group, client_id=self._client_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=session_ms, heartbeat_interval_ms=max(session_ms // 10, 500),
            rebalance_timeout_ms=max(session_ms * 2, 10_000),
            max_poll_interval_ms=int(self._max_poll_interval_s * 1000),
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024,
            **self._security,
        )
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        await self._consumer.start()
        self._committer = asyncio.ensure_future(self._commit_loop())

    async def stop(self) -> None:
        """Commit what was acknowledged and leave the group (its partitions move at once)."""
        if self._committer is not None:
            self._committer.cancel()
            await asyncio.gather(self._committer, return_exceptions=True)
            self._committer = None
        if self._consumer is not None:
            await self.commit()
            await self._consumer.stop()
            self._consumer = None

    # ------------------------------------------------------------------ reading

    async def read_loop(self) -> None:
        """Hand every record to ``handle``, in offset order per partition, until cancelled."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("BatchSource: call start() first")
        while True:
            fetched = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
            generation = self._generation
            for tp, messages in fetched.items():
                if self._generation != generation:
                    break  # a rebalance while this batch was handed out: its rest is stale (see _revoked)
                part = self._parts.get(tp)
                if part is None:
                    if tp not in consumer.assignment():
                        continue  # revoked since the fetch: the new owner reads these
                    part = self._parts[tp] = _Partition(messages[0].offset)
                for msg in messages:
                    if self._generation != generation:
                        break
                    await self._handle(Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                                              part.add(msg.offset)))

    # ------------------------------------------------------------------ commits

    async def commit(self, only: set[Any] | None = None) -> dict[Any, int]:
        """Commit each partition's acknowledged prefix (of the partitions in ``only``, if given)."""
        from aiokafka.errors import KafkaError
        from aiokafka.structs import OffsetAndMetadata

        async with self._commit_lock:
            due = {}
            for tp, part in self._parts.items():
                if only is None or tp in only:
                    offset = part.committable()
                    if offset > part.committed:
                        due[tp] = (part, offset)
            if not due or self._consumer is None:
                return {}
            try:
                await self._consumer.commit({tp: OffsetAndMetadata(o, "") for tp, (_, o) in due.items()})
            except KafkaError as exc:  # a rebalance under way, the broker away: the next commit covers it
                log.warning("commit of %s failed: %r", {f"{tp.topic}/{tp.partition}": o for tp, (_, o) in due.items()}, exc)
                return {}
            for part, offset in due.values():
                part.committed = offset
            return {tp: o for tp, (_, o) in due.items()}

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._commit_interval_s)
            try:
                await self.commit()
                await self._refresh_positions()
            except Exception as exc:  # never let the committer die silently: the next round retries
                log.warning("commit round failed: %r", exc)

    async def _revoked(self, revoked: set[Any]) -> None:
        """Commit the revoked partitions' acknowledged prefix and forget them.

        The rest of a fetched batch is dropped too (a new ``_generation``): the group may hand a
        partition straight back, and the consumer then reads it again from the committed offset.
        A stale record handed out under the new assignment would start that partition's tracker
        past records that were handed out before the rebalance and never acknowledged, and its
        first commit would skip them.
        """
        self._generation += 1
        if self._on_revoke is not None and revoked:
            await self._on_revoke({(tp.topic, tp.partition) for tp in revoked})
        await self.commit(only=set(revoked))
        for tp in revoked:
            self._parts.pop(tp, None)  # later acknowledgements of its records land in a dropped tracker
        if revoked:
            log.info("revoked %s", sorted(f"{tp.topic}/{tp.partition}" for tp in revoked))

    async def _refresh_positions(self) -> None:
        """The fetch position of every assigned partition that has handed out nothing yet (for ``progress``)."""
        consumer = self._consumer
        if consumer is None:
            return
        idle = [tp for tp in consumer.assignment() if tp not in self._parts]
        positions = {}
        for tp in idle:
            try:
                positions[tp] = await consumer.position(tp)
            except Exception:  # noqa: BLE001 - a rebalance under way: the next round has it
                pass
        self._positions = positions

    def progress(self) -> list[PartitionProgress]:
        """Committed offset, records in flight and log end of every assigned partition: what the
        workers export as ``vitrine_consumer_lag`` and ``vitrine_in_flight_events`` (read at scrape time)."""
        consumer = self._consumer
        if consumer is None:
            return []
        out = []
        for tp in sorted(consumer.assignment(), key=lambda t: (t.topic, t.partition)):
            part = self._parts.get(tp)
            if part is not None:
                committed, unacked = part.committed, sum(1 for e in list(part.pending) if not e[1])
            elif tp in self._positions:
                committed, unacked = self._positions[tp], 0
            else:
                continue
            out.append(PartitionProgress(tp.topic, tp.partition, committed, unacked, consumer.highwater(tp)))
        return out

    def assignment(self) -> set[Any]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()


class _Listener(ConsumerRebalanceListener):
    """aiokafka's rebalance listener (awaited by its coordinator before the group moves the partitions)."""

    def __init__(self, source: BatchSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._source._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self._source._on_assign is not None:
            self._source._on_assign({(tp.topic, tp.partition) for tp in assigned})
        log.info("assigned %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))


def _aiokafka_security(options: dict[str, Any]) -> dict[str, Any]:
    """kafka-python security keywords (``Settings.kafka_options``) in aiokafka's terms."""
    out = dict(options)
    cafile = out.pop("ssl_cafile", None)
    protocol = out.get("security_protocol", "PLAINTEXT")
    if protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        out["ssl_context"] = create_ssl_context(cafile=cafile)
    return out
