"""The dead-letter record and the watch that says when a worker dead-letters everything."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from streams.codecs import SourceRef
from workers.dlq import DLQ_MAX_ORIGINAL_BYTES, DeadLetterWatch, Delivery, dead_letter_record
from workers.exceptions import DeadLetter


def test_the_record_carries_the_original_its_reason_and_where_it_came_from():
    d = Delivery(b"\x00not json", SourceRef("v.catalog.events", 3, 41), "p1", lambda: None)
    doc = json.loads(dead_letter_record(d, DeadLetter("validate", "bad_json", "no"), "ingest", "p1"))
    assert (doc["reason"], doc["stage"], doc["worker"]) == ("bad_json", "validate", "ingest")
    assert (doc["topic"], doc["partition"], doc["offset"], doc["product_id"]) == ("v.catalog.events", 3, 41, "p1")
    assert base64.b64decode(doc["original_b64"]) == b"\x00not json" and not doc["original_truncated"]


def test_a_huge_original_is_cut_but_accounted():
    raw = b"x" * (DLQ_MAX_ORIGINAL_BYTES + 10)
    doc = json.loads(dead_letter_record(Delivery(raw, SourceRef("t", 0, 0), None, lambda: None),
                                        DeadLetter("s", "r", "m"), "index"))
    assert doc["original_truncated"] and doc["original_bytes"] == len(raw)


def test_the_watch_warns_once_a_window_is_all_dead_letters(caplog: pytest.LogCaptureFixture):
    now = [0.0]
    watch = DeadLetterWatch("ingest", window=5, every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "vitrine"):
        for _ in range(4):
            watch.dead_lettered("forbidden_path")
        watch.passed()  # one good event ends the streak
        for _ in range(4):
            watch.dead_lettered("forbidden_path")
        assert watch.warnings == 0
        watch.dead_lettered("forbidden_path")
        assert watch.warnings == 1 and "forbidden_path" in caplog.text and "ingest" in caplog.text
        for _ in range(10):
            watch.dead_lettered("forbidden_path")
        assert watch.warnings == 1  # not again within every_s
        now[0] = 61.0
        watch.dead_lettered("forbidden_path")
        assert watch.warnings == 2
