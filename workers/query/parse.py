"""Text-query parsing: "black running shoes for men" -> attribute values the search can use.

``parse_query(text)`` finds taxonomy values (``workers.vision.taxonomy``) named in a free-text
query and says how sure it is of each. Pure function, no I/O; every table is built at import, a
parse costs a few microseconds (tens with a typo to correct).

What it reads
  * The values themselves in any case, plural or singular ("dress"/"dresses", "scarf"/"scarves",
    "hoody"/"hoodies"), with hyphens, spaces or neither ("t-shirt", "t shirt", "tshirt"; "off white",
    "offwhite"), possessives ("men's", "womens", "ladies'": apostrophes are dropped), in any word
    order ("shoes black men" = "black men shoes").
  * The hand-written synonyms (``SYNONYMS``: "navy" -> colour "navy blue", "trainers" -> article type
    "sports shoes", "for him" -> gender "men"). Longest phrase first (up to 4 words), left to right.
  * One-letter typos (``MIN_FUZZY_LEN``): a word of at least 5 letters that is not a word the parser
    knows (a value or synonym word) nor a real word (``_NOT_TYPOS``: the English and catalogue words,
    brand names included, one edit away from a value word) is corrected when exactly one meaning
    lies one insertion, deletion, substitution or adjacent transposition away ("sneekers",
    "trosuers", "womem"); a few common misspellings further off are listed (``_MISSPELLINGS``:
    "sandles"). Why 5 letters and not 4: one edit from a 4-letter word is usually another real
    word ("blue"/"glue", "pink"/"link", "gold"/"bold", "tops"/"toys", "ties"/"tips", "bags"/"rags"):
    634 of the 2,421 common 4-letter English words (26%; Zipf >= 3) lie one edit from one of the
    parser's 87 four-letter value words, against 361 of 3,430 (11%) at 5 letters, few enough to
    list them all; and a 4-letter typo has too many readings to pick one ("blak": black, blank,
    bleak?). The correction must also be the only reading: "shurts" (shirts? shorts?) is left alone.
  * Compound nouns take their head: "denim jacket" is a jacket, "shirt dress" a dress, "belt bag"
    a bag, "tshirt bra" a bra; adjacent colour words keep the most certain, then the first ("olive
    green" is olive, "aqua blue" blue). Otherwise the first value found for a group wins. An
    article type implies its coarse category (``ARTICLE_CATEGORY``), and a category named later
    only adds an article type that agrees with it. Punctuation separates items ("t-shirts &
    shorts" is two, "black/white" a choice). "formal black shoes" infers the article type from
    the usage (loose).
  * Negation: "not black", "no heels", "without laces", "other than grey" put the value in
    ``excluded``, never in ``attributes``.
  * Words that name nothing, brand names that contain value words ("red tape", "lee cooper",
    "us polo assn") and idioms ("watch out", "tie dye", "key ring", "tan lines") stay in ``rest``.

How sure (``ParsedQuery.match``, group -> kind)
  * ``"exact"``: the value, or a synonym that means just that value.
  * ``"loose"``: a synonym that only approximates the value ("turquoise" -> teal, "purse" ->
    handbags, "pants" -> trousers, "sneakers" -> casual shoes, "work" -> formal): listed in
    ``_LOOSE``. Also a colour read next to a fragrance ("lavender deodorant" is a scent).
  * ``"fuzzy"``: the words were corrected first (``ParsedQuery.fuzzy`` lists these groups).
  A category implied by an article type is as sure as the article, except that a loose article
  whose kind of item is certain ("sneakers" are shoes, "pants" are pants) implies an exact
  category; "purse", "polo", "denim", "vest", "jersey" (``_VAGUE_CATEGORY``) do not.

Filters (``ParsedQuery.filters()``) versus boosts (``ParsedQuery.boosts()``)
  The query worker filters by ``filters()`` (relaxing them when too few hits come back) and boosts
  by ``boosts()``. ``filters()`` holds only the ``"exact"`` values of article_type, gender, colour
  and usage, plus category when it is exact (named, or implied by an exact or certain article: a
  redundant filter next to the article type, and the one left when the article type is relaxed or
  was only loose, as for "white sneakers" -> shoes). Season never filters: it is the merchant's
  collection season (most of the catalogue is "fall"), not something a "summer dress" must carry.
  Loose and fuzzy values only boost, as do sub_category and master_category. Callers filtering by
  gender should also admit "unisex" items; the parse names the gender as asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from workers.vision.taxonomy import ARTICLE_CATEGORY, GROUPS, HOT_GROUPS, SYNONYMS

__all__ = ["EXACT", "FILTER_GROUPS", "FUZZY", "LOOSE", "MIN_FUZZY_LEN", "ParsedQuery", "parse_query"]

EXACT, LOOSE, FUZZY = "exact", "loose", "fuzzy"
_RANK = {EXACT: 2, LOOSE: 1, FUZZY: 0}

#: Groups whose exact values may be hard filters (season never: see the module docstring).
FILTER_GROUPS: tuple[str, ...] = ("article_type", "gender", "colour", "usage", "category")

#: Shortest word a one-letter typo is corrected in (see the module docstring for why 5).
MIN_FUZZY_LEN = 5

_MAX_WORDS = 4
_WORD = re.compile(r"[a-z0-9]+")
_SEPARATOR = re.compile(r"[,&/+;|():!?\[\]{}]")
_APOSTROPHE = re.compile(r"['\u2018\u2019\u02bc`\u00b4]")
_NOUNS = ("article_type", "category")

#: Synonyms (keys of ``SYNONYMS``) that only approximate their value: they boost, never filter.
_LOOSE: frozenset[str] = frozenset({
    # colour: a shade the merchant may have filed under a neighbouring base colour
    "dark blue", "midnight blue", "dark grey", "dark gray", "heather grey", "heather gray", "grey marl",
    "melange", "burgundy", "wine", "oxblood", "dark red", "plum", "lilac", "mauve", "indigo", "aqua",
    "turquoise", "cyan", "mint", "lime", "army green", "ochre", "rust", "coral", "salmon", "nude", "ivory",
    "ecru", "rose gold", "gunmetal", "camel", "cognac",
    # usage
    "work", "business", "everyday", "daily wear", "festive", "semi formal",
    # article types: the word covers more than the value, or another value as well
    "polo", "jersey", "cami", "camisole", "coat", "blazer", "bomber", "parka", "puffer", "vest", "pants",
    "denim", "jeggings", "tights", "underpants", "maxi", "one piece", "pyjamas", "pajamas", "sleepwear",
    "sneakers", "walking shoes", "tennis shoes", "platforms", "pumps", "slippers", "slides", "juttis",
    "mojaris", "gladiators", "purse", "crossbody", "evening bag", "school bag", "briefcase", "office bag",
    "gym bag", "travel bag", "card holder", "phone case", "mobile cover", "beanie", "bandana", "shawl",
    "chain", "smartwatch", "churidar kurta",
    # "-ish" shades
    "reddish", "bluish", "greenish", "greyish", "grayish", "pinkish", "yellowish", "brownish", "purplish",
    "blackish", "whitish", "orangish",
})

#: Loose article synonyms whose coarse category is uncertain too ("purse": a handbag or a wallet).
_VAGUE_CATEGORY: frozenset[str] = frozenset({"purse", "polo", "denim", "vest", "jersey", "maxi", "one piece"})

#: One-word plurals (values and synonyms) whose singular is another word ("short" sleeves, "flat"
#: front, a "shade" of blue, a "glass", "boot" cut, "khaki" the colour): only the plural is read.
_NO_SINGULAR: frozenset[str] = frozenset({
    "shorts", "flats", "shades", "glasses", "pumps", "tights", "slacks", "specs", "bellies",
    "slides", "platforms", "boots", "khakis", "gladiators",
})

#: Values nobody asks for: "na" is the catalogue's usage placeholder.
_NOT_ASKED: frozenset[tuple[str, str]] = frozenset({("usage", "na")})

#: Phrases that contain value words but name no value: brands, idioms, other products. They are
#: read as a whole (so their words name nothing) and kept in ``rest``.
_NOT_VALUES: tuple[str, ...] = (
    # brands
    "red tape", "red chief", "lee cooper", "indigo nation", "camel active", "pepe jeans", "black coffee",
    "urban yoga", "mr men", "us polo", "u s polo", "us polo assn", "u s polo assn", "polo assn",
    "polo ralph lauren", "spider man", "iron man", "super man", "bat man", "wonder woman", "man utd",
    "man united", "man city",
    # "work" is embroidery in Indian wear ("thread work kurti"), not the office
    "thread work", "embroidery work", "embroidered work", "zari work", "mirror work", "sequin work",
    "applique work", "hand work", "work from home",
    # idioms and other products
    "watch out", "tie dye",
    "tie and dye", "key ring", "key chain", "cap sleeve", "cap sleeves", "top rated", "top brand",
    "top brands", "top quality", "top selling", "top seller", "top notch", "face cream", "hand cream",
    "body cream", "night cream", "day cream", "shaving cream", "skin care", "sensitive skin",
    "skin friendly", "skin tight", "skin fit", "steel toe", "steel toed", "multi pack", "tan lines",
)

#: Common misspellings more than one edit from the word (read as fuzzy matches).
_MISSPELLINGS: dict[str, str] = {
    "sandles": "sandals", "sandle": "sandal", "neckless": "necklace", "necklase": "necklace",
    "legins": "leggings", "leggins": "leggings", "tshrits": "tshirts", "sweatshrit": "sweatshirt",
    "jwellery": "jewellery", "jewelery": "jewellery", "accesories": "accessories",
    "purfume": "perfume", "perfum": "perfume", "deodrant": "deodorant", "sneekers": "sneakers",
    "snekers": "sneakers", "trowsers": "trousers", "trouzers": "trousers", "jeens": "jeans",
    "wemen": "women", "womems": "women", "ladys": "ladies", "chapals": "chappals",
}

#: Tokens that negate the value right after them ("not black", "no heels", "without laces").
_NEGATORS: frozenset[str] = frozenset({"not", "no", "non", "without", "except", "excluding", "nor", "never", "minus"})
_NEGATOR_PAIRS: frozenset[tuple[str, str]] = frozenset({("other", "than"), ("rather", "than"), ("instead", "of")})
#: Words that may stand between a negator and what it negates ("not in black", "no more heels").
_NEGATION_FILLERS: frozenset[str] = frozenset({"in", "a", "an", "the", "too", "so", "very", "any", "more", "or"})

#: "formal ... shoes" with no article type named: the kind of shoe the usage implies.
_SHOES_FOR: dict[str, str] = {"casual": "casual shoes", "formal": "formal shoes", "sports": "sports shoes"}

#: Articles whose colour words are scents or packaging ("lavender deodorant").
_SCENTED: frozenset[str] = frozenset({"deodorant", "perfume and body mist", "fragrance gift set"})


class _Entry(NamedTuple):
    hits: tuple[tuple[str, str, str], ...]  # (group, value, kind); () for a phrase that names nothing
    vague_category: bool = False


class _Match(NamedTuple):
    start: int
    end: int
    text: str  # the words as typed
    entry: _Entry
    fuzzy: bool
    after_break: bool = False  # a separator stands right before it

    def kind(self, group: str) -> str | None:
        for g, _, k in self.entry.hits:
            if g == group:
                return FUZZY if self.fuzzy else k
        return None

    def value(self, group: str) -> str | None:
        for g, v, _ in self.entry.hits:
            if g == group:
                return v
        return None


_ES_PLURAL = ("ss", "x", "z", "ch", "sh")


def _inflections(word: str, alone: bool = True) -> set[str]:
    """``word`` and its singular (when it is a plural) or plural (when it is not): regular rules.
    ``alone``: the word is a whole phrase (``_NO_SINGULAR`` holds only then: "lounge short" is fine)."""
    out = {word}
    if len(word) < 3 or not word.isalpha():
        return out
    if word.endswith("s") and not word.endswith("ss"):
        if alone and word in _NO_SINGULAR:
            pass
        elif word.endswith("ies") and len(word) > 4:
            out.add(word[:-3] + "y")
        elif word.endswith("ves") and len(word) > 4:
            out |= {word[:-3] + "f", word[:-1]}
        elif word.endswith(tuple(e + "es" for e in _ES_PLURAL)):
            out.add(word[:-2])
        elif len(word) > 3:
            out.add(word[:-1])
    elif word.endswith(_ES_PLURAL):
        out.add(word + "es")
    elif word.endswith("y") and word[-2] not in "aeiou":
        out.add(word[:-1] + "ies")
    elif word.endswith("f"):
        out |= {word[:-1] + "ves", word + "s"}
    else:
        out.add(word + "s")
    return out


def _variants(phrase: str) -> set[str]:
    """Spellings of a phrase: as is, space-free, and the plural/singular of its last word."""
    words = _WORD.findall(_APOSTROPHE.sub("", phrase.lower()))
    if not words:
        return set()
    out = set()
    for last in _inflections(words[-1], alone=len(words) == 1):
        v = " ".join([*words[:-1], last])
        out |= {v, v.replace(" ", "")}
    return out


def _build_table() -> dict[str, _Entry]:
    """phrase -> what it names. One phrase may name several groups ("shirts": article type and
    coarse category); a synonym overrides the values' own reading per group."""
    raw: dict[str, dict[str, tuple[str, str]]] = {}  # phrase -> group -> (value, kind)
    vague: set[str] = set()
    for group in ("sub_category", "master_category", *reversed(HOT_GROUPS)):
        for value in GROUPS[group]:
            if (group, value) in _NOT_ASKED:
                continue
            for v in _variants(value):
                raw.setdefault(v, {})[group] = (value, EXACT)
    for phrase, (group, value) in SYNONYMS.items():
        kind = LOOSE if phrase in _LOOSE else EXACT
        for v in _variants(phrase):
            raw.setdefault(v, {})[group] = (value, kind)
            if phrase in _VAGUE_CATEGORY:
                vague.add(v)
    table: dict[str, _Entry] = {}
    for phrase, hit in raw.items():
        if set(hit) & set(HOT_GROUPS):  # a phrase that names a hot field does not also set a rare group
            for rare in ("sub_category", "master_category"):
                hit.pop(rare, None)
        table[phrase] = _Entry(tuple((g, v, k) for g, (v, k) in hit.items()), phrase in vague)
    for phrase in _NOT_VALUES:
        for v in _variants(phrase):
            table[v] = _Entry(())
    return table


