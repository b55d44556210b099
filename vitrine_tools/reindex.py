"""``vitrine reindex``: build a new collection beside the live one, check it, make it live, roll back.

The design (blue/green, every step resumable):

- **A collection per layout.** Its name spells the model and the index
  (``indexer.schema.IndexLayout.collection``: ``<alias>_<model key>_<index layout>[_bm25]_g<n>``), so a
  rebuild never writes into the live collection.
- **A writer group per collection, a feature log per model** (``streams.topics``). The collection being
  built gets its own consumer group (``vitrine-index.<collection>``) on its model's feature log
  (``index.enriched.<model key>``), read from offset 0. Live events keep arriving on that log and
  reach it as they reach the live collection through the live collection's own group: every
  collection of a model is fed the same log, in the same order per product, under the same version
  guard. Each ends up holding, per product, the highest version the log carried, so the new one
  converges to the same products as the old one, and it stays current after a swap. The old one
  stays current too, while its writers run: that is what makes a rollback lose nothing.
- **A new model** (``--from catalog``) also gets its own ingest group (``vitrine-ingest.<model key>``)
  that reads the compacted ``catalog.events`` from offset 0 with the new models and writes the new
  model's feature log. The live model's ingest keeps running beside it.
- **Aliases as the only switch.** ``swap`` moves the alias that queries read (``<alias>``) and
  remembers the collection it left in ``<alias>_previous``; ``rollback`` moves them back. Both state
  changes are alias operations in Milvus (atomic each), recorded as they go in ``<alias>_leaving``, so
  a swap killed half way is finished by running it again. Query workers follow the alias without a
  restart (``ProductIndex.follow_alias``).

Every command is safe to kill at any point and to run again:

- ``build``: the consumer groups' committed offsets are the build's progress; a kill loses at most the
  batches in flight, which the version guard makes harmless to write twice.
- ``canary``: read-only.
- ``swap`` / ``rollback``: alias moves, finished on the next run.
- ``gc``: drops collections nobody reads, one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

log = logging.getLogger("vitrine.reindex")

#: Suffixes of the two bookkeeping aliases beside the live one.
PREVIOUS, LEAVING = "_previous", "_leaving"


class ReindexError(RuntimeError):
    """A reindex step refused or could not run; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------- status


def model_key_of(collection: str, alias: str) -> str | None:
    """The model key in a collection's name (``<alias>_<model key>_...``), or None for an older name."""
    rest = collection[len(alias) + 1:]
    key = rest.split("_", 1)[0]
    return key if len(key) == 10 and all(c in "0123456789abcdef" for c in key) else None


def alias_target(client: Any, alias: str) -> str | None:
    if alias not in client.list_aliases().get("aliases", []):
        return None
    return str(client.describe_alias(alias)["collection_name"])


def collections(client: Any, alias: str) -> list[dict[str, Any]]:
    """Every collection named ``<alias>_...``, live one first, then the previous one."""
    live, previous = alias_target(client, alias), alias_target(client, alias + PREVIOUS)
    out = []
    for name in sorted(client.list_collections()):
        if not name.startswith(f"{alias}_"):
            continue
        desc = client.describe_collection(name)
        fields = {f["name"] for f in desc.get("fields", [])}
        products_expr = "image_index == 0" if "image_index" in fields else ""
        rows = int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])
        products = int(client.query(name, filter=products_expr, output_fields=["count(*)"])[0]["count(*)"]) \
            if products_expr else rows
        index: dict[str, Any] = {}
        if "image_vec" in fields:
            info = client.describe_index(name, "image_vec") or {}
            index = {k: info[k] for k in ("index_type", "metric_type", "M", "efConstruction", "nlist") if k in info}
        model = desc.get("description") or ""
        if not model and "model_version" in fields:  # Milvus Lite keeps no schema description: a row's
            got = client.query(name, filter="", output_fields=["model_version"], limit=1)
            model = str(got[0]["model_version"]) if got else ""
        dims = {f["name"]: int(f.get("params", {}).get("dim", 0)) for f in desc.get("fields", [])
                if f["name"].endswith("_vec")}
        out.append({"collection": name, "live": name == live, "previous": name == previous, "model_version": model,
                    "model_key": model_key_of(name, alias), "products": products, "rows": rows,
                    "image_index": index, "vector_fields": sorted(dims), "dims": dims,
                    "lexical": "text_sparse" in fields})
    return sorted(out, key=lambda c: (not c["live"], not c["previous"], c["collection"]))


