"""A steady, seeded catalogue load for crash and soak runs, respecting the event contract.

Per product, new events carry strictly increasing versions (with random gaps); only repeats (a
redelivered record, resent byte for byte, possibly long after newer ones) arrive out of order.
Each upsert version points at its own image from a pool of distinct sample photos, so the
oracle knows which image (and so which vector) every version must hold.

The mix: new products, new versions of live products (another image), patches, deletes, revivals
of deleted products, repeats, and a few records bound for the DLQ (an image that does not exist, a
patch of an unknown or a deleted product, malformed JSON).

Publishing is at-least-once: a batch the broker did not acknowledge (it is restarting) is sent again
whole, in order, until it is, so the log may hold some records twice, never a gap.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.codecs import dumps
from streams.schema import SCHEMA_VERSION, parse_event

log = logging.getLogger("vitrine.chaos.load")
MISSING_IMAGE = "no-such-image.jpg"


@dataclass
class _Product:
    pid: str
    version: int = 0
    live: bool = False
    deleted: bool = False
    sent: list[bytes] = field(default_factory=list)


class CatalogueLoad:
    """Generates events; ``next_batch(n)`` returns ``[(key, raw)]`` in publish order."""

    def __init__(self, image_uris: Sequence[str], image_root: Path, *, prefix: str = "c", products: int = 200,
                 seed: int = 1, bad_fraction: float = 0.03) -> None:
        self.rng = random.Random(seed)
        self.image_uris = list(image_uris)
        self.image_root = Path(image_root)
        self.prefix = prefix
        self.pool = [_Product(f"{prefix}-{i:05d}") for i in range(products)]
        self.bad_fraction = bad_fraction
        self._n = 0
        self.generated = 0

    def image_uri(self, name: str) -> str:
        return f"file://{self.image_root / name}"

    def _upsert(self, p: _Product) -> dict[str, Any]:
        p.version += self.rng.randint(1, 3)
        p.live, p.deleted = True, False
        return {"type": "upsert", "product_id": p.pid, "version": p.version,
                "title": f"{p.pid} v{p.version}", "description": f"chaos load, version {p.version}",
                "brand": self.rng.choice(["acme", "north", "kite"]), "price": round(self.rng.uniform(5, 200), 2),
                "currency": "EUR", "in_stock": self.rng.random() < 0.8,
                "attributes": {"category": self.rng.choice(["shoes", "dress", "t-shirt", "pants"])},
                "images": self._images()}

    def _images(self) -> list[str]:
        """One image mostly; two or three for a third of the upserts (every image gets a row)."""
        n = 1 if self.rng.random() < 0.67 else self.rng.randint(2, 3)
        return self.rng.sample(self.image_uris, min(n, len(self.image_uris)))

    def _event(self) -> tuple[str, bytes]:
        r = self.rng.random()
        live = [p for p in self.pool if p.live]
        if r < self.bad_fraction:
            return self._bad()
        if r < 0.12 and any(p.sent for p in self.pool):  # a repeat, byte for byte, maybe long after
            p = self.rng.choice([p for p in self.pool if p.sent])
            return p.pid, self.rng.choice(p.sent[-6:])
        if not live or r < 0.35:
            p = self.rng.choice(self.pool)
            doc = self._upsert(p)  # new product, new version, or revival of a deleted one
        elif r < 0.75:
            p = self.rng.choice(live)
            p.version += self.rng.randint(1, 2)
            fields: dict[str, Any] = self.rng.choice([
                {"price": round(self.rng.uniform(5, 200), 2)}, {"in_stock": self.rng.random() < 0.5},
                {"title": f"{p.pid} patched v{p.version}"}, {"brand": "patched", "price": 9.99}])
            doc = {"type": "patch", "product_id": p.pid, "version": p.version, "fields": fields}
        elif r < 0.87:
            p = self.rng.choice(live)
            doc = self._upsert(p)
        else:
            p = self.rng.choice(live)
            p.version += 1
            p.live, p.deleted = False, True
            doc = {"type": "delete", "product_id": p.pid, "version": p.version}
        return p.pid, self._encode(p, doc)

    def _bad(self) -> tuple[str, bytes]:
        kind = self.rng.choice(["missing_image", "patch_unknown", "patch_deleted", "malformed"])
        if kind == "malformed":
            pid = f"{self.prefix}-bad-{self._n}"
            self._n += 1
            return pid, b'{"schema_version": 1, "type": "upsert", "product_id": "' + pid.encode()
        if kind == "patch_unknown":
            p = _Product(f"{self.prefix}-ghost-{self._n}")
            self._n += 1
            p.version = self.rng.randint(1, 5)
            return p.pid, self._encode(p, {"type": "patch", "product_id": p.pid, "version": p.version,
                                           "fields": {"price": 1.0}})
        deleted = [p for p in self.pool if p.deleted]
        if kind == "patch_deleted" and deleted:
            p = self.rng.choice(deleted)
            p.version += 1
            return p.pid, self._encode(p, {"type": "patch", "product_id": p.pid, "version": p.version,
                                           "fields": {"in_stock": False}})
        p = self.rng.choice(self.pool)
        was = (p.live, p.deleted)
        doc = self._upsert(p)
        doc["images"] = [self.image_uri(MISSING_IMAGE)]
        p.live, p.deleted = was  # this version never lands: the product stays as it was
        return p.pid, self._encode(p, doc)

    def _encode(self, p: _Product, doc: dict[str, Any]) -> bytes:
        doc = {"schema_version": SCHEMA_VERSION, "occurred_at": time.time(), **doc}
        parse_event(doc)  # the generator itself must follow the schema
        raw = dumps(doc)
        p.sent.append(raw)
        return raw

    def next_batch(self, n: int) -> list[tuple[str, bytes]]:
        self.generated += n
        return [self._event() for _ in range(n)]


def image_reason_for(image_root: Path, known: Mapping[str, str | None] | None = None):  # type: ignore[no-untyped-def]
    """The oracle's image rule for this load: a file under ``image_root`` that exists fetches;
    a missing one is ``not_found``; ``known`` decides by URI first (s3 objects, hostile images)."""
    root = Path(image_root).resolve()
    extra = dict(known or {})

    def reason(uri: str) -> str | None:
        if uri in extra:
            return extra[uri]
        if uri.startswith("file://"):
            path = Path(uri[7:])
            return None if path.resolve().is_relative_to(root) and path.is_file() else "not_found"
        return None

    return reason


class Publisher(threading.Thread):
    """Publishes ``load`` at ``rate`` events/s until ``stop()``; resends unacknowledged batches whole."""

    def __init__(self, bootstrap: str, topic: str, load: CatalogueLoad, rate: float, *, tick_s: float = 0.25,
                 client_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(name="chaos-publisher", daemon=True)
        self.bootstrap, self.topic, self.load, self.rate, self.tick = bootstrap, topic, load, rate, tick_s
        self.options = dict(client_options or {})
        self._halt = threading.Event()
        self.sent = 0  # records acknowledged (resends included)
        self.resends = 0
        self.error: BaseException | None = None

    def stop(self, timeout: float = 120) -> None:
        self._halt.set()
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError("publisher did not stop")
        if self.error is not None:
            raise RuntimeError(f"publisher failed: {self.error!r}") from self.error

    def _producer(self) -> Any:
        from streams.publisher import CatalogPublisher

        return CatalogPublisher(self.bootstrap, self.topic, client_options={
            "request_timeout_ms": 5000, "retry_backoff_ms": 200, "reconnect_backoff_max_ms": 1000,
            "max_block_ms": 5000, **self.options}).start()

    def publish(self, batch: list[tuple[str, bytes]]) -> None:
        """Send ``batch`` in order until the broker acknowledged all of it (maybe some records twice)."""
        from streams.exceptions import PublishError

        tries = 0
        while True:
            tries += 1
            try:
                if self._pub is None:
                    self._pub = self._producer()
                for key, raw in batch:
                    self._pub.send_raw(key, raw)
                self._pub.flush(timeout=10)
                self.sent += len(batch)
                return
            except (PublishError, Exception) as exc:  # the broker is restarting: resend the whole batch
                log.info("publish failed (%s); resending %d records", type(exc).__name__, len(batch))
                self.resends += 1
                try:
                    if self._pub is not None:
                        self._pub._producer.close(timeout=1)
                except Exception:  # noqa: BLE001
                    pass
                self._pub = None
                if self._halt.is_set() and tries > 60:
                    raise
                time.sleep(1.0)  # backoff before the next try, not a synchronisation

    def run(self) -> None:
        self._pub: Any = None
        try:
            per_tick = self.rate * self.tick
            carry = 0.0
            next_at = time.monotonic()
            while not self._halt.is_set():
                carry += per_tick
                n, carry = int(carry), carry - int(carry)
                if n:
                    self.publish(self.load.next_batch(n))
                next_at += self.tick
                self._halt.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc
        finally:
            if self._pub is not None:
                try:
                    self._pub._producer.close(timeout=5)
                except Exception:  # noqa: BLE001
                    pass

