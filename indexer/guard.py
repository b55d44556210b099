"""The authoritative version guard, as a pure function over what Milvus holds and a batch of records.

Invariant (ARCHITECTURE.md guarantee 2): a write wins only if its version is strictly newer than
the version held for that product, so replaying events in any order, any number of times, gives
the same index. A delete keeps a tombstone (the row stays with ``deleted = true`` and its version),
so a late older upsert cannot resurrect the product. A patch changes scalar fields of the held row
and never touches its vectors.

Every record gets exactly one outcome: ``indexed``, ``superseded`` (an equal or newer version is
already held: a duplicate or a late event), or a dead-letter reason (``patch_of_unknown_product``,
``patch_of_deleted_product``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.codecs import IndexRecord

INDEXED = "indexed"
SUPERSEDED = "superseded"
PATCH_UNKNOWN = "patch_of_unknown_product"
PATCH_DELETED = "patch_of_deleted_product"


@dataclass(frozen=True)
class Held:
    """What the index holds for one product."""

    version: int
    deleted: bool


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

    @property
    def empty(self) -> bool:
        return not self.full_rows and not self.partial_rows


def plan_writes(
    records: Iterable[IndexRecord],
    held: Mapping[str, Held],
    full_row: Callable[[IndexRecord], dict[str, Any]],
    scalar_update: Callable[[IndexRecord], dict[str, Any]],
) -> WritePlan:
    """Fold ``records`` (in offset order) onto ``held`` and return the writes that reach the final state.

    ``full_row`` builds a complete row (vectors included) for an upsert, or a tombstone row for a
    delete of a product the index never held; ``scalar_update`` gives the fields a patch or a
    delete changes (always ``version`` among them).
    """
    plan = WritePlan()
    state: dict[str, Held] = dict(held)
    for rec in records:
        pid = rec.product_id
        now = state.get(pid)
        if now is not None and rec.version <= now.version:
            plan.outcomes.append(Outcome(rec, SUPERSEDED))
            continue
        if rec.op == "upsert":
            plan.full_rows[pid] = full_row(rec)
            plan.partial_rows.pop(pid, None)
            state[pid] = Held(rec.version, False)
        elif rec.op == "patch":
            if now is None:
                plan.outcomes.append(Outcome(rec, PATCH_UNKNOWN))
                continue
            if now.deleted:
                plan.outcomes.append(Outcome(rec, PATCH_DELETED))
                continue
            _merge(plan, pid, scalar_update(rec))
            state[pid] = Held(rec.version, False)
        else:  # delete
            if now is None and pid not in plan.full_rows:
                plan.full_rows[pid] = full_row(rec)  # a tombstone row
            else:
                _merge(plan, pid, scalar_update(rec))
            state[pid] = Held(rec.version, True)
        plan.outcomes.append(Outcome(rec, INDEXED))
    return plan


def _merge(plan: WritePlan, pid: str, update: dict[str, Any]) -> None:
    if pid in plan.full_rows:
        plan.full_rows[pid].update(update)
    else:
        plan.partial_rows.setdefault(pid, {"product_id": pid}).update(update)
