"""The ground-truth oracle: what the index must hold after a run, and a verdict on what it does hold.

Input is what was really published, read back from ``catalog.events`` (so a publisher retry that
wrote an event twice is seen as the duplicate it is), and what really went to ``catalog.dlq``.

The expected state is a fold of every record in offset order (one product's events share a
partition, so offset order is publish order) with the rules of the system:

- an invalid record goes to the DLQ with the reason ``parse_event`` gives;
- an event whose version is not newer than the product's current version is ``superseded``;
- an upsert any of whose images cannot be fetched or decoded goes to the DLQ with the reason of
  the first such image (``image_reason(uri)``) and changes nothing;
- a patch of a product never indexed goes to the DLQ as ``patch_of_unknown_product``, a patch of a
  deleted product as ``patch_of_deleted_product``; otherwise it changes only the fields it names
  (the vectors stay those of the last upsert) and takes the product to its version;
- a delete leaves a tombstone: the row stays with ``deleted = true`` and the delete's version.

The contract the fold relies on (``streams.schema``): versions are monotonic per product in publish
order; only a repeated event (a redelivery, a publisher retry, a replay) may arrive after a newer one.

Relaxations, and why (each counted separately, never silently):
- ``dlq_or_superseded``: a record that should go to the DLQ may instead end ``superseded`` when a
  newer version of the same product follows it in the log. After a crash the replay meets a newer
  version (written by the previous incarnation, or remembered by the ingest version table) and
  skips the old record before it reached the DLQ; it *is* superseded then.
- ``superseded_or_dlq``: a repeated upsert whose image cannot be fetched may reach the DLQ again
  although a newer version is indexed: the ingest worker refuses the image before the version
  check, which only the index writer does with authority (the ingest version table may lag).

Verdict (``judge``), per product and per record:
- ``lost``: a product that should be live is absent or a tombstone;
- ``stale``: a live product at an older version, with other field values than expected, or a
  tombstone missing or at the wrong version;
- ``resurrected``: a product that should be a tombstone is live;
- ``phantom``: a live row for a product that was never successfully upserted;
- ``duplicates``: primary keys held by more than one row;
- ``wrong_vectors``: a row whose image is not the image of the upsert its version derives from
  (``image_uri``), or whose ``image_vec`` is not that image's vector (when reference vectors are given);
- ``unaccounted``: a record that should be in the DLQ and is neither there nor superseded;
- ``unexpected_dlq``: a record in the DLQ that should not be, or with another reason;
- ``orphan_image_rows``: an image row (``<id>#<i>``, ``indexer.schema``) that the product's expected
  state does not have (an image index past its image count, any image row of a deleted product) or
  that holds another version or image; a missing image row counts as ``lost``.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.codecs import decode_record
from streams.exceptions import InvalidEvent
from streams.schema import DeleteEvent, PatchEvent, UpsertEvent, parse_event

INDEXED = "indexed"
SUPERSEDED = "superseded"
PATCH_UNKNOWN = "patch_of_unknown_product"
PATCH_DELETED = "patch_of_deleted_product"
CHECKED_FIELDS = ("title", "description", "brand", "price", "currency", "in_stock")


@dataclass(frozen=True)
class Published:
    """One record of ``catalog.events`` as the broker holds it."""

    partition: int
    offset: int
    key: str | None
    raw: bytes


@dataclass(frozen=True)
class DeadLetterRef:
    """One DLQ record, pointed back at the ``catalog.events`` record it covers."""

    partition: int | None  # None when it cannot be traced to a catalogue record
    offset: int | None
    reason: str
    stage: str


@dataclass
class ProductState:
    version: int
    deleted: bool
    fields: dict[str, Any]
    image_uri: str  # image of the upsert the vectors come from
    images: list[str] = field(default_factory=list)  # every image of that upsert: rows 0..n-1


@dataclass
class Expectation:
    products: dict[str, ProductState] = field(default_factory=dict)
    outcome: dict[tuple[int, int], str] = field(default_factory=dict)  # (partition, offset) -> outcome
    may_be_superseded: set[tuple[int, int]] = field(default_factory=set)  # DLQ-or-superseded records
    may_be_dlq: dict[tuple[int, int], str] = field(default_factory=dict)  # superseded-or-DLQ records -> reason
    ever_upserted: set[str] = field(default_factory=set)
    split_products: set[str] = field(default_factory=set)  # events of one product on >1 partition
    seen_products: set[str] = field(default_factory=set)  # every product id of a valid record

    def counts(self) -> Counter[str]:
        return Counter(self.outcome.values())


def expected_index(records: Iterable[Published], image_reason: Callable[[str], str | None]) -> Expectation:
    """Fold ``records`` (any order; sorted here by partition and offset) into the expected final index.

    ``image_reason(uri)`` is None for an image that fetches and decodes, else the DLQ reason.
    """
    exp = Expectation()
    last_version: dict[str, int] = {}  # the newest version seen per product, whatever its outcome
    pending_dlq: dict[str, list[tuple[int, int, int]]] = {}  # product -> DLQ records (p, o, version)
    partition_of: dict[str, int] = {}
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        where = (rec.partition, rec.offset)
        try:
            ev = parse_event(rec.raw)
        except InvalidEvent as exc:
            exp.outcome[where] = f"dlq:{exc.reason}"
            continue
        pid = ev.product_id
        exp.seen_products.add(pid)
        if partition_of.setdefault(pid, rec.partition) != rec.partition:
            exp.split_products.add(pid)
        # a newer version after a DLQ'd record lets a replay skip that record as superseded
        if ev.version > last_version.get(pid, -1):
            for p, o, v in pending_dlq.pop(pid, []):
                if v < ev.version:
                    exp.may_be_superseded.add((p, o))
            last_version[pid] = ev.version
        now = exp.products.get(pid)
        if now is not None and ev.version <= now.version:
            exp.outcome[where] = SUPERSEDED
            if isinstance(ev, UpsertEvent) and (reason := _images_reason(ev, image_reason)) is not None:
                exp.may_be_dlq[where] = reason  # refused by the ingest worker before any version check
            continue
        result = INDEXED
        if isinstance(ev, UpsertEvent):
            reason = _images_reason(ev, image_reason)
            if reason is not None:
                result = f"dlq:{reason}"
            else:
                exp.products[pid] = ProductState(ev.version, False, _upsert_fields(ev), ev.images[0], list(ev.images))
                exp.ever_upserted.add(pid)
        elif isinstance(ev, PatchEvent):
            if now is None:
                result = f"dlq:{PATCH_UNKNOWN}"
            elif now.deleted:
                result = f"dlq:{PATCH_DELETED}"
            else:
                now.fields.update(ev.fields.model_dump(exclude_none=True))
                now.version = ev.version
        else:
            assert isinstance(ev, DeleteEvent)
            if now is None:
                exp.products[pid] = ProductState(ev.version, True, {}, "")
            else:
                now.version, now.deleted = ev.version, True
        exp.outcome[where] = result
        if result.startswith("dlq:"):
            pending_dlq.setdefault(pid, []).append((rec.partition, rec.offset, ev.version))
    return exp


def _images_reason(ev: UpsertEvent, image_reason: Callable[[str], str | None]) -> str | None:
    """The DLQ reason of an upsert's images: the first image, in order, that cannot be had (the ingest
    worker indexes a product with all its images or not at all)."""
    return next((r for uri in ev.images if (r := image_reason(uri)) is not None), None)


def _upsert_fields(ev: UpsertEvent) -> dict[str, Any]:
    return {"title": ev.title, "description": ev.description, "brand": ev.brand, "price": ev.price,
            "currency": ev.currency, "in_stock": ev.in_stock}


# ---------------------------------------------------------------------------- reading the truth


def dead_letter_ref(doc: Mapping[str, Any], events_topic: str) -> DeadLetterRef:
    """Trace a DLQ record to its ``catalog.events`` record: directly for ingest-stage records, through
    the enriched record's ``source`` for index-stage ones."""
    reason, stage = str(doc.get("reason")), str(doc.get("stage"))
    if doc.get("topic") == events_topic:
        return DeadLetterRef(int(doc["partition"]), int(doc["offset"]), reason, stage)
    try:
        src = decode_record(base64.b64decode(doc.get("original_b64") or "")).source
    except (InvalidEvent, ValueError):
        src = None
    if src is not None and src.topic == events_topic:
        return DeadLetterRef(src.partition, src.offset, reason, stage)
    return DeadLetterRef(None, None, reason, stage)


