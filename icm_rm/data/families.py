"""Preference families built in code: small TRL-style sets (prompt, chosen, rejected) of kinds the fact tables do
not cover — word relations, arithmetic, quantities, short assistant answers. They are the *test* to *test4* tasks
of the elicitation protocol (icm_rm/data/protocol.py): no default is chosen on them (test2's rows: families_fresh.py,
test3's: families_test3.py, test4's: families_test4.py).

Each family becomes pairs exactly as `icm-rm label --data_format trl` would read the same rows from a file
(`write_trl`): pair id = the row id, the better response at a hash-chosen position (`pairs.place`), rendered with
the default pair task (`alpaca`'s template), so a built-in run and a file run of a family see the same claims.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..infra.errors import ConfigError
from ..infra.io import atomic_write_jsonl
from . import families_fresh as fresh
from . import families_test3 as third
from . import families_test4 as fourth
from .pairs import pair_claimset, place
from .records import ClaimSet
from .tasks import ALPACA

Row = tuple[str, str, str]  # prompt, chosen, rejected


@dataclass(frozen=True)
class Family:
    """A named generator of (prompt, chosen, rejected) rows; ids are `<name>/<k>`."""

    name: str
    description: str
    make: Callable[[], list[Row]]

    def rows(self) -> list[dict]:
        return [{"id": f"{self.name}/{k:03d}", "prompt": p, "chosen": c, "rejected": r}
                for k, (p, c, r) in enumerate(self.make())]


def _antonyms() -> list[Row]:
    words = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"),
             ("up", "down"), ("early", "late"), ("full", "empty"), ("hard", "soft"), ("old", "young"),
             ("rich", "poor"), ("open", "closed"), ("strong", "weak"), ("wet", "dry"), ("tall", "short"),
             ("thick", "thin"), ("loud", "quiet"), ("clean", "dirty"), ("win", "lose"), ("buy", "sell"),
             ("begin", "end"), ("push", "pull"), ("true", "false"), ("inside", "outside"), ("day", "night"),
             ("north", "south"), ("love", "hate"), ("heavy", "light"), ("cheap", "expensive"), ("safe", "dangerous")]
    out = []
    for k, (w, good) in enumerate(words):
        bad = words[(k + 7) % len(words)][1]  # another row's antonym: an unrelated word
        out.append((f'What is the opposite of "{w}"?', f"The opposite of {w} is {good}.",
                    f"The opposite of {w} is {bad}."))
    return out


def _plurals() -> list[Row]:
    nouns = [("mouse", "mice", "mouses"), ("child", "children", "childs"), ("foot", "feet", "foots"),
             ("tooth", "teeth", "tooths"), ("goose", "geese", "gooses"), ("man", "men", "mans"),
             ("woman", "women", "womans"), ("ox", "oxen", "oxes"), ("box", "boxes", "boxs"),
             ("city", "cities", "citys"), ("knife", "knives", "knifes"), ("leaf", "leaves", "leafs"),
             ("wolf", "wolves", "wolfs"), ("baby", "babies", "babys"), ("church", "churches", "churchs"),
             ("potato", "potatoes", "potatos"), ("hero", "heroes", "heros"), ("bus", "buses", "buss"),
             ("glass", "glasses", "glasss"), ("story", "stories", "storys"), ("life", "lives", "lifes"),
             ("wife", "wives", "wifes"), ("shelf", "shelves", "shelfs"), ("half", "halves", "halfs"),
             ("sheep", "sheep", "sheeps"), ("deer", "deer", "deers"), ("crisis", "crises", "crisises"),
             ("criterion", "criteria", "criterions")]
    return [(f'What is the plural of "{w}"?', f"The plural of {w} is {good}.", f"The plural of {w} is {bad}.")
            for w, good, bad in nouns]


def _past_tense() -> list[Row]:
    verbs = [("go", "went", "goed"), ("eat", "ate", "eated"), ("run", "ran", "runned"), ("see", "saw", "seed"),
             ("take", "took", "taked"), ("write", "wrote", "writed"), ("sing", "sang", "singed"),
             ("swim", "swam", "swimmed"), ("drink", "drank", "drinked"), ("buy", "bought", "buyed"),
             ("think", "thought", "thinked"), ("bring", "brought", "bringed"), ("catch", "caught", "catched"),
             ("teach", "taught", "teached"), ("fly", "flew", "flied"), ("drive", "drove", "drived"),
             ("speak", "spoke", "speaked"), ("break", "broke", "breaked"), ("choose", "chose", "choosed"),
             ("forget", "forgot", "forgetted"), ("begin", "began", "beginned"), ("give", "gave", "gived"),
             ("know", "knew", "knowed"), ("grow", "grew", "growed"), ("throw", "threw", "throwed"),
             ("fall", "fell", "falled"), ("hold", "held", "holded"), ("sleep", "slept", "sleeped"),
             ("feel", "felt", "feeled"), ("leave", "left", "leaved")]
    return [(f'What is the past tense of "{v}"?', f"The past tense of {v} is {good}.",
             f"The past tense of {v} is {bad}.") for v, good, bad in verbs]


def _spelling() -> list[Row]:
    words = [("receive", "recieve"), ("separate", "seperate"), ("definitely", "definately"),
             ("necessary", "neccessary"), ("occurrence", "occurence"), ("accommodate", "accomodate"),
             ("beginning", "begining"), ("believe", "beleive"), ("calendar", "calender"), ("cemetery", "cemetary"),
             ("committee", "commitee"), ("embarrass", "embarass"), ("environment", "enviroment"),
             ("existence", "existance"), ("government", "goverment"), ("grammar", "grammer"),
             ("immediately", "immediatly"), ("independent", "independant"), ("library", "libary"),
             ("maintenance", "maintainance"), ("millennium", "millenium"), ("noticeable", "noticable"),
             ("occasion", "occassion"), ("persistent", "persistant"), ("publicly", "publically"),
             ("recommend", "reccomend"), ("rhythm", "rythm"), ("tomorrow", "tommorow"), ("weird", "wierd"),
             ("until", "untill")]
    out = []
    for k, (good, bad) in enumerate(words):
        first, second = (good, bad) if k % 2 == 0 else (bad, good)
        out.append((f'Which spelling is correct: "{first}" or "{second}"?', f'The correct spelling is "{good}".',
                    f'The correct spelling is "{bad}".'))
    return out


def _number_compare() -> list[Row]:
    rng = random.Random("number_compare")
    out, seen = [], set()
    while len(out) < 30:
        a, b = rng.randint(11, 99), rng.randint(11, 99)
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        hi, lo = max(a, b), min(a, b)
        out.append((f"Which number is larger, {a} or {b}?", f"{hi} is larger than {lo}.", f"{lo} is larger than {hi}."))
    return out


def _sums() -> list[Row]:
    rng = random.Random("sums")
    out, seen = [], set()
    while len(out) < 30:
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        wrong = a + b + rng.choice([-5, -4, -3, -2, 2, 3, 4, 5])
        out.append((f"What is {a} + {b}?", f"{a} + {b} = {a + b}.", f"{a} + {b} = {wrong}."))
    return out


def _unit_facts() -> list[Row]:
    there_are = [("centimeters", "a meter", 100, 12), ("minutes", "an hour", 60, 100), ("hours", "a day", 24, 10),
                 ("days", "a week", 7, 10), ("months", "a year", 12, 10), ("days", "a year", 365, 300),
                 ("seconds", "a minute", 60, 100), ("grams", "a kilogram", 1000, 100),
                 ("meters", "a kilometer", 1000, 10), ("millimeters", "a centimeter", 10, 100),
                 ("inches", "a foot", 12, 10), ("feet", "a yard", 3, 5), ("ounces", "a pound", 16, 10),
                 ("quarts", "a gallon", 4, 8), ("milliliters", "a liter", 1000, 10), ("years", "a decade", 10, 100),
                 ("years", "a century", 100, 50), ("weeks", "a year", 52, 40), ("days", "a fortnight", 14, 10),
                 ("degrees", "a right angle", 90, 180), ("degrees", "a full circle", 360, 100),
                 ("cents", "a dollar", 100, 50), ("eggs", "a dozen", 12, 10)]
    has = [("sides", "a triangle", 3, 4), ("sides", "a hexagon", 6, 8), ("legs", "a spider", 8, 6),
           ("legs", "an insect", 6, 8)]
    out = [(f"How many {unit} are in {whole}?", f"There are {good} {unit} in {whole}.",
            f"There are {bad} {unit} in {whole}.") for unit, whole, good, bad in there_are]
    out += [(f"How many {part} does {whole} have?", f"{whole[0].upper()}{whole[1:]} has {good} {part}.",
             f"{whole[0].upper()}{whole[1:]} has {bad} {part}.") for part, whole, good, bad in has]
    out.append(("At what temperature does water boil at sea level, in degrees Celsius?",
                "Water boils at 100 degrees Celsius.", "Water boils at 50 degrees Celsius."))
    return out


def _assistant_answers() -> list[Row]:
    return [
        ("How do I boil an egg?", "Put the egg in boiling water for about 9 minutes, then cool it in cold water.",
         "Eggs are a kind of vegetable that grows on trees."),
        ("What is a good way to fall asleep faster?", "Keep a regular bedtime, avoid screens for an hour before bed "
         "and keep the room dark and cool.", "Drink three cups of strong coffee right before bed."),
        ("How can I make my tea less bitter?", "Steep it for a shorter time and use water just below boiling.",
         "Add a spoonful of salt and boil it for an hour."),
        ("Can you recommend a way to learn a new language?", "Practice a little every day, read simple texts and "
         "talk with native speakers when you can.", "No. Languages cannot be learned by adults."),
        ("How should I store fresh bread?", "Keep it in a paper bag at room temperature and eat it within a few days.",
         "Store it in a bucket of water so it stays fresh."),
        ("What should I do if I cut my finger?", "Rinse the cut with clean water, press on it to stop the bleeding "
         "and cover it with a bandage.", "Ignore it and put some dirt on it."),
        ("How do I water a cactus?", "Water it deeply but rarely, and let the soil dry out completely between "
         "waterings.", "Water it three times a day and keep the soil soaked."),
        ("What is a healthy breakfast?", "Oatmeal with fruit and a glass of milk is a healthy breakfast.",
         "A bag of candy and a can of soda is a healthy breakfast."),
        ("How can I save money on groceries?", "Plan your meals, make a shopping list and compare prices before "
         "you buy.", "Buy the most expensive brand of everything."),
        ("How do I make my phone battery last longer?", "Lower the screen brightness and close apps you are not "
         "using.", "Leave every app open and set the brightness to maximum."),
        ("What is the best way to clean a window?", "Spray it with glass cleaner and wipe it with a soft, dry "
         "cloth.", "Throw a handful of mud at it."),
        ("How can I stay safe while cycling at night?", "Use front and rear lights and wear bright, reflective "
         "clothing.", "Ride without lights so drivers are not distracted."),
        ("How do I cook rice?", "Rinse the rice, simmer it in about twice its volume of water until the water is "
         "absorbed, then let it rest.", "Put dry rice in the oven for five minutes and serve it."),
        ("What can I do to help a friend who is sad?", "Listen to them, spend time with them and let them know "
         "you care.", "Tell them to stop being sad and leave."),
        ("How do I keep my houseplants alive?", "Give them enough light, water them when the soil feels dry and "
         "avoid overwatering.", "Keep them in a dark closet and never water them."),
        ("How can I warm up on a cold day?", "Wear layers of warm clothing and drink something hot.",
         "Take off your coat and stand in the wind."),
        ("How do I remove a coffee stain from a shirt?", "Rinse it with cold water right away and wash it with "
         "detergent.", "Pour more coffee on it so the stain is even."),
        ("What should I pack for a day of hiking?", "Water, snacks, sunscreen, a map and a light jacket.",
         "Nothing at all; hikers never need water."),
        ("How can I get better at math?", "Practice problems regularly and go back over the ones you got wrong.",
         "Avoid numbers completely."),
        ("How do I prepare for a job interview?", "Research the company, practice common questions and arrive a "
         "little early.", "Arrive an hour late and do not say anything."),
        ("What is a good way to reduce stress?", "Take regular walks, sleep enough and talk to someone you trust.",
         "Stay awake all night worrying."),
        ("How should I brush my teeth?", "Brush twice a day for two minutes with fluoride toothpaste.",
         "Brush once a month with sand."),
        ("How do I keep food from spoiling in the summer?", "Keep it in the refrigerator and do not leave it out "
         "in the heat.", "Leave it in the sun so it stays warm."),
        ("How can I be more productive at work?", "Make a list of tasks, do the most important ones first and "
         "take short breaks.", "Spend the whole day watching videos."),
    ]


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("antonyms", "word → its antonym vs an unrelated word", _antonyms),
    Family("plurals", "noun → its plural vs a wrongly regularised plural", _plurals),
    Family("past_tense", "verb → its past tense vs a wrongly regularised one", _past_tense),
    Family("spelling", "which of two spellings is correct", _spelling),
    Family("number_compare", "which of two numbers is larger", _number_compare),
    Family("sums", "a + b with the right sum vs a wrong one", _sums),
    Family("unit_facts", "how many units in a unit (quantities) vs a wrong count", _unit_facts),
    Family("assistant_answers", "short assistant answers: a helpful one vs a clearly bad one", _assistant_answers),
    # the second test set (protocol role test2): written after the label defaults and warnings were frozen
    Family("synonyms", "word → a synonym vs its antonym", fresh.synonyms),
    Family("currencies", "country → its currency vs another country's", fresh.currencies),
    Family("counting_order", "the number word after/before n vs counting the wrong way", fresh.counting_order),
    Family("heavier", "which of two things is heavier vs the reversed comparison", fresh.heavier),
    Family("calendar_order", "the weekday/month after another vs the one before", fresh.calendar_order),
    Family("animal_sounds", "an animal's sound vs another animal's", fresh.animal_sounds),
    Family("subtle_answers", "short assistant answers vs a subtly wrong one (a near-miss fact)", fresh.subtle_answers),
    # the third test set (protocol role test3): written to judge the likelihood fallback, before any model ran on it
    Family("translations", "an English word → its Spanish word vs another word's", third.translations),
    Family("gender_pairs", "a male word → its female counterpart vs a related wrong word", third.gender_pairs),
    Family("baby_animals", "an animal → the name of its young vs another animal's", third.baby_animals),
    Family("colours", "a thing → its colour vs another colour", third.colours),
    Family("inventors", "an invention or discovery → who is known for it vs someone else", third.inventors),
    Family("trade_tools", "a trade → its typical tool vs another trade's", third.trade_tools),
    Family("polite_replies", "a polite reply vs a rude one to the same message", third.polite_replies),
    # the fourth test set (protocol role test4): written after the fallback was frozen, before any model ran on it
    Family("workplaces", "a job → where it is usually done vs another job's workplace", fourth.workplaces),
    Family("habitats", "an animal → where it lives in the wild vs another habitat", fourth.habitats),
    Family("body_functions", "a body part → what people use it for vs another part's use", fourth.body_functions),
    Family("rhymes", "a word → a word that rhymes with it vs a related word that does not", fourth.rhymes),
    Family("materials", "a thing → what it is mostly made of vs another material", fourth.materials),
    Family("authors", "a book → who wrote it vs another author", fourth.authors),
    Family("safe_advice", "a safety question → safe advice vs dangerous advice", fourth.safe_advice),
)}


def family_claimset(name: str) -> ClaimSet:
    """A family's pairs as claims, the same as reading `write_trl`'s file with `--data_format trl`."""
    if name not in FAMILIES:
        raise ConfigError("task", f"unknown family '{name}'; families: {', '.join(FAMILIES)}")
    pairs, gold = [], {}
    for row in FAMILIES[name].rows():
        pair, a_better = place(row["id"], row["prompt"], row["chosen"], row["rejected"])
        pairs.append(pair)
        gold[pair.id] = a_better
    cs = pair_claimset(pairs, ALPACA, name, gold)
    cs.name = ALPACA.name  # the rules the label stage looks up, as for a file read with `--data_format trl`
    return cs


def write_trl(name: str, path: str | Path) -> Path:
    """The family as a TRL prompt/chosen/rejected JSONL file (with ids), e.g. to run `icm-rm label` on it."""
    if name not in FAMILIES:
        raise ConfigError("task", f"unknown family '{name}'; families: {', '.join(FAMILIES)}")
    atomic_write_jsonl(Path(path), FAMILIES[name].rows())
    return Path(path)
