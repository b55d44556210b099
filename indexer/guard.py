"""The authoritative version guard, as a pure function over what Milvus holds and a batch of records.

Invariant (ARCHITECTURE.md guarantee 2): a write wins only if its version is strictly newer than
the version held for that product, so replaying events in any order, any number of times, gives
the same index. A delete keeps a tombstone (the row stays with ``deleted = true`` and its version),
so a late older upsert cannot resurrect the product. A patch changes scalar fields of the held row
and never touches its vectors.

Every record gets exactly one outcome: ``indexed``, ``superseded`` (an equal or newer version is
already held: a duplicate or a late event), or a dead-letter reason: ``patch_of_unknown_product``,
``patch_of_deleted_product``, ``unknown_op``, ``bad_fields`` (a field that does not fit its column), or the reason ``refuse`` gives for a record this
collection must not hold (vectors of another model version or dimension: see
``indexer.schema.IndexLayout.refusal``). A refused record is never written, whatever its version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.codecs import IndexRecord

INDEXED = "indexed"
SUPERSEDED = "superseded"
PATCH_UNKNOWN = "patch_of_unknown_product"
PATCH_DELETED = "patch_of_deleted_product"
UNKNOWN_OP = "unknown_op"
BAD_FIELDS = "bad_fields"

log = logging.getLogger("vitrine.index")


@dataclass(frozen=True)
class Held:
    """What the index holds for one product."""

    version: int
    deleted: bool
    images: int = 1  # image_count: the product row and images - 1 image rows


@dataclass(frozen=True)
class Outcome:
    record: IndexRecord
    result: str  # INDEXED, SUPERSEDED, or a dead-letter reason

    @property
    def dead_letter(self) -> bool:
        return self.result not in (INDEXED, SUPERSEDED)


@dataclass
class WritePlan:
    full_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # product_id -> complete row
    partial_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # product_id -> changed fields
    outcomes: list[Outcome] = field(default_factory=list)
    # product_id -> the most images an upsert of this batch had, written or not: an attempt that died
    # between its image rows and its product row left image rows that the held row does not count, and
    # a replay that folds that upsert away (a newer delete or a smaller upsert in the same batch) must
    # still remove them (``ProductIndex._write_images``)
    images_seen: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.full_rows and not self.partial_rows


def plan_writes(
    records: Iterable[IndexRecord],
    held: Mapping[str, Held],
    full_row: Callable[[IndexRecord], dict[str, Any]],
    scalar_update: Callable[[IndexRecord], dict[str, Any]],
    refuse: Callable[[IndexRecord], str | None] = lambda rec: None,
) -> WritePlan:
    """Fold ``records`` (in offset order) onto ``held`` and return the writes that reach the final state.

    ``full_row`` builds a complete row (vectors included) for an upsert, or a tombstone row for a
    delete of a product the index never held; ``scalar_update`` gives the fields a patch or a
    delete changes (always ``version`` among them); ``refuse`` gives the dead-letter reason for a
    record that must not be written at all, or None.
    """
    plan = WritePlan()
    state: dict[str, Held] = dict(held)
    for rec in records:
        pid = rec.product_id
        reason = UNKNOWN_OP if rec.op not in ("upsert", "patch", "delete") else refuse(rec)
        if reason is not None:
            plan.outcomes.append(Outcome(rec, reason))
            continue
        if rec.op == "upsert":
            plan.images_seen[pid] = max(plan.images_seen.get(pid, 1), 1 + len(rec.extra_images or ()))
        now = state.get(pid)
        if now is not None and rec.version <= now.version:
            plan.outcomes.append(Outcome(rec, SUPERSEDED))
            continue
        try:
            result = _fold(plan, state, rec, now, full_row, scalar_update)
        except (ValueError, TypeError) as exc:  # a field that does not fit its column: refused, not a crash
            result = BAD_FIELDS
            log.warning("%s v%d refused: %s", pid, rec.version, exc)
        plan.outcomes.append(Outcome(rec, result))
    return plan


def _fold(plan: WritePlan, state: dict[str, Held], rec: IndexRecord, now: Held | None,
          full_row: Callable[[IndexRecord], dict[str, Any]],
          scalar_update: Callable[[IndexRecord], dict[str, Any]]) -> str:
    """Fold one record that is newer than what is held into ``plan``; its outcome."""
    pid = rec.product_id
    if rec.op == "upsert":
        plan.full_rows[pid] = full_row(rec)
        plan.partial_rows.pop(pid, None)
        state[pid] = Held(rec.version, False)
    elif rec.op == "patch":
        if now is None:
            return PATCH_UNKNOWN
        if now.deleted:
            return PATCH_DELETED
        _merge(plan, pid, scalar_update(rec))
        state[pid] = Held(rec.version, False)
    else:  # delete (the only op left: unknown ops were refused above)
        if now is None and pid not in plan.full_rows:
            plan.full_rows[pid] = full_row(rec)  # a tombstone row
        else:
            _merge(plan, pid, scalar_update(rec))
        state[pid] = Held(rec.version, True)
    return INDEXED


def _merge(plan: WritePlan, pid: str, update: dict[str, Any]) -> None:
    if pid in plan.full_rows:
        plan.full_rows[pid].update(update)
    else:
        plan.partial_rows.setdefault(pid, {"product_id": pid}).update(update)
