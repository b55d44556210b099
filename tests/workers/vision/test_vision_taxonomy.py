"""Taxonomy, text-query parser, category fusion and re-ranking: pure functions, no weights."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.schema import normalise_value
from indexer.store import SearchHit
from streams.schema import HOT_ATTRIBUTES
from workers.query.fusion import attribute_boost, category_rerank
from workers.query.parse import parse_query
from workers.vision import taxonomy as tx
from workers.vision.fusion import CATEGORIES, FusionConfig, fuse_category, neighbour_probs


def test_taxonomy_size_groups_and_round_trip() -> None:
    assert sum(len(v) for v in tx.GROUPS.values()) >= 90
    assert set(tx.HOT_GROUPS) == set(HOT_ATTRIBUTES) and set(tx.HOT_GROUPS) <= set(tx.GROUPS)
    assert len(tx.GROUPS["category"]) == 19
    for group, values in tx.GROUPS.items():
        assert len(set(values)) == len(values)
        for i, v in enumerate(values):
            assert normalise_value(v) == v  # index form: filters match as is
            assert tx.index(group, v.upper()) == i and tx.value(group, i) == v
    for phrase, (group, value) in tx.SYNONYMS.items():
        assert value in tx.GROUPS[group], phrase
        assert tx.canonical(group, phrase.upper()) == value
    assert set(tx.ARTICLE_CATEGORY.values()) <= set(tx.GROUPS["category"])
    with pytest.raises(KeyError):
        tx.index("colour", "not-a-colour")


@pytest.mark.parametrize(("text", "expected"), [
    ("black running shoes for men", {"colour": "black", "article_type": "sports shoes", "gender": "men",
                                     "category": "shoes"}),
    ("Navy T-shirts for Women", {"colour": "navy blue", "article_type": "tshirts", "gender": "women"}),
    ("ladies grey hoodie", {"gender": "women", "colour": "grey", "article_type": "sweatshirts"}),
    ("formal shirts", {"usage": "formal", "article_type": "shirts", "category": "shirt"}),
    ("something nice", {}),
])
def test_parse_query(text: str, expected: dict[str, str]) -> None:
    parsed = parse_query(text)
    assert {k: parsed.attributes[k] for k in expected} == expected
    assert set(parsed.boosts()) <= set(tx.HOT_GROUPS)
    for group, value in parsed.attributes.items():
        assert value in tx.GROUPS[group]


def test_fusion_votes_and_fallback() -> None:
    p_model = np.full(len(CATEGORIES), 0.01)
    p_model[CATEGORIES.index("top")] = 1.0
    p_model /= p_model.sum()
    hits = ["tshirt"] * 8 + ["top"] * 2
    pred = fuse_category(p_model, hits, np.linspace(0.9, 0.8, 10), FusionConfig(weight=0.7, k=10))
    assert pred.value == "tshirt" and pred.model == "top" and pred.fused
    assert abs(pred.probs.sum() - 1) < 1e-9 and 0 <= pred.confidence <= 1
    alone = fuse_category(p_model, ["", "unknown"], [0.9, 0.8])
    assert alone.value == "top" and not alone.fused
    assert neighbour_probs([], []) is None


def _hit(pid: str, score: float, **fields: str) -> SearchHit:
    return SearchHit(pid, score, dict(fields))


def test_category_rerank_boosts_and_restricts() -> None:
    hits = [_hit("a", 0.9, category="top"), _hit("b", 0.89, category="tshirt"), _hit("c", 0.5, category="tshirt")]
    probs = np.zeros(len(CATEGORIES))
    probs[CATEGORIES.index("tshirt")] = 1.0
    out, pred = category_rerank(hits, probs, k=2, config=FusionConfig(weight=0.0))
    assert pred.value == "tshirt" and pred.confidence == 1.0
    assert [h.product_id for h in out] == ["b", "c"]  # confident + >= k agree: restricted
    out, _ = category_rerank(hits, probs, k=3, config=FusionConfig(weight=0.0))
    assert [h.product_id for h in out] == ["b", "a", "c"]  # boosted only
    boosted = attribute_boost(hits, {"category": "tshirt"}, boost=0.5)
    assert [h.product_id for h in boosted] == ["b", "c", "a"]
    assert attribute_boost(hits, {}) == hits