def group_lag(bootstrap: str, group: str, topic: str, *, client_options: Mapping[str, Any] | None = None,
              ) -> dict[str, Any]:
    """End offset minus committed offset per partition of ``topic`` for ``group`` (never committed: from 0)."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.admin import committed_offsets

    committed = committed_offsets(bootstrap, group, topic, client_options=client_options)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             **dict(client_options or {}))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        ends = consumer.end_offsets(tps) if tps else {}
    finally:
        consumer.close()
    per = {str(tp.partition): max(0, ends[tp] - committed.get(tp.partition, 0)) for tp in tps}
    return {"group": group, "topic": topic, "lag": sum(per.values()), "partitions": per,
            "committed": sum(committed.values()), "end": sum(ends.values())}


def feeding_groups(collection: str, alias: str, topics: Any) -> list[tuple[str, str]]:
    """(group, topic) of the ingest and the index groups that feed ``collection``."""
    from streams.topics import index_group, ingest_group

    key = model_key_of(collection, alias)
    if key is None:
        return []
    return [(ingest_group(key), topics.events), (index_group(collection), topics.features(key))]


def lag_of(bootstrap: str, collection: str, alias: str, topics: Any, *,
           client_options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    return [group_lag(bootstrap, g, t, client_options=client_options)
            for g, t in feeding_groups(collection, alias, topics)]


def status(milvus_uri: str, alias: str, bootstrap: str, topics: Any, *, token: str = "",
           client_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The collections behind ``alias`` (live, previous, the rest), and the lag of the groups feeding each."""
    from indexer.store import connect

    client = connect(milvus_uri, token=token)
    try:
        cols = collections(client, alias)
        leaving = alias_target(client, alias + LEAVING)
    finally:
        client.close()
    for c in cols:
        c["consumer_lag"] = lag_of(bootstrap, c["collection"], alias, topics, client_options=client_options)
    return {"alias": alias, "live": next((c["collection"] for c in cols if c["live"]), None),
            "previous": next((c["collection"] for c in cols if c["previous"]), None),
            "swap_in_progress": leaving is not None, "collections": cols}


# ---------------------------------------------------------------------------------------------- build


@dataclass
class BuildReport:
    collection: str
    source: str  # "features" or "catalog"
    model_version: str
    resumed: bool  # the build's groups had committed offsets already: this run continued an earlier one
    replay_events: int  # records the replay had to read when this run started
    replay_s: float  # from the start of this run until the replay's groups had read them
    events_per_s: float
    catch_up_s: float | None  # until the lag first fell to ``catch_up_lag`` (None: not reached)
    final_lag: dict[str, int]
    written: int
    dead_lettered: int


