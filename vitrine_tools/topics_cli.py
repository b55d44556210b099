"""``vitrine topics ensure|describe``: the topic set as the settings say it should be.

``ensure`` creates missing topics with ``VITRINE_PARTITIONS``, ``VITRINE_REPLICATION_FACTOR`` and each
topic's configs (``streams.topics``: the catalogue and feature topics compacted), sets the configs of
topics that differ, and with ``--grow-partitions`` adds partitions where a topic has fewer than the
setting (an operator's decision: products move partitions). What cannot change in place (fewer
partitions, another replication factor) is reported as drift, and the exit status is then 1.
Each model's feature log (``index.enriched.<model key>``, created by that model's workers) found on the
broker is ensured too. ``describe`` prints what the broker holds. Both print one JSON document.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("topics", help="create or alter the topics to the settings; describe them")
    which = p.add_subparsers(dest="topics_cmd", required=True, metavar="ACTION")
    e = which.add_parser("ensure", help="create missing topics, set configs, optionally grow partitions")
    e.add_argument("--grow-partitions", action="store_true",
                   help="add partitions where a topic has fewer than VITRINE_PARTITIONS")
    e.add_argument("--bootstrap", help="Kafka bootstrap servers (default: VITRINE_KAFKA_BOOTSTRAP)")
    e.set_defaults(func=_ensure)
    d = which.add_parser("describe", help="partitions, replication and configs of each topic on the broker")
    d.add_argument("--bootstrap", help="Kafka bootstrap servers (default: VITRINE_KAFKA_BOOTSTRAP)")
    d.set_defaults(func=_describe)


def _ensure(args: argparse.Namespace) -> int:
    from streams.admin import ensure_topics
    from workers.settings import load_settings

    s = load_settings()
    bootstrap = args.bootstrap or s.kafka_bootstrap
    report = ensure_topics(bootstrap, s.topics, client_options=s.kafka_options(), alter=True,
                           grow_partitions=args.grow_partitions).json()
    for key in feature_logs(bootstrap, s):  # each model's feature log (created by its workers)
        more = ensure_topics(bootstrap, s.topics.for_model(key), client_options=s.kafka_options(), alter=True,
                             grow_partitions=args.grow_partitions).json()
        for field, value in more.items():
            if isinstance(value, dict):
                report[field].update(value)
            else:
                report[field] += [v for v in value if v not in report[field]]
    print(json.dumps(report, indent=1))
    return 1 if report["drift"] else 0


def feature_logs(bootstrap: str, s: Any) -> list[str]:
    """The model keys of the feature logs on the broker (``<prefix>.index.enriched.<key>``)."""
    from streams.admin import _admin

    admin = _admin(bootstrap, s.kafka_options(), 30.0)
    try:
        names = admin.list_topics()
    finally:
        admin.close()
    prefix = s.topics.features_prefix
    return sorted(n[len(prefix):] for n in names if n.startswith(prefix))


def _describe(args: argparse.Namespace) -> int:
    from streams.admin import _admin, describe_topics
    from workers.settings import load_settings

    s = load_settings()
    admin = _admin(args.bootstrap or s.kafka_bootstrap, s.kafka_options(), 30.0)
    try:
        names = [spec.name for spec in s.topics.specs()]
        names += [s.topics.features(k) for k in feature_logs(args.bootstrap or s.kafka_bootstrap, s)]
        print(json.dumps(describe_topics(admin, names), indent=1))
    finally:
        admin.close()
    return 0
