"""``BatchSource`` on the real Apache Kafka broker: what it commits, and what a rebalance hands over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.admin import committed_offsets
from streams.source import BatchSource, Record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def make_topic(bootstrap: str, name: str, partitions: int, per_partition: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for p in range(partitions):
        for i in range(per_partition):
            producer.send(name, key=f"k{p}-{i}".encode(), value=f"{p}:{i}".encode(), partition=p)
    producer.flush()
    producer.close()


class Reader:
    """A source whose handler only collects what it is handed; the test decides what to acknowledge."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.got: list[Record] = []
        self.source = BatchSource(topic, bootstrap, group, self._handle, session_timeout_s=6.0,
                                  commit_interval_s=3600)  # commits only when the test asks
        self._task: asyncio.Task[None] | None = None

    async def _handle(self, rec: Record) -> None:
        self.got.append(rec)

    async def start(self) -> Reader:
        await self.source.start()
        self._task = asyncio.ensure_future(self.source.read_loop())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.source.stop()

    def of(self, partition: int) -> list[Record]:
        return [r for r in self.got if r.partition == partition]


async def until(cond: Callable[[], Any], timeout: float = 60, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_commits_only_the_acknowledged_prefix_and_a_restart_resumes_there(kafka: Any, unique_name: Any) -> None:
    topic, group = unique_name("src"), unique_name("grp")
    make_topic(kafka.address, topic, 1, 10)

    async def scenario() -> None:
        a = await Reader(kafka.address, topic, group).start()
        await until(lambda: len(a.got) == 10, what="10 records")
        assert [r.offset for r in a.got] == list(range(10))
        for i in (0, 1, 2, 5, 6):  # 3 and 4 are still in flight
            a.got[i].ack()
        assert await a.source.commit() == {next(iter(a.source.assignment())): 3}
        assert committed_offsets(kafka.address, group, topic) == {0: 3}
        assert await a.source.commit() == {}  # nothing new acknowledged: no commit
        a.got[3].ack()
        a.got[4].ack()
        await a.source.commit()
        assert committed_offsets(kafka.address, group, topic) == {0: 7}
        await a.stop()  # 7..9 never acknowledged

        b = await Reader(kafka.address, topic, group).start()
        await until(lambda: len(b.got) == 3, what="the unacknowledged records again")
        assert [r.value for r in b.got] == [b"0:7", b"0:8", b"0:9"]
        for r in b.got:
            r.ack()
        await b.stop()  # stop commits what was acknowledged
        assert committed_offsets(kafka.address, group, topic) == {0: 10}

    asyncio.run(scenario())


def test_a_revoked_partition_moves_with_its_acknowledged_prefix_and_late_acks_are_dropped(
        kafka: Any, unique_name: Any) -> None:
    topic, group = unique_name("src"), unique_name("grp")
    make_topic(kafka.address, topic, 2, 20)

    async def scenario() -> None:
        a = await Reader(kafka.address, topic, group).start()
        await until(lambda: len(a.got) == 40, what="40 records")
        for p in (0, 1):
            for r in a.of(p)[:5]:
                r.ack()  # 5 done per partition, 15 in flight

        b = await Reader(kafka.address, topic, group).start()  # the group now splits the partitions
        await until(lambda: len(a.source.assignment()) == 1 and len(b.source.assignment()) == 1, what="a rebalance")
        moved = next(iter(b.source.assignment())).partition
        kept = 1 - moved
        # the revoked partition was committed at its acknowledged prefix on the way out ...
        assert committed_offsets(kafka.address, group, topic).get(moved) == 5
        # ... so its new owner starts there: the 15 records in flight at the old owner are read again
        await until(lambda: len(b.got) == 15, what="the moved partition's unacknowledged records")
        assert [r.offset for r in b.got] == list(range(5, 20))
        # the old owner finishing its stale copies commits nothing for the partition it lost
        for r in a.of(moved):
            r.ack()
        assert await a.source.commit() == {}
        # the partition it kept commits as usual (it was re-assigned: its records are read again from 5)
        await until(lambda: len(a.of(kept)) >= 35, what="the kept partition read again after the rebalance")
        for r in a.of(kept):
            r.ack()
        for r in b.got:
            r.ack()
        await a.source.commit()
        await b.source.commit()
        assert committed_offsets(kafka.address, group, topic) == {0: 20, 1: 20}
        await a.stop()
        await b.stop()

    asyncio.run(scenario())