def _kill_with_parent() -> None:
    """In a child: get SIGKILL when the parent dies (Linux), so that a killed build leaves no orphan."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Builder:
    """Fills ``layout``'s collection from its model's feature log in the collection's own index group,
    and with ``from_catalog`` first runs the new model's ingest worker (a child process, its own
    group, reading ``catalog.events`` from 0) that writes that log.

    Resumable anywhere: progress is the groups' committed offsets, and a record written twice is a
    no-op under the version guard. What a kill leaves behind: in the collection, rows written after
    the last commit (rewritten on resume); in Kafka, the ingest child's outputs not yet committed
    (produced again on resume: the index writer's guard makes the second copy superseded)."""

    def __init__(self, settings: Any, layout: Any, *, from_catalog: bool = False, follow: bool = False,
                 catch_up_lag: int = 0, report_every_s: float = 2.0, ingest_env: Mapping[str, str] | None = None,
                 out: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.settings = settings
        self.layout = layout
        self.from_catalog = from_catalog
        self.follow = follow
        self.catch_up_lag = catch_up_lag
        self.report_every_s = report_every_s
        self.ingest_env = dict(ingest_env or {})
        self.out = out or (lambda doc: print(json.dumps(doc), flush=True))
        self.topics = settings.topics.for_model(layout.model_key)
        self._child: subprocess.Popen[bytes] | None = None
        self._stop = asyncio.Event()

    def groups(self) -> list[tuple[str, str]]:
        from streams.topics import index_group, ingest_group

        index = (index_group(self.layout.collection), self.topics.enriched)
        return [(ingest_group(self.layout.model_key), self.topics.events), index] if self.from_catalog else [index]

    def _lags(self) -> dict[str, dict[str, Any]]:
        opts = self.settings.kafka_options()
        return {g: group_lag(self.settings.kafka_bootstrap, g, t, client_options=opts) for g, t in self.groups()}

    def run(self) -> BuildReport:
        from streams.admin import ensure_topics

        ensure_topics(self.settings.kafka_bootstrap, self.topics, client_options=self.settings.kafka_options())
        loop = asyncio.new_event_loop()
        with contextlib.suppress(NotImplementedError):
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
        try:
            return loop.run_until_complete(self._run())
        finally:
            self._stop_child()
            loop.close()

    def _start_child(self) -> None:
        env = {**os.environ, **self.ingest_env}
        self._child = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", "ingest"], env=env,
                                       preexec_fn=_kill_with_parent)  # noqa: PLW1509 - only a prctl

    def _stop_child(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
            try:
                self._child.wait(30)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        self._child = None

    async def _run(self) -> BuildReport:
        from indexer.exceptions import IndexUnavailable
        from streams.source import _aiokafka_security
        from workers.dlq import Delivery, dead_letter_record
        from workers.exceptions import DeadLetter
        from workers.index.writer import IndexWriter
        from workers.runtime.reading import batch_source, exit_tempfail
        from workers.runtime.stages import supervise
        from workers.runtime.wiring import open_index, product_index

        s = self.settings
        start = await asyncio.to_thread(self._lags)
        resumed = any(g["committed"] > 0 for g in start.values())
        first = self.groups()[0][0]  # the replay is done when this group has read what was there at the start
        target = start[first]["end"]
        replay_events = start[first]["lag"]
        self.out({"step": "start", "collection": self.layout.collection, "resumed": resumed,
                  "replay_events": replay_events, "groups": {g: v["lag"] for g, v in start.items()}})

        index = product_index(s, self.layout)
        await open_index(index, create=True)
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all",
                                    **_aiokafka_security(s.kafka_options()))
        await producer.start()
        dead = 0

        async def dead_letter(item: Delivery, stage: str, reason: str, message: str) -> None:
            nonlocal dead
            dead += 1
            await (await producer.send(self.topics.dlq, key=(item.key or "").encode(),
                                       value=dead_letter_record(item, DeadLetter(stage, reason, message),
                                                                f"reindex:{self.layout.collection}")))

        writer = IndexWriter(index, dead_letter, max_batch=s.index_batch_max_size, max_wait_s=s.index_batch_max_wait_s,
                             flush_rows=s.flush_rows, flush_interval_s=s.flush_interval_s,
                             retry_budget_s=s.index_retry_budget_s, on_give_up=exit_tempfail)

        async def handle(rec: Any) -> None:
            await writer.put(Delivery.of(rec))

        group, topic = self.groups()[-1]
        source = batch_source(s, topic, group, handle, on_revoke=writer.fence, on_assign=writer.unfence)
        if self.from_catalog:
            self._start_child()
        writer.start()
        await source.start()
        reader = supervise(source.read_loop, "reindex", exit_tempfail)
        t0 = time.monotonic()
        replay_s: float | None = None
        catch_up_s: float | None = None
        lags = start
        try:
            while not self._stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.report_every_s)
                if self._child is not None and self._child.poll() is not None:
                    raise ReindexError(f"the ingest worker of the new model exited with {self._child.returncode}")
                lags = await asyncio.to_thread(self._lags)
                now = time.monotonic() - t0
                if replay_s is None and lags[first]["committed"] >= target:
                    replay_s = now
                total = sum(v["lag"] for v in lags.values())
                if replay_s is not None and catch_up_s is None and total <= self.catch_up_lag:
                    catch_up_s = now
                self.out({"step": "following" if catch_up_s is not None else "replay" if replay_s is None
                          else "catch_up", "t_s": round(now, 1), "written": writer.written,
                          "lag": {g: v["lag"] for g, v in lags.items()}})
                if catch_up_s is not None and not self.follow:
                    break
        except IndexUnavailable as exc:
            raise ReindexError(f"Milvus: {exc}") from exc
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await source.stop()  # commits what was acknowledged: written, or dead-lettered
            await writer.stop()
            await producer.stop()
            index.close()
        elapsed = replay_s or (time.monotonic() - t0)
        return BuildReport(self.layout.collection, "catalog" if self.from_catalog else "features",
                           self.layout.model_version, resumed, replay_events, round(elapsed, 2),
                           round(replay_events / elapsed, 1) if elapsed > 0 else 0.0,
                           round(catch_up_s, 2) if catch_up_s is not None else None,
                           {g: v["lag"] for g, v in lags.items()}, writer.written, dead)


