"""What the workers carry of a consumed record, and the dead-letter record they write for it.

A ``Delivery`` is one record of the worker's input topic: its bytes, where it came from, its key and
the ``ack`` that lets ``streams.source.BatchSource`` commit past it. The ingest worker's ``Work`` is
a ``Delivery`` with what the pipeline learns of it; the index writer takes ``Delivery`` as it is.

A dead-letter record (``catalog.dlq``) carries the original bytes (base64), the stage and the
reason, and the topic/partition/offset of the original: every event ends indexed, superseded, or
here (guarantee 1). ``vitrine dlq`` reads these records.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.codecs import SourceRef, decode_key, dumps
from streams.source import Record
from workers.exceptions import DeadLetter

__all__ = ["DLQ_MAX_ORIGINAL_BYTES", "DeadLetterWatch", "Delivery", "dead_letter_record"]

log = logging.getLogger("vitrine")


@dataclass
class Delivery:
    """One consumed record; ``ack()`` once what it caused was acknowledged downstream."""

    raw: bytes
    source: SourceRef
    key: str | None
    ack: Callable[[], Any]

    @classmethod
    def of(cls, rec: Record, **fields: Any) -> Any:
        """The delivery (or subclass) for one record read by ``streams.source.BatchSource``."""
        return cls(raw=rec.value or b"", source=SourceRef(rec.topic, rec.partition, rec.offset),
                   key=decode_key(rec.key), ack=rec.ack, **fields)


#: Most original bytes a dead-letter record carries. Base64 grows them by 4/3, and a record must stay
#: under the broker's 1 MB message limit, or the DLQ send itself fails and the event is accounted
#: nowhere. A longer original keeps its head, its length and its SHA-256; the whole event is still
#: on its topic at ``topic``/``partition``/``offset``.
DLQ_MAX_ORIGINAL_BYTES = 512 * 1024


def dead_letter_record(delivery: Delivery, err: DeadLetter, worker: str, product_id: str | None = None) -> bytes:
    """The dead-letter record: original bytes (base64), stage, reason, and where the event came from."""
    original = delivery.raw[:DLQ_MAX_ORIGINAL_BYTES]
    return dumps({
        "reason": err.reason, "stage": err.stage, "message": str(err)[:1000], "worker": worker,
        "topic": delivery.source.topic, "partition": delivery.source.partition, "offset": delivery.source.offset,
        "key": (delivery.key or "")[:256] or None, "product_id": product_id,
        "original_b64": base64.b64encode(original).decode("ascii"), "original_bytes": len(delivery.raw),
        "original_truncated": len(original) < len(delivery.raw),
        "original_sha256": hashlib.sha256(delivery.raw).hexdigest(), "at": time.time(),
    })


class DeadLetterWatch:
    """Says at WARNING when a worker dead-letters everything it reads (a misconfiguration, such as
    a file root that forbids every image, looks like that): after ``window`` events in a row went
    to the DLQ, once per ``every_s`` seconds, with the commonest reason among them."""

    def __init__(self, worker: str, *, window: int = 20, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.worker = worker
        self.window = window
        self.every_s = every_s
        self._clock = clock
        self._streak: dict[str, int] = {}
        self._run = 0
        self._warned_at: float | None = None
        self.warnings = 0

    def passed(self) -> None:
        """An event was indexed, emitted or superseded: the streak ends."""
        self._run = 0
        self._streak.clear()

    def dead_lettered(self, reason: str) -> None:
        self._run += 1
        self._streak[reason] = self._streak.get(reason, 0) + 1
        now = self._clock()
        if self._run >= self.window and (self._warned_at is None or now - self._warned_at >= self.every_s):
            top = max(self._streak, key=self._streak.__getitem__)
            log.warning("%s worker: the last %d events all went to the dead-letter topic (%d of them: %s); "
                        "check its settings", self.worker, self._run, self._streak[top], top)
            self._warned_at = now
            self.warnings += 1
