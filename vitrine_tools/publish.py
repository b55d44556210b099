"""Publish a catalogue file to ``catalog.events``: backfills and first loads (``vitrine publish``).

Every row is validated before it is sent (``parse_event``, the validator the ingest worker runs).
A bad row is refused with its line number, the field and the message, and never sent; the rest go
on. What is sent is the event as the validator reads it (strings trimmed, an ISO time as epoch
seconds, defaults filled in), keyed by its product id, through ``CatalogPublisher`` (``acks=all``).

Input formats, chosen by the file's suffix:

- ``.jsonl`` / ``.ndjson``: one event per line, the JSON object of ``docs/api/events.schema.json``;
  ``schema_version`` (1) and ``occurred_at`` (now) may be left out. Blank lines are skipped.
- ``.csv``: UTF-8 (a BOM is skipped), comma-separated, a header row, RFC 4180 quoting. Columns:
  ``product_id`` and ``version`` (required); ``type`` (``upsert``, ``patch`` or ``delete``; empty or
  absent: ``upsert``); ``occurred_at`` (epoch seconds or ISO-8601; empty: now); ``title``,
  ``description``, ``brand``, ``price``, ``currency``, ``in_stock`` (true/false, yes/no, 1/0);
  ``images`` (several separated by ``|``). Every other column is a merchant attribute: its name is
  the attribute name, and empty cells are skipped. An upsert row takes its fields from the cells;
  a patch row changes the fields whose cells are not empty (an attribute or an image cell on a
  patch is refused: a patch changes scalar fields only); a delete row must leave every cell other
  than ``product_id``, ``version`` and ``occurred_at`` empty. The line of a row is the line of the
  file it starts on (the header is line 1).

Images: a URI (``s3://``, ``http(s)://``, ``file://``) is sent as it is. Any other image is a local
path, relative to the images root (``--images-root``; default: the folder of the input file); it
must exist, and is sent as a ``file://`` URI, or with ``--upload-to s3://bucket`` uploaded to that
bucket first and sent as ``s3://bucket/images/<sha256>.<ext>`` (content-addressed: a rerun uploads
nothing new). A row is validated before its images are uploaded.

What holds and what happens on a failure:

- ``sent`` counts events the broker acknowledged. The publisher is flushed every ``flush_every``
  events and at the end; when a flush fails (``PublishError``) publishing stops, and the events after
  the last acknowledged line may or may not have arrived. Publishing the file again is safe: the
  index keeps the highest version of each product, so a duplicate changes nothing.
- A file that cannot be read stops publishing at that point; what was read before is sent and counted.
- Refused rows are counted and listed (``refusals``), never dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.codecs import dumps
from streams.exceptions import InvalidEvent, PublishError
from streams.publisher import CatalogPublisher
from streams.schema import MAX_EVENT_BYTES, SCHEMA_VERSION, parse_event

__all__ = ["ImageResolver", "PublishSummary", "Refusal", "UnreadableFile", "UploadFailed", "prepare", "publish_file",
           "publish_rows", "read_rows"]

#: At most this many refusals are listed in the summary (all are counted).
MAX_LISTED_REFUSALS = 50
CSV_FIELDS = ("title", "description", "brand", "price", "currency", "in_stock", "images")
CSV_EVENT_COLUMNS = frozenset(("product_id", "version", "type", "occurred_at", *CSV_FIELDS))
JSONL_SUFFIXES = (".jsonl", ".ndjson")
_TRUE, _FALSE = frozenset(("true", "yes", "1", "y", "t")), frozenset(("false", "no", "0", "n", "f"))
_SCHEMES = ("s3://", "http://", "https://", "file://")

#: (line, a raw event to validate, or the reason the line is refused already)
Row = tuple[int, dict[str, Any] | InvalidEvent]


class UnreadableFile(OSError):
    """The input file cannot be opened, decoded or parsed as its format; ``vitrine publish`` exits 2."""


class UploadFailed(OSError):
    """A local image could not be read or uploaded to the bucket (the object store is away, the
    credentials are wrong); publishing stops and ``vitrine publish`` exits 2. Nothing to fix in the row."""


@dataclass(frozen=True)
class Refusal:
    """A row that was not sent: where it is and why (``InvalidEvent.reason``, ``.field``, the message)."""

    line: int
    reason: str
    field: str | None
    message: str

    @classmethod
    def of(cls, line: int, exc: InvalidEvent) -> Refusal:
        message = str(exc)
        if exc.field and message.startswith(f"{exc.field}: "):
            message = message[len(exc.field) + 2:]
        return cls(line, exc.reason, exc.field, message)


@dataclass
class PublishSummary:
    """What ``publish_rows`` did. ``error`` is set when it stopped early (broker or file)."""

    topic: str
    sent: int = 0
    refused: int = 0
    refusals: list[Refusal] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    acked_through_line: int = 0  # every row up to this line is acknowledged or refused

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "sent": self.sent, "refused": self.refused,
            "refusals": [r.__dict__ for r in self.refusals[:MAX_LISTED_REFUSALS]],
            "topic": self.topic, "seconds": round(self.seconds, 3),
        }
        if self.error is not None:
            doc["error"] = self.error
            doc["acked_through_line"] = self.acked_through_line
        return doc

    @property
    def exit_code(self) -> int:
        """0: every row sent; 1: some rows refused; 2: the broker or the file failed."""
        return 2 if self.error is not None else 1 if self.refused else 0


class ImageResolver:
    """Turns the images of an event into URIs: local paths under ``root`` become ``file://`` URIs, or
    ``s3://`` URIs once uploaded through ``publisher.upload_image`` (``upload=True``)."""

    def __init__(self, root: Path, *, publisher: CatalogPublisher | None = None, upload: bool = False) -> None:
        if upload and publisher is None:
            raise ValueError("upload=True needs the publisher that uploads")
        self.root = root
        self._publisher = publisher
        self._upload = upload
        self._uploaded: dict[Path, str] = {}

    def local(self, images: list[Any]) -> tuple[list[Any], dict[str, Path]]:
        """The images with local paths as ``file://`` URIs, and those paths by URI; ``InvalidEvent`` when a
        local image does not exist."""
        out, paths = [], {}
        for i, image in enumerate(images):
            if not isinstance(image, str) or "://" in image or not image.strip():
                out.append(image)  # a URI, or not a string: the validator judges it
                continue
            path = (self.root / image.strip()).resolve()
            if not path.is_file():
                raise InvalidEvent("missing_image", f"no such image file {str(path)[:300]!r}", f"images.{i}")
            uri = path.as_uri()
            out.append(uri)
            paths[uri] = path
        return out, paths

    def upload(self, images: list[str], paths: dict[str, Path]) -> list[str]:
        """With ``upload=True``, the local images (``paths``) replaced by their uploaded ``s3://`` URIs."""
        if not self._upload or not paths:
            return images
        assert self._publisher is not None
        out = []
        for uri in images:
            path = paths.get(uri)
            if path is not None and path not in self._uploaded:
                self._uploaded[path] = self._upload_one(path)
            out.append(self._uploaded[path] if path is not None else uri)
        return out


    def _upload_one(self, path: Path) -> str:
        from minio.error import MinioException
        from urllib3.exceptions import HTTPError

        assert self._publisher is not None
        try:
            return self._publisher.upload_image(path)
        except (OSError, MinioException, HTTPError) as exc:
            raise UploadFailed(f"{path}: {exc}") from exc


