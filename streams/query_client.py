"""``QueryClient``: request/reply search over Kafka.

A request goes to ``search.requests`` keyed by its ``request_id``; the query worker replies on
``search.responses`` with the same id. The client reads every partition of the responses topic
from its end (no consumer group, so many clients never rebalance each other) and matches replies
by id; replies for other clients are skipped. ``search`` raises ``QueryTimeout`` after ``timeout``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from streams.codecs import dumps
from streams.exceptions import QueryTimeout


class QueryClient:
    def __init__(
        self, bootstrap: str, requests_topic: str, responses_topic: str,
        *, client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._requests = requests_topic
        self._responses = responses_topic
        self._options = dict(client_options or {})
        self._producer: Any = None
        self._consumer: Any = None
        self._early: dict[str, dict[str, Any]] = {}

    def start(self, timeout: float = 30.0) -> QueryClient:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        self._producer = KafkaProducer(
            bootstrap_servers=self._bootstrap, acks=1, linger_ms=0,
            key_serializer=lambda k: k.encode(), **self._options,
        )
        self._consumer = KafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="latest", **self._options,
        )
        deadline = time.monotonic() + timeout
        parts = None
        while not parts:
            parts = self._consumer.partitions_for_topic(self._responses)
            if not parts:
                if time.monotonic() > deadline:
                    raise QueryTimeout(f"topic {self._responses} not found")
                time.sleep(0.2)
        tps = [TopicPartition(self._responses, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before any request is sent
            self._consumer.position(tp)
        return self

    def search(self, request: Mapping[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Send one request (a ``SearchRequest``-shaped dict) and wait for its reply."""
        if self._producer is None:
            raise RuntimeError("QueryClient: call start() first")
        req = dict(request)
        req.setdefault("request_id", uuid.uuid4().hex)
        req.setdefault("schema_version", 1)
        rid = str(req["request_id"])
        self._producer.send(self._requests, key=rid, value=dumps(req))
        self._producer.flush()
        return self.wait(rid, timeout)

    def wait(self, request_id: str, timeout: float) -> dict[str, Any]:
        if request_id in self._early:
            return self._early.pop(request_id)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for records in self._consumer.poll(timeout_ms=int(min(left, 0.5) * 1000)).values():
                for rec in records:
                    try:
                        doc = json.loads(rec.value)
                    except ValueError:
                        continue
                    rid = str(doc.get("request_id"))
                    if rid == request_id:
                        return doc
                    if len(self._early) < 10_000:
                        self._early[rid] = doc
            if request_id in self._early:
                return self._early.pop(request_id)
        raise QueryTimeout(f"no reply to {request_id} within {timeout:.1f}s")

    def close(self) -> None:
        for c in (self._producer, self._consumer):
            if c is not None:
                c.close()
        self._producer = self._consumer = None
