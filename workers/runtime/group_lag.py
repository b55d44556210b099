"""The lag of the consumer groups that read a topic, as the broker sees it, measured by the worker that
writes the topic.

Why here and not only in the reader: a reader exports the lag of the partitions it owns
(``vitrine_consumer_lag``), so a reader that is stopped, stalled (its loop blocked, SIGSTOP), crash-looping
or scaled to zero exports nothing, and an alert on its lag can never fire for the one case it exists for.
The broker keeps the group's committed offsets whoever is alive, and the writer of the topic is alive
(it is what makes the lag grow). So the ingest worker, which writes its model's feature log, also
exports the lag of every index group of that model: log end offsets minus the group's committed
offsets, summed over the topic's partitions (a partition the group never committed counts from the
log start: the readers start from the earliest offset).

``GroupLagProbe.refresh()`` asks the broker (one group listing, one offset fetch per matching group,
one end-offset and one start-offset request): a background loop calls it every few seconds and the
metrics collector reads the last result at scrape time, so a scrape never waits for the broker. A
refresh that fails keeps nothing: the series go stale after ``stale_after_s`` rather than repeat an
old value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

__all__ = ["GroupLagProbe", "run_probe"]

log = logging.getLogger("vitrine")


class GroupLagProbe:
    """Lag of the groups named ``group_prefix*`` on ``topic``; ``security`` as for ``BatchSource``."""

    def __init__(self, bootstrap: str, topic: str, group_prefix: str, *, stale_after_s: float = 30.0,
                 **security: Any) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_prefix = group_prefix
        self.stale_after_s = stale_after_s
        self._security = security
        self._admin: Any = None
        self._consumer: Any = None
        self._lag: dict[str, int] = {}
        self._at = 0.0  # time.monotonic() of the last successful refresh

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        from streams.source import _aiokafka_security

        security = _aiokafka_security(self._security)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000, **security)
        await self._admin.start()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                          request_timeout_ms=5000, **security)
        await self._consumer.start()

    async def stop(self) -> None:
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    @property
    def started(self) -> bool:
        return self._admin is not None and self._consumer is not None

    async def refresh(self) -> dict[str, int]:
        """{group: records past its committed offsets on ``topic``} now, from the broker."""
        from aiokafka.structs import TopicPartition

        if not self.started:
            raise RuntimeError("call start() first")
        groups = sorted(g[0] for g in await self._admin.list_consumer_groups() if g[0].startswith(self.group_prefix))
        described = await self._admin.describe_topics([self.topic])
        parts = {int(p["partition"] if "partition" in p else p["partition_index"])
                 for t in described if t.get("topic", t.get("name")) == self.topic and not t.get("error_code")
                 for p in t.get("partitions", [])}
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        lag: dict[str, int] = {}
        if tps and groups:
            ends = await self._consumer.end_offsets(tps)
            starts = await self._consumer.beginning_offsets(tps)
            for group in groups:
                committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
                lag[group] = sum(max(0, ends[tp] - _offset(committed.get(tp), starts[tp])) for tp in tps)
        self._lag, self._at = lag, time.monotonic()
        return lag

    def lag(self) -> dict[str, int]:
        """The last refresh's result, or nothing when it is older than ``stale_after_s``."""
        return dict(self._lag) if time.monotonic() - self._at <= self.stale_after_s else {}


def _offset(meta: Any, start: int) -> int:
    offset = getattr(meta, "offset", -1)
    return offset if offset is not None and offset >= 0 else start


async def run_probe(probe: GroupLagProbe, every_s: float) -> None:
    """Start ``probe`` and refresh it every ``every_s`` seconds until cancelled; a failure (broker away,
    a broker without the group APIs) is logged once per change of error and tried again."""
    last_error = ""
    try:
        while True:
            try:
                if not probe.started:
                    await probe.start()
                await probe.refresh()
                last_error = ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if repr(exc) != last_error:
                    log.warning("lag of the %s* groups on %s: %r (trying again)", probe.group_prefix, probe.topic, exc)
                    last_error = repr(exc)
                await probe.stop()
            await asyncio.sleep(every_s)
    finally:
        await probe.stop()
