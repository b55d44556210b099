"""Property: any stream of upserts, patches and deletes (repeated, repeats arriving late, version gaps,
bad images), consumed at-least-once in random batches with crashes that replay uncommitted batches,
converges to the oracle's index, with every record indexed, superseded or dead-lettered as it says.

Run twice: against the pure guard (``plan_writes`` over a dict, many examples) and through the real
``ProductIndex`` on the Milvus Lite server (fewer examples: each gets its own collection).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.guard import Held, Outcome, plan_writes
from indexer.schema import IndexLayout
from streams.codecs import IndexRecord, SourceRef
from streams.exceptions import InvalidEvent
from streams.schema import PatchEvent, UpsertEvent, parse_event
from vitrine_tools.chaos.oracle import DeadLetterRef, IndexSnapshot, Published, expected_index, judge

TOPIC = "p.catalog.events"
IMAGES = [f"file:///img/{i}.jpg" for i in range(4)] + ["file:///img/missing.jpg"]
VECTORS = {uri: np.eye(4, dtype=np.float32)[i] for i, uri in enumerate(IMAGES[:4])}
PATCHES = [{"price": 3.5}, {"in_stock": False}, {"title": "patched"}, {"brand": "b2", "price": 7.0}]


def image_reason(uri: str) -> str | None:
    return "not_found" if "missing" in uri else None


@st.composite
def event_logs(draw: Any, max_ops: int = 14) -> list[Published]:
    """A catalogue log that keeps the contract: new events of a product carry increasing versions
    (with gaps); repeats of earlier records may come anywhere later."""
    ops = draw(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["upsert", "upsert", "patch", "delete"]),
                                  st.integers(1, 3), st.integers(0, 4), st.integers(0, 3)),
                        min_size=1, max_size=max_ops))
    version: dict[str, int] = {}
    raws: list[tuple[str, bytes]] = []
    for pid, kind, gap, image, patch in ops:
        v = version[pid] = version.get(pid, 0) + gap
        doc: dict[str, Any] = {"schema_version": 1, "type": kind, "product_id": pid, "version": v, "occurred_at": v}
        if kind == "upsert":
            doc.update(title=f"{pid}{v}", price=float(v), images=[IMAGES[image]])
        elif kind == "patch":
            doc["fields"] = PATCHES[patch]
        raws.append((pid, json.dumps(doc).encode()))
    for src, pos in draw(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), max_size=6)):
        i = src % len(raws)
        j = i + 1 + pos % (len(raws) - i)  # a repeat lands after its original
        raws.insert(j, raws[i])
    return [Published(0, off, pid, raw) for off, (pid, raw) in enumerate(raws)]


def to_record(p: Published) -> IndexRecord | str:
    """What the ingest worker makes of a catalogue record: an index record, or a DLQ reason."""
    try:
        ev = parse_event(p.raw)
    except InvalidEvent as exc:
        return exc.reason
    src = SourceRef(TOPIC, p.partition, p.offset)
    if isinstance(ev, UpsertEvent):
        if (reason := image_reason(ev.images[0])) is not None:
            return reason
        fields = {"title": ev.title, "description": ev.description, "brand": ev.brand, "price": ev.price,
                  "currency": ev.currency, "in_stock": ev.in_stock, "image_uri": ev.images[0]}
        return IndexRecord("upsert", ev.product_id, ev.version, ev.occurred_at, fields,
                           {"image_vec": VECTORS[ev.images[0]]}, "m@1", src)
    fields = ev.fields.model_dump(exclude_none=True) if isinstance(ev, PatchEvent) else {}
    return IndexRecord(ev.type, ev.product_id, ev.version, ev.occurred_at, fields, {}, "", src)


def consume(log: Sequence[Published], apply: Callable[[list[IndexRecord]], list[Outcome]],
            batches: list[int], crashes: list[bool]) -> list[DeadLetterRef]:
    """At-least-once: write a batch, then commit, unless a crash comes first and the batch replays."""
    dlq: list[DeadLetterRef] = []
    pos, step = 0, 0
    while pos < len(log):
        size = batches[step % len(batches)]
        crash = crashes[step % len(crashes)] and step < 3 * len(log)
        step += 1
        batch = log[pos:pos + size]
        recs: list[IndexRecord] = []
        for p in batch:
            r = to_record(p)
            if isinstance(r, str):
                dlq.append(DeadLetterRef(p.partition, p.offset, r, "ingest"))
            else:
                recs.append(r)
        for o in apply(recs) if recs else []:
            if o.dead_letter and o.record.source is not None:
                dlq.append(DeadLetterRef(o.record.source.partition, o.record.source.offset, o.result, "index"))
        if not crash:
            pos += len(batch)  # commit
    return dlq


LAYOUT = IndexLayout(model_version="m@1", dims={"image_vec": 4}, index_type="FLAT")


class DictIndex:
    """The guard over an in-memory table: what ``ProductIndex.apply`` does, minus Milvus."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def apply(self, records: list[IndexRecord]) -> list[Outcome]:
        held = {p: Held(r["version"], r["deleted"]) for p, r in self.rows.items()}
        plan = plan_writes(records, held, LAYOUT.full_row, LAYOUT.scalar_update)
        for pid, row in plan.full_rows.items():
            self.rows[pid] = dict(row)
        for pid, upd in plan.partial_rows.items():
            self.rows[pid].update(upd)
        return plan.outcomes


