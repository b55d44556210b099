"""``vitrine publish FILE``: validate and publish a .jsonl or .csv catalogue file to catalog.events.

Each bad row is refused with its line, field and reason (each on stderr as it is met, the first 50
in the summary) and never sent; the others are sent. The last line on stdout is the summary as JSON:
``{"sent", "refused", "refusals": [{"line", "reason", "field", "message"}], "topic", "seconds"}``
(plus ``error`` and ``acked_through_line`` when publishing stopped early).
Exit status: 0 every row sent, 1 some rows refused, 2 the broker did not acknowledge or the file
(or an image upload) failed. The formats are described in ``vitrine_tools.publish``.

Defaults come from the VITRINE_* settings: the broker (VITRINE_KAFKA_BOOTSTRAP, with its security
settings), the topic (VITRINE_TOPIC_PREFIX + .catalog.events) and, for --upload-to, the object store
(VITRINE_S3_ENDPOINT, VITRINE_S3_ACCESS_KEY, VITRINE_S3_SECRET_KEY, VITRINE_S3_SECURE, VITRINE_S3_REGION).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitrine_tools.publish import PublishSummary, Refusal

#: The consumer groups of the ingest workers on catalog.events, one per model (streams.topics.ingest_group).
INGEST_GROUP = "vitrine-ingest.<model key>"
_BUCKET = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/?$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="validate and publish a .jsonl or .csv catalogue file (backfills)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, metavar="FILE", help="a .jsonl/.ndjson (one event a line) or .csv file")
    p.add_argument("--images-root", type=Path, metavar="DIR",
                   help="folder that relative image paths are under (default: the folder of FILE)")
    p.add_argument("--upload-to", metavar="s3://BUCKET", type=_bucket,
                   help="upload local images to this bucket and reference them as s3:// URIs "
                        "(default: reference them as file:// URIs)")
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: VITRINE_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="topic to publish to (default: <VITRINE_TOPIC_PREFIX>.catalog.events)")
    p.set_defaults(func=run)


def _bucket(text: str) -> str:
    match = _BUCKET.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected s3://BUCKET (a bucket name, no key prefix), got {text!r}")
    return match.group(1)


def run(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from streams.admin import quiet_client_debug_logs
    from streams.publisher import CatalogPublisher
    from vitrine_tools.publish import publish_file
    from workers.settings import SettingsError, load_settings

    if not args.file.is_file():
        print(f"vitrine publish: {args.file}: no such file", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"vitrine publish: {exc}", file=sys.stderr)
        return 2
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    topic = args.topic or settings.topics.events
    s3: Any = None
    if args.upload_to:
        from minio import Minio

        s3 = Minio(settings.s3_endpoint, access_key=settings.s3_access_key.get_secret_value(),
                   secret_key=settings.s3_secret_key.get_secret_value(), secure=settings.s3_secure,
                   region=settings.s3_region)
    quiet_client_debug_logs()
    publisher = CatalogPublisher(bootstrap, topic, client_options=settings.kafka_options(), s3=s3,
                                 bucket=args.upload_to)
    try:
        publisher.start()
    except KafkaError as exc:
        print(f"vitrine publish: cannot reach the broker at {bootstrap}: {exc!r}", file=sys.stderr)
        return 2
    progress = _Progress(args.file) if sys.stderr.isatty() else None
    summary: PublishSummary | None = None
    try:
        summary = publish_file(args.file, publisher, topic=topic, images_root=args.images_root,
                               upload=bool(args.upload_to), on_row=progress.update if progress else None,
                               on_refusal=progress.write if progress else _say)
    finally:
        if progress is not None:
            progress.close()
        try:
            publisher.close()
        except Exception as exc:  # noqa: BLE001 -- the summary below says what was acknowledged
            if summary is None or summary.error is None:
                print(f"vitrine publish: closing the producer: {exc!r}", file=sys.stderr)
    suffix = "catalog.events"
    dlq = f"{topic.removesuffix(suffix)}catalog.dlq" if topic.endswith(suffix) else settings.topics.dlq
    print(_human(summary, bootstrap, dlq))
    print(json.dumps(summary.to_json()))
    return summary.exit_code


def refusal_line(r: Refusal) -> str:
    return f"line {r.line}: refused ({r.reason}) {r.field + ': ' if r.field else ''}{r.message}"


def _say(r: Refusal) -> None:
    print(refusal_line(r), file=sys.stderr)


def _human(summary: PublishSummary, bootstrap: str, dlq: str) -> str:
    done = f"sent {summary.sent} events to {summary.topic} in {summary.seconds:.2f}s, refused {summary.refused}"
    if summary.error:
        return (f"{done}; STOPPED: {summary.error}. Every row up to line {summary.acked_through_line} was "
                "acknowledged or refused; publishing the file again is safe (the index keeps the highest "
                "version of each product).")
    return (f"{done}.\nFollow them to the index: `vitrine reindex status` shows the lag of the ingest groups "
            f"({INGEST_GROUP}) on {summary.topic} and of the index groups; it drains to 0 "
            f"(or kafka-consumer-groups.sh --bootstrap-server {bootstrap} --describe --all-groups); "
            "vitrine_events_indexed_total and vitrine_events_dlq_total on each worker's /metrics count them; "
            f"events the workers refuse (an image that cannot be fetched, ...) are on {dlq} with the reason.")


class _Progress:
    """A tqdm bar over the lines of the file, on stderr (only when stderr is a terminal)."""

    def __init__(self, path: Path) -> None:
        from tqdm import tqdm

        try:
            with path.open("rb") as f:
                total: int | None = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except OSError:
            total = None
        self._bar = tqdm(total=total, unit=" lines", file=sys.stderr, dynamic_ncols=True)

    def update(self, line: int) -> None:
        self._bar.update(max(line - self._bar.n, 0))

    def write(self, r: Refusal) -> None:
        self._bar.write(refusal_line(r), file=sys.stderr)

    def close(self) -> None:
        self._bar.close()
