"""Wire codecs: JSON records, with float32 vectors as base64 (little-endian) to keep records small.

``IndexRecord`` is the contract of ``index.enriched``: what the ingest worker produces and the
index writer consumes. A record is self-contained: the writer never calls back to the GPU.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from streams.exceptions import InvalidEvent

Op = Literal["upsert", "patch", "delete"]
OPS: frozenset[str] = frozenset(("upsert", "patch", "delete"))


def encode_vector(vec: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vec, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class SourceRef:
    """Where an event came from: enough to find it again (and to account for it in the DLQ)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class IndexRecord:
    """One write for the index: an upsert with vectors, a patch of scalar fields, or a delete."""

    op: Op
    product_id: str
    version: int
    occurred_at: float
    fields: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (D,) float32
    model_version: str = ""
    source: SourceRef | None = None
    #: the product's images after the first, in order: (uri, {"image_vec": ..., "colour_vec": ...});
    #: the first image's vectors are ``vectors`` (with the product's ``text_vec``)
    extra_images: tuple[tuple[str, dict[str, np.ndarray]], ...] = ()


def encode_record(rec: IndexRecord) -> bytes:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "op": rec.op,
        "product_id": rec.product_id,
        "version": rec.version,
        "occurred_at": rec.occurred_at,
        "fields": rec.fields,
        "vectors": {k: encode_vector(v) for k, v in rec.vectors.items()},
        "model_version": rec.model_version,
    }
    if rec.source is not None:
        doc["source"] = [rec.source.topic, rec.source.partition, rec.source.offset]
    if rec.extra_images:
        doc["extra_images"] = [{"uri": uri, "vectors": {k: encode_vector(v) for k, v in vecs.items()}}
                               for uri, vecs in rec.extra_images]
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_record(data: bytes) -> IndexRecord:
    """Decode an ``index.enriched`` record; raise ``InvalidEvent`` if it is not one (reason
    ``unknown_op`` for an op other than upsert, patch or delete, else ``bad_enriched_record``)."""
    try:
        doc = json.loads(data)
        op = doc["op"]
        if op not in OPS:  # never read as a delete: an unknown op is a bad record, dead-lettered
            raise InvalidEvent("unknown_op", f"index record op {str(op)[:40]!r} is not upsert, patch or delete")
        src = doc.get("source")
        return IndexRecord(
            op=op,
            product_id=str(doc["product_id"]),
            version=int(doc["version"]),
            occurred_at=float(doc["occurred_at"]),
            fields=dict(doc.get("fields") or {}),
            vectors={k: decode_vector(v) for k, v in (doc.get("vectors") or {}).items()},
            model_version=str(doc.get("model_version", "")),
            source=SourceRef(src[0], int(src[1]), int(src[2])) if src else None,
            extra_images=tuple((str(img["uri"]), {k: decode_vector(v) for k, v in img["vectors"].items()})
                               for img in (doc.get("extra_images") or [])),
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise InvalidEvent("bad_enriched_record", f"not an index record: {exc!r}"[:300]) from None


def decode_key(key: bytes | str | None) -> str | None:
    """A record key as text (undecodable bytes replaced), as it goes into logs and dead letters."""
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), default=str).encode()
