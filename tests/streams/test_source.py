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

pytestmark = [pytest.mark.timeout(180)]  # only the broker tests are `integration`: the scripted one runs in `make unit`


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


@pytest.mark.integration
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


@pytest.mark.integration
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


class _Msg:
    def __init__(self, tp: Any, offset: int) -> None:
        self.topic, self.partition, self.offset = tp.topic, tp.partition, offset
        self.key, self.value = None, b"x"


class _ScriptedConsumer:
    """aiokafka's consumer reduced to what ``BatchSource.read_loop`` calls, returning scripted fetches,
    so that a rebalance can land at an exact point of a batch (not reproducible on a live broker)."""

    def __init__(self, tps: set[Any], fetches: list[dict[Any, list[_Msg]]]) -> None:
        self.tps, self.fetches, self.commits = tps, fetches, []  # type: ignore[var-annotated]

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[_Msg]]:
        if self.fetches:
            return self.fetches.pop(0)
        await asyncio.sleep(3600)
        return {}

    def assignment(self) -> set[Any]:
        return self.tps

    async def commit(self, offsets: dict[Any, Any]) -> None:
        self.commits.append({tp.partition: meta.offset for tp, meta in offsets.items()})


def test_a_batch_fetched_before_a_rebalance_is_not_handed_out_after_it() -> None:
    """Partition 1's records 0-4 were handed out and not acknowledged; the group then revokes both
    partitions and hands them straight back while the next fetched batch (records 5-9 of each) is
    being handed out. Handing out partition 1's 5-9 then would start its tracking at 5, and their
    acknowledgement would commit 10 over the never-acknowledged 0-4: a loss on the next crash."""
    from aiokafka.structs import TopicPartition

    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    fetches = [{tp0: [_Msg(tp0, o) for o in range(5)], tp1: [_Msg(tp1, o) for o in range(5)]},
               {tp0: [_Msg(tp0, o) for o in range(5, 10)], tp1: [_Msg(tp1, o) for o in range(5, 10)]},
               {tp0: [_Msg(tp0, o) for o in range(10)], tp1: [_Msg(tp1, o) for o in range(10)]}]  # read again
    consumer = _ScriptedConsumer({tp0, tp1}, fetches)
    handed: list[tuple[int, int]] = []
    rebalanced = asyncio.Event()

    async def scenario() -> None:
        async def handle(rec: Record) -> None:
            handed.append((rec.partition, rec.offset))
            if (rec.partition, rec.offset) == (0, 5) and not rebalanced.is_set():
                rebalanced.set()
                await source._revoked({tp0, tp1})  # what aiokafka's listener does; both come straight back
            elif rebalanced.is_set():
                rec.ack()  # everything handed out after the rebalance is done at once

        source = BatchSource("t", "unused:0", "g", handle)
        source._consumer = consumer
        reader = asyncio.ensure_future(source.read_loop())
        await until(lambda: len(handed) >= 10 + 1 + 20, what="the scripted fetches")
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        assert handed[10] == (0, 5) and handed[11:] == [(0, o) for o in range(10)] + [(1, o) for o in range(10)]
        assert await source.commit() == {tp0: 10, tp1: 10}  # from the records read again, not the stale ones

    asyncio.run(scenario())


@pytest.mark.integration
def test_progress_gives_the_lag_past_the_commit_and_what_is_in_flight(kafka: Any, unique_name: Any) -> None:
    """What ``vitrine_consumer_lag`` and ``vitrine_in_flight_events`` export (``workers.metrics``)."""
    from prometheus_client import generate_latest

    from workers.metrics import watch_source

    topic, group = unique_name("lag"), unique_name("grp")
    make_topic(kafka.address, topic, 2, 6)

    async def scenario() -> None:
        a = await Reader(kafka.address, topic, group).start()
        await until(lambda: len(a.got) == 12, what="12 records")
        for r in a.of(0)[:4]:
            r.ack()
        await a.source.commit()
        watch_source(a.source, "test-worker")
        await until(lambda: all(p.end == 6 for p in a.source.progress()), what="the log ends")
        by_part = {p.partition: p for p in a.source.progress()}
        assert (by_part[0].committed, by_part[0].unacknowledged, by_part[0].lag) == (4, 2, 2)
        assert (by_part[1].committed, by_part[1].unacknowledged, by_part[1].lag) == (0, 6, 6)
        text = generate_latest().decode()
        assert f'vitrine_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} 2.0' in text
        assert 'vitrine_in_flight_events{worker="test-worker"} 8.0' in text
        await a.stop()

    asyncio.run(scenario())