def live_layout(client: Any, settings: Any) -> Any:
    """The layout of the live collection (its model version and dimensions), for ``--from features``:
    no models needed, only what the collection says of itself."""
    from indexer.schema import IndexLayout

    live = alias_target(client, settings.collection_alias)
    if live is None:
        raise ReindexError(f"no alias {settings.collection_alias}: nothing is live to rebuild from")
    info = next(c for c in collections(client, settings.collection_alias) if c["collection"] == live)
    if not info["model_version"]:
        raise ReindexError(f"{live} holds no rows: no model version to rebuild")
    return IndexLayout(info["model_version"], info["dims"], alias=settings.collection_alias, lexical=info["lexical"])


# ---------------------------------------------------------------------------------------------- canary


@dataclass(frozen=True)
class Thresholds:
    """What ``swap`` demands of the new collection against the live one (``vitrine reindex canary``)."""

    min_overlap: float = 0.7  # mean overlap@10 with the live collection (same model only; a new model ranks otherwise)
    min_recall: float = 0.9  # recall@10 of the new collection against exact search over its own vectors
    max_p99_ratio: float = 3.0  # p99 latency new / live
    max_missing: float = 0.001  # products live but not in the new collection, as a fraction of the live ones
    max_lag: int = 100  # records the new collection's groups have not read yet


def _product_vectors(client: Any, name: str, limit: int) -> tuple[list[str], np.ndarray]:
    ids, vecs = [], []
    it = client.query_iterator(name, batch_size=2000, filter="image_index == 0 and deleted == false",
                               output_fields=["product_id", "image_vec"], limit=limit)
    try:
        while batch := it.next():
            for r in batch:
                ids.append(str(r["product_id"]))
                vecs.append(r["image_vec"])
    finally:
        it.close()
    if not ids:  # nothing read (an empty collection, or an iterator that found no rows): no vectors
        return [], np.zeros((0, 1), np.float32)
    return ids, np.asarray(vecs, dtype=np.float32).reshape(len(ids), -1)


def _probe(client: Any, name: str, ids: Sequence[str], k: int) -> tuple[dict[str, list[str]], list[float], float]:
    """Top ``k`` similar products of each probe product in ``name`` (its own vector there), the latencies,
    and recall@k against exact search over the collection's product vectors."""
    from indexer.schema import DEFAULT_SEARCH_PARAMS

    index_type = str((client.describe_index(name, "image_vec") or {}).get("index_type", "HNSW"))
    params = {"metric_type": "COSINE", "params": DEFAULT_SEARCH_PARAMS.get(index_type, {})}
    all_ids, all_vecs = _product_vectors(client, name, 1_000_000)
    pos = {p: i for i, p in enumerate(all_ids)}
    norms = all_vecs / np.maximum(np.linalg.norm(all_vecs, axis=1, keepdims=True), 1e-12)
    got, lat, hits = {}, [], 0
    probes = [p for p in ids if p in pos]
    kk = max(0, min(k, len(all_ids) - 1))  # a collection of k products or fewer has fewer neighbours than k
    for pid in probes:
        q = norms[pos[pid]]
        t0 = time.perf_counter()
        res = client.search(name, data=[q.tolist()], anns_field="image_vec", limit=k + 1, search_params=params,
                            filter="image_index == 0 and deleted == false", output_fields=["product_id"],
                            consistency_level="Bounded")
        lat.append(time.perf_counter() - t0)
        top = [str(h["entity"]["product_id"]) for h in res[0] if str(h["entity"]["product_id"]) != pid][:k]
        got[pid] = top
        scores = norms @ q
        scores[pos[pid]] = -np.inf
        exact = {all_ids[i] for i in np.argpartition(-scores, kk - 1)[:kk]} if kk else set()
        hits += len(exact & set(top))
    return got, lat, hits / (kk * len(probes)) if probes and kk else 0.0