_TABLE = _build_table()

#: Every word of every phrase the parser reads: such a word is never "corrected".
_VOCAB: frozenset[str] = frozenset(w for phrase in _TABLE for w in phrase.split())
_TARGET_WORDS = frozenset(w for phrase, e in _TABLE.items() if e.hits for w in phrase.split()
                          if len(w) >= MIN_FUZZY_LEN and w.isalpha())

#: Real words one edit away from a value or synonym word of 5+ letters: never corrected ("woven" is
#: not "women", "causal" not "casual", "cooper" not "copper", "style" not "stole"). Generated, then
#: read by hand, from every English word with a Zipf frequency of 2.5 or more (``wordfreq``: about
#: one in 3 million words of running text) and every word of the catalogue's titles (brand and model
#: names: "oliver" of s.Oliver, "maxim", "snipper"), less the titles' own typos ("traning",
#: "majenta", "breifs"), which the parser may correct. Regenerate it when ``SYNONYMS`` grows: a
#: new word brings new neighbours. A typo that happens to be a real word is not worth the risk.
_NOT_TYPOS: frozenset[str] = frozenset("""
acres agents aight alive apiece azores backs bails bales ballet ballets balls banana bananas bares
barring bases batch batches beach beaches beans bears beats beets begging belies belles bellied
bellow bellows bells bender bennie bernie bests betts bight blackfish blank blanks blaze blazed
blazes blige bling block blocks blown blurs blush blushes boats bolden bolder bolts bombed boobs
books booms boost boosts booth booths booty bouts bpack brackish brainer brawn bream breen brien
brings brock bronte bronzed bronzer browne brows buffer buffers bullies bummer bumper bumpers bumps
bunyan busts cadres cafes cages cakes calls cameo cameos camps camus canes canvass capes capra carbs
cards cared carer carers caress carew carey caries carmel carts carve casas cased casey casks castes
casts catch catches cates causal causes caves ceases celts cents ceres chaim chair chairs chapin
chases chats chico china chine ching chink chins chopper choppers choral clack clans classes cling
clipper clippers clive clover clues clutched coals coast coasts coates cocks coder coders coker
colder colds colon colts comer comers conor coors copier copped cores corks corral costs couch
couches coven covert covet covey cower cowper crack crain creak creamy croats crock cropper crown
crowns crusts crutch crutches cunning cures curse curses curtis custard dairy daisy dales dally
darby dares davies deals deans debby denies denis dennis dents derry dimes dings docket docks
dogging dorks dover downs draining dream dreams dregs dressed dresser dressers drown drowns drunk
drunks dudes dumps dunning duress earls earning earnings eases edges eight eights ender ennis
esports ethic ethics evenings faces fails faint faints fares faris fears feather feats feels fellow
fellows fells fender fight fights filac fills fines fists flack flags flaps flaws fling flipper
flippers flips floated floats flock flocks floss flows folder folders folds foodie foodies footballs
forks forma forman format formats frick frown frowns gaggle gales gander garnish gases gasses gears
genders genes gente genus giggle giggles gills girly gladiator glass glazer glider gliders glides
glossed glossy glows goats goodie goodies goods goody google googles goons grabs grads grams grange
grass grasses gravel greed greek greeks greene greer greet greets grief gross grosses grown gunning
gusts hacks hades hails hales halls hanley hares hatch hatches headgear healey heals hears heater
heathen hedge hedges hedley hells hight hines hints hodder hogging holden holds holger holier holler
hoods hopper hoppers horne horny horus hover hovers howdy hummer humps indio inigo inter iphone
iwatch jacked jacks jagger jails jarring jeanie jellies jeweller jewellers jocks jogged jumped jumps
kamal kicker kickers kings kinks kmart knight kohli kurtz laced lacey lacks lagging lakes lances
lanes laptops latch latches lazer leach leans leather ledge ledges lender lifes lifts light lights
likes limbs links lists lives loader loaders locke locked locker lockers lockett locks logger
loggers logging losses lounges louse lover lovers lspring lugging lumps lunge maeve mages mails
makes malek mallet malls maples mares marion maris marks marla marlo marlon marys masts match
matches mates maude mavis maxim mayes mazes meals means mears melanie mellow melts mersey might
miles minas minds mines minis minty minus mises misty mitts mobil mobiles mocks molds moles moody
moral morals mover movers muffled mufti mules mumps myles nears nests neural nicht niece nieces
nights nines nodes normal normals notes nukes nunes nurse nurses officer officers olden older oliver
omens orang overs paces packet packets pacts paine pains pales pallet pallets palos panama panes
pangs pansy pantry paras paris parke parkes parks parma parra parse parties parts party pasts pasty
patch patches patties patty peace peachy pears peels pegging pelts pennant perch perches perfumed
persona personals personas pests phoned phones phoney phony picks pieced pierce pierces pimps pines
pings pinky pinter pints pinus pisces places plants platform plugs plumb plume plumes plump poach
pocket pockets point points poles polis polished polls pooch pools popper poppers porch porches
ports prays preach preaches press presses preys print prints prone pucks puffed pulse pulses pumas
punks punts puree purge purges pursue pursues quits races racket rackets racks rails rainer raining
randal range ranges rants ravel reach reaches reals reams rears reels render rents rests rhino
rhinos rhone rifts riggs right rights ringo rinks rocket rockets rocks rogue rogues roman romans
roots rover rovers ruffle ruffles ruining rungs runnin rusty sacks sails saint saints sales salman
salmond salomon salon salons saloon saloons sandbags sarge sarin scandal scandals scarce scare
scares scarlett scars scarvf scary schools scream screams seals sears seater sender shacks shade
shaded shader shakes shales shall shames shandal shapes shares shaves shawn shift shifts shing shins
shipper shippers shire shirk shiro shite shits shocking shocks shone shoot shoots shops shore shores
shorn shorty shots shoulders shout shouts shoves shows shree sides sight sights silvery simmer sings
sinks skids skies skipper skippers skips skits slack slang slats slicer slices slide slimsoll slings
slipped slippery slits sliver slums slung smacks smarts snacks snails sneaked snickers snider
snipper snort snorts soaks socket sockets solder soles solider solos solver solvers somber sommer
sommers sorties sorts spades sparing speaker speakers speck specks spiders spins spits spore spores
sportz spots spotty spout spouts sprang spree sprees sprint sprints sprung spurt spurts spying
stacking stacks stale starlet start starve steal steals steed steele steely steen steep steer steers
stems sticking stiles sting stocks stoke stokes stoking stolen stoll stone stones store stores stove
stoves stowe strainer straining stray strays string strings style styles sucks suffer suffers suing
suite suites summaries summary summed sumner sumter swatch swatches swears sweated sweeter swing
tacks tails taint tales talking tarnish taxis teach teaches teams tears tells tender tents tests
thorns thunk times tints toggle tomes tones tonic toots topper toppers totem touch touches towns
trace traci tracks tract tracy trailer trailers trailing trained trainee trainees trainor trask
travels trays tresses trick truck trucks trusts tunis tutti undress vandal vandals vanish vanishes
vases vents vesta vines violent votes vouch waite wakeup waking wales walkin walled waller walling
walls wanking wants wares warring watche watched watcher watchers weary weather wedged wests wheels
while whine whines whiter whitest whitey whyte wifey wight wiles winder winds wineries winery winger
wingers wings winks winner winners wipes wires witch witches witness witnesses wives woken woody
words worms woven write writes wyman years
""".split())  # noqa: SIM905 (a thousand words read better as text)

