"""What a reply shows of a search: a page of the relevant set, in the order asked, with facet counts.

**The relevant set.** Every search ranks the same number of candidates, ``VITRINE_QUERY_RELEVANT_SET``
(default 200): the best hits by relevance under the request's filters and, for text, the filters the
parse applied (``workers.query.text``), after every re-rank. Paging, sorting and approximate facets
all work on that one list, so:

- **Paging is by offset.** ``offset`` + ``k`` must fit in the relevant set. A page is a slice of a list
  that does not depend on which page is asked (its size is fixed, not ``offset + k``), so pages of one
  search, asked one after the other, neither repeat nor skip a hit while the index is unchanged. Why not
  Milvus's own ``offset``: the re-ranks (category fusion, attribute match, the modifier's relaxation)
  run after Milvus, so a Milvus page would be cut before them; and Milvus caps offset + limit at 16384
  anyway. Why not a cursor: it would need the relevant set kept per shopper on the server (a cursor
  that only encodes the offset is an offset). Known limit, as with any offset paging: a product
  indexed between two page requests can shift the later pages by one.
- **Sorting re-orders the relevant set**, not the page: ``price_asc`` gives the cheapest of the
  relevant hits first, not the cheapest of the top ``k``. Ties (and products without a price) keep
  their relevance order. ``in_stock_first`` moves out-of-stock hits behind in-stock ones.
- **Facets** (``count_facets``) are exact counts over everything the filters match when that is at
  most ``VITRINE_FACET_SCAN_LIMIT`` products (one Milvus query); above it they count the relevant set,
  and the reply says so (``"exact": false, "counted_over": N``). Price is counted in bands
  (``VITRINE_FACET_PRICE_BANDS``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from indexer.store import SearchHit
from streams.exceptions import InvalidQuery

__all__ = ["check_window", "count_facets", "price_band", "sort_hits"]


def check_window(offset: int, k: int, relevant_set: int) -> None:
    """``InvalidQuery`` (naming ``offset``) when the page would reach past the relevant set."""
    if offset + k > relevant_set:
        raise InvalidQuery(f"offset + k is {offset + k}; pages reach at most {relevant_set} hits deep "
                           "(VITRINE_QUERY_RELEVANT_SET)", "offset")


def sort_hits(hits: Sequence[SearchHit], order: str) -> list[SearchHit]:
    """The relevant set in ``order``; a stable sort, so ties keep their relevance order."""
    if order == "relevance":
        return list(hits)
    if order == "in_stock_first":
        return sorted(hits, key=lambda h: h.fields.get("in_stock") is False)
    missing = [h for h in hits if not isinstance(h.fields.get("price"), int | float)]
    priced = [h for h in hits if isinstance(h.fields.get("price"), int | float)]
    priced.sort(key=lambda h: float(h.fields["price"]), reverse=order == "price_desc")
    return priced + missing  # products without a price last, whichever the direction


def price_band(price: float, edges: Sequence[float]) -> int:
    """The index of ``price``'s band: band i holds ``edges[i-1] <= price < edges[i]``."""
    return next((i for i, edge in enumerate(edges) if price < edge), len(edges))


def _bands(edges: Sequence[float]) -> list[dict[str, Any]]:
    lows = [0.0, *edges]
    out = []
    for i, low in enumerate(lows):
        high = edges[i] if i < len(edges) else None
        out.append({"value": f"{low:g}-{high:g}" if high is not None else f"{low:g}+", "min": low, "max": high})
    return out


def count_facets(rows: Iterable[Mapping[str, Any]], names: Sequence[str], price_edges: Sequence[float],
                 ) -> dict[str, list[dict[str, Any]]]:
    """Counts per value of each facet in ``names`` over ``rows`` (products' fields). Values are listed by
    count, then by name; empty values are left out. ``price`` lists every band in price order, zeros too."""
    counters: dict[str, Counter[Any]] = {name: Counter() for name in names}
    for row in rows:
        for name in names:
            value = row.get(name)
            if name == "price":
                if isinstance(value, int | float):
                    counters[name][price_band(float(value), price_edges)] += 1
            elif value not in (None, ""):
                counters[name][str(value)] += 1
    out: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        if name == "price":
            out[name] = [{**band, "count": counters[name][i]} for i, band in enumerate(_bands(price_edges))]
        else:
            out[name] = [{"value": v, "count": c} for v, c in sorted(counters[name].items(), key=lambda t: (-t[1], t[0]))]
    return out
