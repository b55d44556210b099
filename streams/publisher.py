"""``CatalogPublisher``: how a catalogue system puts product events on ``catalog.events``.

Contract:
- Keyed by product id, so one product's events stay in order on one partition.
- ``acks=all`` with retries and idempotence off-by-default-safe settings: ``flush()`` returns only
  when the broker acknowledged every event sent so far, else raises ``PublishError``.
- Events are validated before they are sent: a catalogue system learns about a bad event at once,
  not from the dead-letter topic.
- Optional: local image files are uploaded to an S3/MinIO bucket first and referenced as
  ``s3://bucket/key`` (content-addressed keys, so a re-upload is a no-op).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from streams.codecs import dumps
from streams.exceptions import PublishError
from streams.schema import SCHEMA_VERSION, parse_event


class CatalogPublisher:
    """Publishes validated product events. Construct, ``start()``, publish, ``flush()``, ``close()``."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_options: Mapping[str, Any] | None = None,
        s3: Any | None = None,
        bucket: str | None = None,
        linger_ms: int = 5,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._options = dict(client_options or {})
        self._s3 = s3  # a minio.Minio client, used only for upload_image()
        self._bucket = bucket
        self._linger_ms = linger_ms
        self._producer: Any = None
        self._pending: list[Any] = []

    def start(self) -> CatalogPublisher:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            retries=10,
            linger_ms=self._linger_ms,
            batch_size=256 * 1024,
            max_in_flight_requests_per_connection=1,  # keep per-key order across retries
            key_serializer=lambda k: k.encode(),
            **self._options,
        )
        return self

    def _require(self) -> Any:
        if self._producer is None:
            raise RuntimeError("CatalogPublisher: call start() first")
        return self._producer

    def send_raw(self, key: str | None, value: bytes) -> None:
        """Send bytes as they are (no validation): for replaying and for testing the dead-letter path."""
        self._pending.append(self._require().send(self._topic, key=key, value=value))

    def _send(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc.setdefault("schema_version", SCHEMA_VERSION)
        doc.setdefault("occurred_at", time.time())
        parse_event(doc)  # raises InvalidEvent naming the field
        self.send_raw(doc["product_id"], dumps(doc))
        return doc

    def upsert(
        self,
        product_id: str,
        version: int,
        *,
        title: str,
        price: float,
        images: Iterable[str],
        description: str = "",
        brand: str = "",
        currency: str = "EUR",
        in_stock: bool = True,
        attributes: Mapping[str, str] | None = None,
        occurred_at: float | None = None,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": "upsert", "product_id": product_id, "version": version, "title": title,
            "description": description, "brand": brand, "price": price, "currency": currency,
            "in_stock": in_stock, "attributes": dict(attributes or {}), "images": list(images),
        }
        if occurred_at is not None:
            doc["occurred_at"] = occurred_at
        return self._send(doc)

    def patch(self, product_id: str, version: int, occurred_at: float | None = None, **fields: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "patch", "product_id": product_id, "version": version, "fields": fields}
        if occurred_at is not None:
            doc["occurred_at"] = occurred_at
        return self._send(doc)

    def delete(self, product_id: str, version: int, occurred_at: float | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "delete", "product_id": product_id, "version": version}
        if occurred_at is not None:
            doc["occurred_at"] = occurred_at
        return self._send(doc)

    def upload_image(self, path: Path) -> str:
        """Upload a local image to the bucket (content-addressed key) and return its ``s3://`` URI."""
        if self._s3 is None or not self._bucket:
            raise RuntimeError("CatalogPublisher: give s3= and bucket= to upload images")
        data = Path(path).read_bytes()
        key = f"images/{hashlib.sha256(data).hexdigest()[:32]}{Path(path).suffix.lower()}"
        if not self._s3.bucket_exists(self._bucket):
            self._s3.make_bucket(self._bucket)
        import io

        self._s3.put_object(self._bucket, key, io.BytesIO(data), len(data), content_type="image/jpeg")
        return f"s3://{self._bucket}/{key}"

    def flush(self, timeout: float = 60.0) -> int:
        """Wait until the broker acknowledged every event sent so far; return how many."""
        from kafka.errors import KafkaError

        producer = self._require()
        try:
            producer.flush(timeout=timeout)
        except KafkaError as exc:  # kafka-python raises from flush when the broker refused a batch
            pending, self._pending = self._pending, []
            raise PublishError(f"{len(pending)} events sent, the broker refused some: {exc!r}") from exc
        pending, self._pending = self._pending, []
        failed = [f for f in pending if f.failed() or not f.is_done]
        if failed:
            exc = failed[0].exception if failed[0].is_done else "not acknowledged in time"
            raise PublishError(f"{len(failed)} of {len(pending)} events not acknowledged: {exc}")
        return len(pending)

    def close(self) -> None:
        if self._producer is not None:
            try:
                self.flush()
            finally:
                self._producer.close()
                self._producer = None