_KNOWN = _VOCAB | _NOT_TYPOS


def _deletes(word: str) -> list[str]:
    return [word[:i] + word[i + 1:] for i in range(len(word))]


def _delete_index() -> dict[str, tuple[str, ...]]:
    index: dict[str, set[str]] = {}
    for w in _TARGET_WORDS:
        for key in (w, *_deletes(w)):
            index.setdefault(key, set()).add(w)
    return {k: tuple(sorted(v)) for k, v in index.items()}


_DELETE_INDEX = _delete_index()


def _meaning(word: str) -> object:
    """What a correction to ``word`` would name: its own reading, or the word itself when it only
    appears inside phrases ("running" of "running shoes")."""
    entry = _TABLE.get(word)
    return frozenset((g, v) for g, v, _ in entry.hits) if entry else word


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are one insertion, deletion, substitution or adjacent
    transposition apart (optimal string alignment distance 1)."""
    la, lb = len(a), len(b)
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if abs(la - lb) != 1:
        return False
    if la < lb:
        a, b = b, a
    return any(a[:i] + a[i + 1:] == b for i in range(len(a)))


@lru_cache(maxsize=16384)
def _correct(word: str) -> str | None:
    """The one value or synonym word ``word`` is a typo of, else None."""
    if word in _MISSPELLINGS:
        return _MISSPELLINGS[word]
    if len(word) < MIN_FUZZY_LEN or word in _KNOWN or not word.isalpha():
        return None
    candidates = set(_DELETE_INDEX.get(word, ()))
    for d in _deletes(word):
        candidates.update(_DELETE_INDEX.get(d, ()))
    candidates = {c for c in candidates if c != word and _one_edit(word, c)}
    if not candidates or len({_meaning(c) for c in candidates}) != 1:
        return None
    return min(candidates)


def _tokens(text: str) -> tuple[list[str], frozenset[int]]:
    """The words of ``text`` and the positions of those that follow a separator ("shirts & shorts",
    "black/white", "tops, skirts"): no phrase and no compound noun runs across one."""
    words, breaks, end = [], set(), 0
    lowered = _APOSTROPHE.sub("", text.lower())
    for m in _WORD.finditer(lowered):
        if words and _SEPARATOR.search(lowered, end, m.start()):
            breaks.add(len(words))
        words.append(m.group())
        end = m.end()
    return words, frozenset(breaks)


@dataclass(frozen=True)
class ParsedQuery:
    attributes: dict[str, str] = field(default_factory=dict)  # group -> canonical value
    phrases: dict[str, str] = field(default_factory=dict)  # group -> the words that named it
    rest: str = ""  # words that named no value
    match: dict[str, str] = field(default_factory=dict)  # group -> "exact" | "loose" | "fuzzy"
    excluded: dict[str, str] = field(default_factory=dict)  # group -> value the query negates

    @property
    def fuzzy(self) -> frozenset[str]:
        """Groups read from corrected (typo) words."""
        return frozenset(g for g, k in self.match.items() if k == FUZZY)

    def kind(self, group: str) -> str | None:
        """How sure the parse is of ``group`` (None when not parsed; exact unless told otherwise)."""
        return self.match.get(group, EXACT) if group in self.attributes else None

    def boosts(self) -> dict[str, str]:
        """The hot-field values (index scalar fields) to boost by: everything parsed, typos included."""
        return {g: v for g, v in self.attributes.items() if g in HOT_GROUPS}

    def filters(self) -> dict[str, str]:
        """The values safe to use as hard filters: exact article type, gender, colour, usage and
        category (never season, never a loose or fuzzy reading)."""
        return {g: v for g, v in self.attributes.items() if g in FILTER_GROUPS and self.kind(g) == EXACT}


def _scan(words: list[str], breaks: frozenset[int]) -> tuple[list[_Match], list[_Match], list[str]]:
    """Longest phrases first, left to right: (matches, negated matches, words that named nothing)."""
    fixed = [_correct(w) or w for w in words]
    matches: list[_Match] = []
    negated: list[_Match] = []
    rest: list[str] = []
    negating = False
    i, n = 0, len(words)
    while i < n:
        found = None
        for k in range(min(_MAX_WORDS, n - i), 0, -1):
            if k > 1 and any(j in breaks for j in range(i + 1, i + k)):
                continue
            phrase = " ".join(words[i:i + k])
            entry = _TABLE.get(phrase) or (_TABLE.get(phrase.replace(" ", "")) if k > 1 else None)
            fuzzy = False
            if entry is None and fixed[i:i + k] != words[i:i + k]:
                phrase = " ".join(fixed[i:i + k])
                entry = _TABLE.get(phrase) or (_TABLE.get(phrase.replace(" ", "")) if k > 1 else None)
                fuzzy = True
            if entry is not None:
                found = _Match(i, i + k, " ".join(words[i:i + k]), entry, fuzzy, i in breaks)
                break
        if found is None:
            w = words[i]
            rest.append(w)
            if w in _NEGATORS or (i > 0 and (words[i - 1], w) in _NEGATOR_PAIRS):
                negating = True
            elif w not in _NEGATION_FILLERS:
                negating = False
            i += 1
            continue
        if not found.entry.hits:
            rest.extend(words[found.start:found.end])
        elif negating:
            negated.append(found)
        else:
            matches.append(found)
        negating = False
        i = found.end
        if negated and negated[-1] is found and i < n and words[i] in ("or", "nor"):
            negating = True  # "not black or brown"
    return matches, negated, rest


def _runs(matches: list[_Match], has: Callable[[_Match], bool]) -> list[list[_Match]]:
    """Maximal runs of adjacent matches (no word between them) for which ``has`` holds."""
    runs: list[list[_Match]] = []
    for m in matches:
        if has(m):
            if runs and runs[-1][-1].end == m.start and not m.after_break:
                runs[-1].append(m)
            else:
                runs.append([m])
    return runs


def _best(run: list[_Match], group: str, last: bool) -> _Match | None:
    """The most certain match of ``group`` in a run; ties go to the last (a noun's head) or first."""
    best = None
    for pos, m in enumerate(run):
        k = m.kind(group)
        if k is None:
            continue
        key = (_RANK[k], pos if last else -pos)
        if best is None or key > best[0]:
            best = (key, m)
    return best[1] if best else None


def _nouns(matches: list[_Match]) -> dict[str, tuple[str, str, _Match]]:
    """article_type and category: the first run of adjacent nouns decides, by its head."""
    out: dict[str, tuple[str, str, _Match]] = {}
    runs = _runs(matches, lambda m: m.kind("article_type") is not None or m.kind("category") is not None)
    # A loose noun before an exact one in the same phrase (only values between) is a modifier:
    # "denim blue shirt" is a shirt.
    if len(runs) > 1 and all(m.kind("article_type") in (LOOSE, FUZZY) for m in runs[0] if m.kind("article_type")) \
            and any(m.kind("article_type") for m in runs[0]) and any(m.kind("article_type") == EXACT for m in runs[1]):
        between = [m for m in matches if runs[0][-1].end <= m.start and m.end <= runs[1][0].start]
        covered = sum(m.end - m.start for m in between)
        if covered == runs[1][0].start - runs[0][-1].end:
            runs.insert(0, runs.pop(1))
    for r, run in enumerate(runs):
        art = _best(run, "article_type", last=True)
        cat = _best(run, "category", last=True)
        if art is not None:
            a_value = art.value("article_type")
            a_cat = ARTICLE_CATEGORY.get(a_value or "")
            if cat is not None and cat.start > art.start and a_cat and cat.value("category") != a_cat \
                    and _RANK[cat.kind("category") or FUZZY] >= _RANK[art.kind("article_type") or FUZZY]:
                art = None  # "belt bag": the head names another kind of thing
            elif cat is not None and cat.start < art.start and cat.value("category") != a_cat:
                cat = None  # "tshirt bra": the modifier's category is not the head's
        if r == 0:
            if art is not None:
                a_value = art.value("article_type") or ""
                out["article_type"] = (a_value, art.kind("article_type") or FUZZY, art)
                a_cat = ARTICLE_CATEGORY.get(a_value)
                if a_cat:
                    explicit = any(m.value("category") == a_cat and m.kind("category") == EXACT for m in run)
                    kind = art.kind("article_type") or FUZZY
                    if explicit or kind == EXACT or (kind == LOOSE and not art.entry.vague_category):
                        kind = EXACT
                    out["category"] = (a_cat, kind, art)
                elif cat is not None:
                    out["category"] = (cat.value("category") or "", cat.kind("category") or FUZZY, cat)
            elif cat is not None:
                out["category"] = (cat.value("category") or "", cat.kind("category") or FUZZY, cat)
        elif "article_type" not in out and art is not None:
            a_value = art.value("article_type") or ""
            a_cat = ARTICLE_CATEGORY.get(a_value)
            if "category" not in out or a_cat == out["category"][0]:  # "shoes ... white sneakers"
                out["article_type"] = (a_value, art.kind("article_type") or FUZZY, art)
                if a_cat and "category" not in out:
                    out["category"] = (a_cat, art.kind("article_type") or FUZZY, art)
    return out


def parse_query(text: str) -> ParsedQuery:
    words, breaks = _tokens(text)
    matches, negated, rest = _scan(words, breaks)
    chosen = _nouns(matches)
    groups = {g for m in matches for g, _, _ in m.entry.hits if g not in _NOUNS}
    for group in sorted(groups):
        runs = _runs(matches, lambda m, g=group: m.kind(g) is not None)
        m = _best(runs[0], group, last=False)
        if m is not None:
            chosen[group] = (m.value(group) or "", m.kind(group) or FUZZY, m)
    if "article_type" not in chosen and chosen.get("category", ("",))[0] == "shoes" \
            and chosen.get("usage", ("",))[0] in _SHOES_FOR:
        # "formal black shoes": the usage names the kind of shoe (an inference: loose)
        _, _, m = chosen["usage"]
        chosen["article_type"] = (_SHOES_FOR[chosen["usage"][0]], LOOSE, m)
    if chosen.get("article_type", ("",))[0] in _SCENTED and chosen.get("colour", ("", ""))[1] == EXACT:
        value, _, m = chosen["colour"]
        chosen["colour"] = (value, LOOSE, m)
    order = {g: i for i, g in enumerate((*HOT_GROUPS, "sub_category", "master_category"))}
    attrs, phrases, kinds = {}, {}, {}
    for group in sorted(chosen, key=lambda g: order.get(g, len(order))):
        value, kind, m = chosen[group]
        attrs[group], phrases[group], kinds[group] = value, m.text, kind
    excluded: dict[str, str] = {}
    for m in negated:
        for g, v, _ in m.entry.hits:
            if g in HOT_GROUPS and g not in excluded:
                excluded[g] = v
    return ParsedQuery(attrs, phrases, " ".join(rest), kinds, excluded)