def read_topic(bootstrap: str, topic: str, *, client_options: Mapping[str, Any] | None = None,
               timeout: float = 60.0) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every record of ``topic`` from the beginning to the end offsets taken now: (partition, offset, key, value)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", **dict(client_options or {}))
    try:
        deadline = time.monotonic() + timeout
        parts = c.partitions_for_topic(topic)
        while not parts:
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} not found")
            time.sleep(0.2)
            parts = c.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out: list[tuple[int, int, bytes | None, bytes]] = []
        left = {tp for tp in tps if ends[tp] > c.position(tp)}
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: {len(left)} partitions not read to their end")
            for tp, recs in c.poll(timeout_ms=500).items():
                for r in recs:
                    if r.offset < ends[tp]:
                        out.append((tp.partition, r.offset, r.key, r.value or b""))
                if c.position(tp) >= ends[tp]:
                    left.discard(tp)
        return out
    finally:
        c.close()


def read_published(bootstrap: str, topic: str, **kw: Any) -> list[Published]:
    return [Published(p, o, k.decode("utf-8", "replace") if k else None, v) for p, o, k, v in read_topic(bootstrap, topic, **kw)]


def read_dead_letters(bootstrap: str, dlq_topic: str, events_topic: str, **kw: Any) -> list[DeadLetterRef]:
    return [dead_letter_ref(json.loads(v), events_topic) for _, _, _, v in read_topic(bootstrap, dlq_topic, **kw)]


