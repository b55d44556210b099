"""Reading the dead-letter topic and re-driving its records onto ``catalog.events`` (``vitrine dlq``).

A dead-letter record (``workers.dlq.dead_letter_record``) carries the original event's bytes, its
key, the stage and reason of the refusal, and the topic/partition/offset of the original. After a fix
(an image store that was misconfigured, a file root, a bug in a worker) ``replay`` sends the original
bytes again to the events topic, with the original key and two headers that mark the replay:
``vitrine-replay-of: <dlq topic>/<partition>/<offset>`` and ``vitrine-replay-reason: <reason>``
(the workers read no headers; they are for people and tools that read the topic).

**No dedup, on purpose.** The index's version guard (``indexer.guard``) lets a write win only if its
version is newer than the one held. An event that was dead-lettered never reached the index, so its
replay is indexed unless a newer version of the product has been indexed meanwhile, in which case
the replay is a no-op (superseded). Replaying the same record twice is therefore harmless, and so
is replaying an old event after the product moved on.

**A crash mid-replay** (the command killed, the broker gone) leaves some records replayed and some
not, and the DLQ unchanged (nothing is ever deleted from it or committed: it is read with no
consumer group). Running the same replay again is safe: the records replayed the first time are
replayed again and the version guard makes the duplicates no-ops.

**What is refused** (skipped, with the reason in the report):
- a record that is not a dead-letter record (not JSON, or no reason): listed with reason
  ``unreadable`` and stage ``dlq_record``, never replayed (there is no original to send);
- a record whose original is not a catalogue event (``topic`` is not the events topic, e.g. an
  ``index.enriched`` record dead-lettered by the index writer): re-drive it by republishing the
  product's catalogue event;
- a record whose original bytes do not match ``original_sha256``;
- a record whose original was truncated (``original_truncated``: longer than
  ``workers.dlq.DLQ_MAX_ORIGINAL_BYTES``): its whole bytes are only on the original topic at
  topic/partition/offset. ``replay`` fetches them from there (assign + seek, checked against the
  SHA-256) and skips the record only if they are gone (retention, or compaction after a newer event
  of the product, which supersedes it anyway).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.admin import quiet_client_debug_logs
from streams.exceptions import VitrineError

__all__ = ["HEADER_REASON", "HEADER_REPLAY_OF", "DlqRecord", "DlqTopicMissing", "ReplayNotAcknowledged",
           "ReplayReport", "parse_since", "read_dlq", "replay", "select", "summarise"]

HEADER_REPLAY_OF = "vitrine-replay-of"
HEADER_REASON = "vitrine-replay-reason"
#: The reason and stage given to a DLQ record that is not a dead-letter record (not JSON, no reason).
#: The stage tells it from the fetch stage's own ``unreadable`` (a file the worker may not read).
UNREADABLE, UNREADABLE_STAGE = "unreadable", "dlq_record"


class DlqTopicMissing(VitrineError):
    """The dead-letter topic does not exist on the broker (a wrong VITRINE_TOPIC_PREFIX?)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"topic {topic!r} does not exist")


class ReplayNotAcknowledged(VitrineError):
    """The broker did not acknowledge some replayed records. ``report`` says which were (``replayed``)
    and ``failed`` which were not; running the same replay again is safe (version guard)."""

    def __init__(self, report: ReplayReport, failed: list[dict[str, Any]]) -> None:
        self.report = report
        self.failed = failed
        super().__init__(f"{len(failed)} of {report.selected} replayed records not acknowledged")


@dataclass(frozen=True)
class DlqRecord:
    """One record of the DLQ: where it is (``dlq_*``), and what the dead-letter record says."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    reason: str
    stage: str
    at: float  # epoch seconds; the Kafka timestamp for an unreadable record
    message: str = ""
    worker: str = ""
    topic: str | None = None  # of the original event
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    product_id: str | None = None
    original: bytes | None = None  # decoded original_b64 (the head only when truncated)
    original_bytes: int = 0
    original_truncated: bool = False
    original_sha256: str | None = None
    readable: bool = True  # False: not a dead-letter record; listed, never replayed

    @property
    def replay_of(self) -> str:
        return f"{self.dlq_topic}/{self.dlq_partition}/{self.dlq_offset}"

    @property
    def replay_key(self) -> str | None:
        """The original key (``key``), else ``product_id``: events are keyed by product id."""
        return self.key or self.product_id

    def brief(self) -> dict[str, Any]:
        """The record as JSON, without the original's bytes."""
        return {"partition": self.dlq_partition, "offset": self.dlq_offset, "at": self.at, "reason": self.reason,
                "stage": self.stage, "worker": self.worker, "product_id": self.product_id, "key": self.key,
                "message": self.message, "original": f"{self.topic}/{self.partition}/{self.offset}",
                "original_bytes": self.original_bytes, "original_truncated": self.original_truncated}


