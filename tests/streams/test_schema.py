from __future__ import annotations

import json

import numpy as np
import pytest

from streams.codecs import IndexRecord, SourceRef, decode_record, encode_record
from streams.exceptions import InvalidEvent, InvalidQuery
from streams.schema import PatchEvent, UpsertEvent, parse_event, parse_search_request
from streams.topics import TopicSet

GOOD = {"schema_version": 1, "type": "upsert", "product_id": "p-1", "version": 3, "occurred_at": 1.5,
        "title": "Red dress", "price": 10, "images": ["s3://b/k.jpg"], "attributes": {"colour": "Red"}}


def bad(**changes: object) -> dict:
    doc = dict(GOOD)
    for k, v in changes.items():
        if v is None:
            doc.pop(k)
        else:
            doc[k] = v
    return doc


def test_upsert_round_trip_and_iso_time():
    ev = parse_event(json.dumps({**GOOD, "occurred_at": "2026-01-01T00:00:00Z"}))
    assert isinstance(ev, UpsertEvent) and ev.occurred_at == 1767225600.0 and ev.attributes == {"colour": "Red"}


@pytest.mark.parametrize("doc, reason, field", [
    (b"{nope", "malformed_json", None),
    (b"[1, 2]", "malformed_json", None),
    (bad(schema_version=None), "missing_field", "schema_version"),
    (bad(schema_version=2), "unknown_schema_version", "schema_version"),
    (bad(type="merge"), "unknown_type", "type"),
    (bad(title=None), "missing_field", "title"),
    (bad(version="three"), "invalid_field", "version"),
    (bad(price=-1), "invalid_field", "price"),
    (bad(product_id="a b"), "invalid_field", "product_id"),
    (bad(title="x" * 600), "invalid_field", "title"),
    (bad(images=[]), "invalid_field", "images"),
    (bad(images=["gopher://x/y"]), "invalid_field", "images"),
    (bad(surprise=1), "invalid_field", "surprise"),
])
def test_invalid_events_name_the_field(doc, reason, field):
    raw = doc if isinstance(doc, bytes) else json.dumps(doc)
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw)
    assert err.value.reason == reason
    if field:
        assert err.value.field == field and field in str(err.value)


def test_oversized_event_is_refused_before_parsing():
    with pytest.raises(InvalidEvent) as err:
        parse_event(b"x" * 2_000_000)
    assert err.value.reason == "too_large"


def test_patch_needs_a_field_and_only_scalars():
    ev = parse_event({"schema_version": 1, "type": "patch", "product_id": "p", "version": 2, "occurred_at": 1,
                      "fields": {"price": 3.5}})
    assert isinstance(ev, PatchEvent) and ev.fields.price == 3.5
    with pytest.raises(InvalidEvent):
        parse_event({"schema_version": 1, "type": "patch", "product_id": "p", "version": 2, "occurred_at": 1,
                     "fields": {}})
    with pytest.raises(InvalidEvent) as err:
        parse_event({"schema_version": 1, "type": "patch", "product_id": "p", "version": 2, "occurred_at": 1,
                     "fields": {"images": ["s3://b/k"]}})
    assert err.value.field == "fields.images"


def test_search_request_validation():
    assert parse_search_request({"request_id": "r", "kind": "text", "text": "red"}).k == 10
    for doc, field in [
        ({"request_id": "r", "kind": "text"}, "text"),
        ({"request_id": "r", "kind": "similar"}, "product_id"),
        ({"request_id": "r", "kind": "image", "image": {}}, "image"),
        ({"request_id": "r", "kind": "text", "text": "a", "k": 100000}, "k"),
        ({"request_id": "r", "kind": "wat"}, "kind"),
        ({"request_id": "r", "kind": "text", "text": "a", "filters": {"price_min": 5, "price_max": 1}},
         "filters.price_min"),
    ]:
        with pytest.raises(InvalidQuery) as err:
            parse_search_request(doc)
        assert err.value.field == field


def test_index_record_codec_round_trip():
    rec = IndexRecord("upsert", "p", 2, 1.25, {"title": "t"}, {"v": np.arange(4, dtype=np.float32)}, "m@1",
                      SourceRef("t", 1, 7))
    back = decode_record(encode_record(rec))
    assert back.fields == rec.fields and back.source == rec.source and np.array_equal(back.vectors["v"], rec.vectors["v"])
    with pytest.raises(InvalidEvent):
        decode_record(b"{}")


def test_topics_are_named_under_the_prefix():
    t = TopicSet("shop", 8)
    assert t.events == "shop.catalog.events" and t.dlq == "shop.catalog.dlq"
    assert {s.name for s in t.specs()} == {t.events, t.dlq, t.requests, t.responses}  # no model: no feature log
    with pytest.raises(ValueError, match="per model"):
        _ = t.enriched
    m = t.for_model("0123456789")
    assert m.enriched == "shop.index.enriched.0123456789" == t.features("0123456789")
    assert {s.name for s in m.specs()} == {t.events, t.dlq, m.enriched, t.requests, t.responses}


def test_collection_names_spell_model_and_index_layout():
    from indexer.schema import IndexLayout

    dims = {"image_vec": 8, "text_vec": 4}
    hnsw = IndexLayout("m@1", dims, alias="shop")
    sq8 = IndexLayout("m@1", dims, alias="shop", index_type="IVF_SQ8", index_params={"nlist": 128})
    other = IndexLayout("m@2", dims, alias="shop")
    assert hnsw.collection == f"shop_{hnsw.model_key}_hnsw_m16_efconstruction200_bm25_g2"
    assert sq8.collection == f"shop_{hnsw.model_key}_ivf_sq8_nlist128_bm25_g2"  # same model, another index
    assert hnsw.model_key == sq8.model_key != other.model_key
    assert hnsw.same_model(sq8.collection) and not other.same_model(hnsw.collection)
    assert IndexLayout("m@1", dims, alias="shop", index_params={"M": 32}).collection != hnsw.collection
    assert sq8.search_params()["params"] == {"nprobe": 32} and hnsw.search_params("IVF_SQ8") == sq8.search_params()
    with pytest.raises(ValueError, match="not one of"):
        IndexLayout("m@1", dims, index_type="NOPE")
