"""The embedded default path: ``vitrine demo`` on tansu + the Milvus Lite server, with a small sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitrine_tools.devstack.cli import stack_env
from vitrine_tools.devstack.demo import judge_look, judge_reply, run_demo


def test_the_demo_judges_each_reply_by_what_its_query_asked() -> None:
    hits = [{"product_id": "a", "category": "shoes", "price": 50.0, "in_stock": True},
            {"product_id": "b", "category": "hat", "price": 150.0, "in_stock": True}]
    ok = {"ok": True, "kind": "image", "results": hits}
    assert judge_reply(200, ok, "image", top_product="a", top_category="shoes") is None
    assert judge_reply(200, ok, "image", top_product="b")  # the wrong top hit
    assert judge_reply(200, ok, "image", top_category="hat")  # the wrong category
    assert judge_reply(200, ok, "text")  # a reply of another kind
    assert judge_reply(200, {**ok, "results": []}, "image")  # nothing found answers nothing
    assert judge_reply(503, {"ok": False, "error": {"code": "unavailable"}}, "image")
    assert judge_reply(200, {**ok, "kind": "similar"}, "similar", excluded="b")  # the product itself came back
    assert judge_reply(200, {**ok, "kind": "similar"}, "similar", filters={"price_max": 100})  # b is 150
    assert judge_reply(200, {**ok, "kind": "similar"}, "similar", filters={"in_stock": False})
    assert judge_reply(200, {**ok, "kind": "similar"}, "similar", excluded="c",
                       filters={"in_stock": True, "price_max": 150}) is None
    bad = {"ok": False, "error": {"code": "invalid_request"}}
    assert judge_reply(400, bad, "text", error_code="invalid_request") is None
    assert judge_reply(200, ok, "text", error_code="invalid_request")  # a bad query must not be answered
    assert judge_reply(400, {"ok": False, "error": {"code": "internal"}}, "text", error_code="invalid_request")



def test_the_demo_judges_a_look_by_its_categories_and_filters() -> None:
    shoes = [{"product_id": "s1", "category": "shoes", "price": 50.0, "in_stock": True}]
    look = {"ok": True, "look": {"categories": ["shoes", "bag"]},
            "complements": [{"category": "shoes", "results": shoes}, {"category": "bag", "results": []}]}
    assert judge_look(200, look, excluded="t1", filters={"price_max": 100}) is None
    assert judge_look(200, look, excluded="s1")  # the product itself came back
    assert judge_look(200, look, filters={"price_max": 10})
    assert judge_look(200, {"ok": True, "look": {"categories": ["bag"]},
                            "complements": [{"category": "bag", "results": shoes}]})  # shoes as bags
    assert judge_look(200, {"ok": True, "look": {"categories": ["shoes"]},
                            "complements": [{"category": "shoes", "results": []}]})  # nothing at all
    assert judge_look(200, {**look, "look": {"categories": ["bag", "shoes"]}})  # not the categories it names
    assert judge_look(501, {"ok": False, "error": {"code": "style_unavailable"}})


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_demo_indexes_or_dead_letters_every_event_and_answers_every_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_demo(tmp_path / "demo", limit=22, json_path=str(tmp_path / "figures.json"), env=stack_env({}))
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["published"] == 24 and figures["indexed"] == 22 and figures["dlq"] == 2
    # every query the demo ran got a reply that answers it (judged per query by the demo: ok, of its
    # kind, not empty, the right top hit or category, filters kept; the bad query its error reply)
    assert figures["queries"] == 11 and figures["queries_failed"] == [], figures["queries_failed"]
    assert figures["queries_ok"] == figures["queries"]
    assert out.count("-> answers the query") == 11 and "DOES NOT ANSWER" not in out
    assert code == 0
    assert figures["events_per_s"] > 0
    assert 0 < figures["freshness_p50_s"] <= figures["freshness_p99_s"]
    assert json.loads((tmp_path / "figures.json").read_text()) == figures
    assert "photo query over HTTP (200)" in out and "error reply (400)" in out
    assert out.count("the look: ") == 2 and "photo over HTTP (200)\n  the look: " in out