# --------------------------------------------------------------------------- reading


def read_rows(path: Path) -> Iterator[Row]:
    """The rows of a ``.jsonl``/``.ndjson`` or ``.csv`` file; ``UnreadableFile`` when it cannot be read."""
    suffix = path.suffix.lower()
    if suffix not in (*JSONL_SUFFIXES, ".csv"):
        raise UnreadableFile(f"{path}: unknown format {suffix!r} (.jsonl, .ndjson or .csv)")
    try:
        f = path.open("rb")
    except OSError as exc:
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from None
    with f:
        yield from (_jsonl_rows(f) if suffix in JSONL_SUFFIXES else _csv_rows(f, path))


def _jsonl_rows(f: io.BufferedReader) -> Iterator[Row]:
    for line, raw in enumerate(f, 1):
        if not raw.strip():
            continue
        if len(raw) > MAX_EVENT_BYTES:
            yield line, InvalidEvent("too_large", f"line is {len(raw)} bytes, the limit is {MAX_EVENT_BYTES}")
            continue
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            yield line, InvalidEvent("malformed_json", f"not valid JSON: {exc}")
            continue
        yield line, doc if isinstance(doc, dict) else InvalidEvent("malformed_json", "an event must be a JSON object")


def _csv_rows(f: io.BufferedReader, path: Path) -> Iterator[Row]:
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader, [])]
        if "product_id" not in header or "version" not in header:
            raise UnreadableFile(f"{path}: the header must name product_id and version, got {header[:20]}")
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                yield line, InvalidEvent("bad_row", f"{len(cells)} cells, the header has {len(header)}")
                continue
            try:
                yield line, _csv_event(dict(zip(header, cells, strict=True)))
            except InvalidEvent as exc:
                yield line, exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableFile(f"{path}: line {reader.line_num}: {exc}") from None


