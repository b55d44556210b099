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

#: Hand-written phrasings users type -> (group, canonical value). Plurals, possessives, case and
#: hyphens of the values themselves (and of these phrases) are handled by ``workers.query.parse``;
#: this lists real synonyms only, and only ever to values in ``GROUPS``. Some of them are only
#: approximate ("turquoise" -> "teal", "purse" -> "handbags", "pants" -> "trousers"): the parser
#: keeps its own list of those (``workers.query.parse._LOOSE``) and uses them to boost, never to
#: filter. Typos are not listed here (the parser corrects those itself and says so).
SYNONYMS: dict[str, tuple[str, str]] = {
    # gender ("him"/"her": "for him", "gift for her"; possessives "men's" arrive as "mens")
    "man": ("gender", "men"), "mens": ("gender", "men"), "male": ("gender", "men"),
    "gents": ("gender", "men"), "guys": ("gender", "men"), "him": ("gender", "men"),
    "gentleman": ("gender", "men"), "gentlemen": ("gender", "men"), "menswear": ("gender", "men"),
    "husband": ("gender", "men"),
    "woman": ("gender", "women"), "womens": ("gender", "women"), "female": ("gender", "women"),
    "ladies": ("gender", "women"), "lady": ("gender", "women"), "her": ("gender", "women"),
    "womenswear": ("gender", "women"), "wife": ("gender", "women"),
    "boy": ("gender", "boys"), "girl": ("gender", "girls"), "gender neutral": ("gender", "unisex"),
    # colour: shades to the merchant's base colour names ("light blue", "sky blue" need no entry:
    # the parser reads their base colour word)
    "navy": ("colour", "navy blue"), "dark blue": ("colour", "navy blue"), "midnight blue": ("colour", "navy blue"),
    "gray": ("colour", "grey"), "dark grey": ("colour", "charcoal"), "dark gray": ("colour", "charcoal"),
    "heather grey": ("colour", "grey melange"), "heather gray": ("colour", "grey melange"),
    "grey marl": ("colour", "grey melange"), "melange": ("colour", "grey melange"),
    "crimson": ("colour", "red"), "scarlet": ("colour", "red"),
    "burgundy": ("colour", "maroon"), "wine": ("colour", "maroon"), "oxblood": ("colour", "maroon"),
    "dark red": ("colour", "maroon"),
    "fuchsia": ("colour", "magenta"), "fuschia": ("colour", "magenta"),
    "violet": ("colour", "purple"), "plum": ("colour", "purple"),
    "lilac": ("colour", "lavender"), "mauve": ("colour", "lavender"),
    "cobalt": ("colour", "blue"), "azure": ("colour", "blue"), "indigo": ("colour", "blue"),
    "aqua": ("colour", "teal"), "turquoise": ("colour", "teal"), "cyan": ("colour", "teal"),
    "emerald": ("colour", "green"), "mint": ("colour", "green"), "lime": ("colour", "green"),
    "olive green": ("colour", "olive"), "army green": ("colour", "olive"),
    "mustard yellow": ("colour", "mustard"), "ochre": ("colour", "mustard"),
    "rust": ("colour", "orange"), "tangerine": ("colour", "orange"),
    "coral": ("colour", "peach"), "salmon": ("colour", "peach"), "nude": ("colour", "skin"),
    "ivory": ("colour", "cream"), "ecru": ("colour", "cream"), "offwhite": ("colour", "off white"),
    "golden": ("colour", "gold"), "rose gold": ("colour", "gold"), "gunmetal": ("colour", "steel"),
    "camel": ("colour", "tan"), "cognac": ("colour", "tan"),
    "multicolour": ("colour", "multi"), "multicolor": ("colour", "multi"), "multicoloured": ("colour", "multi"),
    "multicolored": ("colour", "multi"), "multi colour": ("colour", "multi"), "multi color": ("colour", "multi"),
    "reddish": ("colour", "red"), "bluish": ("colour", "blue"), "greenish": ("colour", "green"),
    "greyish": ("colour", "grey"), "grayish": ("colour", "grey"), "pinkish": ("colour", "pink"),
    "yellowish": ("colour", "yellow"), "brownish": ("colour", "brown"), "purplish": ("colour", "purple"),
    "blackish": ("colour", "black"), "whitish": ("colour", "white"), "orangish": ("colour", "orange"),
    # usage
    "sport": ("usage", "sports"), "sporty": ("usage", "sports"), "gym": ("usage", "sports"),
    "workout": ("usage", "sports"), "work out": ("usage", "sports"), "running": ("usage", "sports"),
    "jogging": ("usage", "sports"), "training": ("usage", "sports"), "yoga": ("usage", "sports"),
    "athletic": ("usage", "sports"), "fitness": ("usage", "sports"), "activewear": ("usage", "sports"),
    "sportswear": ("usage", "sports"), "casualwear": ("usage", "casual"), "formalwear": ("usage", "formal"),
    "ethnicwear": ("usage", "ethnic"),
    "office": ("usage", "formal"), "work": ("usage", "formal"), "business": ("usage", "formal"),
    "officewear": ("usage", "formal"), "workwear": ("usage", "formal"),
    "business casual": ("usage", "smart casual"), "semi formal": ("usage", "smart casual"),
    "everyday": ("usage", "casual"), "daily wear": ("usage", "casual"),
    "traditional": ("usage", "ethnic"), "festive": ("usage", "ethnic"),
    # season
    "autumn": ("season", "fall"), "summery": ("season", "summer"), "wintry": ("season", "winter"),
    "winterwear": ("season", "winter"),
    # article types: tops
    "t shirt": ("article_type", "tshirts"), "tee": ("article_type", "tshirts"), "tees": ("article_type", "tshirts"),
    "t-shirt": ("article_type", "tshirts"), "tee shirt": ("article_type", "tshirts"),
    "polo": ("article_type", "tshirts"), "polo shirt": ("article_type", "tshirts"),
    "henley": ("article_type", "tshirts"), "jersey": ("article_type", "tshirts"),
    "blouse": ("article_type", "tops"), "camisole": ("article_type", "tops"), "cami": ("article_type", "tops"),
    "hoodie": ("article_type", "sweatshirts"), "hoodies": ("article_type", "sweatshirts"),
    "hoody": ("article_type", "sweatshirts"),
    "jumper": ("article_type", "sweaters"), "pullover": ("article_type", "sweaters"),
    "cardigan": ("article_type", "sweaters"),
    "coat": ("article_type", "jackets"), "blazer": ("article_type", "jackets"),
    "windcheater": ("article_type", "jackets"), "windbreaker": ("article_type", "jackets"),
    "bomber": ("article_type", "jackets"), "parka": ("article_type", "jackets"), "puffer": ("article_type", "jackets"),
    "vest": ("article_type", "innerwear vests"), "undershirt": ("article_type", "innerwear vests"),
    "banian": ("article_type", "innerwear vests"), "baniyan": ("article_type", "innerwear vests"),
    "banyan": ("article_type", "innerwear vests"),
    # bottoms
    "pants": ("article_type", "trousers"), "chinos": ("article_type", "trousers"),
    "slacks": ("article_type", "trousers"), "khakis": ("article_type", "trousers"),
    "denim": ("article_type", "jeans"), "jeggings": ("article_type", "leggings"),
    "joggers": ("article_type", "track pants"), "sweatpants": ("article_type", "track pants"),
    "bermudas": ("article_type", "shorts"), "tights": ("article_type", "stockings"),
    "pantyhose": ("article_type", "stockings"),
    "panties": ("article_type", "briefs"), "panty": ("article_type", "briefs"), "knickers": ("article_type", "briefs"),
    "underpants": ("article_type", "briefs"), "brassiere": ("article_type", "bra"),
    # dresses, ethnic, night wear
    "gown": ("article_type", "dresses"), "frock": ("article_type", "dresses"),
    "sundress": ("article_type", "dresses"), "maxi": ("article_type", "dresses"),
    "one piece": ("article_type", "dresses"),
    "saree": ("article_type", "sarees"), "sari": ("article_type", "sarees"),
    "kurta": ("article_type", "kurtas"), "kurtha": ("article_type", "kurtas"), "kurti": ("article_type", "kurtis"),
    "kurta pyjama": ("article_type", "kurta sets"), "kurta pajama": ("article_type", "kurta sets"),
    "salwar suit": ("article_type", "kurta sets"), "salwar kameez": ("article_type", "kurta sets"),
    "churidar kurta": ("article_type", "kurta sets"),
    "chunni": ("article_type", "dupatta"), "chunri": ("article_type", "dupatta"),
    "pyjama set": ("article_type", "night suits"), "pajama set": ("article_type", "night suits"),
    "pyjamas": ("article_type", "night suits"), "pajamas": ("article_type", "night suits"),
    "sleepwear": ("article_type", "night suits"),
    "track suit": ("article_type", "tracksuits"), "jogging suit": ("article_type", "tracksuits"),
    "sweatsuit": ("article_type", "tracksuits"),
    # footwear
    "running shoes": ("article_type", "sports shoes"), "trainers": ("article_type", "sports shoes"),
    "training shoes": ("article_type", "sports shoes"), "sport shoes": ("article_type", "sports shoes"),
    "gym shoes": ("article_type", "sports shoes"), "jogging shoes": ("article_type", "sports shoes"),
    "athletic shoes": ("article_type", "sports shoes"), "walking shoes": ("article_type", "sports shoes"),
    "tennis shoes": ("article_type", "sports shoes"), "football boots": ("article_type", "sports shoes"),
    "sneakers": ("article_type", "casual shoes"), "loafers": ("article_type", "casual shoes"),
    "moccasins": ("article_type", "casual shoes"), "canvas shoes": ("article_type", "casual shoes"),
    "boat shoes": ("article_type", "casual shoes"), "slip ons": ("article_type", "casual shoes"),
    "espadrilles": ("article_type", "casual shoes"), "plimsolls": ("article_type", "casual shoes"),
    "oxfords": ("article_type", "formal shoes"), "dress shoes": ("article_type", "formal shoes"),
    "office shoes": ("article_type", "formal shoes"), "brogues": ("article_type", "formal shoes"),
    "derbies": ("article_type", "formal shoes"),
    "stilettos": ("article_type", "heels"), "pumps": ("article_type", "heels"), "wedges": ("article_type", "heels"),
    "platforms": ("article_type", "heels"),
    "ballerinas": ("article_type", "flats"), "bellies": ("article_type", "flats"), "flat shoes": ("article_type", "flats"),
    "juttis": ("article_type", "flats"), "mojaris": ("article_type", "flats"),
    "kolhapuris": ("article_type", "sandals"), "gladiators": ("article_type", "sandals"),
    "floaters": ("article_type", "sports sandals"), "sport sandals": ("article_type", "sports sandals"),
    "slippers": ("article_type", "flip flops"), "flipflops": ("article_type", "flip flops"),
    "chappals": ("article_type", "flip flops"), "sliders": ("article_type", "flip flops"),
    "slides": ("article_type", "flip flops"),
    "shoe laces": ("article_type", "shoe accessories"), "shoelaces": ("article_type", "shoe accessories"),
    "insoles": ("article_type", "shoe accessories"), "shoe polish": ("article_type", "shoe accessories"),
    "shoe horn": ("article_type", "shoe accessories"), "shoe care": ("article_type", "shoe accessories"),
    # accessories
    "sunglass": ("article_type", "sunglasses"), "shades": ("article_type", "sunglasses"),
    "goggles": ("article_type", "sunglasses"), "aviators": ("article_type", "sunglasses"),
    "wayfarers": ("article_type", "sunglasses"),
    "wristwatch": ("article_type", "watches"), "timepiece": ("article_type", "watches"),
    "chronograph": ("article_type", "watches"), "smartwatch": ("article_type", "watches"),
    "purse": ("article_type", "handbags"), "tote": ("article_type", "handbags"),
    "shoulder bag": ("article_type", "handbags"), "sling bag": ("article_type", "handbags"),
    "satchel": ("article_type", "handbags"), "crossbody": ("article_type", "handbags"),
    "evening bag": ("article_type", "clutches"),
    "rucksack": ("article_type", "backpacks"), "bagpack": ("article_type", "backpacks"),
    "bag pack": ("article_type", "backpacks"), "knapsack": ("article_type", "backpacks"),
    "daypack": ("article_type", "backpacks"), "school bag": ("article_type", "backpacks"),
    "briefcase": ("article_type", "laptop bag"), "office bag": ("article_type", "laptop bag"),
    "messenger": ("article_type", "messenger bag"),
    "duffel": ("article_type", "duffel bag"), "duffle": ("article_type", "duffel bag"),
    "duffle bag": ("article_type", "duffel bag"), "holdall": ("article_type", "duffel bag"),
    "gym bag": ("article_type", "duffel bag"), "travel bag": ("article_type", "duffel bag"),
    "billfold": ("article_type", "wallets"), "card holder": ("article_type", "wallets"),
    "coin purse": ("article_type", "wallets"),
    "phone pouch": ("article_type", "mobile pouch"), "phone case": ("article_type", "mobile pouch"),
    "mobile cover": ("article_type", "mobile pouch"),
    "cap": ("article_type", "caps"), "beanie": ("article_type", "caps"), "snapback": ("article_type", "caps"),
    "necktie": ("article_type", "ties"), "scarf": ("article_type", "scarves"), "bandana": ("article_type", "scarves"),
    "shawl": ("article_type", "stoles"),
    "jhumka": ("article_type", "earrings"), "jhumkas": ("article_type", "earrings"),
    "locket": ("article_type", "pendant"), "necklace": ("article_type", "necklace and chains"),
    "chain": ("article_type", "necklace and chains"), "neckpiece": ("article_type", "necklace and chains"),
    # personal care
    "perfume": ("article_type", "perfume and body mist"), "body mist": ("article_type", "perfume and body mist"),
    "cologne": ("article_type", "perfume and body mist"), "eau de parfum": ("article_type", "perfume and body mist"),
    "eau de toilette": ("article_type", "perfume and body mist"),
    "deo": ("article_type", "deodorant"), "antiperspirant": ("article_type", "deodorant"),
    "body spray": ("article_type", "deodorant"),
    "nail paint": ("article_type", "nail polish"), "nail enamel": ("article_type", "nail polish"),
    "nail varnish": ("article_type", "nail polish"), "nail colour": ("article_type", "nail polish"),
    "nail color": ("article_type", "nail polish"),
    "kajal": ("article_type", "kajal and eyeliner"), "eyeliner": ("article_type", "kajal and eyeliner"),
    "kohl": ("article_type", "kajal and eyeliner"),
    # coarse categories
    "shoe": ("category", "shoes"), "footwear": ("category", "shoes"), "boots": ("category", "shoes"),
    "bags": ("category", "bag"), "handbag": ("category", "bag"), "hats": ("category", "hat"),
    "glasses": ("category", "eyewear"), "spectacles": ("category", "eyewear"), "specs": ("category", "eyewear"),
    "eyeglasses": ("category", "eyewear"), "jacket": ("category", "outerwear"),
    "outerwear": ("category", "outerwear"), "knitwear": ("category", "sweater"),
    # rarer groups (not index fields: they only tell the parser the word is taken)
    "underwear": ("sub_category", "innerwear"), "lingerie": ("sub_category", "innerwear"),
    "jewelry": ("sub_category", "jewellery"),
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
