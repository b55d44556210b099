"""The attribute taxonomy: one source of truth for the tagger, the index filters and the query parser.

Values come from ``_taxonomy_table`` (generated from catalog.csv and taxonomy.csv by
``infra/tools/make_taxonomy.py``; pure Python data, so importing this module does no I/O). Every
value is in the index's canonical form (``indexer.schema.normalise_value``: stripped, lower case),
so a tag or a parsed query value can be used as a filter on the matching scalar field as is.

Groups (170 values in all with the shipped table):
  ``category`` (19 coarse categories shared by catalogue, real-shot and street photos),
  ``article_type``, ``colour`` (the merchant's base colour names), ``gender``, ``usage``,
  ``season``, ``master_category``, ``sub_category``. The first six are the index's hot fields.

Contract: ``index(group, value)`` and ``value(group, i)`` are inverse bijections over
``GROUPS[group]``; ``canonical(group, text)`` maps any spelling in the synonym table (or the
value itself, any case) to the canonical value, or None.
"""

from __future__ import annotations

from workers.vision._taxonomy_table import ARTICLE_CATEGORY, GROUPS, SUPPORT

__all__ = [
    "ARTICLE_CATEGORY",
    "GROUPS",
    "HOT_GROUPS",
    "SUPPORT",
    "SYNONYMS",
    "canonical",
    "index",
    "n_values",
    "value",
]

#: Groups that are scalar fields of the index (``streams.schema.HOT_ATTRIBUTES``).
HOT_GROUPS: tuple[str, ...] = ("category", "article_type", "colour", "gender", "usage", "season")

#: Hand-written phrasings users type -> (group, canonical value). Plurals, case and hyphens of
#: the values themselves are handled by ``workers.query.parse``; this lists real synonyms only.
SYNONYMS: dict[str, tuple[str, str]] = {
    # gender
    "man": ("gender", "men"), "mens": ("gender", "men"), "male": ("gender", "men"),
    "gents": ("gender", "men"), "guys": ("gender", "men"), "him": ("gender", "men"),
    "woman": ("gender", "women"), "womens": ("gender", "women"), "female": ("gender", "women"),
    "ladies": ("gender", "women"), "lady": ("gender", "women"), "her": ("gender", "women"),
    "boy": ("gender", "boys"), "girl": ("gender", "girls"),
    # colour
    "navy": ("colour", "navy blue"), "gray": ("colour", "grey"), "dark grey": ("colour", "charcoal"),
    "violet": ("colour", "purple"), "ivory": ("colour", "cream"), "golden": ("colour", "gold"),
    "burgundy": ("colour", "maroon"), "wine": ("colour", "maroon"), "camel": ("colour", "tan"),
    "multicolour": ("colour", "multi"), "multicolor": ("colour", "multi"), "multicoloured": ("colour", "multi"),
    # usage
    "sport": ("usage", "sports"), "sporty": ("usage", "sports"), "gym": ("usage", "sports"),
    "workout": ("usage", "sports"), "office": ("usage", "formal"), "work": ("usage", "formal"),
    "business": ("usage", "formal"), "everyday": ("usage", "casual"), "traditional": ("usage", "ethnic"),
    # season
    "autumn": ("season", "fall"), "summery": ("season", "summer"), "wintry": ("season", "winter"),
    # article types
    "t shirt": ("article_type", "tshirts"), "tee": ("article_type", "tshirts"), "tees": ("article_type", "tshirts"),
    "t-shirt": ("article_type", "tshirts"), "polo": ("article_type", "tshirts"),
    "running shoes": ("article_type", "sports shoes"), "trainers": ("article_type", "sports shoes"),
    "training shoes": ("article_type", "sports shoes"), "sneakers": ("article_type", "casual shoes"),
    "loafers": ("article_type", "casual shoes"), "oxfords": ("article_type", "formal shoes"),
    "dress shoes": ("article_type", "formal shoes"), "stilettos": ("article_type", "heels"),
    "pumps": ("article_type", "heels"), "slippers": ("article_type", "flip flops"),
    "flipflops": ("article_type", "flip flops"), "sunglass": ("article_type", "sunglasses"),
    "shades": ("article_type", "sunglasses"), "pants": ("article_type", "trousers"),
    "chinos": ("article_type", "trousers"), "slacks": ("article_type", "trousers"),
    "denim": ("article_type", "jeans"), "joggers": ("article_type", "track pants"),
    "sweatpants": ("article_type", "track pants"), "hoodie": ("article_type", "sweatshirts"),
    "hoodies": ("article_type", "sweatshirts"), "jumper": ("article_type", "sweaters"),
    "pullover": ("article_type", "sweaters"), "cardigan": ("article_type", "sweaters"),
    "coat": ("article_type", "jackets"), "blazer": ("article_type", "jackets"),
    "purse": ("article_type", "handbags"), "tote": ("article_type", "handbags"),
    "rucksack": ("article_type", "backpacks"), "cap": ("article_type", "caps"),
    "wristwatch": ("article_type", "watches"), "necktie": ("article_type", "ties"),
    "scarf": ("article_type", "scarves"), "gown": ("article_type", "dresses"),
    "frock": ("article_type", "dresses"), "blouse": ("article_type", "tops"),
    "vest": ("article_type", "innerwear vests"), "saree": ("article_type", "sarees"),
    "sari": ("article_type", "sarees"), "kurta": ("article_type", "kurtas"), "kurti": ("article_type", "kurtis"),
    # coarse categories
    "shoe": ("category", "shoes"), "footwear": ("category", "shoes"), "bags": ("category", "bag"),
    "handbag": ("category", "bag"), "hats": ("category", "hat"), "glasses": ("category", "eyewear"),
    "spectacles": ("category", "eyewear"), "jacket": ("category", "outerwear"),
    "outerwear": ("category", "outerwear"), "knitwear": ("category", "sweater"),
}

_INDEX: dict[str, dict[str, int]] = {g: {v: i for i, v in enumerate(vals)} for g, vals in GROUPS.items()}


def n_values(group: str) -> int:
    """Number of values in ``group`` (KeyError for an unknown group)."""
    return len(GROUPS[group])


def index(group: str, value: str) -> int:
    """Position of ``value`` (any case) in ``GROUPS[group]``; KeyError when it is not there."""
    return _INDEX[group][value.strip().lower()]


def value(group: str, i: int) -> str:
    """The canonical value at position ``i`` of ``group``."""
    return GROUPS[group][i]


def canonical(group: str, text: str) -> str | None:
    """The canonical value of ``group`` that ``text`` names (value or synonym, any case), else None."""
    t = " ".join(text.strip().lower().split())
    if t in _INDEX.get(group, {}):
        return t
    hit = SYNONYMS.get(t)
    return hit[1] if hit is not None and hit[0] == group else None