def _number(text: str, name: str, kind: type[int | float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise InvalidEvent("invalid_field", f"must be {what}, got {text[:80]!r}", name) from None


def _boolean(text: str, name: str) -> bool:
    low = text.lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    raise InvalidEvent("invalid_field", f"must be true or false, got {text[:80]!r}", name)


def _csv_event(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row as a raw event (types converted, empty cells left out); ``InvalidEvent`` naming the column."""
    cells = {k: v.strip() for k, v in row.items() if k and v.strip()}
    kind = cells.pop("type", "upsert").lower()
    doc: dict[str, Any] = {"type": kind, "product_id": cells.pop("product_id", "")}
    if "version" in cells:
        doc["version"] = _number(cells.pop("version"), "version", int)
    if "occurred_at" in cells:
        when = cells.pop("occurred_at")
        try:
            doc["occurred_at"] = float(when)
        except ValueError:
            doc["occurred_at"] = when  # an ISO-8601 time, or not: the validator judges it
    values: dict[str, Any] = {k: cells.pop(k) for k in ("title", "description", "brand", "currency") if k in cells}
    if "price" in cells:
        values["price"] = _number(cells.pop("price"), "price", float)
    if "in_stock" in cells:
        values["in_stock"] = _boolean(cells.pop("in_stock"), "in_stock")
    images = [p.strip() for p in cells.pop("images", "").split("|") if p.strip()]
    if kind == "upsert":
        doc.update(values)
        if images:
            doc["images"] = images
        if cells:
            doc["attributes"] = cells
    elif kind == "patch":
        doc["fields"] = {**values, **({"images": images} if images else {}), **cells}
    elif kind == "delete":
        extra = [*values, *(["images"] if images else []), *cells]
        if extra:
            raise InvalidEvent("invalid_field", "a delete row carries only product_id, version and occurred_at",
                               extra[0])
    else:
        raise InvalidEvent("unknown_type", f"must be upsert, patch or delete, got {kind[:40]!r}", "type")
    return doc


# --------------------------------------------------------------------------- publishing


def prepare(doc: dict[str, Any], images: ImageResolver | None) -> tuple[str, bytes]:
    """Validate one raw event and return its key and value as they go on the wire; ``InvalidEvent`` if bad.

    Local images are checked and resolved before validation, and uploaded only after it."""
    doc = dict(doc)
    doc.setdefault("schema_version", SCHEMA_VERSION)
    doc.setdefault("occurred_at", time.time())
    paths: dict[str, Path] = {}
    if images is not None and isinstance(doc.get("images"), list):
        doc["images"], paths = images.local(doc["images"])
    event = parse_event(doc)
    canonical = event.model_dump(mode="json", exclude_none=True)
    if paths and images is not None:
        canonical["images"] = images.upload(canonical["images"], paths)
        event = parse_event(canonical)
    value = dumps(canonical)
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidEvent("too_large", f"event is {len(value)} bytes, the limit is {MAX_EVENT_BYTES}")
    return event.product_id, value


def publish_rows(
    publisher: CatalogPublisher,
    rows: Iterable[Row],
    *,
    topic: str,
    images: ImageResolver | None = None,
    flush_every: int = 5000,
    on_row: Callable[[int], None] | None = None,
    on_refusal: Callable[[Refusal], None] | None = None,
) -> PublishSummary:
    """Validate and send every row, refusing the bad ones; flush every ``flush_every`` events and at the end.

    ``publisher`` is started and stays open. ``on_row(line)`` is called after each row (progress),
    ``on_refusal`` with each refusal (all of them; the summary lists the first 50)."""
    from kafka.errors import KafkaError

    summary = PublishSummary(topic=topic)
    t0 = time.monotonic()
    pending, last_line = 0, 0

    def refuse(line: int, exc: InvalidEvent) -> None:
        refusal = Refusal.of(line, exc)
        summary.refused += 1
        if len(summary.refusals) < MAX_LISTED_REFUSALS:
            summary.refusals.append(refusal)
        if on_refusal is not None:
            on_refusal(refusal)

    def flush() -> None:
        nonlocal pending
        publisher.flush()
        summary.sent += pending
        summary.acked_through_line = last_line
        pending = 0

    try:
        for line, item in rows:
            last_line = line
            try:
                if isinstance(item, InvalidEvent):
                    raise item
                key, value = prepare(item, images)
            except InvalidEvent as exc:
                refuse(line, exc)
            else:
                publisher.send_raw(key, value)
                pending += 1
                if pending >= flush_every:
                    flush()
            if on_row is not None:
                on_row(line)
        flush()
    except UnreadableFile as exc:
        summary.error = f"cannot read the file: {exc}"
        _flush_after_error(flush, summary)
    except (PublishError, KafkaError) as exc:
        summary.error = f"the broker did not acknowledge: {exc}"
    except UploadFailed as exc:
        summary.error = f"cannot upload an image (line {last_line}): {exc}"
        _flush_after_error(flush, summary)
    summary.seconds = time.monotonic() - t0
    return summary


def _flush_after_error(flush: Callable[[], None], summary: PublishSummary) -> None:
    """Send what was read before a file or upload error; a broker failure then is noted as well."""
    from kafka.errors import KafkaError

    try:
        flush()
    except (PublishError, KafkaError) as exc:
        summary.error = f"{summary.error}; and the broker did not acknowledge: {exc}"


def publish_file(
    path: Path,
    publisher: CatalogPublisher,
    *,
    topic: str,
    images_root: Path | None = None,
    upload: bool = False,
    on_row: Callable[[int], None] | None = None,
    on_refusal: Callable[[Refusal], None] | None = None,
) -> PublishSummary:
    """``publish_rows`` over the rows of ``path`` (see the module docstring for the formats)."""
    root = images_root if images_root is not None else path.resolve().parent
    resolver = ImageResolver(root, publisher=publisher, upload=upload)
    return publish_rows(publisher, read_rows(path), topic=topic, images=resolver, on_row=on_row,
                        on_refusal=on_refusal)
