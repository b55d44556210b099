"""The JSON Schema (draft 2020-12) of ``catalog.events``, generated from the models that validate them.

``event_json_schema()`` starts from pydantic's schema of the very ``TypeAdapter`` that
``parse_event`` uses, so a field added, renamed or constrained in ``streams.schema`` appears here
without an edit. It then states, as JSON Schema, the checks that pydantic runs in Python code and
cannot export on its own (each a function below, named by what it says):

- ``occurred_at`` is epoch seconds (a number >= 0) or an ISO-8601 string (the before-validator);
- an image URI starts with ``s3://``, ``http://``, ``https://`` or ``file://`` (any case);
- strings are trimmed before their limits are checked, so a required string must not be blank;
- attribute names follow their pattern (pydantic puts it in ``patternProperties`` only);
- a patch changes at least one field (``null`` does not count).

Contract, checked by ``tests/streams/test_jsonschema.py`` on good and bad events:
- an event the schema accepts, ``parse_event`` accepts: a producer that validates against the
  schema never sees its event in the dead-letter topic for its shape (with ``format`` checked;
  without it, a well-shaped date that does not exist, 2026-02-30, passes the schema only);
- the schema is stricter than the validator in a few ways, all of them lax input that the
  validator repairs: surrounding whitespace, numbers and booleans given as strings, ``true`` as a
  price. Canonical events (what ``vitrine publish`` sends) never rely on them.

``docs/api/events.schema.json`` is this function's output (``vitrine schema events``); a test
fails when the two differ.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from streams.schema import _EVENT_JSON, MAX_EVENT_BYTES, SCHEMA_VERSION, PatchFields

__all__ = ["event_json_schema", "render_event_json_schema"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"

#: The schemes ``UpsertEvent`` accepts for an image, matched without regard to case.
IMAGE_SCHEMES = ("s3", "http", "https", "file")

#: An ISO-8601 date-time that ``datetime.fromisoformat`` reads, with an explicit offset, from 1970 on.
ISO_TIME_PATTERN = (
    r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)

DESCRIPTION = f"""\
One record of the catalogue topic (<prefix>.catalog.events, vitrine.catalog.events by default).
Kafka key: the product_id as UTF-8 bytes, so one product's events stay in order on one partition.
Kafka value: this object as UTF-8 JSON, at most {MAX_EVENT_BYTES} bytes. No headers are read.
schema_version is {SCHEMA_VERSION}; a consumer refuses a version it does not know.
version is monotonic per product and shared by its upserts, patches and deletes: the index keeps
the highest version seen, so events replayed or reordered give the same index, and an event
whose version is not newer than the one indexed is skipped.
An upsert replaces the product (its images are fetched and embedded again); a patch changes
scalar fields only; a delete leaves a tombstone at its version, so an older upsert cannot bring
the product back.
Strings are trimmed of surrounding whitespace before their limits are checked.
Events the workers refuse go to <prefix>.catalog.dlq with the reason and the field."""

OCCURRED_AT = {
    "description": "Event time: seconds since the epoch (UTC), or an ISO-8601 date-time with an offset "
                   "(2026-01-01T00:00:00Z), converted to seconds. Index freshness is measured from it.",
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "format": "date-time", "pattern": ISO_TIME_PATTERN},
    ],
}


def _scheme_pattern() -> str:
    def any_case(word: str) -> str:
        return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)

    return "^(" + "|".join(any_case(s) for s in IMAGE_SCHEMES) + ")://"


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object under ``node`` (depth first), the node itself included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _occurred_at_is_a_number_or_an_iso_time(defs: dict[str, Any]) -> None:
    for model in defs.values():
        props = model.get("properties", {})
        if "occurred_at" in props:
            props["occurred_at"] = copy.deepcopy(OCCURRED_AT)


def _images_have_a_known_scheme(defs: dict[str, Any]) -> None:
    for model in defs.values():
        images = model.get("properties", {}).get("images")
        if images is not None:
            images["items"]["pattern"] = _scheme_pattern()


def _attribute_names_follow_their_pattern(schema: dict[str, Any]) -> None:
    for node in _walk(schema):
        patterns = node.get("patternProperties")
        names = node.get("propertyNames")
        if isinstance(patterns, dict) and len(patterns) == 1 and isinstance(names, dict) and "pattern" not in names:
            names["pattern"] = next(iter(patterns))


def _required_strings_are_not_blank(schema: dict[str, Any]) -> None:
    for node in _walk(schema):
        if node.get("type") == "string" and node.get("minLength", 0) >= 1 and "pattern" not in node:
            node["pattern"] = r"\S"


def _a_patch_changes_a_field(defs: dict[str, Any]) -> None:
    fields = defs[PatchFields.__name__]
    fields["minProperties"] = 1
    fields["anyOf"] = [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                       for name in PatchFields.model_fields]


def _plain_descriptions(schema: dict[str, Any]) -> None:
    for node in _walk(schema):
        if isinstance(node.get("description"), str):
            node["description"] = node["description"].replace("``", "`")


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of one catalogue event (an upsert, a patch or a delete, told apart by ``type``)."""
    generated = _EVENT_JSON.json_schema(mode="validation")
    defs = generated["$defs"]
    _occurred_at_is_a_number_or_an_iso_time(defs)
    _images_have_a_known_scheme(defs)
    _a_patch_changes_a_field(defs)
    _attribute_names_follow_their_pattern(generated)
    _required_strings_are_not_blank(generated)
    _plain_descriptions(generated)
    return {"$schema": DRAFT, "title": "vitrine catalogue event", "description": DESCRIPTION, **generated}


def render_event_json_schema() -> str:
    """``event_json_schema()`` as the text of ``docs/api/events.schema.json`` (indent 2, final newline)."""
    return json.dumps(event_json_schema(), indent=2) + "\n"
