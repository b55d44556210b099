"""``vitrine reindex status``: what an operator looks at before and after moving to a new collection.

The collections behind one alias (``VITRINE_COLLECTION_ALIAS``): each one's name (a digest of the
model version, the vector dimensions and the layout: ``indexer.schema.IndexLayout.collection``),
the model version it was built by, its products and rows, its vector index type and parameters, and
which one the alias points at (the live one). Beside them, the lag of the consumer groups that feed
them: ``vitrine-ingest`` on ``catalog.events`` and ``vitrine-index`` on ``index.enriched`` (end offset
minus committed offset, per partition). Read-only: it changes nothing.

The rest of ``vitrine reindex`` (build, canary, swap, rollback, gc) is not built yet (issue 13).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GROUPS = {"vitrine-ingest": "events", "vitrine-index": "enriched"}


def collections(client: Any, alias: str) -> list[dict[str, Any]]:
    """Every collection named ``<alias>_<digest>``, live one first."""
    try:
        live = client.describe_alias(alias)["collection_name"]
    except Exception:  # noqa: BLE001 - no alias yet: nothing is live
        live = None
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
        out.append({"collection": name, "live": name == live, "model_version": model,
                    "products": products, "rows": rows, "image_index": index,
                    "vector_fields": sorted(f for f in fields if f.endswith("_vec")),
                    "lexical": "text_sparse" in fields})
    return sorted(out, key=lambda c: (not c["live"], c["collection"]))


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
    return {"group": group, "topic": topic, "lag": sum(per.values()), "partitions": per}


def status(milvus_uri: str, alias: str, bootstrap: str, topics: Any, *, token: str = "",
           client_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    from indexer.store import connect

    client = connect(milvus_uri, token=token)
    try:
        cols = collections(client, alias)
    finally:
        client.close()
    lag = [group_lag(bootstrap, group, getattr(topics, attr), client_options=client_options)
           for group, attr in GROUPS.items()]
    return {"alias": alias, "live": next((c["collection"] for c in cols if c["live"]), None), "collections": cols,
            "consumer_lag": lag}
