"""``workers.query.page``: the relevant set's order, the paging window and facet counts, as pure
functions (the real query worker runs them in ``tests/integration/test_pipeline_e2e.py``, ``-m api``)."""

from __future__ import annotations

import pytest

from indexer.store import SearchHit
from streams.exceptions import InvalidQuery
from streams.schema import parse_search_request
from workers.query.page import check_window, count_facets, price_band, sort_hits


def _hits(*prices: float | None, stock: tuple[bool, ...] = ()) -> list[SearchHit]:
    return [SearchHit(f"p{i}", 1.0 - i / 100, {"price": p, "in_stock": stock[i] if stock else True})
            for i, p in enumerate(prices)]


def test_price_sorts_the_whole_relevant_set_and_ties_keep_relevance_order() -> None:
    hits = _hits(30.0, 10.0, 20.0, 10.0, None, 5.0)
    assert [h.product_id for h in sort_hits(hits, "price_asc")] == ["p5", "p1", "p3", "p2", "p0", "p4"]
    assert [h.product_id for h in sort_hits(hits, "price_desc")] == ["p0", "p2", "p1", "p3", "p5", "p4"]
    assert sort_hits(hits, "relevance") == hits


def test_in_stock_first_keeps_relevance_order_inside_each_group() -> None:
    hits = _hits(1, 2, 3, 4, stock=(False, True, False, True))
    assert [h.product_id for h in sort_hits(hits, "in_stock_first")] == ["p1", "p3", "p0", "p2"]


def test_the_window_must_fit_in_the_relevant_set() -> None:
    check_window(190, 10, 200)
    with pytest.raises(InvalidQuery) as err:
        check_window(191, 10, 200)
    assert err.value.field == "offset"


def test_price_bands_are_half_open_and_the_top_band_has_no_end() -> None:
    edges = (25.0, 50.0)
    assert [price_band(p, edges) for p in (0, 24.99, 25, 49.9, 50, 1e6)] == [0, 0, 1, 1, 2, 2]


def test_facet_counts_by_value_and_every_price_band() -> None:
    rows = [{"colour": "black", "price": 10.0}, {"colour": "black", "price": 60.0}, {"colour": "red", "price": 30.0},
            {"colour": "", "price": None}]
    facets = count_facets(rows, ["colour", "price"], (25.0, 50.0))
    assert facets["colour"] == [{"value": "black", "count": 2}, {"value": "red", "count": 1}]
    assert facets["price"] == [{"value": "0-25", "min": 0.0, "max": 25.0, "count": 1},
                               {"value": "25-50", "min": 25.0, "max": 50.0, "count": 1},
                               {"value": "50+", "min": 50.0, "max": None, "count": 1}]


@pytest.mark.parametrize("body, field", [
    ({"offset": -1}, "offset"), ({"sort": "cheapest"}, "sort"), ({"facets": ["colour", "colour"]}, "facets"),
    ({"facets": ["vectors"]}, "facets.0"), ({"explain": "very"}, "explain"),
])
def test_bad_paging_sorting_and_facet_requests_name_their_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidQuery) as err:
        parse_search_request({"request_id": "r", "kind": "text", "text": "shoes", **body})
    assert err.value.field == field