def verdict_for(log: list[Published], rows: dict[str, dict[str, Any]], dlq: list[DeadLetterRef]) -> Any:
    exp = expected_index(log, image_reason)
    snap = IndexSnapshot(rows, Counter(rows.keys()), len(rows))
    return judge(exp, snap, dlq, reference_vectors=VECTORS)


batches_st = st.lists(st.integers(1, 5), min_size=1, max_size=5)
crashes_st = st.lists(st.booleans(), min_size=1, max_size=5)


@settings(max_examples=300, deadline=None)
@given(event_logs(), batches_st, crashes_st)
def test_guard_converges_to_the_oracle(log: list[Published], batches: list[int], crashes: list[bool]) -> None:
    index = DictIndex()
    dlq = consume(log, index.apply, batches, crashes)
    v = verdict_for(log, index.rows, dlq)
    assert v.ok, v.explain()
    assert sum(v.outcomes.values()) == len(log)


def test_a_patch_replayed_after_its_dead_letter_is_not_applied_twice() -> None:
    """A concrete case the property found worth pinning: patch of an unknown product, then the
    product appears, then the batch replays. The patch must stay dead-lettered or superseded."""
    raws = [
        {"schema_version": 1, "type": "patch", "product_id": "a", "version": 2, "occurred_at": 1, "fields": {"price": 1.0}},
        {"schema_version": 1, "type": "upsert", "product_id": "a", "version": 3, "occurred_at": 1, "title": "a3",
         "price": 9.0, "images": [IMAGES[0]]},
    ]
    log = [Published(0, i, "a", json.dumps(d).encode()) for i, d in enumerate(raws)]
    index = DictIndex()
    dlq = consume(log, index.apply, [2], [True, False])
    assert index.rows["a"]["price"] == 9.0 and index.rows["a"]["version"] == 3
    v = verdict_for(log, index.rows, dlq)
    assert v.ok, v.explain()


@pytest.mark.integration
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=event_logs(max_ops=10), batches=batches_st, crashes=crashes_st)
def test_product_index_on_milvus_lite_converges_to_the_oracle(milvus: Any, log: list[Published],
                                                              batches: list[int], crashes: list[bool]) -> None:
    from indexer.store import ProductIndex
    from vitrine_tools.chaos.oracle import snapshot_index

    layout = IndexLayout(model_version="m@1", dims={"image_vec": 4}, index_type="FLAT",
                         alias=f"prop_{uuid.uuid4().hex[:10]}")
    index = ProductIndex(milvus.address, layout).start()
    try:
        dlq = consume(log, index.apply, batches, crashes)
        exp = expected_index(log, image_reason)
        snap = snapshot_index(milvus.address, layout.collection, exp.seen_products)
        v = judge(exp, snap, dlq, reference_vectors=VECTORS)
        assert v.ok, v.explain()
        assert sum(v.outcomes.values()) == len(log)
    finally:
        from indexer.store import connect

        c = connect(milvus.address)
        c.drop_alias(layout.alias)
        c.drop_collection(layout.collection)
        c.close()
        index.close()