def parse_record(topic: str, partition: int, offset: int, value: bytes | None, timestamp_ms: int) -> DlqRecord:
    """One DLQ record; one that is not a JSON object of the expected shape is ``unreadable``."""
    where: dict[str, Any] = {"dlq_topic": topic, "dlq_partition": partition, "dlq_offset": offset}
    try:
        doc = json.loads(value or b"")
        original = base64.b64decode(doc["original_b64"], validate=True) if doc.get("original_b64") else None
        return DlqRecord(**where, reason=str(doc["reason"]), stage=str(doc.get("stage") or ""),
                         at=float(doc.get("at") or timestamp_ms / 1000), message=str(doc.get("message") or ""),
                         worker=str(doc.get("worker") or ""), topic=doc.get("topic"), partition=doc.get("partition"),
                         offset=doc.get("offset"), key=doc.get("key"), product_id=doc.get("product_id"),
                         original=original, original_bytes=int(doc.get("original_bytes") or 0),
                         original_truncated=bool(doc.get("original_truncated")),
                         original_sha256=doc.get("original_sha256"))
    except (ValueError, TypeError, KeyError, AttributeError):
        return DlqRecord(**where, reason=UNREADABLE, stage=UNREADABLE_STAGE, at=timestamp_ms / 1000,
                         message=f"not a dead-letter record ({len(value or b'')} bytes)", readable=False)


