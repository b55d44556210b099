"""The JSON Schema of the catalogue events agrees with ``parse_event``, and the committed copy is current.

Each event below is judged twice, by the schema (jsonschema, draft 2020-12, formats checked) and by
``parse_event``; both verdicts must be the expected one. The lax inputs the validator repairs are
listed separately: the schema refuses them, the validator accepts them (documented in
``streams.jsonschema``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import jsonschema  # the test extra installs it: a missing install fails here, never skips

from streams.exceptions import InvalidEvent
from streams.jsonschema import event_json_schema, render_event_json_schema
from streams.schema import parse_event


REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "api" / "events.schema.json"

UP: dict[str, Any] = {"schema_version": 1, "type": "upsert", "product_id": "p-1", "version": 3, "occurred_at": 1.5,
                      "title": "Red dress", "price": 10, "images": ["s3://b/k.jpg"]}
PATCH: dict[str, Any] = {"schema_version": 1, "type": "patch", "product_id": "p-1", "version": 4,
                         "occurred_at": 2, "fields": {"price": 8.5}}
DELETE: dict[str, Any] = {"schema_version": 1, "type": "delete", "product_id": "p-1", "version": 5, "occurred_at": 3}


def with_(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``doc`` with top-level fields changed; ``None`` removes one (``NULL`` sets a JSON null)."""
    out = dict(doc)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = None if v is NULL else v
    return out


NULL = object()

GOOD = {
    "upsert": UP,
    "upsert with every field": with_(UP, description="Cotton", brand="Acme", currency="USD", in_stock=False,
                                     attributes={"colour": "red", "size_eu": "38"},
                                     images=["https://shop.example/a.jpg", "FILE:///data/b.jpg", "s3://b/c"]),
    "ISO time": with_(UP, occurred_at="2026-01-01T00:00:00Z"),
    "ISO time with an offset and fractions": with_(UP, occurred_at="2026-06-30T23:59:59.250+02:00"),
    "integer time": with_(UP, occurred_at=1767225600),
    "no schema defaults": with_(UP, description=None, brand=None, currency=None),
    "float version that is whole": with_(UP, version=3.0),
    "patch": PATCH,
    "patch of several fields, one null": with_(PATCH, fields={"title": "Blue", "in_stock": True, "brand": None}),
    "delete": DELETE,
    "version 0": with_(DELETE, version=0),
}

BAD = {
    "missing title": with_(UP, title=None),
    "null title": with_(UP, title=NULL),
    "blank title": with_(UP, title="   "),
    "negative price": with_(UP, price=-1),
    "price that is not a number": with_(UP, price="ten"),
    "unknown type": with_(UP, type="merge"),
    "missing type": with_(UP, type=None),
    "missing schema_version": with_(UP, schema_version=None),
    "schema_version 2": with_(UP, schema_version=2),
    "bad image scheme": with_(UP, images=["gopher://x/y.jpg"]),
    "image without a scheme": with_(UP, images=["images/a.jpg"]),
    "no images": with_(UP, images=[]),
    "17 images": with_(UP, images=["s3://b/k"] * 17),
    "ISO time that is not one": with_(UP, occurred_at="yesterday"),
    "ISO date that does not exist": with_(UP, occurred_at="2026-02-30T00:00:00Z"),
    "ISO time before 1970": with_(UP, occurred_at="1969-12-31T00:00:00Z"),
    "negative time": with_(UP, occurred_at=-1),
    "time as a boolean": with_(UP, occurred_at=True),
    "missing occurred_at": with_(UP, occurred_at=None),
    "negative version": with_(UP, version=-1),
    "fractional version": with_(UP, version=3.5),
    "version above 2**62": with_(UP, version=2**62 + 1),
    "product id with a space": with_(UP, product_id="a b"),
    "empty product id": with_(UP, product_id=""),
    "lower-case currency": with_(UP, currency="eur"),
    "attribute name in capitals": with_(UP, attributes={"Colour": "red"}),
    "attribute value not a string": with_(UP, attributes={"colour": 3}),
    "unknown field": with_(UP, surprise=1),
    "patch of nothing": with_(PATCH, fields={}),
    "patch of nulls only": with_(PATCH, fields={"price": None, "title": None}),
    "patch of images": with_(PATCH, fields={"images": ["s3://b/k"]}),
    "patch without fields": with_(PATCH, fields=None),
    "delete with a title": with_(DELETE, title="x"),
    "not an object": [1, 2],
}

#: Lax input that parse_event repairs (pydantic's lax mode, trimming) and the schema refuses.
LAX = {
    "padded product id": with_(UP, product_id=" p-1 "),
    "version as a string": with_(UP, version="3"),
    "price as a string": with_(UP, price="10"),
    "price as a boolean": with_(UP, price=True),
    "in_stock as yes": with_(UP, in_stock="yes"),
    "padded currency": with_(UP, currency=" EUR "),
}


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = event_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def parses(doc: Any) -> bool:
    try:
        parse_event(json.dumps(doc))
    except InvalidEvent:
        return False
    return True


@pytest.mark.parametrize("name", GOOD)
def test_good_events_are_valid_for_both(name: str, validator: Any) -> None:
    errors = [e.message for e in validator.iter_errors(GOOD[name])]
    assert not errors and parses(GOOD[name])


@pytest.mark.parametrize("name", BAD)
def test_bad_events_are_invalid_for_both(name: str, validator: Any) -> None:
    assert not validator.is_valid(BAD[name]), "the schema accepts it"
    assert not parses(BAD[name]), "parse_event accepts it"


@pytest.mark.parametrize("name", LAX)
def test_lax_input_is_repaired_by_the_validator_and_refused_by_the_schema(name: str, validator: Any) -> None:
    assert parses(LAX[name]) and not validator.is_valid(LAX[name])


def test_the_time_pattern_alone_refuses_what_is_no_iso_time() -> None:
    """Without format checking (many validators skip ``format``), the pattern still keeps the schema sound."""
    plain = jsonschema.Draft202012Validator(event_json_schema())
    assert not plain.is_valid(with_(UP, occurred_at="yesterday"))
    assert not plain.is_valid(with_(UP, occurred_at="2026-01-01"))  # a date, no time: the schema wants both
    assert plain.is_valid(with_(UP, occurred_at="2026-01-01T00:00:00Z"))


def test_the_schema_names_the_contract() -> None:
    schema = event_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema" and "$id" not in schema
    assert schema["title"] and "product_id" in schema["description"] and "monotonic" in schema["description"]
    assert {d["$ref"].rsplit("/", 1)[1] for d in schema["oneOf"]} == {"UpsertEvent", "PatchEvent", "DeleteEvent"}


def test_the_committed_schema_is_what_the_code_generates() -> None:
    assert COMMITTED.read_text() == render_event_json_schema(), (
        "docs/api/events.schema.json is stale: run `vitrine schema events --out docs/api/events.schema.json`")


def test_the_command_prints_the_schema(tmp_path: Path) -> None:
    out = tmp_path / "events.schema.json"
    run = subprocess.run([sys.executable, "-m", "vitrine_tools.cli", "schema", "events", "--out", str(out)],
                         check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text()) == event_json_schema()
