"""Milvus filter expressions from query filters, with every value escaped.

Values are never spliced raw: strings are quoted with backslash escapes (a value like
``x" or 1==1 or "`` stays one string literal) and control characters are rejected; attribute keys
are validated identifiers (``streams.schema.AttrKey``); numbers are formatted from floats. Every
expression excludes tombstones.
"""

from __future__ import annotations

import math
import re

from indexer.schema import normalise_value
from streams.exceptions import InvalidQuery
from streams.schema import HOT_ATTRIBUTES, Filters

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def quote(value: str) -> str:
    """A Milvus string literal for ``value``."""
    if _CONTROL.search(value):
        raise InvalidQuery("control characters are not allowed in filter values", "filters")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise InvalidQuery("must be finite", "filters")
    return repr(float(value))


def build_filter(filters: Filters, *, exclude_ids: tuple[str, ...] = (), main_only: bool = False) -> str:
    """The expression for ``filters``: hot attributes as scalar equality, the rest on the JSON field.
    ``main_only``: the product rows alone, not the rows of their further images (``indexer.schema``);
    ``exclude_ids``: products left out, with every image."""
    parts = ["deleted == false"]
    if main_only:
        parts.append("image_index == 0")
    for name in HOT_ATTRIBUTES:
        value = getattr(filters, name)
        if value:
            parts.append(f"{name} == {quote(normalise_value(value))}")
    if filters.brand:
        parts.append(f"brand == {quote(filters.brand.strip())}")
    for key, value in sorted(filters.attributes.items()):
        if not _KEY.match(key):
            raise InvalidQuery(f"attribute key {key!r} is not an identifier", "filters.attributes")
        parts.append(f'attributes["merchant"][{quote(key)}] == {quote(normalise_value(value))}')
    if filters.price_min is not None:
        parts.append(f"price >= {_number(filters.price_min)}")
    if filters.price_max is not None:
        parts.append(f"price <= {_number(filters.price_max)}")
    if filters.in_stock is not None:
        parts.append(f"in_stock == {'true' if filters.in_stock else 'false'}")
    if exclude_ids:
        parts.append(f"item not in [{', '.join(quote(i) for i in exclude_ids)}]")
    return " and ".join(parts)
