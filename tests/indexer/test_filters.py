from __future__ import annotations

import pytest

from indexer.filters import build_filter, quote
from streams.exceptions import InvalidQuery
from streams.schema import Filters


def test_hot_filters_are_scalar_equality_and_normalised():
    expr = build_filter(Filters(category="Dress", colour="Navy Blue", in_stock=True, price_max=50))
    assert 'category == "dress"' in expr and 'colour == "navy blue"' in expr
    assert "in_stock == true" in expr and "price <= 50.0" in expr and expr.startswith("deleted == false")


def test_injection_stays_one_string_literal():
    assert quote('x" or 1==1 or "') == '"x\\" or 1==1 or \\""'
    assert quote("a\\") == '"a\\\\"'
    with pytest.raises(InvalidQuery):
        quote("a\nb")
