"""``vitrine reindex status``: the collections behind the alias, which is live, and the feeding lag
(``vitrine_tools.reindex``). One JSON document."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reindex", help="the collections behind the alias and the lag feeding them (status)")
    which = p.add_subparsers(dest="reindex_cmd", required=True, metavar="ACTION")
    s = which.add_parser("status", help="collections, the live one, model versions, sizes, index types, lag")
    s.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from vitrine_tools.reindex import status
    from workers.settings import load_settings

    s = load_settings()
    report = status(s.milvus_uri, s.collection_alias, s.kafka_bootstrap, s.topics,
                    token=s.milvus_token.get_secret_value(), client_options=s.kafka_options())
    print(json.dumps(report, indent=1))
    return 0
