"""Photo + text modifier ("this, but in red"): DeepStyle-style queries as attribute changes.

``modifier_plan`` turns the modifier's parse into attribute *changes* (colour, gender, article
type, category, usage, season) and keeps what it does not change of the reference: its colour,
gender, article type and category, when the reference's attributes are sure enough
(``KEEP_CONFIDENCE``). The service reads them from the catalogue when the photo is a catalogue
product's own (its nearest indexed image is a near duplicate, ``NEAR_DUPLICATE``: confidence 1),
else from the tagger and the category fusion. The search then
runs in the photo's visual neighbourhood under ``request filters + changes + kept``; while fewer than
``k`` hits come back, kept attributes are relaxed first (the tagger may be wrong), then the changes
(last: a misparse must not empty the page). Ranking keeps the look of the reference: image vector
similarity, fused with the colour vector when the colour is not what changed (``COLOUR_WEIGHT``).
The reply says what was changed, kept and relaxed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.schema import Filters
from workers.query.text import relaxations

__all__ = ["COLOUR_WEIGHT", "KEEP_CONFIDENCE", "KEEP_DEFAULT", "NEAR_DUPLICATE", "ModifierPlan", "modifier_plan"]

CHANGEABLE = ("article_type", "category", "colour", "gender", "usage", "season")
KEPT = ("colour", "gender", "article_type", "category")  # relaxed in this order when too few hits
KEEP_DEFAULT = 0.5
#: Per group where it differs: the fused category prediction is sure enough lower down.
KEEP_CONFIDENCE: dict[str, float] = {"category": 0.4}
#: Cosine of the nearest indexed image above which the photo is taken for that product's own.
NEAR_DUPLICATE = 0.97
#: image_vec : colour_vec weights when the colour is kept (the modifier changes something else).
COLOUR_WEIGHT = 0.3


@dataclass(frozen=True)
class ModifierPlan:
    base: Filters
    changes: dict[str, str]
    kept: dict[str, str]
    relax: list[str] = field(default_factory=list)

    @property
    def keeps_colour(self) -> bool:
        """The colour is the reference's: rank by the colour vector too."""
        return "colour" not in self.changes and not self.base.colour

    def attempts(self) -> list[tuple[Filters, list[str]]]:
        """(filters, groups relaxed so far), strictest first: kept values go before the changes."""
        return relaxations(self.base, {**self.kept, **self.changes}, self.relax)


def modifier_plan(parsed: Mapping[str, str], reference: Mapping[str, tuple[str, float]], request: Filters) -> ModifierPlan:
    """``parsed``: group -> value the modifier names; ``reference``: group -> (value, confidence) of the
    photo's own attributes; the request's own filters win over both."""
    own = {g for g in CHANGEABLE if getattr(request, g)}
    changes = {g: v for g, v in parsed.items() if g in CHANGEABLE and g not in own}
    if "article_type" in changes and "category" not in parsed:
        changes.pop("category", None)
    kept: dict[str, str] = {}
    for g in KEPT:
        if g in own or g in changes or g not in reference:
            continue
        if g == "category" and "article_type" in changes:
            continue  # "as a dress": the kind of item is what changes
        value, confidence = reference[g]
        if confidence >= KEEP_CONFIDENCE.get(g, KEEP_DEFAULT) and value:
            kept[g] = value
    relax = [g for g in KEPT if g in kept] + \
            [g for g in ("usage", "season", "gender", "colour", "category", "article_type") if g in changes]
    return ModifierPlan(request, changes, kept, relax)
