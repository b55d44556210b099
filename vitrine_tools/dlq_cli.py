"""``vitrine dlq list`` and ``vitrine dlq replay``: look at the dead-letter topic and re-drive its
records onto catalog.events after a fix (see docs/runbook-dlq.md and ``vitrine_tools.dlq``).

``list [--reason R] [--stage S] [--since T] [--json]`` prints counts by reason and stage and the
newest records (or all of it as one JSON object). ``replay --reason R [--since T] [--stage S]
[--limit N] [--dry-run]`` sends the selected records' original bytes to catalog.events with the
original key and the headers vitrine-replay-of and vitrine-replay-reason; ``--reason`` is required
(``--reason all`` replays every reason, on purpose). ``--since`` takes epoch seconds or an ISO-8601
time (no zone = UTC) and compares with the dead-letter record's ``at``; ``--limit`` keeps the N
oldest selected records. The last line on stdout is the summary as JSON:
``{"selected", "replayed", "skipped": [{"offset", "why"}], "topic", "dry_run"}`` (plus ``failed``
when the broker did not acknowledge some records).

Replay needs no dedup: the index's version guard makes a replayed event that is not newer than the
indexed version a no-op, so re-running a replay (after a crash, say) is safe.

Exit status: 0 done (skipped records are in the summary), 2 the broker could not be read or did not
acknowledge a replayed record, or the settings are bad. Defaults come from the VITRINE_* settings:
the broker (VITRINE_KAFKA_BOOTSTRAP with its security settings) and the topics (VITRINE_TOPIC_PREFIX).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dlq", help="look at the dead-letter topic; re-drive its records after a fix",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="dlq_cmd", required=True, metavar="ACTION")
    ls = dsub.add_parser("list", help="counts by reason and stage, and the newest records")
    ls.add_argument("--reason", help="only this reason")
    ls.add_argument("--newest", type=int, default=10, metavar="N", help="records shown in the table (default 10)")
    ls.add_argument("--json", action="store_true", help="print one JSON object: summary and every record")
    ls.set_defaults(func=run_list)
    rp = dsub.add_parser("replay", help="send the originals of the selected records back to catalog.events")
    rp.add_argument("--reason", required=True, help="only this reason (required; 'all' for every reason)")
    rp.add_argument("--limit", type=int, metavar="N", help="at most the N oldest selected records")
    rp.add_argument("--dry-run", action="store_true", help="select and check, send nothing")
    rp.set_defaults(func=run_replay)
    for q in (ls, rp):
        q.add_argument("--since", metavar="T", type=_since, help="only records dead-lettered at or after T "
                       "(epoch seconds or ISO-8601)")
        q.add_argument("--stage", help="only this stage (decode, fetch, ...)")
        q.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: "
                       "VITRINE_KAFKA_BOOTSTRAP)")


def _since(text: str) -> float:
    from vitrine_tools.dlq import parse_since

    try:
        return parse_since(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epoch seconds or an ISO-8601 time, got {text!r}") from None


def _iso(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _context(args: argparse.Namespace) -> tuple[str, Any, dict[str, Any]] | None:
    """(bootstrap, topics, client options) from the settings and ``--bootstrap``; None if they are bad."""
    from workers.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"vitrine dlq: {exc}", file=sys.stderr)
        return None
    return args.bootstrap or settings.kafka_bootstrap, settings.topics, settings.kafka_options()


def _read(args: argparse.Namespace, bootstrap: str, topic: str, options: dict[str, Any]) -> list[Any] | None:
    from kafka.errors import KafkaError

    from vitrine_tools.dlq import DlqTopicMissing, read_dlq

    try:
        return read_dlq(bootstrap, topic, client_options=options, since=args.since, reason=args.reason,
                        stage=args.stage)
    except (KafkaError, DlqTopicMissing, TimeoutError) as exc:
        print(f"vitrine dlq: cannot read {topic} at {bootstrap}: {exc}", file=sys.stderr)
        return None


def run_list(args: argparse.Namespace) -> int:
    from vitrine_tools.dlq import summarise

    ctx = _context(args)
    if ctx is None:
        return 2
    bootstrap, topics, options = ctx
    records = _read(args, bootstrap, topics.dlq, options)
    if records is None:
        return 2
    summary = summarise(records)
    if args.json:
        print(json.dumps({"topic": topics.dlq, "summary": summary, "records": [r.brief() for r in records]}))
        return 0
    print(f"{topics.dlq}: {summary['total']} records, {_iso(summary['oldest_at'])} .. {_iso(summary['newest_at'])}")
    print(f"{'count':>7}  {'reason':<28} stage")
    for row in summary["by_reason_stage"]:
        print(f"{row['count']:>7}  {row['reason']:<28} {row['stage']}")
    newest = sorted(records, key=lambda r: r.at)[-args.newest:] if args.newest > 0 else []
    if newest:
        print(f"\nnewest {len(newest)}:")
        print(f"{'offset':>7}  {'at':<20} {'reason':<24} {'stage':<8} {'product_id':<16} message")
        for r in reversed(newest):
            print(f"{r.dlq_offset:>7}  {_iso(r.at):<20} {r.reason:<24} {r.stage:<8} {r.product_id or '-':<16} "
                  f"{r.message[:80]}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from vitrine_tools.dlq import ReplayNotAcknowledged, replay

    ctx = _context(args)
    if ctx is None:
        return 2
    bootstrap, topics, options = ctx
    records = _read(args, bootstrap, topics.dlq, options)
    if records is None:
        return 2
    records.sort(key=lambda r: r.at)
    if args.limit is not None:
        records = records[:max(args.limit, 0)]
    try:
        report = replay(records, bootstrap, topics.events, client_options=options, dry_run=args.dry_run)
    except ReplayNotAcknowledged as exc:
        print(f"vitrine dlq replay: {exc}; running the same replay again is safe (version guard)", file=sys.stderr)
        print(json.dumps({**exc.report.json(), "failed": exc.failed}))
        return 2
    except KafkaError as exc:
        print(f"vitrine dlq replay: cannot reach the broker at {bootstrap}: {exc!r}; nothing was "
              "replayed", file=sys.stderr)
        return 2
    for s in report.skipped:
        print(f"skipped offset {s['offset']}: {s['why']}", file=sys.stderr)
    verb = "would replay" if report.dry_run else "replayed"
    print(f"{verb} {report.replayed} of {report.selected} records to {report.topic}, skipped {len(report.skipped)}; "
          "follow them: they are indexed, superseded (an older version than the index holds), or back on "
          f"{topics.dlq} with a reason", file=sys.stderr)
    print(json.dumps(report.json()))
    return 0
