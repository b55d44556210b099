"""The text and modifier plans as pure functions: what filters, what boosts, what relaxes first."""

from __future__ import annotations

from streams.schema import Filters
from workers.query.modifier import modifier_plan
from workers.query.text import text_plan


def test_parsed_filters_relax_least_certain_first_and_the_request_wins():
    plan = text_plan({"article_type": "sports shoes", "colour": "black", "usage": "sports"},
                     {"article_type": "sports shoes", "colour": "black", "usage": "sports", "season": "summer"},
                     Filters(colour="white"))
    assert plan.parsed_filters == {"article_type": "sports shoes", "usage": "sports"}  # the request's colour wins
    assert plan.boosts == {"season": "summer"}
    tries = plan.attempts()
    assert [t[1] for t in tries] == [[], ["usage"], ["usage", "article_type"]]
    assert all(t[0].colour == "white" for t in tries)  # the request's own filter is never relaxed
    assert tries[0][0].article_type == "sports shoes" and tries[-1][0].article_type is None


def test_a_modifier_changes_what_it_names_and_keeps_the_kind_of_item():
    plan = modifier_plan({"colour": "red"}, {"article_type": ("sports shoes", 0.9), "category": ("shoes", 0.95),
                                             "colour": ("black", 0.8)}, Filters())
    assert plan.changes == {"colour": "red"}
    assert plan.kept == {"article_type": "sports shoes", "category": "shoes"}
    assert not plan.keeps_colour
    assert [t[1] for t in plan.attempts()] == [[], ["article_type"], ["article_type", "category"],
                                               ["article_type", "category", "colour"]]


def test_a_changed_article_type_drops_the_kept_category_and_unsure_tags_are_not_kept():
    plan = modifier_plan({"article_type": "dresses", "category": "dress"},
                         {"article_type": ("skirts", 0.9), "category": ("skirt", 0.3)}, Filters())
    assert plan.changes == {"article_type": "dresses", "category": "dress"} and plan.kept == {}
    assert plan.keeps_colour
