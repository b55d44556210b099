"""Text-query parsing: "black running shoes for men" -> attribute values the search can use.

``parse_query(text)`` finds taxonomy values (``workers.vision.taxonomy``) named in a free-text
query: the values themselves in any case, plural or singular, with hyphens or spaces, plus the
hand-written synonyms (``SYNONYMS``: "navy" -> colour "navy blue", "running shoes" -> article type
"sports shoes", "ladies" -> gender "women"). Longest phrase first (up to 4 words), left to right;
the first value found for a group wins. An article type also implies its coarse category.

Pure function, no I/O. The query worker uses the result as *boosts* (a hit that agrees gets a
bonus), never as hard filters: a parser that misreads a word must not empty the result list.
Words that name nothing ("for", "a", "with") are kept in ``rest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from workers.vision.taxonomy import ARTICLE_CATEGORY, GROUPS, HOT_GROUPS, SYNONYMS

__all__ = ["ParsedQuery", "parse_query"]

_MAX_WORDS = 4
_WORD = re.compile(r"[a-z0-9]+")


def _variants(phrase: str) -> set[str]:
    """Spellings of a value: as is, hyphen/space-free, singular and plural of the last word."""
    base = " ".join(_WORD.findall(phrase.lower()))
    out = {base, base.replace(" ", "")}
    words = base.split()
    if words:
        last = words[-1]
        stems = {last}
        if last.endswith("es") and len(last) > 4:
            stems.add(last[:-2])
        if last.endswith("s") and len(last) > 3:
            stems.add(last[:-1])
        stems.add(last + "s")
        for s in stems:
            out.add(" ".join([*words[:-1], s]))
    return out


def _phrase_table() -> dict[str, dict[str, str]]:
    """phrase -> {group: value}: one phrase may name values of several groups ("shirts" is an
    article type and, singular, a coarse category). Hand-written synonyms override per group."""
    table: dict[str, dict[str, str]] = {}
    for group in ("sub_category", "master_category", *reversed(HOT_GROUPS)):
        for value in GROUPS[group]:
            for v in _variants(value):
                table.setdefault(v, {})[group] = value
    for phrase, (group, value) in SYNONYMS.items():
        for v in _variants(phrase):
            table.setdefault(v, {})[group] = value
    for hit in table.values():  # a phrase that names a hot field does not also set a rare group
        if set(hit) & set(HOT_GROUPS):
            for rare in ("sub_category", "master_category"):
                hit.pop(rare, None)
    return table


_TABLE = _phrase_table()


@dataclass(frozen=True)
class ParsedQuery:
    attributes: dict[str, str] = field(default_factory=dict)  # group -> canonical value
    phrases: dict[str, str] = field(default_factory=dict)  # group -> the words that named it
    rest: str = ""  # words that named no value

    def boosts(self) -> dict[str, str]:
        """The hot-field values (index scalar fields) to boost by."""
        return {g: v for g, v in self.attributes.items() if g in HOT_GROUPS}


def parse_query(text: str) -> ParsedQuery:
    words = _WORD.findall(text.lower())
    attrs: dict[str, str] = {}
    phrases: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(words):
        for n in range(min(_MAX_WORDS, len(words) - i), 0, -1):
            phrase = " ".join(words[i : i + n])
            hit = (_TABLE.get(phrase) or _TABLE.get(phrase.replace(" ", ""))) if n > 1 else _TABLE.get(phrase)
            if hit:
                for group, value in hit.items():
                    if group not in attrs:
                        attrs[group] = value
                        phrases[group] = phrase
                i += n
                break
        else:
            rest.append(words[i])
            i += 1
    if "article_type" in attrs and "category" not in attrs and attrs["article_type"] in ARTICLE_CATEGORY:
        attrs["category"] = ARTICLE_CATEGORY[attrs["article_type"]]
    return ParsedQuery(attrs, phrases, " ".join(rest))