@dataclass
class IndexSnapshot:
    rows: dict[str, dict[str, Any]]  # product_id -> its product row
    pk_counts: Counter[str]  # primary key -> rows found with it (>1 is a duplicate)
    total_rows: int  # count(*) including tombstones
    #: product id -> its further images' rows (``indexer.schema``: image_index >= 1)
    image_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    item_of: dict[str, str] = field(default_factory=dict)  # primary key -> product id (item)


def snapshot_index(uri: str, collection: str, product_ids: Iterable[str], *, token: str = "",
                   vectors: bool = True, chunk: int = 200) -> IndexSnapshot:
    """Read every row of ``collection`` that the oracle knows of, plus every primary key in it."""
    from indexer.filters import quote
    from indexer.store import connect

    client = connect(uri, token=token, timeout=60)
    try:
        out = ["product_id", "version", "deleted", "image_uri", *CHECKED_FIELDS]
        if vectors:
            out.append("image_vec")
        rows: dict[str, dict[str, Any]] = {}
        images: dict[str, list[dict[str, Any]]] = {}
        ids = sorted(set(product_ids))
        for i in range(0, len(ids), chunk):
            expr = f"item in [{', '.join(quote(p) for p in ids[i:i + chunk])}]"
            for r in client.query(collection, filter=expr, output_fields=[*out, "item", "image_index"],
                                  consistency_level="Strong"):
                if int(r["image_index"]) == 0:
                    rows[r["item"]] = dict(r)
                else:
                    images.setdefault(r["item"], []).append(dict(r))
        pks: Counter[str] = Counter()
        item_of: dict[str, str] = {}
        it = client.query_iterator(collection, batch_size=1000, filter="version >= 0",
                                   output_fields=["product_id", "item"])
        try:
            while batch := it.next():
                pks.update(r["product_id"] for r in batch)
                item_of.update((r["product_id"], r["item"]) for r in batch)
        finally:
            it.close()
        total = int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])
        return IndexSnapshot(rows, pks, total, {k: sorted(v, key=lambda r: r["image_index"]) for k, v in images.items()},
                             item_of)
    finally:
        client.close()


# ---------------------------------------------------------------------------- the verdict


@dataclass
class Verdict:
    events: int
    outcomes: dict[str, int]
    dlq_by_reason: dict[str, int]
    lost: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    resurrected: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    wrong_vectors: list[str] = field(default_factory=list)
    unaccounted: list[str] = field(default_factory=list)
    unexpected_dlq: list[str] = field(default_factory=list)
    orphan_image_rows: list[str] = field(default_factory=list)  # image rows their product does not have now
    image_rows_checked: int = 0  # image rows (image_index >= 1) found at their product's version
    dlq_or_superseded: int = 0
    superseded_or_dlq: int = 0
    untraced_dlq: int = 0
    vectors_checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stale or self.resurrected or self.phantom or self.duplicates
                    or self.wrong_vectors or self.unaccounted or self.unexpected_dlq or self.orphan_image_rows)

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events, "lost": len(self.lost), "stale": len(self.stale),
            "resurrected": len(self.resurrected), "duplicates": len(self.duplicates),
            "phantom": len(self.phantom), "wrong_vectors": len(self.wrong_vectors),
            "unaccounted": len(self.unaccounted), "unexpected_dlq": len(self.unexpected_dlq),
            "orphan_image_rows": len(self.orphan_image_rows),
            "dlq_or_superseded": self.dlq_or_superseded, "superseded_or_dlq": self.superseded_or_dlq,
            "vectors_checked": self.vectors_checked, "image_rows_checked": self.image_rows_checked,
            "outcomes": self.outcomes,
            "dlq_by_reason": self.dlq_by_reason,
        }

    def explain(self, limit: int = 10) -> str:
        parts = []
        for name in ("lost", "stale", "resurrected", "phantom", "duplicates", "wrong_vectors", "unaccounted",
                     "unexpected_dlq", "orphan_image_rows"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name} ({len(items)}): " + "; ".join(items[:limit]))
        return "\n".join(parts) or "ok"


