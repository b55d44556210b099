"""``vitrine schema events [--out FILE]``: print the JSON Schema of ``catalog.events`` (draft 2020-12).

Generated from the models ``parse_event`` validates with (``streams.jsonschema``);
``docs/api/events.schema.json`` is this command's output.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of the catalogue events", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_subparsers(dest="schema", required=True, metavar="SCHEMA")
    events = which.add_parser("events", help="the events of catalog.events (upsert, patch, delete)")
    events.add_argument("--out", type=Path, metavar="FILE", help="write the schema to FILE instead of stdout")
    events.set_defaults(func=_events)


def _events(args: argparse.Namespace) -> int:
    from streams.jsonschema import render_event_json_schema

    text = render_event_json_schema()
    if args.out is None:
        print(text, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0
