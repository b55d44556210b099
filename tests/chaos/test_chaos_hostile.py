"""Hostile inputs through the real worker processes, one stack for all: each event ends in the DLQ
with the reason naming its problem (or, for odd but valid images, in the index), each bad query
gets an error reply naming it, and the workers stay up within their memory limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from vitrine_tools.chaos import hostile, oracle
from vitrine_tools.chaos.harness import ChaosStack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(600)]

MEMORY_LIMIT_MIB = 3072
PHOTO_INDEX = 0


@dataclass
class HostileRun:
    events: hostile.HostileEvents
    found: dict[str, set[str]]  # key -> DLQ reasons found for its record
    rows: dict[str, dict[str, Any] | None]  # product id -> its row
    queries: dict[str, tuple[bool, str]]
    rss_before: dict[str, float]
    rss_after: dict[str, float]
    alive: bool


@pytest.fixture(scope="module")
def run(chaos_stack: ChaosStack) -> Iterator[HostileRun]:
    from indexer.store import ProductIndex
    from streams.publisher import CatalogPublisher
    from streams.query_client import QueryClient
    from workers.runtime.wiring import layout_for
    from workers.vision.factory import production_pipeline

    cs = chaos_stack
    cs.ensure_ready()
    topics = cs.settings.topics
    photo = cs.image_root / cs.images[PHOTO_INDEX]
    rss_before = cs.rss()
    pub = CatalogPublisher(cs.kafka.address, topics.events).start()  # type: ignore[union-attr]
    ev = hostile.publish_events(pub.send_raw, cs.image_root, photo)
    pub.flush()
    pub.close()
    cs.wait_drained(300)
    records = [r for r in oracle.read_published(cs.kafka.address, topics.events)  # type: ignore[union-attr]
               if r.key and r.key.startswith(ev.prefix)]
    at = {(r.partition, r.offset): r.key for r in records}
    found: dict[str, set[str]] = {k: set() for k in ev.expected}
    for d in oracle.read_dead_letters(cs.kafka.address, topics.dlq, topics.events):  # type: ignore[union-attr]
        key = at.get((d.partition, d.offset))  # type: ignore[arg-type]
        if key is not None:
            found[key].add(d.reason)
    index = ProductIndex(cs.milvus.address, layout_for(cs.settings, production_pipeline())).start(create=False)  # type: ignore[union-attr]
    try:
        wait_until(lambda: index.get(f"{ev.prefix}plain"), 60, "the hostile batch's last product")
        rows = {k: index.get(k, with_vectors=True) for k in ev.expected}
    finally:
        index.close()
    client = QueryClient(cs.kafka.address, topics.requests, topics.responses).start()  # type: ignore[union-attr]
    try:
        checks = hostile.run_queries(cs.search, lambda body: client.search(body, timeout=60), photo,
                                     f"{ev.prefix}inj", f"{ev.prefix}plain", cs.image_root)
    finally:
        client.close()
    alive = all(w.process.poll() is None for w in cs.stack.workers.values())  # type: ignore[union-attr]
    yield HostileRun(ev, found, rows, {n: (ok, d) for n, ok, d in checks}, rss_before, cs.rss(), alive)


EVENT_CASES = ["json", "notobj", "binary", "types", "version", "missing", "longtitle", "toolarge", "schema", "kind",
               "scheme", "extra"]
IMAGE_CASES = ["empty", "truncated", "corrupt", "bomb", "huge", "not-an-image", "animated", "cmyk", "sixteen",
               "alpha", "exif-rotated", "upright", "sideways"]
URL_CASES = ["metadata", "loopback", "v6loopback", "private10", "private172", "private192", "name-to-loopback",
             "not-allowlisted", "outside-root", "dotdot", "s3-no-key"]


def _check(run: HostileRun, key: str) -> None:
    want = run.events.expected[key]
    row = run.rows.get(key)
    if want == "indexed":
        assert row is not None and not row["deleted"] and row["version"] == 1, f"{key}: not indexed"
        assert not run.found[key], f"{key}: also dead-lettered {run.found[key]}"
    else:
        assert run.found[key] == {want[4:]}, f"{key}: DLQ reasons {run.found[key]}, expected {want[4:]}"
        assert row is None, f"{key}: indexed although it should be refused"


@pytest.mark.parametrize("case", EVENT_CASES)
def test_bad_event_is_dead_lettered_with_its_reason(run: HostileRun, case: str) -> None:
    _check(run, f"{run.events.prefix}{case}")


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_image_is_refused_with_its_reason_or_indexed(run: HostileRun, case: str) -> None:
    _check(run, f"{run.events.prefix}img-{case}")


@pytest.mark.parametrize("case", URL_CASES)
def test_internal_or_forbidden_url_is_never_fetched(run: HostileRun, case: str) -> None:
    _check(run, f"{run.events.prefix}url-{case}")


def test_exif_rotation_is_applied_before_embedding(run: HostileRun) -> None:
    exif, upright, sideways = (np.asarray(run.rows[p]["image_vec"], np.float32)  # type: ignore[index]
                               for p in run.events.exif_trio)
    assert float(exif @ upright) > 0.98
    assert float(exif @ upright) > float(sideways @ upright) + 0.01  # so the check can tell the difference


QUERY_CASES = ["invalid JSON", "not an object", "unknown kind", "huge k", "negative k", "wrong type", "missing text",
               "bad base64", "oversized request", "oversized image", "bomb image", "corrupt image", "query image at 169.254.169.254",
               "query image at 127.0.0.1", "query image at [::1]", "query image at 10.1.2.3",
               "query image at localhost", "query image file outside root", "query image unknown scheme",
               "control chars in filter", "attribute key injection", "filter injection stays a literal",
               "or 1==1 matches nothing", "the plain filter still works", "kafka: unknown kind", "kafka: huge k"]


@pytest.mark.parametrize("case", QUERY_CASES)
def test_bad_query_gets_an_error_reply_naming_it(run: HostileRun, case: str) -> None:
    ok, detail = run.queries[case]
    assert ok, f"{case}: {detail}"


def test_workers_stay_up_within_their_memory_limit(run: HostileRun) -> None:
    assert run.alive
    assert all(v < MEMORY_LIMIT_MIB for v in run.rss_after.values()), run.rss_after
    assert run.rss_after["ingest"] - run.rss_before["ingest"] < 512, (run.rss_before, run.rss_after)