def canary(client: Any, alias: str, new: str, *, probes: int = 200, k: int = 10, seed: int = 0,
           thresholds: Thresholds = Thresholds(), lag: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Probe both collections with the same products (each by its own vector there: the "similar products"
    query), and judge the new one: overlap@k with the live one, recall@k against exact search, p50/p99
    latency, products missing, and the feeding lag (``lag``: ``lag_of``). ``passed`` and ``failures``."""
    live = alias_target(client, alias)
    if live is None:
        raise ReindexError(f"no alias {alias}: nothing live to compare with")
    if not client.has_collection(new):
        raise ReindexError(f"no collection {new} (vitrine reindex status lists them)")
    live_ids, _ = _product_vectors(client, live, 1_000_000)
    rng = np.random.default_rng(seed)
    sample = [live_ids[i] for i in rng.choice(len(live_ids), min(probes, len(live_ids)), replace=False)] \
        if live_ids else []
    old_top, old_lat, old_recall = _probe(client, live, sample, k)
    new_top, new_lat, new_recall = _probe(client, new, sample, k)
    new_count = len(_product_vectors(client, new, 1_000_000)[0])
    both = [p for p in sample if p in old_top and p in new_top]
    overlap = float(np.mean([len(set(old_top[p]) & set(new_top[p])) / k for p in both])) if both else 0.0
    same_model = model_key_of(live, alias) == model_key_of(new, alias)

    def pct(a: list[float], q: float) -> float:
        return round(float(np.percentile(a, q)) * 1e3, 2) if a else 0.0

    report: dict[str, Any] = {
        "live": live, "new": new, "same_model": same_model, "probes": len(sample), "k": k,
        f"overlap@{k}": round(overlap, 4), "recall_live": round(old_recall, 4), "recall_new": round(new_recall, 4),
        "p50_ms": {"live": pct(old_lat, 50), "new": pct(new_lat, 50)},
        "p99_ms": {"live": pct(old_lat, 99), "new": pct(new_lat, 99)},
        "products": {"live": len(live_ids), "new": new_count},
        "missing": round(max(0, len(live_ids) - new_count) / max(len(live_ids), 1), 5),
        "lag": sum(int(g["lag"]) for g in lag), "thresholds": asdict(thresholds),
    }
    fail = []
    if same_model and overlap < thresholds.min_overlap:
        fail.append(f"overlap@{k} {overlap:.3f} < {thresholds.min_overlap}")
    if new_recall < thresholds.min_recall:
        fail.append(f"recall@{k} {new_recall:.3f} < {thresholds.min_recall}")
    if old_lat and new_lat and pct(new_lat, 99) > thresholds.max_p99_ratio * max(pct(old_lat, 99), 1.0):
        fail.append(f"p99 {pct(new_lat, 99)} ms > {thresholds.max_p99_ratio} x live {pct(old_lat, 99)} ms")
    if report["missing"] > thresholds.max_missing:
        fail.append(f"{report['missing']:.4f} of the live products missing > {thresholds.max_missing}")
    if report["lag"] > thresholds.max_lag:
        fail.append(f"lag {report['lag']} > {thresholds.max_lag}: the build has not caught up")
    report["passed"], report["failures"] = not fail, fail
    return report


# ---------------------------------------------------------------------------------------------- swap


def _set_alias(client: Any, alias: str, collection: str) -> None:
    if alias in client.list_aliases().get("aliases", []):
        client.alter_alias(collection, alias)
    else:
        client.create_alias(collection, alias)


def finish_pending(client: Any, alias: str) -> str | None:
    """Finish a swap or rollback that was killed half way (``<alias>_leaving`` is still there): if the
    live alias had moved, the collection it left becomes the previous one; if not, nothing had
    happened. Returns what the interrupted move had left, or None."""
    leaving = alias_target(client, alias + LEAVING)
    if leaving is None:
        return None
    if alias_target(client, alias) != leaving:
        _set_alias(client, alias + PREVIOUS, leaving)
    client.drop_alias(alias + LEAVING)
    return leaving


def move_alias(client: Any, alias: str, target: str) -> dict[str, Any]:
    """Point ``alias`` at ``target`` and remember the collection it leaves as ``<alias>_previous``.

    Steps, each one alias operation: (1) ``<alias>_leaving`` -> the live collection; (2) ``alias`` ->
    ``target`` (the switch: atomic in Milvus); (3) ``<alias>_previous`` -> the collection left; (4) drop
    ``<alias>_leaving``. Killed after (1): nothing moved, the next run starts again. After (2) or (3):
    the next run's ``finish_pending`` does (3) and (4)."""
    interrupted = finish_pending(client, alias)
    live = alias_target(client, alias)
    if live == target:
        return {"alias": alias, "live": target, "previous": alias_target(client, alias + PREVIOUS),
                "moved": False, "finished_interrupted": interrupted}
    if not client.has_collection(target):
        raise ReindexError(f"no collection {target}")
    client.load_collection(target)
    if live is not None:
        _set_alias(client, alias + LEAVING, live)
    _set_alias(client, alias, target)
    if live is not None:
        _set_alias(client, alias + PREVIOUS, live)
        client.drop_alias(alias + LEAVING)
    return {"alias": alias, "live": target, "previous": live, "moved": True, "finished_interrupted": interrupted}


def swap(client: Any, alias: str, new: str, canary_report: Mapping[str, Any] | None, *, force: bool = False,
         ) -> dict[str, Any]:
    """Make ``new`` live when its canary passed (or ``force``); ``ReindexError`` with the failures otherwise."""
    if alias_target(client, alias) != new and canary_report is not None and not canary_report["passed"] and not force:
        raise ReindexError("canary failed, not swapping: " + "; ".join(canary_report["failures"]))
    return {**move_alias(client, alias, new), "canary": canary_report}


def rollback(client: Any, alias: str) -> dict[str, Any]:
    """Point the alias back at the previous collection (the new one becomes the previous: a second
    rollback undoes the first)."""
    finish_pending(client, alias)
    previous = alias_target(client, alias + PREVIOUS)
    if previous is None:
        raise ReindexError(f"no {alias}{PREVIOUS}: nothing to roll back to (no swap happened, or gc dropped it)")
    return move_alias(client, alias, previous)


# ---------------------------------------------------------------------------------------------- gc


def group_members(bootstrap: str, group: str, *, client_options: Mapping[str, Any] | None = None) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_options or {}))
    try:
        if hasattr(admin, "describe_groups"):  # kafka-python 3: {group: {"members": [...], ...}}
            return len((admin.describe_groups([group]).get(group) or {}).get("members") or [])
        desc = admin.describe_consumer_groups([group])  # kafka-python 2: [GroupInformation]
        return len(desc[0].members) if desc else 0
    finally:
        admin.close()


