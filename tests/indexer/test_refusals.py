"""Contract holes closed at the index: an unknown op, vectors of another model version or dimension.

Each record gets a dead-letter reason and no write; none of them is read as a delete or crashes the
writer (guarantee 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.guard import INDEXED, Held, plan_writes
from indexer.schema import IndexLayout
from streams.codecs import IndexRecord, decode_record, encode_record
from streams.exceptions import InvalidEvent

LAYOUT = IndexLayout(model_version="model@2", dims={"image_vec": 4, "text_vec": 3})


def upsert(pid: str, v: int, *, model: str = "model@2", image: np.ndarray | None = None) -> IndexRecord:
    vectors = {"image_vec": np.full(4, 0.5, np.float32) if image is None else image,
               "text_vec": np.full(3, 0.5, np.float32)}
    return IndexRecord("upsert", pid, v, float(v), {"title": "t"}, vectors, model_version=model)


def plan(records, held=None):
    return plan_writes(records, held or {}, LAYOUT.full_row, LAYOUT.scalar_update, LAYOUT.refusal)


def test_an_unknown_op_is_refused_when_decoded():
    raw = json.loads(encode_record(upsert("a", 1)))
    raw["op"] = "erase"
    with pytest.raises(InvalidEvent) as err:
        decode_record(json.dumps(raw).encode())
    assert err.value.reason == "unknown_op"


def test_an_unknown_op_never_deletes_in_the_guard():
    odd = IndexRecord("erase", "a", 5, 5.0)  # type: ignore[arg-type]
    p = plan([odd], held={"a": Held(1, False)})
    assert [o.result for o in p.outcomes] == ["unknown_op"]
    assert p.empty  # no tombstone, no write at all


def test_vectors_of_another_model_version_are_refused_and_not_written():
    p = plan([upsert("a", 1, model="model@1"), upsert("b", 1)])
    assert [o.result for o in p.outcomes] == ["model_version_mismatch", INDEXED]
    assert set(p.full_rows) == {"b"}
    assert p.full_rows["b"]["model_version"] == "model@2"  # the record's own label, checked equal


@pytest.mark.parametrize(("image", "reason"), [
    (np.ones(5, np.float32), "vector_dimension_mismatch"),
    (np.array([np.nan, 0, 0, 1], np.float32), "vector_not_finite"),
])
def test_bad_vectors_are_refused_with_their_reason(image, reason):
    p = plan([upsert("a", 1, image=image)])
    assert [o.result for o in p.outcomes] == [reason] and p.empty


def test_a_missing_vector_is_refused():
    rec = upsert("a", 1)
    rec.vectors.pop("text_vec")
    assert [o.result for o in plan([rec]).outcomes] == ["vector_missing"]


def test_patches_and_deletes_fit_every_model_version():
    p = plan([IndexRecord("patch", "a", 2, 2.0, {"price": 3.0}, model_version="other@9"),
              IndexRecord("delete", "a", 3, 3.0)], held={"a": Held(1, False)})
    assert [o.result for o in p.outcomes] == [INDEXED, INDEXED]


def test_a_field_that_does_not_fit_its_column_is_refused_not_raised():
    rec = upsert("a", 1)
    bad = IndexRecord("upsert", "a", 1, 1.0, {"title": "t", "price": "cheap"}, rec.vectors, model_version="model@2")
    p = plan([bad, upsert("b", 1)])
    assert [o.result for o in p.outcomes] == ["bad_fields", INDEXED] and set(p.full_rows) == {"b"}
