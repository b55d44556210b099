"""Text search as shoppers ask: understand the words, filter by what they surely name, rank by both
BM25 and the dense text vector, and never let a misread word empty the results.

The plan (``text_plan``) is a pure function of the parse and the request's own filters:

1. ``workers.query.parse`` reads the attribute values the text names. Exact matches of article type,
   gender, colour and usage (``ParsedQuery.filters()``) become hard filters; everything parsed,
   fuzzy (typo) matches included, is a boost. A filter the request sets itself always wins over the
   parse.
2. The search runs with every parsed filter; while it returns fewer than ``k`` hits the least
   reliable parsed filter is dropped and the search repeated (``RELAX_ORDER``: usage first, then
   season, colour, gender, category, article type last). The request's own filters are never
   dropped. The reply says what was parsed, what filtered and what was relaxed.
3. Inside the filtered set, hits are ranked by Milvus's hybrid search (``ProductIndex.search_text``:
   BM25 over title, brand and attribute words, fused with MiniLM's ``text_vec``; RRF by default,
   ``VITRINE_TEXT_FUSION``), then parsed values that did not filter add ``attribute_boost``.

Why filter at all: relevance in a shop follows the attributes a query names ("black shoes" wants
black shoes, not the best-scoring tie among shoes of every colour), and BM25 and the dense vector
both rank an item that misses one named attribute near those that match. Why relax: a parse can
be wrong ("tan" the colour in "tan lines"), and an empty page is worse than a fuzzy one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.schema import Filters

__all__ = ["RELAX_ORDER", "TextPlan", "relaxations", "text_plan"]

#: Parsed filters dropped first when too few hits come back: the least certain (and least
#: selective for relevance) go first, the article type (what the shopper wants) last.
RELAX_ORDER: tuple[str, ...] = ("usage", "season", "colour", "gender", "category", "article_type")


@dataclass(frozen=True)
class TextPlan:
    """The searches to try, in order, and what each adds from the parse."""

    base: Filters  # the request's own filters
    parsed_filters: dict[str, str]  # group -> value the parse filters by (request's own groups left out)
    boosts: dict[str, str]  # group -> value that re-ranks but does not filter
    relax: list[str] = field(default_factory=list)  # parsed groups in the order they are dropped

    def attempts(self) -> list[tuple[Filters, list[str]]]:
        """(filters, groups relaxed so far) for every search to try, strictest first."""
        return relaxations(self.base, self.parsed_filters, self.relax)


def relaxations(base: Filters, active: Mapping[str, str], order: list[str]) -> list[tuple[Filters, list[str]]]:
    """``base`` plus ``active``, then with the groups of ``order`` dropped one by one: (filters, dropped so
    far) for every search to try, strictest first. ``base``'s own filters are never dropped."""
    left = dict(active)
    dropped: list[str] = []
    out = [(base.model_copy(update=left), [])]
    for group in order:
        if group in left:
            left.pop(group)
            dropped.append(group)
            out.append((base.model_copy(update=left), list(dropped)))
    return out


def text_plan(parsed_filters: Mapping[str, str], parsed_boosts: Mapping[str, str], request: Filters) -> TextPlan:
    """The plan for one text query: parsed filters the request does not set itself, boosts for the rest."""
    own = {g for g in RELAX_ORDER if getattr(request, g)}
    filters = {g: v for g, v in parsed_filters.items() if g in RELAX_ORDER and g not in own}
    boosts = {g: v for g, v in parsed_boosts.items() if g not in filters and g not in own}
    return TextPlan(request, filters, boosts, [g for g in RELAX_ORDER if g in filters])