def judge(
    exp: Expectation,
    snap: IndexSnapshot,
    dead_letters: Sequence[DeadLetterRef],
    *,
    reference_vectors: Mapping[str, np.ndarray] | None = None,
    min_cosine: float = 0.995,
    known_products: Iterable[str] = (),
) -> Verdict:
    """Compare the expected index and outcomes with the real index and DLQ (see the module docstring).

    ``reference_vectors``: image URI -> the (D,) image vector the models give that image; a row whose
    image has a reference must hold an ``image_vec`` closest to that reference among all of them, with
    cosine >= ``min_cosine`` (rows of other images are checked by ``image_uri`` only).
    ``known_products``: ids allowed in the collection although no record named them (e.g. rows
    written by another part of the same test); everything else live and unexplained is a phantom.

    Three steps: every record's outcome against the DLQ (``_account_records``), every product's final
    row against the expected state (``_check_product``), and the collection for rows nobody wrote
    or keys held twice (``_check_collection``).
    """
    dlq_at, untraced = _dead_letters_by_offset(dead_letters)
    v = Verdict(events=len(exp.outcome), outcomes={}, dlq_by_reason={}, untraced_dlq=untraced)
    _account_records(v, exp, dlq_at)
    for pid, want in sorted(exp.products.items()):
        _check_product(v, pid, want, snap.rows.get(pid), reference_vectors, min_cosine)
        _check_images(v, pid, want, snap.image_rows.get(pid, []))
    _check_collection(v, snap, set(exp.products) | set(known_products))
    return v


def _dead_letters_by_offset(dead_letters: Sequence[DeadLetterRef]) -> tuple[dict[tuple[int, int], set[str]], int]:
    """(partition, offset) of the original -> the reasons it was dead-lettered with; and how many
    dead letters carry no such position (untraced)."""
    dlq_at: dict[tuple[int, int], set[str]] = {}
    untraced = 0
    for d in dead_letters:
        if d.partition is None or d.offset is None:
            untraced += 1
            continue
        dlq_at.setdefault((d.partition, d.offset), set()).add(d.reason)
    return dlq_at, untraced


def _account_records(v: Verdict, exp: Expectation, dlq_at: dict[tuple[int, int], set[str]]) -> None:
    """Per record: it is in the DLQ with its expected reason, or not in the DLQ at all (or, where the
    expectation allows, either of the two); DLQ records for offsets never published are bugs."""
    by_reason: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for where, expected in sorted(exp.outcome.items()):
        got = dlq_at.pop(where, set())
        if expected.startswith("dlq:"):
            reason = expected[4:]
            if reason in got:
                by_reason[reason] += 1
                outcomes["dlq"] += 1
                got.discard(reason)
            elif not got and where in exp.may_be_superseded:
                v.dlq_or_superseded += 1
                outcomes[SUPERSEDED] += 1
            else:
                v.unaccounted.append(f"{where}: expected DLQ {reason}, found {sorted(got) or 'nothing'}")
                got = set()
        else:
            if exp.may_be_dlq.get(where) in got:
                got.discard(exp.may_be_dlq[where])
                v.superseded_or_dlq += 1
            outcomes[expected] += 1
        for reason in got:
            v.unexpected_dlq.append(f"{where}: expected {expected}, found DLQ {reason}")
    for where, reasons in dlq_at.items():  # DLQ records of offsets never published: a bug in the tracing
        v.unexpected_dlq.append(f"{where}: DLQ {sorted(reasons)} for a record that is not in the topic")
    v.outcomes = dict(outcomes)
    v.dlq_by_reason = dict(sorted(by_reason.items()))


