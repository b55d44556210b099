"""Hostile inputs, end to end through the real worker processes, each with the outcome it must get.

Events end in the DLQ with a reason naming the problem; odd but valid images (animated GIF, CMYK,
16-bit, alpha, EXIF-rotated) must be *indexed*, not refused; image URLs that point inside the
network are refused before any connection is made; bad queries get an error reply naming the field.
The oracle (``vitrine_tools.chaos.oracle``) judges the events with the reasons ``image_reasons`` gives;
``run_queries`` checks the replies itself and returns one line per check.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from streams.codecs import dumps
from streams.schema import MAX_EVENT_BYTES

#: http(s) hosts the stack allow-lists, so that the *address* check is what refuses them.
INTERNAL_HOSTS = ["169.254.169.254", "127.0.0.1", "::1", "10.1.2.3", "172.16.5.4", "192.168.1.1", "localhost"]


def _encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    data = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4: ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr: ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17: ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def hostile_images(photo: Path) -> dict[str, tuple[bytes, str | None]]:
    """file name -> (bytes, expected DLQ reason or None for "must be indexed"), built from ``photo``."""
    base = Image.open(photo).convert("RGB")
    jpeg = _encode(base, "JPEG", quality=90)
    sideways = base.transpose(Image.Transpose.ROTATE_90)  # 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    sixteen = Image.fromarray(__import__("numpy").asarray(base.convert("L"), dtype="uint16") * 257)
    alpha = base.copy()
    alpha.putalpha(200)
    return {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 3], "corrupt"),
        "corrupt.jpg": (jpeg[:200] + bytes(range(256)) * 40, "corrupt"),
        "bomb.png": (_png_claiming(50_000, 50_000), "too_many_pixels"),
        "huge.jpg": (jpeg + b"\0" * (50 * 1024 * 1024), "too_large"),
        "not-an-image.jpg": (b"%!PS-Adobe-3.0 EPSF-3.0\nshowpage\n", "unsupported_format"),
        "animated.gif": (gif.getvalue(), None),
        "cmyk.jpg": (_encode(base.convert("CMYK"), "JPEG", quality=90), None),
        "sixteen.png": (_encode(sixteen, "PNG"), None),
        "alpha.png": (_encode(alpha, "PNG"), None),
        # the same photo three ways: stored sideways with EXIF "turn 90 degrees clockwise", stored upright,
        # and stored sideways without EXIF. The first two must embed alike, the third not.
        "exif-rotated.jpg": (_encode(sideways, "JPEG", quality=95, exif=exif.tobytes()), None),
        "upright.jpg": (_encode(base, "JPEG", quality=95), None),
        "sideways.jpg": (_encode(sideways, "JPEG", quality=95), None),
    }


@dataclass
class HostileEvents:
    """What was published, and what the oracle needs to judge it."""

    image_reasons: dict[str, str | None]  # URI -> expected reason (None: indexed)
    expected: dict[str, str]  # product id or key -> expected outcome ("indexed" or "dlq:<reason>")
    exif_trio: tuple[str, str, str]  # products: EXIF-rotated, upright, sideways without EXIF
    count: int
    prefix: str  # every key and product id of this batch starts with it


def publish_events(send: Callable[[str, bytes], None], image_root: Path, photo: Path, *, run: str = "") -> HostileEvents:
    """Publish every hostile event through ``send(key, raw)``; write the hostile images under ``image_root``."""
    import time

    run = run or uuid.uuid4().hex[:6]
    folder = image_root / f"hostile-{run}"
    folder.mkdir(parents=True, exist_ok=True)
    reasons: dict[str, str | None] = {}
    expected: dict[str, str] = {}
    now = time.time()

    def upsert(pid: str, uri: str, **over: Any) -> dict[str, Any]:
        return {"schema_version": 1, "type": "upsert", "product_id": pid, "version": 1, "occurred_at": now,
                "title": f"hostile {pid}", "price": 10.0, "images": [uri], **over}

    n = 0

    def emit(key: str, raw: bytes, outcome: str) -> None:
        nonlocal n
        send(key, raw)
        expected[key] = outcome
        n += 1

    # events that fail validation
    k = f"h{run}-"
    emit(k + "json", b'{"schema_version": 1, "type": "upsert", "product_id": "x"', "dlq:malformed_json")
    emit(k + "notobj", b'[1, 2, 3]', "dlq:malformed_json")
    emit(k + "binary", bytes(range(256)), "dlq:malformed_json")
    emit(k + "types", dumps(upsert(k + "types", "file:///x.jpg", price="cheap")), "dlq:invalid_field")
    emit(k + "version", dumps(upsert(k + "version", "file:///x.jpg", version="seven")), "dlq:invalid_field")
    missing = upsert(k + "missing", "file:///x.jpg")
    del missing["title"]
    emit(k + "missing", dumps(missing), "dlq:missing_field")
    emit(k + "longtitle", dumps(upsert(k + "longtitle", "file:///x.jpg", title="x" * 100_000)), "dlq:invalid_field")
    emit(k + "toolarge", dumps(upsert(k + "toolarge", "file:///x.jpg", description="y" * (MAX_EVENT_BYTES + 10))),
         "dlq:too_large")
    emit(k + "schema", dumps({**upsert(k + "schema", "file:///x.jpg"), "schema_version": 99}),
         "dlq:unknown_schema_version")
    emit(k + "kind", dumps({**upsert(k + "kind", "file:///x.jpg"), "type": "merge"}), "dlq:unknown_type")
    emit(k + "scheme", dumps(upsert(k + "scheme", "gopher://example.com/x.jpg")), "dlq:invalid_field")
    emit(k + "extra", dumps({**upsert(k + "extra", "file:///x.jpg"), "__proto__": {"admin": True}}),
         "dlq:invalid_field")

    # images: bad ones to the DLQ with the reason, odd but valid ones indexed
    images = hostile_images(photo)
    for name, (data, reason) in images.items():
        path = folder / name
        path.write_bytes(data)
        uri = f"file://{path}"
        reasons[uri] = reason
        pid = f"{k}img-{name.split('.')[0]}"
        emit(pid, dumps(upsert(pid, uri)), "indexed" if reason is None else f"dlq:{reason}")

    # URLs that must never be fetched
    urls = {
        "metadata": ("http://169.254.169.254/latest/meta-data/iam", "forbidden_address"),
        "loopback": ("http://127.0.0.1:9/x.jpg", "forbidden_address"),
        "v6loopback": ("http://[::1]:9/x.jpg", "forbidden_address"),
        "private10": ("http://10.1.2.3/x.jpg", "forbidden_address"),
        "private172": ("http://172.16.5.4/x.jpg", "forbidden_address"),
        "private192": ("http://192.168.1.1/x.jpg", "forbidden_address"),
        "name-to-loopback": ("http://localhost:9/x.jpg", "forbidden_address"),
        "not-allowlisted": ("https://evil.example.com/x.jpg", "forbidden_host"),
        "outside-root": ("file:///etc/passwd", "forbidden_path"),
        "dotdot": (f"file://{image_root}/../../../../etc/hostname", "forbidden_path"),
        "s3-no-key": ("s3://bucket-only/", "bad_uri"),
    }
    for name, (uri, reason) in urls.items():
        reasons[uri] = reason
        pid = f"{k}url-{name}"
        emit(pid, dumps(upsert(pid, uri)), f"dlq:{reason}")
    photo_uri = f"file://{folder / 'upright.jpg'}"
    emit(k + "inj", dumps(upsert(k + "inj", photo_uri, attributes={"category": INJECTION})), "indexed")
    emit(k + "plain", dumps(upsert(k + "plain", photo_uri, attributes={"category": PLAIN_CATEGORY})), "indexed")
    exif_trio = (f"{k}img-exif-rotated", f"{k}img-upright", f"{k}img-sideways")
    return HostileEvents(reasons, expected, exif_trio, n, k)


# ---------------------------------------------------------------------------- queries


def run_queries(search: Callable[[Any], tuple[int, dict[str, Any]]], kafka_search: Callable[[dict[str, Any]], dict[str, Any]],
                photo: Path, injection_pid: str, plain_pid: str, image_root: Path) -> list[tuple[str, bool, str]]:
    """Send every hostile query; return (name, passed, detail) per check.

    ``injection_pid`` was indexed with category ``INJECTION`` (a literal quote-and-or string) and
    ``plain_pid`` with category ``PLAIN_CATEGORY``: an escaped filter finds exactly the first, a spliced one
    would also match the second.
    """
    checks: list[tuple[str, bool, str]] = []

    def expect(name: str, status: int, reply: dict[str, Any], want_status: int, want_code: str,
               want_field: str | None = None) -> None:
        err = reply.get("error") or {}
        ok = status == want_status and err.get("code") == want_code and (want_field is None or err.get("field") == want_field)
        checks.append((name, ok, f"{status} {json.dumps(err)[:200]}"))

    expect("invalid JSON", *search(b"{not json"), 400, "invalid_request")
    expect("not an object", *search(b"[]"), 400, "invalid_request")
    expect("unknown kind", *search({"request_id": "q", "kind": "teleport"}), 400, "invalid_request", "kind")
    expect("huge k", *search({"request_id": "q", "kind": "text", "text": "shoes", "k": 10**9}), 400,
           "invalid_request", "k")
    expect("negative k", *search({"request_id": "q", "kind": "text", "text": "shoes", "k": -1}), 400,
           "invalid_request", "k")
    expect("wrong type", *search({"request_id": "q", "kind": "text", "text": ["a"]}), 400, "invalid_request", "text")
    expect("missing text", *search({"request_id": "q", "kind": "text"}), 400, "invalid_request", "text")
    expect("bad base64", *search({"request_id": "q", "kind": "image", "image": {"b64": "!!!"}}), 400,
           "invalid_request", "image.b64")
    big = base64.b64encode(b"\xff\xd8" + b"\0" * 21_000_000).decode()  # 28 MB of JSON
    status, reply = search({"request_id": "q", "kind": "image", "image": {"b64": big}})
    err = reply.get("error") or {}
    checks.append(("oversized request", status == 400 and err.get("code") == "invalid_request"
                   and "limit" in err.get("message", ""), f"{status} {json.dumps(err)[:200]}"))
    big = base64.b64encode(b"\xff\xd8" + b"\0" * 11_000_000).decode()  # under the request limit, an 11 MB image
    expect("oversized image", *search({"request_id": "q", "kind": "image", "image": {"b64": big}}), 422, "bad_image")
    bomb = base64.b64encode(_png_claiming(50_000, 50_000)).decode()
    expect("bomb image", *search({"request_id": "q", "kind": "image", "image": {"b64": bomb}}), 422, "bad_image")
    expect("corrupt image", *search({"request_id": "q", "kind": "image",
                                     "image": {"b64": base64.b64encode(b"\xff\xd8\xff\xe0garbage").decode()}}),
           422, "bad_image")
    for host in ("169.254.169.254", "127.0.0.1", "[::1]", "10.1.2.3", "localhost"):
        expect(f"query image at {host}", *search({"request_id": "q", "kind": "image",
                                                   "image": {"uri": f"http://{host}:9/x.jpg"}}), 422, "bad_image")
    expect("query image file outside root", *search({"request_id": "q", "kind": "image",
                                                      "image": {"uri": "file:///etc/passwd"}}), 422, "bad_image")
    expect("query image unknown scheme", *search({"request_id": "q", "kind": "image",
                                                   "image": {"uri": "ftp://example.com/x.jpg"}}), 422, "bad_image")
    expect("control chars in filter", *search({"request_id": "q", "kind": "text", "text": "shoes",
                                               "filters": {"brand": "a\x00b"}}), 400, "invalid_request")
    expect("attribute key injection", *search({"request_id": "q", "kind": "text", "text": "shoes",
                                               "filters": {"attributes": {'x"] or 1==1 or ["': "y"}}}), 400,
           "invalid_request")

    # filter injection: escaped, proven by a product whose category *is* the injection string
    status, reply = search({"request_id": "inj", "kind": "text", "text": "hostile", "k": 50,
                            "filters": {"category": INJECTION}})
    ids = [r["product_id"] for r in reply.get("results", [])]
    checks.append(("filter injection stays a literal", status == 200 and ids == [injection_pid],
                   f"{status} results {ids[:5]}"))
    status, reply = search({"request_id": "inj2", "kind": "text", "text": "hostile", "k": 50,
                            "filters": {"category": 'shoes" or 1==1 or "'}})
    ids = [r["product_id"] for r in reply.get("results", [])]
    checks.append(("or 1==1 matches nothing", status == 200 and ids == [], f"{status} results {ids[:5]}"))
    status, reply = search({"request_id": "inj3", "kind": "text", "text": "hostile", "k": 50,
                            "filters": {"category": PLAIN_CATEGORY}})
    ids = [r["product_id"] for r in reply.get("results", [])]
    checks.append(("the plain filter still works", status == 200 and plain_pid in ids and injection_pid not in ids,
                   f"{status} results {ids[:5]}"))

    # the same over Kafka
    reply = kafka_search({"kind": "teleport"})
    checks.append(("kafka: unknown kind", reply.get("ok") is False and reply["error"]["code"] == "invalid_request",
                   json.dumps(reply.get("error"))[:200]))
    reply = kafka_search({"kind": "text", "text": "x", "k": 100000})
    checks.append(("kafka: huge k", reply.get("ok") is False and reply["error"]["field"] == "k",
                   json.dumps(reply.get("error"))[:200]))
    return checks


PLAIN_CATEGORY = "hostile-plain"
#: a category value that, spliced raw into a filter, would also match ``PLAIN_CATEGORY``
INJECTION = 'x" or category == "hostile-plain" or category == "'
