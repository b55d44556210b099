"""``workers.query.parse``: what shoppers type -> taxonomy values, how sure, and what may filter.

The table below is phrased for this test (not taken from the shared query sample): plurals and
possessives, word order, colour and garment synonyms, typos, and words that must *not* parse
(brands, idioms, real words one letter away from a value). The shared sample
(``queries/text_sample.csv``) is then parsed row by row as a check on the query format.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from workers.query.parse import EXACT, FUZZY, LOOSE, MIN_FUZZY_LEN, ParsedQuery, parse_query
from workers.vision.taxonomy import GROUPS, HOT_GROUPS

#: Groups every table row is checked on, in full: a group a row does not list must not be parsed.
CHECKED = ("article_type", "colour", "gender", "usage", "season")

A, C, G, U, S, CAT = "article_type", "colour", "gender", "usage", "season", "category"

# (query, expected values of CHECKED groups (and of category where given), groups read as typos)
TABLE: list[tuple[str, dict[str, str], set[str]]] = [
    # plurals, singulars, possessives, "for him/her", word order
    ("men's leather belts", {A: "belts", G: "men"}, set()),
    ("womens black handbags", {A: "handbags", C: "black", G: "women"}, set()),
    ("ladies' red heels", {A: "heels", C: "red", G: "women"}, set()),
    ("Boys' blue jeans", {A: "jeans", C: "blue", G: "boys"}, set()),
    ("girl's pink dress", {A: "dresses", C: "pink", G: "girls", CAT: "dress"}, set()),
    ("a watch for him", {A: "watches", G: "men"}, set()),
    ("gift for her: silver earrings", {A: "earrings", C: "silver", G: "women"}, set()),
    ("sarees for women", {A: "sarees", G: "women"}, set()),
    ("grey sweatshirts men", {A: "sweatshirts", C: "grey", G: "men"}, set()),
    ("shoes black men", {C: "black", G: "men", CAT: "shoes"}, set()),
    ("black men shoes", {C: "black", G: "men", CAT: "shoes"}, set()),
    ("scarves for winter", {A: "scarves", S: "winter"}, set()),
    ("a scarf", {A: "scarves", CAT: "scarf"}, set()),
    ("jeans men slim fit blue", {A: "jeans", C: "blue", G: "men"}, set()),
    ("WOMAN'S WRISTWATCHES", {A: "watches", G: "women"}, set()),
    ("gents wallets", {A: "wallets", G: "men"}, set()),
    ("trouser", {A: "trousers", CAT: "pants"}, set()),
    ("kurtis", {A: "kurtis", CAT: "top"}, set()),
    ("dresses", {A: "dresses"}, set()),
    ("unisex backpack", {A: "backpacks", G: "unisex", CAT: "bag"}, set()),
    # colour synonyms and shades
    ("crimson kurta", {A: "kurtas", C: "red"}, set()),
    ("scarlet party dress", {A: "dresses", C: "red"}, set()),
    ("off-white linen shirt", {A: "shirts", C: "off white"}, set()),
    ("offwhite sneakers", {A: "casual shoes", C: "off white", CAT: "shoes"}, set()),
    ("dark blue jeans", {A: "jeans", C: "navy blue"}, set()),
    ("light blue denim shirt", {A: "shirts", C: "blue"}, set()),
    ("sky blue tshirt for boys", {A: "tshirts", C: "blue", G: "boys"}, set()),
    ("navy chinos for office", {A: "trousers", C: "navy blue", U: "formal"}, set()),
    ("turquoise top", {A: "tops", C: "teal"}, set()),
    ("teal kurti", {A: "kurtis", C: "teal"}, set()),
    ("aqua blue top", {A: "tops", C: "blue"}, set()),
    ("burgundy blazer", {A: "jackets", C: "maroon", CAT: "outerwear"}, set()),
    ("grey melange track pants", {A: "track pants", C: "grey melange"}, set()),
    ("heather grey hoodie", {A: "sweatshirts", C: "grey melange"}, set()),
    ("charcoal gray suit trousers", {A: "trousers", C: "charcoal"}, set()),
    ("olive green cargo shorts", {A: "shorts", C: "olive"}, set()),
    ("mustard yellow kurta", {A: "kurtas", C: "mustard"}, set()),
    ("gold watch women", {A: "watches", C: "gold", G: "women"}, set()),
    ("rose gold watch", {A: "watches", C: "gold"}, set()),
    ("multicolour clutch", {A: "clutches", C: "multi"}, set()),
    ("fuchsia saree", {A: "sarees", C: "magenta"}, set()),
    ("nude heels", {A: "heels", C: "skin"}, set()),
    ("wine coloured lipstick", {A: "lipstick", C: "maroon"}, set()),
    ("golden sandals", {A: "sandals", C: "gold"}, set()),
    ("lilac top", {A: "tops", C: "lavender"}, set()),
    # garment synonyms
    ("plain white tee", {A: "tshirts", C: "white"}, set()),
    ("tank top for gym", {A: "tops", U: "sports"}, set()),
    ("running trainers", {A: "sports shoes", U: "sports"}, set()),
    ("wool jumper", {A: "sweaters"}, set()),
    ("zip up hoodie", {A: "sweatshirts"}, set()),
    ("cargo pants", {A: "trousers", CAT: "pants"}, set()),
    ("flip-flops for the beach", {A: "flip flops"}, set()),
    ("hawai chappals", {A: "flip flops"}, set()),
    ("leather purse", {A: "handbags"}, set()),
    ("coin purse", {A: "wallets"}, set()),
    ("leather wallet for men", {A: "wallets", G: "men"}, set()),
    ("analog timepiece", {A: "watches"}, set()),
    ("strappy sandals", {A: "sandals"}, set()),
    ("bag pack for school", {A: "backpacks"}, set()),
    ("laptop bag", {A: "laptop bag", CAT: "bag"}, set()),
    ("shades for men", {A: "sunglasses", G: "men"}, set()),
    ("aviator sunglasses", {A: "sunglasses"}, set()),
    ("track suit", {A: "tracksuits"}, set()),
    ("denim jacket women", {A: "jackets", G: "women", CAT: "outerwear"}, set()),
    ("polo t-shirt men", {A: "tshirts", G: "men"}, set()),
    ("pyjama set men", {A: "night suits", G: "men"}, set()),
    ("sports bra", {A: "bra", U: "sports"}, set()),
    ("salwar suit", {A: "kurta sets"}, set()),
    ("gym shoes women", {A: "sports shoes", G: "women"}, set()),
    ("ballet flats", {A: "flats"}, set()),
    ("wedges", {A: "heels"}, set()),
    ("floaters for men", {A: "sports sandals", G: "men"}, set()),
    ("ankle boots", {CAT: "shoes"}, set()),
    ("deo for men", {A: "deodorant", G: "men"}, set()),
    ("perfume for her", {A: "perfume and body mist", G: "women"}, set()),
    ("nail paint red", {A: "nail polish", C: "red"}, set()),
    ("goggles", {A: "sunglasses"}, set()),
    ("formal black shoes for men", {A: "formal shoes", C: "black", G: "men", U: "formal"}, set()),
    ("sportswear for women", {G: "women", U: "sports"}, set()),
    # compound nouns: the head names the item
    ("denim shorts", {A: "shorts"}, set()),
    ("shirt dress", {A: "dresses"}, set()),
    ("t-shirt bra", {A: "bra"}, set()),
    ("belt bag", {CAT: "bag"}, set()),
    ("clutch bag", {A: "clutches", CAT: "bag"}, set()),
    ("jogger pants", {A: "track pants"}, set()),
    ("t-shirts & shorts", {A: "tshirts"}, set()),  # two items, not a compound
    ("black/white sneakers", {A: "casual shoes", C: "black"}, set()),
    # typos (one edit, words of 5+ letters)
    ("balck tshirt", {A: "tshirts", C: "black"}, {C}),
    ("womens trosuers", {A: "trousers", G: "women"}, {A}),
    ("sneekers", {A: "casual shoes"}, {A}),
    ("jaket for men", {A: "jackets", G: "men"}, {A}),
    ("whtie shirt", {A: "shirts", C: "white"}, {C}),
    ("sunglases", {A: "sunglasses"}, {A}),
    ("sandles", {A: "sandals"}, {A}),
    ("purpel kurti", {A: "kurtis", C: "purple"}, {C}),
    ("casaul shirt", {A: "shirts", U: "casual"}, {U}),
    ("wallett", {A: "wallets"}, {A}),
    ("hoddie", {A: "sweatshirts"}, {A}),
    ("leggins", {A: "leggings"}, {A}),
    ("womem heels", {A: "heels", G: "women"}, {G}),
    ("sprots shoes", {A: "sports shoes"}, {A}),
    ("yelow dress", {A: "dresses", C: "yellow"}, {C}),
    ("tshrit for men", {A: "tshirts", G: "men"}, {A}),
    ("maroom kurta", {A: "kurtas", C: "maroon"}, {C}),
    ("ethinc wear", {U: "ethnic"}, {U}),
    ("runing shoes", {A: "sports shoes"}, {A}),
    # what must not parse (or must not parse as more than it says)
    ("blak shoes", {CAT: "shoes"}, set()),  # 4 letters: not corrected
    ("shurts", {}, set()),  # shirts or shorts: left alone
    ("watch out for sales", {}, set()),
    ("red tape shoes", {CAT: "shoes"}, set()),  # a brand, not a colour
    ("lee cooper jeans", {A: "jeans"}, set()),  # not copper
    ("us polo assn shirt", {A: "shirts"}, set()),
    ("tie dye tshirt", {A: "tshirts"}, set()),
    ("key ring", {}, set()),
    ("something comfortable", {}, set()),
    ("woven shirt", {A: "shirts"}, set()),  # not "women"
    ("short sleeve shirt", {A: "shirts"}, set()),  # not shorts
    ("a shade of blue dress", {A: "dresses", C: "blue"}, set()),  # not sunglasses
    ("cap sleeve top", {A: "tops"}, set()),
    ("normal shoes", {CAT: "shoes"}, set()),  # not "formal"
    ("face cream", {}, set()),  # not the colour
    ("tan lines", {}, set()),
    ("pepe jeans sunglasses", {A: "sunglasses"}, set()),
    ("party wear", {}, set()),  # no party usage in the taxonomy
    ("mufti jeans", {A: "jeans"}, set()),  # a brand, not "multi"
    ("thread work kurti", {A: "kurtis"}, set()),  # embroidery, not the office
    ("flat front trousers", {A: "trousers"}, set()),
    ("s.oliver top", {A: "tops"}, set()),  # not "olive"
    ("boot cut jeans", {A: "jeans"}, set()),
    ("spider-man t-shirt for kids", {A: "tshirts"}, set()),  # not gender "men"
    ("flip flops not black", {A: "flip flops"}, set()),
    ("no heels", {}, set()),
]


def _checked(parsed: ParsedQuery, expected: dict[str, str]) -> dict[str, str]:
    groups = (*CHECKED, *([CAT] if CAT in expected else []))
    return {g: v for g, v in parsed.attributes.items() if g in groups}


@pytest.mark.parametrize(("text", "expected", "fuzzy"), TABLE, ids=[t for t, _, _ in TABLE])
def test_parse_table(text: str, expected: dict[str, str], fuzzy: set[str]) -> None:
    parsed = parse_query(text)
    assert _checked(parsed, expected) == expected
    assert parsed.fuzzy & set(CHECKED) == fuzzy
    for group, value in parsed.attributes.items():
        assert value in GROUPS[group]
        assert parsed.match[group] in (EXACT, LOOSE, FUZZY)
        assert group in parsed.phrases


def test_table_is_large_and_varied() -> None:
    assert len(TABLE) >= 80
    assert sum(1 for _, _, f in TABLE if f) >= 15
    assert sum(1 for _, e, _ in TABLE if not set(e) & {A, C, G, U}) >= 10


def test_filters_are_exact_article_gender_colour_usage_and_category() -> None:
    p = parse_query("black running shoes for men")
    assert p.filters() == {"article_type": "sports shoes", "colour": "black", "gender": "men", "category": "shoes"}
    assert p.fuzzy == frozenset()
    assert p.boosts() == p.filters()
    # loose synonyms boost, never filter; a certain category still filters
    p = parse_query("white sneakers")
    assert p.match["article_type"] == LOOSE and p.filters() == {"colour": "white", "category": "shoes"}
    assert p.boosts()["article_type"] == "casual shoes"
    p = parse_query("turquoise purse for women")
    assert p.match["colour"] == LOOSE and p.match["article_type"] == LOOSE and p.match["category"] == LOOSE
    assert p.filters() == {"gender": "women"}  # a purse may be a handbag or a wallet
    # typos boost, never filter
    p = parse_query("balck sneekers")
    assert p.fuzzy == {"colour", "article_type", "category"} and p.filters() == {}
    assert p.boosts() == {"colour": "black", "article_type": "casual shoes", "category": "shoes"}
    # season never filters
    p = parse_query("summer dress")
    assert p.attributes["season"] == "summer" and "season" not in p.filters()
    assert p.filters() == {"article_type": "dresses", "category": "dress"}
    # a colour next to a fragrance is a scent
    p = parse_query("lavender deodorant")
    assert p.match["colour"] == LOOSE and p.filters() == {"article_type": "deodorant"}
    # an explicit category with no article type filters
    assert parse_query("bags for women").filters() == {"category": "bag", "gender": "women"}


def test_negation_excludes() -> None:
    p = parse_query("sneakers, not white")
    assert "colour" not in p.attributes and p.excluded == {"colour": "white"}
    p = parse_query("kurta not in black or maroon")
    assert p.attributes["article_type"] == "kurtas" and "colour" not in p.attributes
    assert p.excluded == {"colour": "black"}
    p = parse_query("not black shoes")
    assert p.excluded == {"colour": "black"} and p.attributes.get("category") == "shoes"
    p = parse_query("sandals other than brown")
    assert p.excluded == {"colour": "brown"} and p.attributes["article_type"] == "sandals"
    assert parse_query("no show socks").attributes["article_type"] == "socks"


def test_rest_keeps_what_names_nothing() -> None:
    p = parse_query("Red Tape leather shoes for men")
    assert p.rest == "red tape leather for"
    assert p.phrases == {"category": "shoes", "gender": "men"}
    p = parse_query("men's sneekers")
    assert p.phrases["article_type"] == "sneekers" and p.rest == ""


def test_every_value_parses_to_itself() -> None:
    for group in HOT_GROUPS:
        for value in GROUPS[group]:
            if (group, value) == ("usage", "na"):
                assert parse_query(value).attributes == {}  # the catalogue's placeholder: nobody asks for it
                continue
            for text in (value, value.upper(), value.title()):
                p = parse_query(text)
                assert p.attributes.get(group) == value, (group, text, p.attributes)
                assert p.match[group] == EXACT


@pytest.mark.parametrize(("text", "group", "value"), [
    ("dress", "article_type", "dresses"), ("watch", "article_type", "watches"), ("heel", "article_type", "heels"),
    ("scarf", "article_type", "scarves"), ("hoodies", "article_type", "sweatshirts"),
    ("cufflink", "article_type", "cufflinks"), ("sunglass", "article_type", "sunglasses"),
    ("clutch", "article_type", "clutches"), ("sweatpant", "article_type", "track pants"),
    ("tshirt", "article_type", "tshirts"), ("t shirts", "article_type", "tshirts"),
    ("mens", "gender", "men"), ("women's", "gender", "women"), ("ladies'", "gender", "women"),
    ("men\u2019s", "gender", "men"), ("casuals", "usage", "casual"), ("formals", "usage", "formal"),
    ("winters", "season", "winter"), ("navy-blue", "colour", "navy blue"), ("navyblue", "colour", "navy blue"),
])
def test_inflections_and_spellings(text: str, group: str, value: str) -> None:
    p = parse_query(text)
    assert p.attributes.get(group) == value and p.match[group] == EXACT and not p.fuzzy


@pytest.mark.parametrize("word", [
    "woven", "causal", "normal", "style", "catch", "oliver", "cooper", "sliver", "speakers", "heals", "flaps",
    "shade", "short", "beach", "stolen", "shift", "ethic", "greek", "ballet", "bells", "spots", "sorts",
    "winner", "alive", "range", "while", "write", "press", "mellow", "peace", "match", "trainee",
])
def test_real_words_are_never_corrected(word: str) -> None:
    p = parse_query(word)
    assert not p.fuzzy, (word, p.attributes)
    assert not set(p.attributes) & set(HOT_GROUPS), (word, p.attributes)


def test_typo_threshold() -> None:
    assert MIN_FUZZY_LEN == 5
    for short in ("blak", "whte", "pnik", "bleu", "shrt", "jens"):  # 4 letters: never corrected
        assert parse_query(short).attributes == {}, short
    for typo, group, value in [("balck", "colour", "black"), ("brwon", "colour", "brown"), ("jeens", "article_type", "jeans"),
                               ("shrit", "article_type", "shirts"), ("shirtt", "article_type", "shirts"),
                               ("kurtaa", "article_type", "kurtas"), ("wommen", "gender", "women"),
                               ("sumer", "season", "summer"), ("formall", "usage", "formal")]:
        p = parse_query(typo)
        assert p.attributes.get(group) == value and p.match[group] == FUZZY, (typo, p.attributes)
    assert parse_query("shurts").attributes == {}  # two readings (shirts, shorts): left alone


def test_pure_and_fast() -> None:
    queries = [t for t, _, _ in TABLE]
    first = [parse_query(q) for q in queries]
    assert [parse_query(q) for q in queries] == first
    t0 = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for q in queries:
            parse_query(q)
    per_query = (time.perf_counter() - t0) / (rounds * len(queries))
    assert per_query < 500e-6, f"{per_query * 1e6:.1f} us per query"  # typically ~10 us; slack for shared CI


def test_existing_contract_still_holds() -> None:
    p = ParsedQuery({"colour": "red"}, {"colour": "red"}, "")  # built by hand: taken as exact
    assert p.filters() == {"colour": "red"} and p.boosts() == {"colour": "red"} and p.fuzzy == frozenset()
    p = parse_query("formal shirts")
    assert p.attributes == {"category": "shirt", "article_type": "shirts", "usage": "formal"}


def test_text_sample_rows_are_recovered(shared_data: Path) -> None:
    path = shared_data / "queries" / "text_sample.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found: the shared query sample is not in this data set")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    columns = ("gender", "article_type", "colour", "usage")
    misses = []
    for row in rows:
        want = {g: row[g].strip().lower() for g in columns if row.get(g, "").strip()}
        got = parse_query(row["query"]).attributes
        if any(got.get(g) != v for g, v in want.items()):
            misses.append((row["query"], want, {g: got.get(g) for g in want}))
    recovered = len(rows) - len(misses)
    print(f"text_sample.csv: {recovered}/{len(rows)} rows fully recovered")
    assert not misses, f"{recovered}/{len(rows)} rows fully recovered; misses: {misses}"