def gc(client: Any, alias: str, bootstrap: str, *, drop_previous: bool = False, dry_run: bool = False,
       client_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Drop every collection of ``alias`` that is neither live nor (unless ``drop_previous``) the previous
    one, with its index group's offsets. Refused for a collection whose index group still has members
    (its writers run: they would create it again)."""
    from kafka import KafkaAdminClient

    from streams.topics import index_group

    finish_pending(client, alias)
    live, previous = alias_target(client, alias), alias_target(client, alias + PREVIOUS)
    keep = {live} | (set() if drop_previous else {previous})
    dropped, refused = [], {}
    for name in sorted(client.list_collections()):
        if not name.startswith(f"{alias}_") or name in keep:
            continue
        group = index_group(name)
        members = group_members(bootstrap, group, client_options=client_options)
        if members:
            refused[name] = f"{members} writer(s) still in {group}: stop them first"
            continue
        if dry_run:
            dropped.append(name)
            continue
        if name == previous:
            client.drop_alias(alias + PREVIOUS)
        client.release_collection(name)
        client.drop_collection(name)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_options or {}))
        try:
            with contextlib.suppress(Exception):  # a group that never committed does not exist
                (admin.delete_groups if hasattr(admin, "delete_groups") else admin.delete_consumer_groups)([group])
        finally:
            admin.close()
        dropped.append(name)
    return {"alias": alias, "live": live, "kept": sorted(k for k in keep if k), "dropped": dropped,
            "refused": refused, "dry_run": dry_run}