def _check_product(v: Verdict, pid: str, want: ProductState, row: Mapping[str, Any] | None,
                   reference_vectors: Mapping[str, np.ndarray] | None, min_cosine: float) -> None:
    """One product's row against its expected final state: tombstone, version, fields, image, vector."""
    if want.deleted:
        if row is None:
            v.stale.append(f"{pid}: tombstone v{want.version} missing")
        elif not row["deleted"]:
            v.resurrected.append(f"{pid}: live at v{row['version']}, deleted at v{want.version}")
        elif row["version"] != want.version:
            v.stale.append(f"{pid}: tombstone at v{row['version']}, expected v{want.version}")
        return
    if row is None or row["deleted"]:
        v.lost.append(f"{pid}: expected live v{want.version}, found {'nothing' if row is None else 'a tombstone'}")
        return
    if row["version"] != want.version:
        v.stale.append(f"{pid}: at v{row['version']}, expected v{want.version}")
        return
    diff = [f for f in CHECKED_FIELDS if not _same(row.get(f), want.fields.get(f))]
    if diff:
        v.stale.append(f"{pid} v{want.version}: fields {diff} differ: "
                       + ", ".join(f"{f}={row.get(f)!r} not {want.fields.get(f)!r}" for f in diff)[:300])
    if row.get("image_uri") != want.image_uri:
        v.wrong_vectors.append(f"{pid} v{want.version}: image {row.get('image_uri')!r}, expected {want.image_uri!r}")
    elif reference_vectors is not None and want.image_uri in reference_vectors and "image_vec" in row:
        v.vectors_checked += 1
        problem = _vector_problem(np.asarray(row["image_vec"], np.float32), want.image_uri, reference_vectors,
                                  min_cosine)
        if problem:
            v.wrong_vectors.append(f"{pid} v{want.version}: {problem}")


def _check_images(v: Verdict, pid: str, want: ProductState, rows: list[dict[str, Any]]) -> None:
    """A product's image rows: exactly its images after the first, each at its version and fields,
    none for a deleted product; every other image row is an orphan."""
    expected = {} if want.deleted else {i: uri for i, uri in enumerate(want.images) if i}
    for row in rows:
        i = int(row["image_index"])
        if i not in expected:
            v.orphan_image_rows.append(f"{pid}#{i}: v{row['version']}, product {'deleted' if want.deleted else 'has'} "
                                       f"{len(want.images)} image(s) at v{want.version}")
            continue
        uri = expected.pop(i)
        if row["version"] != want.version or row.get("image_uri") != uri or row.get("deleted"):
            v.orphan_image_rows.append(f"{pid}#{i}: v{row['version']} {row.get('image_uri')!r}, expected v{want.version} {uri!r}")
            continue
        v.image_rows_checked += 1
        diff = [f for f in CHECKED_FIELDS if not _same(row.get(f), want.fields.get(f))]
        if diff:
            v.stale.append(f"{pid}#{i} v{want.version}: fields {diff} differ")
    for i in sorted(expected):
        v.lost.append(f"{pid}#{i}: image row missing ({expected[i]!r}, v{want.version})")


def _check_collection(v: Verdict, snap: IndexSnapshot, allowed: set[str]) -> None:
    """Rows that no record explains (phantoms) and primary keys held more than once."""
    for pid, row in sorted(snap.rows.items()):
        if pid not in allowed and not row["deleted"]:
            v.phantom.append(f"{pid}: live at v{row['version']}, never upserted successfully")
    for pk, n in sorted(snap.pk_counts.items()):
        item = snap.item_of.get(pk, pk)
        if n > 1:
            v.duplicates.append(f"{pk}: {n} rows")
        elif item not in allowed and item not in snap.rows:
            v.phantom.append(f"{pk}: in the collection, unknown to the oracle")
    if snap.total_rows != len(snap.pk_counts):
        v.duplicates.append(f"count(*) = {snap.total_rows} for {len(snap.pk_counts)} distinct keys")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-6
    return bool(a == b)


def _vector_problem(vec: np.ndarray, uri: str, refs: Mapping[str, np.ndarray], min_cosine: float) -> str | None:
    if uri not in refs:
        return f"no reference vector for {uri}"
    unit = vec / max(float(np.linalg.norm(vec)), 1e-12)
    names = list(refs)
    mat = np.stack([refs[n] / max(float(np.linalg.norm(refs[n])), 1e-12) for n in names])  # (R, D)
    sims = mat @ unit
    best = names[int(np.argmax(sims))]
    own = float(sims[names.index(uri)])
    if best != uri and float(sims.max()) > own + 1e-6:
        return f"image_vec is the vector of {best} (cos {float(sims.max()):.4f}), not of {uri} (cos {own:.4f})"
    if own < min_cosine:
        return f"image_vec has cosine {own:.4f} with {uri}'s vector (< {min_cosine})"
    return None
