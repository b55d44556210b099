"""``vitrine openapi``: print the query worker's OpenAPI 3 document (the one it serves at /openapi.json)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("openapi", help="print the query API's OpenAPI 3 document")
    p.set_defaults(func=_print)


def _print(args: argparse.Namespace) -> int:
    from workers.query.openapi import openapi_document

    print(json.dumps(openapi_document(), indent=1))
    return 0
