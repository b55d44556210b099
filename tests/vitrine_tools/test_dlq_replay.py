"""``vitrine dlq list`` / ``replay``: on the session's Apache Kafka broker (``kafka`` fixture, a fresh
topic set per test), dead-letter records built by ``workers.dlq.dead_letter_record`` are counted by
reason, and a replay sends exactly the selected records' original bytes, keys and replay headers back
to catalog.events (read back with kafka-python), skipping what cannot be replayed.

The records' ``at`` is set to fixed times after ``dead_letter_record`` built them, so ``--since`` has
something deterministic to cut.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from streams.admin import ensure_topics
from streams.codecs import SourceRef
from streams.topics import TopicSet
from vitrine_tools import dlq_cli
from vitrine_tools.dlq import HEADER_REASON, HEADER_REPLAY_OF, parse_record, parse_since, select
from workers.dlq import DLQ_MAX_ORIGINAL_BYTES, Delivery, dead_letter_record
from workers.exceptions import DeadLetter


def vitrine_dlq(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``vitrine dlq ARGV`` through its parser; return the exit status, stdout and stderr."""
    parser = argparse.ArgumentParser(prog="vitrine")
    dlq_cli.register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["dlq", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])


def read_from(bootstrap: str, topic: str, start: dict[int, int], timeout: float = 30) -> list[Any]:
    """Records of ``topic`` from offsets ``start`` ({partition: offset}) to the end offsets as they are now."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or set())]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, start.get(tp.partition, 0))
        ends = c.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"timed out reading {topic}"
            for batch in c.poll(timeout_ms=500).values():
                out += batch
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or set())]
        return {tp.partition: off for tp, off in c.end_offsets(tps).items()}
    finally:
        c.close()


@dataclass
class Dlq:
    """A topic set with events on catalog.events and their dead letters on catalog.dlq."""

    bootstrap: str
    topics: TopicSet
    originals: dict[int, tuple[str, bytes]]  # DLQ offset -> (expected replay key, original bytes)
    events_end: dict[int, int]  # end offsets of catalog.events once the fixture wrote it


BIG = b'{"type":"upsert","pad":"' + b"x" * (DLQ_MAX_ORIGINAL_BYTES + 50_000) + b'"}'
BIG_OTHER = b'{"type":"upsert","pad":"' + b"y" * (DLQ_MAX_ORIGINAL_BYTES + 10_000) + b'"}'

#: (reason, stage, key, product_id, original bytes, at, on the events topic?) of each dead letter
CASES: list[tuple[str, str, str | None, str | None, bytes, float, bool]] = [
    ("not_found", "fetch", "p1", "p1", b'{"type":"upsert","product_id":"p1","version":3}', 1000.0, True),
    ("not_found", "fetch", None, "p2", b'{"type":"upsert","product_id":"p2","version":1}', 2000.0, True),
    ("forbidden_path", "fetch", "p3", "p3", b'{"type":"upsert","product_id":"p3","version":7}', 1500.0, True),
    ("malformed_json", "decode", "p4", None, b'{"type": "ups', 2500.0, True),
    ("too_large", "fetch", "p5", "p5", BIG, 3000.0, True),
]


def dead_letter(reason: str, stage: str, key: str | None, product_id: str | None, raw: bytes, source: SourceRef,
                at: float, worker: str = "ingest") -> bytes:
    doc = json.loads(dead_letter_record(Delivery(raw, source, key, lambda: None),
                                        DeadLetter(stage, reason, f"{reason} at {stage}"), worker, product_id))
    doc["at"] = at
    return json.dumps(doc).encode()


@pytest.fixture
def dlq(kafka: Any, unique_name: Any, monkeypatch: pytest.MonkeyPatch) -> Dlq:
    """CASES published to catalog.events, and their dead letters on catalog.dlq at offsets 0..4; then at 5 a
    truncated record whose topic/offset no longer holds its original, at 6 a record that is not JSON, at 7
    one dead-lettered by the index writer (its original is on index.enriched), at 8 a fetch-stage
    ``unreadable`` (p1's original again)."""
    from kafka import KafkaProducer

    topics = TopicSet(unique_name("dlq"), 1).for_model("0123456789")
    ensure_topics(kafka.address, topics)
    monkeypatch.setenv("VITRINE_KAFKA_BOOTSTRAP", kafka.address)
    monkeypatch.setenv("VITRINE_TOPIC_PREFIX", topics.prefix)
    producer = KafkaProducer(bootstrap_servers=kafka.address, acks="all", max_request_size=2_000_000)
    try:
        sources = []
        for _, _, key, _, raw, _, _ in CASES:
            meta = producer.send(topics.events, key=(key or "x").encode(), value=raw).get(timeout=30)
            sources.append(SourceRef(topics.events, meta.partition, meta.offset))
        values = [dead_letter(r, s, k, pid, raw, src, at) for (r, s, k, pid, raw, at, _), src in zip(CASES, sources)]
        # its original was BIG_OTHER, but offset 0 of the events topic now holds something else
        values.append(dead_letter("too_large", "fetch", "p6", "p6", BIG_OTHER, sources[0], 3100.0))
        values.append(b"\x00not a dead letter")
        values.append(dead_letter("patch_of_unknown_product", "index", "p7", None, b'{"op":"patch"}',
                                  SourceRef(topics.enriched, 0, 0), 3200.0, worker="index"))
        # the fetch stage's own "unreadable" (a file the worker could not read): a real dead letter
        values.append(dead_letter("unreadable", "fetch", "p1", "p1", CASES[0][4], sources[0], 3300.0))
        offsets = [producer.send(topics.dlq, key=b"k", value=v).get(timeout=30).offset for v in values]
    finally:
        producer.close()
    assert offsets == list(range(9))
    originals = {i: (str(key or pid), raw) for i, (_, _, key, pid, raw, _, _) in enumerate(CASES)}
    return Dlq(kafka.address, topics, originals, end_offsets(kafka.address, topics.events))


def replayed(d: Dlq) -> list[Any]:
    """What replays put on catalog.events after the fixture wrote it."""
    return read_from(d.bootstrap, d.topics.events, d.events_end)


def headers(rec: Any) -> dict[str, bytes]:
    return dict(rec.headers or [])


# -- without a broker --------------------------------------------------------------------------------------


def test_parse_since_takes_epoch_seconds_and_iso_times() -> None:
    assert parse_since("1718000000") == 1718000000.0
    assert parse_since("1970-01-01T00:30:00Z") == 1800.0
    assert parse_since("1970-01-01T00:30:00") == 1800.0  # no zone: UTC
    assert parse_since("1970-01-01T01:30:00+01:00") == 1800.0
    with pytest.raises(ValueError):
        parse_since("yesterday")


def test_a_record_that_is_not_a_dead_letter_is_listed_as_unreadable() -> None:
    for value in (b"{not json", b'["a list"]', b'{"no": "reason"}', None):
        rec = parse_record("t.catalog.dlq", 0, 9, value, 5_000)
        assert (rec.reason, rec.stage, rec.at, rec.original, rec.readable) == (
            "unreadable", "dlq_record", 5.0, None, False)
    assert [r.dlq_offset for r in select([parse_record("t", 0, 1, b"x", 0)], reason="unreadable")] == [1]


def test_replay_requires_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        vitrine_dlq(capsys, "replay")
    assert exc.value.code == 2 and "--reason" in capsys.readouterr().err


# -- on the broker ------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_list_counts_by_reason_and_stage(dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = vitrine_dlq(capsys, "list", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["topic"] == dlq.topics.dlq
    summary = doc["summary"]
    assert summary["total"] == 9
    assert summary["by_reason"] == {"not_found": 2, "too_large": 2, "unreadable": 2, "forbidden_path": 1,
                                    "malformed_json": 1, "patch_of_unknown_product": 1}
    assert summary["by_stage"] == {"fetch": 6, "decode": 1, "dlq_record": 1, "index": 1}
    assert summary["oldest_at"] == 1000.0 and summary["newest_at"] > 3300  # the not-JSON one: its Kafka time
    assert [r["offset"] for r in doc["records"]] == list(range(9))

    code, out, _ = vitrine_dlq(capsys, "list", "--reason", "not_found", "--since", "1970-01-01T00:25:00Z")
    print(out)
    assert code == 0 and f"{dlq.topics.dlq}: 1 records" in out
    assert ["1", "not_found", "fetch"] in [line.split() for line in out.splitlines()]
    assert " p2 " in out and " p1 " not in out


@pytest.mark.integration
def test_replay_sends_exactly_that_reason_with_original_bytes_keys_and_headers(
        dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = vitrine_dlq(capsys, "replay", "--reason", "not_found")
    print(out, err)
    assert code == 0
    assert last_json(out) == {"selected": 2, "replayed": 2, "skipped": [], "topic": dlq.topics.events,
                              "dry_run": False}
    got = replayed(dlq)
    assert [(r.key, r.value) for r in got] == [(k.encode(), v) for k, v in (dlq.originals[0], dlq.originals[1])]
    assert [headers(r) for r in got] == [
        {HEADER_REPLAY_OF: f"{dlq.topics.dlq}/0/{i}".encode(), HEADER_REASON: b"not_found"} for i in (0, 1)]


@pytest.mark.integration
def test_since_stage_and_limit_select(dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = vitrine_dlq(capsys, "replay", "--reason", "not_found", "--since", "1800")
    assert code == 0 and last_json(out)["replayed"] == 1
    code, out, _ = vitrine_dlq(capsys, "replay", "--reason", "all", "--stage", "fetch", "--since", "1200",
                               "--limit", "2")
    assert code == 0 and last_json(out)["replayed"] == 2  # the two oldest at or after 1200: p3 (1500), p2 (2000)
    got = replayed(dlq)
    assert [(r.key, headers(r)[HEADER_REPLAY_OF].rsplit(b"/", 1)[1]) for r in got] == [
        (b"p2", b"1"), (b"p3", b"2"), (b"p2", b"1")]
    assert headers(got[1])[HEADER_REASON] == b"forbidden_path"


@pytest.mark.integration
def test_truncated_original_is_fetched_from_its_topic_or_skipped(dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = vitrine_dlq(capsys, "replay", "--reason", "too_large")
    print(out, err)
    summary = last_json(out)
    assert code == 0 and (summary["selected"], summary["replayed"]) == (2, 1)
    assert [s["offset"] for s in summary["skipped"]] == [5]
    assert "truncated" in summary["skipped"][0]["why"] and f"{dlq.topics.events}/0/0" in summary["skipped"][0]["why"]
    [got] = replayed(dlq)
    assert (got.key, got.value) == (b"p5", BIG) and len(got.value) > DLQ_MAX_ORIGINAL_BYTES


@pytest.mark.integration
def test_dry_run_sends_nothing_and_says_what_it_would_skip(dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = vitrine_dlq(capsys, "replay", "--reason", "all", "--dry-run")
    print(out, err)
    summary = last_json(out)
    assert code == 0 and summary["dry_run"] is True
    assert (summary["selected"], summary["replayed"]) == (9, 6)
    skipped = {s["offset"]: s["why"] for s in summary["skipped"]}
    assert sorted(skipped) == [5, 6, 7]
    assert "unreadable" in skipped[6] and dlq.topics.enriched in skipped[7]
    assert end_offsets(dlq.bootstrap, dlq.topics.events) == dlq.events_end
    assert replayed(dlq) == []


@pytest.mark.integration
def test_a_replay_the_broker_refuses_exits_2_and_says_which(dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=dlq.bootstrap)
    try:  # the too_large original (offset 4) no longer fits the events topic; p1's does
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, dlq.topics.events,
                                            configs={"max.message.bytes": "100000"})])
    finally:
        admin.close()
    code, out, err = vitrine_dlq(capsys, "replay", "--reason", "all", "--since", "2900", "--limit", "1")
    print(out, err)
    summary = last_json(out)
    assert code == 2 and "not acknowledged" in err
    assert summary["replayed"] == 0 and [f["offset"] for f in summary["failed"]] == [4]


@pytest.mark.integration
def test_a_fetch_stage_unreadable_is_replayed_a_broken_dlq_record_is_not(
        dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = vitrine_dlq(capsys, "replay", "--reason", "unreadable")
    summary = last_json(out)
    assert code == 0 and (summary["selected"], summary["replayed"]) == (2, 1)
    assert [s["offset"] for s in summary["skipped"]] == [6]
    [got] = replayed(dlq)
    assert (got.key, got.value, headers(got)[HEADER_REPLAY_OF]) == (
        b"p1", dlq.originals[0][1], f"{dlq.topics.dlq}/0/8".encode())