def parse_since(text: str) -> float:
    """Epoch seconds from ``1718000000`` or an ISO-8601 time (``2024-06-10T08:00:00Z``; no zone = UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    when = datetime.fromisoformat(text.strip())
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def select(records: Iterable[DlqRecord], *, since: float | None = None, reason: str | None = None,
           stage: str | None = None) -> list[DlqRecord]:
    """The records at or after ``since`` with that ``reason`` and ``stage`` (None or "all": any)."""
    return [r for r in records if (since is None or r.at >= since) and reason in (None, "all", r.reason)
            and stage in (None, "all", r.stage)]


def read_dlq(bootstrap: str, topic: str, *, client_options: Mapping[str, Any] | None = None,
             since: float | None = None, reason: str | None = None, stage: str | None = None,
             timeout_s: float = 60.0) -> list[DlqRecord]:
    """Every record of ``topic`` from the beginning to the end offsets as they are at the call, in
    (partition, offset) order, filtered by ``select``. No consumer group: nothing is committed, and
    reading changes nothing. Raises ``DlqTopicMissing``, or ``TimeoutError`` after ``timeout_s``."""
    from kafka import KafkaConsumer, TopicPartition

    quiet_client_debug_logs()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             **dict(client_options or {}))
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise DlqTopicMissing(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[DlqRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took more than {timeout_s:.0f}s")
            for batch in consumer.poll(timeout_ms=500).values():
                out += [parse_record(topic, r.partition, r.offset, r.value, r.timestamp)
                        for r in batch if r.offset < ends[TopicPartition(topic, r.partition)]]
        out.sort(key=lambda r: (r.dlq_partition, r.dlq_offset))
        return select(out, since=since, reason=reason, stage=stage)
    finally:
        consumer.close()


def summarise(records: Sequence[DlqRecord]) -> dict[str, Any]:
    """Counts by reason, by stage and by (reason, stage), and the oldest and newest ``at``."""
    ats = [r.at for r in records]
    pairs = Counter((r.reason, r.stage) for r in records)
    return {"total": len(records), "by_reason": dict(Counter(r.reason for r in records).most_common()),
            "by_stage": dict(Counter(r.stage for r in records).most_common()),
            "by_reason_stage": [{"reason": k[0], "stage": k[1], "count": n} for k, n in pairs.most_common()],
            "oldest_at": min(ats, default=None), "newest_at": max(ats, default=None)}


@dataclass
class ReplayReport:
    """What ``replay`` did: ``replayed`` records sent and acknowledged (the number that would be, with
    ``dry_run``), ``skipped`` those refused with why, ``sent`` where each replay landed."""

    topic: str
    selected: int
    dry_run: bool = False
    replayed: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"offset", "why"}
    sent: list[dict[str, Any]] = field(default_factory=list)  # {"offset" (DLQ), "partition", "at_offset"}

    def json(self) -> dict[str, Any]:
        return {"selected": self.selected, "replayed": self.replayed, "skipped": self.skipped,
                "topic": self.topic, "dry_run": self.dry_run}


def _refusal(rec: DlqRecord, events_topic: str) -> str | None:
    """Why ``rec`` cannot be replayed from its own bytes (None: it can)."""
    if not rec.readable:
        return "unreadable: not a dead-letter record, no original to send"
    if rec.topic != events_topic:
        return f"original is a record of {rec.topic}, not {events_topic}: republish the product's event instead"
    if rec.original is None:
        return "no original bytes in the dead-letter record"
    if rec.original_truncated:
        return "truncated"
    if rec.original_sha256 and hashlib.sha256(rec.original).hexdigest() != rec.original_sha256:
        return "original bytes do not match original_sha256"
    return None


def fetch_original(consumer: Any, rec: DlqRecord, timeout_s: float = 10.0) -> bytes | None:
    """The whole original of a truncated record, read at its topic/partition/offset (assign + seek)
    and checked against ``original_sha256``; None when it is no longer there."""
    from kafka import TopicPartition

    if rec.topic is None or rec.partition is None or rec.offset is None:
        return None
    tp = TopicPartition(rec.topic, rec.partition)
    consumer.assign([tp])
    if consumer.end_offsets([tp])[tp] <= rec.offset:
        return None
    consumer.seek(tp, rec.offset)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500, max_records=1).values():
            for r in batch:  # compaction or retention may have removed it: the first record is then later
                ok = r.offset == rec.offset and r.value is not None
                return r.value if ok and hashlib.sha256(r.value).hexdigest() == rec.original_sha256 else None
    return None


def replay(records: Sequence[DlqRecord], bootstrap: str, events_topic: str, *,
           client_options: Mapping[str, Any] | None = None, dry_run: bool = False,
           timeout_s: float = 60.0) -> ReplayReport:
    """Send each record's original bytes to ``events_topic`` with its original key and the two replay
    headers (``acks="all"``), in the order given; skip what ``_refusal`` refuses, fetching truncated
    originals from their topic. ``dry_run`` sends nothing (the broker is still read for truncated
    originals). Every send is checked: if one is not acknowledged, ``ReplayNotAcknowledged`` is raised
    with the report of those that were. See the module docstring for what a crash leaves behind."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError

    quiet_client_debug_logs()
    options = dict(client_options or {})
    report = ReplayReport(events_topic, len(records), dry_run=dry_run)
    todo: list[tuple[DlqRecord, bytes]] = []
    fetcher: Any = None
    try:
        for rec in records:
            why = _refusal(rec, events_topic)
            if why == "truncated":
                if fetcher is None:
                    fetcher = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                            **options)
                whole = fetch_original(fetcher, rec)
                if whole is None:
                    report.skipped.append({"offset": rec.dlq_offset, "why": (
                        f"original truncated ({rec.original_bytes} bytes) and no longer at "
                        f"{rec.topic}/{rec.partition}/{rec.offset}")})
                    continue
                todo.append((rec, whole))
            elif why is not None:
                report.skipped.append({"offset": rec.dlq_offset, "why": why})
            else:
                assert rec.original is not None
                todo.append((rec, rec.original))
    finally:
        if fetcher is not None:
            fetcher.close()
    if dry_run:
        report.replayed = len(todo)
        return report

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
    failed: list[dict[str, Any]] = []
    try:
        futures = []
        for rec, value in todo:
            key = rec.replay_key.encode() if rec.replay_key else None
            headers = [(HEADER_REPLAY_OF, rec.replay_of.encode()), (HEADER_REASON, rec.reason.encode())]
            try:
                futures.append((rec, producer.send(events_topic, key=key, value=value, headers=headers)))
            except KafkaError as exc:  # refused before sending (too large for the client, ...)
                failed.append({"offset": rec.dlq_offset, "error": repr(exc)})
        try:
            producer.flush(timeout=timeout_s)
        except KafkaError:
            pass  # each future below says whether its record was acknowledged
        for rec, fut in futures:
            try:
                meta = fut.get(timeout=timeout_s)
            except KafkaError as exc:
                failed.append({"offset": rec.dlq_offset, "error": repr(exc)})
                continue
            report.replayed += 1
            report.sent.append({"offset": rec.dlq_offset, "partition": meta.partition, "at_offset": meta.offset})
    finally:
        producer.close(timeout=timeout_s)
    if failed:
        raise ReplayNotAcknowledged(report, failed)
    return report
