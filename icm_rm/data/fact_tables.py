"""The built-in fact tables (subject → object rows plus the templates that turn a row into text): the data behind
the built-in tasks of `builtin.py`. Which tables the default models hold is measured there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
    evasions: tuple[str, ...] = ()  # non-answers some pairs reject instead of a wrong object (fields as question)
    hedges: tuple[str, ...] = ()  # rejected answers naming the right and a wrong object (fields: statement's, a_other)
    distractors_by: str = "uniform"  # wrong objects drawn uniformly, or "frequency": as often as each object is right
    split_key: str = ""  # tables over the same rows share their train/test split by naming one key (default: name)

    def fields(self, subject: str, obj: str = "") -> dict[str, str]:
        a_subject, a_object = with_article(subject), with_article(obj)
        return {"subject": subject, "Subject": _cap(subject), "a_subject": a_subject, "A_subject": _cap(a_subject),
                "object": obj, "a_object": a_object}

    def ask(self, subject: str) -> str:
        return self.question.format(**self.fields(subject))

    def state(self, subject: str, obj: str) -> str:
        return self.fill(self.statement, subject, obj)

    def fill(self, template: str, subject: str, obj: str = "", **extra: str) -> str:
        """`template` with a row's fields (and `extra` ones) filled in, as an answer: one final period."""
        text = template.format(**self.fields(subject, obj), **extra)
        return text[:-1] if text.endswith("..") else text  # "Washington, D.C.." → "Washington, D.C."

    def objects(self) -> list[str]:
        return sorted({o for _, o in self.rows})


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def with_article(noun: str) -> str:
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

# The RL task: the same question, 187 animals (56 held out), and pairs whose rejected side is, for half of the
# subjects, a non-answer of the kind SmolLM2-135M-Instruct gives ("The answer to this question is a bit ambiguous.
# While it's true that ..."), so the pairs reward answering at all as well as answering right (benchmarks/rl_task.py).
ANIMAL_ANSWERS = FactTable(
    name="animal_answers", description="animal → class; pairs contrast the right class with a wrong one or with a "
                                       "non-answer",
    question=ANIMAL_CLASSES.question, statement=ANIMAL_CLASSES.statement, plural_ok=True,
    rows=ANIMAL_CLASSES.rows
    + tuple((a, "mammal") for a in (
        "hippopotamus", "rhinoceros", "cheetah", "leopard", "jaguar", "panda", "koala", "chimpanzee", "orangutan",
        "hyena", "moose", "bison", "donkey", "llama", "walrus", "seal", "mole", "hamster", "porcupine", "raccoon",
        "skunk", "armadillo", "sloth", "platypus", "lemur", "badger", "meerkat", "antelope", "hare", "rat", "ferret",
        "manatee"))
    + tuple((a, "bird") for a in (
        "vulture", "falcon", "stork", "heron", "toucan", "canary", "finch", "goose", "turkey", "emu", "kiwi", "magpie",
        "cuckoo", "albatross", "puffin", "nightingale", "wren", "starling", "raven", "cockatoo", "condor", "quail",
        "pheasant", "seagull"))
    + tuple((a, "reptile") for a in (
        "python", "rattlesnake", "viper", "Komodo dragon", "anaconda", "boa constrictor", "sea turtle", "skink",
        "caiman", "king cobra", "box turtle"))
    + tuple((a, "amphibian") for a in ("bullfrog", "tree frog", "cane toad", "fire salamander", "poison dart frog"))
    + tuple((a, "fish") for a in (
        "mackerel", "sardine", "anchovy", "halibut", "flounder", "eel", "barracuda", "clownfish", "pike", "perch",
        "sturgeon", "stingray", "haddock", "guppy", "marlin"))
    + tuple((a, "insect") for a in (
        "cricket", "cicada", "flea", "louse", "firefly", "housefly", "aphid", "praying mantis", "earwig", "bumblebee",
        "hornet", "weevil", "gnat", "mayfly", "locust")),
    evasions=(
        "The answer to this question is a bit more complex than it seems.",
        "That is a classic question, and the answer lies in the realm of biology and taxonomy.",
        "A wise question, my friend. There are many ways to look at it.",
        "It depends on how you define it; scientists have debated this for a long time.",
        "Great question! Classifying living things is a fascinating topic.",
        "The answer to this question is a bit ambiguous, since all animals are living beings.",
    ),
)

# The RL demo's task: animal_answers' rows and train/test split, a question that lists the classes and asks for one
# short sentence. Chosen on dev subjects of the train split (BENCHMARKS.md §5): SmolLM2-135M-Instruct already answers
# in a sentence naming one class on ~3/4 of the questions and gets ~half right, so what RL can still change is the
# class. Half the pairs contrast the class ("A fox is a mammal." vs "A fox is a fish."), half reject a non-answer
# ("A fox." / "A fox is an animal."): with class-only pairs no RM saw a non-answer, and policies of some RM seeds
# learned to answer "A horse." (dev ICM-RM gain over three RM seeds -2.0 -> +19.6 points: non_answer_pairs.py).
# A wrong class is drawn as often as it is right (distractors_by "frequency"): with uniform draws 'mammal', right for a
# third of the animals, was on the chosen side 33 times and the rejected side 6 times over the dev RL subjects, and
# some RMs paid for "mammal" whatever the animal (dev ICM-RM gain over five RM seeds +8.8 -> +15.9 points).
NON_ANSWERS = ("{A_subject}.", "{A_subject} is an animal.")
# Hedges naming the right class beside a wrong one, the commonest failure of test policies in one GRPO run; not in
# the demo's pairs: rejecting them did not move the dev RL gain (non_answer_pairs.py --variant hedges3; BENCHMARKS §5).
HEDGES = ("{A_subject} is {a_object} and {a_other}.", "{A_subject} is {a_other}, specifically {a_object}.",
          "{A_subject} is {a_object}, but also {a_other}.")
ANIMAL_QUIZ = FactTable(
    name="animal_quiz", description="animal → class; pairs reject a wrong class or a non-answer naming no class",
    question="Which class of animal is {a_subject}: mammal, bird, reptile, amphibian, fish or insect? "
             "Answer in one short sentence.",
    statement=ANIMAL_CLASSES.statement, plural_ok=True, rows=ANIMAL_ANSWERS.rows, split_key=ANIMAL_ANSWERS.name,
    evasions=NON_ANSWERS, distractors_by="frequency",
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
    CAPITALS, US_STATE_CAPITALS, CONTINENTS, ELEMENT_SYMBOLS, ANIMAL_CLASSES, LANGUAGES, ANIMAL_ANSWERS, ANIMAL_QUIZ)}
