"""``vitrine topics ensure|describe``: the topic set as the settings say it should be.

``ensure`` creates missing topics with ``VITRINE_PARTITIONS``, ``VITRINE_REPLICATION_FACTOR`` and each
topic's configs (``streams.topics``: the catalogue and feature topics compacted), sets the configs of
topics that differ, and with ``--grow-partitions`` adds partitions where a topic has fewer than the
setting (an operator's decision: products move partitions). What cannot change in place (fewer
partitions, another replication factor) is reported as drift, and the exit status is then 1.
``describe`` prints what the broker holds. Both print one JSON document.
"""

from __future__ import annotations

import argparse
import json


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
    report = ensure_topics(args.bootstrap or s.kafka_bootstrap, s.topics, client_options=s.kafka_options(),
                           alter=True, grow_partitions=args.grow_partitions)
    print(json.dumps(report.json(), indent=1))
    return 1 if report.drift else 0


def _describe(args: argparse.Namespace) -> int:
    from streams.admin import _admin, describe_topics
    from workers.settings import load_settings

    s = load_settings()
    admin = _admin(args.bootstrap or s.kafka_bootstrap, s.kafka_options(), 30.0)
    try:
        print(json.dumps(describe_topics(admin, [spec.name for spec in s.topics.specs()]), indent=1))
    finally:
        admin.close()
    return 0
