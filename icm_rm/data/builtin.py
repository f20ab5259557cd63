"""Built-in fact tasks generated in code: the embedded default data (no files, no downloads).

Each fact table (subject → object) is registered as two tasks: `<table>` (pairs, the pipeline's default form) and
`<table>_claims` (claims). Pairs: prompt "What is the capital of France?", a good response stating the true object and
a bad one stating a distractor, in an A/B order fixed by a hash of the pair id. Claims: per subject, the true object
and distractors drawn deterministically from other rows; key = the candidate object; at most one may be True.
Subjects are split train/test (30%) by a hash of the subject, so splits are disjoint and stable as tables grow.

Which tables the default models hold (benchmarks/task_selection.py → benchmarks/results/task_selection.json; 60
subjects per table (50 for US states), claims form = true object + 1 distractor, CPU fp32). Accuracies; "group" = the
true claim / right ordering gets the larger log-odds; ICL = golden many-shot (16 demos for claims, 8 for pairs);
probe = ridge on the last-token hidden state, 5-fold CV by group, best layer, (floor) = the same layer sweep on
shuffled labels, averaged over 5 permutations. S = SmolLM2-135M-Instruct, G = Gemma 3 270M base.

    table              model  ZS group  ICL group  probe claims (floor)  ZS pair  ICL pair  probe pairs (floor)
    capitals           S      0.47      0.73       0.90 (0.58)           0.52     0.15      0.98 (0.62)
                       G      0.63      0.93       0.97 (0.57)           0.53     0.25      1.00 (0.59)
    us_state_capitals  S      0.46      0.62       0.85 (0.55)           0.46     0.29      0.80 (0.60)
                       G      0.54      0.65       0.92 (0.56)           0.86     0.14      1.00 (0.62)
    continents         S      0.47      0.59       0.86 (0.56)           0.42     0.21      0.95 (0.59)
                       G      0.82      0.68       0.93 (0.54)           0.67     0.35      1.00 (0.57)
    element_symbols    S      0.40      0.55       0.85 (0.58)           0.23     0.08      0.98 (0.66)
                       G      0.60      0.93       0.93 (0.56)           0.53     0.60      1.00 (0.61)
    animal_classes     S      0.37      0.75       0.85 (0.55)           0.65     0.42      0.98 (0.56)
                       G      0.57      0.55       0.88 (0.55)           0.57     0.69      0.98 (0.57)
    languages          S      0.42      0.68       0.93 (0.58)           0.62     0.04      1.00 (0.52)
                       G      0.70      0.84       0.97 (0.55)           0.53     0.37      1.00 (0.56)
    arithmetic (ctrl)  S      0.55      0.70       0.58 (0.55)           0.43     0.52      0.62 (0.59)
                       G      0.52      0.55       0.66 (0.58)           0.57     0.37      0.73 (0.57)

Zero-shot per-claim accuracy at threshold 0 is 0.50 (G element_symbols 0.47; ICL 0.50–0.62): the models give
(almost) every claim the same verdict, so only comparisons within a group carry signal. Pair zero-shot/ICL sit at
chance or far *below* it (e.g. S languages ICL 0.04: a systematic preference for the wrong ordering, not noise), so
do not trust the sign of zero-shot or in-context pair verdicts with these models. The probe holds every fact table on
both models (fixed 2/3-depth layer: 0.76–1.00) and stays near its floor on arithmetic, so all six fact tables are
kept (min probe − floor ≥ 0.20; arithmetic 0.03 is not registered). DEFAULT_TASK = capitals: among tables whose probe
beats the floor by ≥ 0.25 on both forms and models, the highest golden-ICL group accuracy averaged over the models
(0.83; languages 0.76). Runtime: 17 min (S) and 14 min (G) on one busy CPU core.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..tasks import QUESTION, Task, register_task
from .records import Claim, ClaimSet, GoldLabels, PreferencePair

TEST_FRACTION = 0.3
SPLITS = ("train", "test", "all")
FORMS = ("pairs", "claims")
PAIR_TEMPLATE = ("Human: {prompt}\n\nResponse 1: {first}\n\nResponse 2: {second}\n\n"
                 "Claim: Response 1 is more accurate than Response 2.\n" + QUESTION)


@dataclass(frozen=True)
class FactTable:
    """Subject → object facts plus the question/statement templates that turn a row into text."""

    name: str
    rows: tuple[tuple[str, str], ...]
    question: str  # format fields: subject, Subject, a_subject, A_subject
    statement: str  # the same fields plus object, a_object
    description: str
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # object → other accepted spellings
    case_sensitive: bool = False  # chemical symbols: "Co" is not "CO"
    plural_ok: bool = False  # class nouns: "mammals" states "mammal"

    def fields(self, subject: str, obj: str = "") -> dict[str, str]:
        a_subject, a_object = _with_article(subject), _with_article(obj)
        return {"subject": subject, "Subject": _cap(subject), "a_subject": a_subject, "A_subject": _cap(a_subject),
                "object": obj, "a_object": a_object}

    def ask(self, subject: str) -> str:
        return self.question.format(**self.fields(subject))

    def state(self, subject: str, obj: str) -> str:
        text = self.statement.format(**self.fields(subject, obj))
        return text[:-1] if text.endswith("..") else text  # "Washington, D.C.." → "Washington, D.C."

    def objects(self) -> list[str]:
        return sorted({o for _, o in self.rows})


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _with_article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}" if noun else ""


# ----------------------------------------------------------------------------------------------- the fact tables

CAPITALS = FactTable(
    name="capitals", description="country → capital city",
    question="What is the capital of {subject}?", statement="The capital of {subject} is {object}.",
    aliases={"Kyiv": ("Kiev",), "Washington, D.C.": ("Washington D.C.", "Washington DC", "Washington")},
    rows=(
        ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
        ("the United Kingdom", "London"), ("Ireland", "Dublin"), ("Belgium", "Brussels"), ("Austria", "Vienna"),
        ("Poland", "Warsaw"), ("the Czech Republic", "Prague"), ("Hungary", "Budapest"), ("Greece", "Athens"),
        ("Sweden", "Stockholm"), ("Norway", "Oslo"), ("Denmark", "Copenhagen"), ("Finland", "Helsinki"),
        ("Iceland", "Reykjavik"), ("Russia", "Moscow"), ("Ukraine", "Kyiv"), ("Romania", "Bucharest"),
        ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"), ("Croatia", "Zagreb"), ("Slovakia", "Bratislava"),
        ("Slovenia", "Ljubljana"), ("Estonia", "Tallinn"), ("Latvia", "Riga"), ("Lithuania", "Vilnius"),
        ("Albania", "Tirana"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Ethiopia", "Addis Ababa"),
        ("Nigeria", "Abuja"), ("Ghana", "Accra"), ("Morocco", "Rabat"), ("Algeria", "Algiers"), ("Tunisia", "Tunis"),
        ("Senegal", "Dakar"), ("Uganda", "Kampala"), ("Zimbabwe", "Harare"), ("Zambia", "Lusaka"),
        ("Angola", "Luanda"), ("Sudan", "Khartoum"), ("Libya", "Tripoli"), ("Japan", "Tokyo"), ("China", "Beijing"),
        ("South Korea", "Seoul"), ("North Korea", "Pyongyang"), ("India", "New Delhi"), ("Pakistan", "Islamabad"),
        ("Bangladesh", "Dhaka"), ("Nepal", "Kathmandu"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"),
        ("the Philippines", "Manila"), ("Afghanistan", "Kabul"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
        ("Saudi Arabia", "Riyadh"), ("Syria", "Damascus"), ("Jordan", "Amman"), ("Lebanon", "Beirut"),
        ("Qatar", "Doha"), ("Mongolia", "Ulaanbaatar"), ("Cambodia", "Phnom Penh"), ("Laos", "Vientiane"),
        ("Canada", "Ottawa"), ("the United States", "Washington, D.C."), ("Mexico", "Mexico City"),
        ("Cuba", "Havana"), ("Jamaica", "Kingston"), ("Argentina", "Buenos Aires"), ("Brazil", "Brasília"),
        ("Chile", "Santiago"), ("Peru", "Lima"), ("Colombia", "Bogotá"), ("Venezuela", "Caracas"),
        ("Ecuador", "Quito"), ("Uruguay", "Montevideo"), ("Paraguay", "Asunción"), ("Australia", "Canberra"),
        ("New Zealand", "Wellington"), ("Turkey", "Ankara"), ("Fiji", "Suva"),
    ),
)

US_STATE_CAPITALS = FactTable(
    name="us_state_capitals", description="US state → state capital",
    question="What is the capital of the US state of {subject}?",
    statement="The capital of {subject} is {object}.",
    aliases={"Saint Paul": ("St. Paul", "St Paul")},
    rows=(
        ("Alabama", "Montgomery"), ("Alaska", "Juneau"), ("Arizona", "Phoenix"), ("Arkansas", "Little Rock"),
        ("California", "Sacramento"), ("Colorado", "Denver"), ("Connecticut", "Hartford"), ("Delaware", "Dover"),
        ("Florida", "Tallahassee"), ("Georgia", "Atlanta"), ("Hawaii", "Honolulu"), ("Idaho", "Boise"),
        ("Illinois", "Springfield"), ("Indiana", "Indianapolis"), ("Iowa", "Des Moines"), ("Kansas", "Topeka"),
        ("Kentucky", "Frankfort"), ("Louisiana", "Baton Rouge"), ("Maine", "Augusta"), ("Maryland", "Annapolis"),
        ("Massachusetts", "Boston"), ("Michigan", "Lansing"), ("Minnesota", "Saint Paul"), ("Mississippi", "Jackson"),
        ("Missouri", "Jefferson City"), ("Montana", "Helena"), ("Nebraska", "Lincoln"), ("Nevada", "Carson City"),
        ("New Hampshire", "Concord"), ("New Jersey", "Trenton"), ("New Mexico", "Santa Fe"), ("New York", "Albany"),
        ("North Carolina", "Raleigh"), ("North Dakota", "Bismarck"), ("Ohio", "Columbus"),
        ("Oklahoma", "Oklahoma City"), ("Oregon", "Salem"), ("Pennsylvania", "Harrisburg"),
        ("Rhode Island", "Providence"), ("South Carolina", "Columbia"), ("South Dakota", "Pierre"),
        ("Tennessee", "Nashville"), ("Texas", "Austin"), ("Utah", "Salt Lake City"), ("Vermont", "Montpelier"),
        ("Virginia", "Richmond"), ("Washington", "Olympia"), ("West Virginia", "Charleston"),
        ("Wisconsin", "Madison"), ("Wyoming", "Cheyenne"),
    ),
)

CONTINENTS = FactTable(
    name="continents", description="country → continent (transcontinental countries left out)",
    question="Which continent is {subject} in?", statement="{Subject} is in {object}.",
    rows=tuple((c, "Europe") for c in (
        "France", "Germany", "Italy", "Spain", "Portugal", "Poland", "Sweden", "Norway", "Finland", "Ireland",
        "Austria", "Hungary", "Greece", "Switzerland", "Belgium", "the Netherlands"))
    + tuple((c, "Asia") for c in (
        "Japan", "China", "India", "Thailand", "Vietnam", "Mongolia", "Nepal", "Bangladesh", "Pakistan", "Cambodia",
        "Laos", "South Korea", "the Philippines", "Iran", "Iraq", "Saudi Arabia", "Afghanistan", "Sri Lanka"))
    + tuple((c, "Africa") for c in (
        "Nigeria", "Kenya", "Ethiopia", "Ghana", "Senegal", "Morocco", "Algeria", "Uganda", "Tanzania", "Zambia",
        "Zimbabwe", "Angola", "Mali", "Cameroon", "Botswana", "Namibia", "Madagascar", "South Africa"))
    + tuple((c, "North America") for c in (
        "Canada", "the United States", "Mexico", "Guatemala", "Honduras", "Nicaragua", "Costa Rica", "El Salvador",
        "Belize", "Cuba", "Jamaica", "Haiti"))
    + tuple((c, "South America") for c in (
        "Brazil", "Argentina", "Chile", "Peru", "Colombia", "Venezuela", "Ecuador", "Bolivia", "Paraguay", "Uruguay",
        "Guyana", "Suriname"))
    + tuple((c, "Oceania") for c in (
        "Australia", "New Zealand", "Fiji", "Papua New Guinea", "Samoa", "Tonga", "Vanuatu", "the Solomon Islands")),
)

# Symbols that are common English words (I, In, As, Be, He, At, No, Am, Es) are left out so gold_check can match
# symbols case-sensitively without false hits.
ELEMENT_SYMBOLS = FactTable(
    name="element_symbols", description="chemical element → symbol", case_sensitive=True,
    question="What is the chemical symbol for {subject}?", statement="The chemical symbol for {subject} is {object}.",
    rows=(
        ("hydrogen", "H"), ("lithium", "Li"), ("boron", "B"), ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"),
        ("fluorine", "F"), ("neon", "Ne"), ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"),
        ("silicon", "Si"), ("phosphorus", "P"), ("sulfur", "S"), ("chlorine", "Cl"), ("argon", "Ar"),
        ("potassium", "K"), ("calcium", "Ca"), ("scandium", "Sc"), ("titanium", "Ti"), ("vanadium", "V"),
        ("chromium", "Cr"), ("manganese", "Mn"), ("iron", "Fe"), ("cobalt", "Co"), ("nickel", "Ni"), ("copper", "Cu"),
        ("zinc", "Zn"), ("gallium", "Ga"), ("germanium", "Ge"), ("selenium", "Se"), ("bromine", "Br"),
        ("krypton", "Kr"), ("rubidium", "Rb"), ("strontium", "Sr"), ("yttrium", "Y"), ("zirconium", "Zr"),
        ("niobium", "Nb"), ("molybdenum", "Mo"), ("technetium", "Tc"), ("ruthenium", "Ru"), ("rhodium", "Rh"),
        ("palladium", "Pd"), ("silver", "Ag"), ("cadmium", "Cd"), ("tin", "Sn"), ("antimony", "Sb"),
        ("tellurium", "Te"), ("xenon", "Xe"), ("caesium", "Cs"), ("barium", "Ba"), ("lanthanum", "La"),
        ("cerium", "Ce"), ("neodymium", "Nd"), ("europium", "Eu"), ("gadolinium", "Gd"), ("hafnium", "Hf"),
        ("tantalum", "Ta"), ("tungsten", "W"), ("rhenium", "Re"), ("osmium", "Os"), ("iridium", "Ir"),
        ("platinum", "Pt"), ("gold", "Au"), ("mercury", "Hg"), ("thallium", "Tl"), ("lead", "Pb"),
        ("bismuth", "Bi"), ("polonium", "Po"), ("radon", "Rn"), ("francium", "Fr"), ("radium", "Ra"),
        ("uranium", "U"), ("plutonium", "Pu"),
    ),
)

ANIMAL_CLASSES = FactTable(
    name="animal_classes", description="animal → class (mammal, bird, reptile, amphibian, fish, insect)",
    question="Is {a_subject} a mammal, a bird, a reptile, an amphibian, a fish or an insect?",
    statement="{A_subject} is {a_object}.", plural_ok=True,
    rows=tuple((a, "mammal") for a in (
        "dog", "cat", "horse", "cow", "elephant", "whale", "dolphin", "bat", "lion", "tiger", "bear", "wolf", "fox",
        "rabbit", "mouse", "giraffe", "zebra", "kangaroo", "camel", "gorilla", "pig", "sheep", "goat", "deer",
        "otter", "squirrel", "hedgehog", "beaver"))
    + tuple((a, "bird") for a in (
        "eagle", "owl", "penguin", "ostrich", "sparrow", "parrot", "crow", "swan", "duck", "pigeon", "flamingo",
        "hawk", "robin", "peacock", "hummingbird", "chicken", "pelican", "woodpecker"))
    + tuple((a, "reptile") for a in (
        "crocodile", "alligator", "snake", "cobra", "lizard", "iguana", "gecko", "turtle", "tortoise", "chameleon"))
    + tuple((a, "amphibian") for a in ("frog", "toad", "salamander", "newt", "axolotl"))
    + tuple((a, "fish") for a in (
        "shark", "salmon", "tuna", "trout", "goldfish", "cod", "carp", "catfish", "seahorse", "swordfish", "herring",
        "piranha"))
    + tuple((a, "insect") for a in (
        "ant", "bee", "butterfly", "beetle", "mosquito", "grasshopper", "dragonfly", "ladybug", "wasp", "moth",
        "cockroach", "termite")),
)

LANGUAGES = FactTable(
    name="languages", description="country → main spoken language (multilingual countries left out)",
    question="What is the main language spoken in {subject}?",
    statement="The main language spoken in {subject} is {object}.",
    aliases={"Chinese": ("Mandarin",), "Bengali": ("Bangla",), "Persian": ("Farsi",)},
    rows=tuple((c, "English") for c in (
        "the United States", "the United Kingdom", "Australia", "New Zealand", "Jamaica", "Ireland"))
    + tuple((c, "Spanish") for c in (
        "Spain", "Mexico", "Argentina", "Colombia", "Peru", "Chile", "Venezuela", "Cuba", "Ecuador", "Uruguay",
        "Guatemala", "Honduras", "Costa Rica", "Nicaragua", "El Salvador", "the Dominican Republic"))
    + tuple((c, "Arabic") for c in (
        "Egypt", "Saudi Arabia", "Iraq", "Syria", "Jordan", "Lebanon", "Libya", "Tunisia", "Yemen", "Oman",
        "Kuwait"))
    + (("Portugal", "Portuguese"), ("Brazil", "Portuguese"), ("France", "French"), ("Germany", "German"),
       ("Austria", "German"), ("Italy", "Italian"), ("the Netherlands", "Dutch"), ("Russia", "Russian"),
       ("Ukraine", "Ukrainian"), ("Poland", "Polish"), ("the Czech Republic", "Czech"), ("Slovakia", "Slovak"),
       ("Hungary", "Hungarian"), ("Romania", "Romanian"), ("Bulgaria", "Bulgarian"), ("Greece", "Greek"),
       ("Serbia", "Serbian"), ("Croatia", "Croatian"), ("Sweden", "Swedish"), ("Norway", "Norwegian"),
       ("Denmark", "Danish"), ("Finland", "Finnish"), ("Iceland", "Icelandic"), ("Estonia", "Estonian"),
       ("Latvia", "Latvian"), ("Lithuania", "Lithuanian"), ("Albania", "Albanian"), ("Armenia", "Armenian"),
       ("Turkey", "Turkish"), ("Iran", "Persian"), ("Israel", "Hebrew"), ("Japan", "Japanese"),
       ("South Korea", "Korean"), ("North Korea", "Korean"), ("China", "Chinese"), ("Thailand", "Thai"),
       ("Vietnam", "Vietnamese"), ("Indonesia", "Indonesian"), ("Mongolia", "Mongolian"), ("Cambodia", "Khmer"),
       ("Laos", "Lao"), ("Nepal", "Nepali"), ("Bangladesh", "Bengali")),
)

TABLES: dict[str, FactTable] = {t.name: t for t in (
    CAPITALS, US_STATE_CAPITALS, CONTINENTS, ELEMENT_SYMBOLS, ANIMAL_CLASSES, LANGUAGES)}
BUILTIN_TASKS: list[str] = list(TABLES)  # all six hold on both default models (see the module docstring)
DEFAULT_TASK = "capitals"  # benchmarks/task_selection.py `select()`


def table_tasks(table: FactTable) -> tuple[Task, Task]:
    """The (pairs, claims) Tasks of a table: `<name>` and `<name>_claims`."""
    return (Task(name=table.name, kind="pairs", pair_template=PAIR_TEMPLATE,
                 description=f"built-in {table.description}: which of two answers is accurate"),
            Task(name=f"{table.name}_claims", kind="claims",
                 description=f"built-in {table.description}: candidate answers as True/False claims"))


for _table in TABLES.values():
    for _task in table_tasks(_table):
        register_task(_task)


# ----------------------------------------------------------------------------------------------- generation

def get_table(name: str) -> FactTable:
    """The fact table of a built-in task name (`capitals` or `capitals_claims`)."""
    base = name.removesuffix("_claims")
    if base not in TABLES:
        raise ConfigError("task", f"unknown built-in task '{name}'; built-in: {', '.join(TABLES)}")
    return TABLES[base]


def _hash_unit(*parts: object) -> float:
    """A stable number in [0, 1) from the parts (Python's hash() is salted per process)."""
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


def split_subjects(table: FactTable, split: str) -> list[str]:
    """Subjects of a split in table order: the TEST_FRACTION with the smallest hashes are `test`."""
    if split not in SPLITS:
        raise ConfigError("split", f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
    subjects = [s for s, _ in table.rows]
    ranked = sorted(subjects, key=lambda s: _hash_unit(table.name, "split", s))
    test = set(ranked[:round(len(subjects) * TEST_FRACTION)])
    if split == "all":
        return subjects
    return [s for s in subjects if (s in test) == (split == "test")]


def distractors(table: FactTable, subject: str, k: int, seed: int = 0) -> list[str]:
    """k wrong objects for `subject`, drawn deterministically from the other rows' distinct objects."""
    truth = dict(table.rows)[subject]
    pool = [o for o in table.objects() if o != truth]
    rng = random.Random(f"{table.name}|{subject}|{seed}")
    return rng.sample(pool, min(k, len(pool)))


def _pick_subjects(table: FactTable, split: str, n_groups: int | None, seed: int) -> list[str]:
    subjects = split_subjects(table, split)
    if n_groups is None or n_groups >= len(subjects):  # a limit: asking for more than there are gives all
        return subjects
    if n_groups < 1:
        raise ConfigError("n_groups", f"n_groups must be ≥ 1 (or null for all {len(subjects)} subjects of "
                                      f"{table.name} split '{split}'), got {n_groups}")
    chosen = set(random.Random(f"{table.name}|subset|{seed}").sample(subjects, n_groups))
    return [s for s in subjects if s in chosen]


def builtin_claimset(name: str, *, form: str = "pairs", n_groups: int | None = None, seed: int = 0,
                     split: str = "train", n_candidates: int = 4) -> ClaimSet:
    """A built-in task's claims (form 'pairs': two swapped claims per pair; 'claims': candidates per subject)."""
    return table_claimset(get_table(name), form=form, n_groups=n_groups, seed=seed, split=split,
                          n_candidates=n_candidates)


def table_claimset(table: FactTable, *, form: str = "pairs", n_groups: int | None = None, seed: int = 0,
                   split: str = "train", n_candidates: int = 4) -> ClaimSet:
    """`builtin_claimset` for any FactTable (registered or not, e.g. a benchmark's control table)."""
    if form not in FORMS:
        raise ConfigError("form", f"unknown form '{form}'; use 'pairs' or 'claims'")
    subjects = _pick_subjects(table, split, n_groups, seed)
    truth = dict(table.rows)
    if form == "pairs":
        return _pairs(table, subjects, truth, seed)
    return _claims(table, subjects, truth, seed, n_candidates)


def _pairs(table: FactTable, subjects: list[str], truth: dict[str, str], seed: int) -> ClaimSet:
    task = table_tasks(table)[0]
    claims, gold, pairs = [], {}, {}
    for subject in subjects:
        pid = f"{table.name}/{_slug(subject)}"
        good = table.state(subject, truth[subject])
        bad = table.state(subject, distractors(table, subject, 1, seed)[0])
        good_first = _hash_unit(pid, "order") < 0.5
        pair = PreferencePair(id=pid, prompt=table.ask(subject), response_a=good if good_first else bad,
                              response_b=bad if good_first else good, meta={"task": table.name, "subject": subject})
        pairs[pid] = pair
        for c in task.pair_claims(pair):
            claims.append(c)
            gold[c.id] = (c.key == "A>B") == good_first
    return ClaimSet(claims=claims, gold=GoldLabels(gold), pairs=pairs, name=table.name)


def _claims(table: FactTable, subjects: list[str], truth: dict[str, str], seed: int, n_candidates: int) -> ClaimSet:
    if n_candidates < 2:
        raise ConfigError("n_candidates", f"need at least 2 candidates per subject (one true), got {n_candidates}")
    task = table_tasks(table)[1]
    claims, gold = [], {}
    for subject in subjects:
        group = f"{table.name}/{_slug(subject)}"
        candidates = [truth[subject], *distractors(table, subject, n_candidates - 1, seed)]
        random.Random(f"{group}|order|{seed}").shuffle(candidates)
        for obj in candidates:
            cid = f"{group}/{_slug(obj) or obj}"
            text = task.render_claim(statement=table.state(subject, obj))
            claims.append(Claim(id=cid, group=group, key=obj, text=text, meta={"task": table.name, "subject": subject}))
            gold[cid] = obj == truth[subject]
    return ClaimSet(claims=claims, gold=GoldLabels(gold), name=f"{table.name}_claims")


# ----------------------------------------------------------------------------------------------- prompts + checker

def builtin_prompts(name: str, split: str = "test") -> list[str]:
    """Questions of a split, for RL rollouts and policy evaluation ("What is the capital of France?")."""
    table = get_table(name)
    return [table.ask(s) for s in split_subjects(table, split)]


def gold_check(name: str, prompt: str, completion: str) -> bool | None:
    """Does `completion` state the right object and no wrong one? None when `prompt` holds no question of this task.

    The question may sit inside a longer prompt (a chat template); matching ignores accents, and case unless the
    table is case-sensitive (symbols); class nouns may be plural.
    """
    table = get_table(name)
    questions, patterns = _matchers(table.name)
    subject = questions.get(prompt)
    if subject is None:
        inside = [q for q in questions if q in prompt]
        subject = questions[max(inside, key=len)] if inside else None
    if subject is None:
        return None
    text = _norm(completion, table.case_sensitive)
    right = dict(table.rows)[subject]
    if not patterns[right].search(text):
        return False
    masked = patterns[right].sub(" ", text)  # a wrong object inside the right one ("Guinea" in "Papua New Guinea")
    return not any(p.search(masked) for o, p in patterns.items() if o != right)


@functools.lru_cache(maxsize=None)
def _matchers(name: str) -> tuple[dict[str, str], dict[str, re.Pattern]]:
    """question → subject, and object → regex (aliases, accents, case and plural rules), built once per table."""
    table = TABLES[name]
    return {table.ask(s): s for s, _ in table.rows}, {o: _object_regex(table, o) for o in table.objects()}


def _norm(text: str, case_sensitive: bool) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return text if case_sensitive else text.lower()


def _object_regex(table: FactTable, obj: str) -> re.Pattern:
    names = [obj, *table.aliases.get(obj, ())]
    alts = [re.escape(_norm(n, table.case_sensitive)) + ("(?:e?s)?" if table.plural_ok else "") for n in names]
    return re.compile(r"(?<![\w])(?:" + "|".join(sorted(alts, key=len, reverse=True)) + r")(?![\w])")
