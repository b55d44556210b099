"""The version guard as a pure function: order, repetition, tombstones, patches."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.guard import INDEXED, PATCH_DELETED, PATCH_UNKNOWN, SUPERSEDED, Held, plan_writes
from indexer.schema import IndexLayout
from streams.codecs import IndexRecord

LAYOUT = IndexLayout(model_version="test@1", dims={"image_vec": 4})


def up(pid: str, v: int, title: str = "t") -> IndexRecord:
    return IndexRecord("upsert", pid, v, float(v), {"title": title, "price": 1.0}, {"image_vec": np.ones(4, np.float32) / 2})


def patch(pid: str, v: int, **fields: object) -> IndexRecord:
    return IndexRecord("patch", pid, v, float(v), dict(fields))


def delete(pid: str, v: int) -> IndexRecord:
    return IndexRecord("delete", pid, v, float(v))


def plan(records, held=None):
    return plan_writes(records, held or {}, LAYOUT.full_row, LAYOUT.scalar_update)


def test_newer_wins_and_older_is_superseded():
    p = plan([up("a", 2, "new"), up("a", 1, "old"), up("a", 2, "dup")])
    assert [o.result for o in p.outcomes] == [INDEXED, SUPERSEDED, SUPERSEDED]
    assert p.full_rows["a"]["title"] == "new" and p.full_rows["a"]["version"] == 2


def test_held_version_guards_replays():
    p = plan([up("a", 3)], {"a": Held(3, False)})
    assert p.empty and p.outcomes[0].result == SUPERSEDED


def test_delete_keeps_tombstone_and_blocks_late_upsert():
    p = plan([delete("a", 5), up("a", 4)], {"a": Held(2, False)})
    assert p.partial_rows["a"]["deleted"] is True and p.partial_rows["a"]["version"] == 5
    assert [o.result for o in p.outcomes] == [INDEXED, SUPERSEDED]


def test_delete_of_unknown_product_writes_tombstone_row():
    p = plan([delete("z", 1)])
    row = p.full_rows["z"]
    assert row["deleted"] is True and abs(np.linalg.norm(row["image_vec"]) - 1) < 1e-5


def test_patch_changes_scalars_never_vectors():
    p = plan([patch("a", 2, price=9.5, in_stock=False)], {"a": Held(1, False)})
    assert p.partial_rows["a"]["price"] == 9.5 and "image_vec" not in p.partial_rows["a"]
    p2 = plan([up("a", 1), patch("a", 2, price=3.0)])
    assert p2.full_rows["a"]["price"] == 3.0 and p2.full_rows["a"]["version"] == 2 and not p2.partial_rows


def test_patch_of_unknown_or_deleted_product_is_dead_lettered():
    p = plan([patch("x", 2, price=1.0), patch("d", 9, price=1.0)], {"d": Held(3, True)})
    assert [o.result for o in p.outcomes] == [PATCH_UNKNOWN, PATCH_DELETED]
    assert all(o.dead_letter for o in p.outcomes) and p.empty


events = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 6), st.sampled_from(["upsert", "delete"])),
    min_size=1, max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(events, st.randoms())
def test_any_order_converges_to_newest(evs, rnd):
    """Upserts and deletes in any order, duplicated, split in any batches: same final state."""
    unique = {(p, v): op for p, v, op in reversed(evs)}  # a version names one event of a product
    recs = [up(p, v, f"{p}{v}") if op == "upsert" else delete(p, v) for (p, v), op in unique.items()]
    newest = {}
    for r in recs:
        if r.product_id not in newest or r.version > newest[r.product_id].version:
            newest[r.product_id] = r
    shuffled = recs + recs[: len(recs) // 2]
    rnd.shuffle(shuffled)
    held: dict[str, Held] = {}
    rows: dict[str, dict] = {}
    it = iter(shuffled)
    while batch := list(itertools.islice(it, rnd.randint(1, 4))):
        p = plan(batch, held)
        for pid, row in p.full_rows.items():
            rows[pid] = dict(row)
        for pid, upd in p.partial_rows.items():
            rows[pid].update(upd)
        held = {pid: Held(r["version"], r["deleted"]) for pid, r in rows.items()}
    for pid, rec in newest.items():
        assert rows[pid]["version"] == rec.version
        assert rows[pid]["deleted"] == (rec.op == "delete")
        if rec.op == "upsert":
            assert rows[pid]["title"] == rec.fields["title"]


def test_every_upsert_of_a_batch_counts_its_images_even_when_folded_away():
    """An attempt that died between its image rows and its product row left image rows the held row
    does not count: the replayed batch folds that upsert into a newer delete, and must still know them."""
    extra = tuple((f"s3://b/a-{i}", {"image_vec": np.ones(4, np.float32) / 2}) for i in range(1, 3))
    three = IndexRecord("upsert", "a", 24, 24.0, {"title": "t", "price": 1.0}, {"image_vec": np.ones(4, np.float32) / 2},
                        extra_images=extra)
    p = plan([three, delete("a", 25), up("b", 1)])
    assert p.full_rows["a"]["deleted"] is True and p.images_seen == {"a": 3, "b": 1}
