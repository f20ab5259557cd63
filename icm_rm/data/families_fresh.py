"""Rows of the second set of test families (role `test2` in icm_rm/data/protocol.py): kinds that neither the fact
tables nor the first families cover — synonyms, currencies, counting order, weight comparisons, calendar order,
animal sounds, and assistant answers whose rejected reply is only subtly wrong. They were written after the
label defaults and warnings were frozen, and no model ran on them before that; families.py registers them.
Each generator returns (prompt, chosen, rejected) rows.
"""

from __future__ import annotations

Row = tuple[str, str, str]  # prompt, chosen, rejected


def synonyms() -> list[Row]:
    # (word, a synonym, its antonym): the rejected reply names the opposite as a synonym
    words = [("big", "large", "small"), ("quick", "fast", "slow"), ("happy", "glad", "sad"),
             ("begin", "start", "finish"), ("smart", "clever", "stupid"), ("difficult", "hard", "easy"),
             ("quiet", "silent", "noisy"), ("angry", "furious", "calm"), ("shut", "close", "open"),
             ("wealthy", "rich", "poor"), ("tiny", "little", "huge"), ("correct", "right", "wrong"),
             ("ancient", "old", "new"), ("brave", "courageous", "cowardly"), ("gift", "present", "theft"),
             ("sick", "ill", "healthy"), ("buy", "purchase", "sell"), ("end", "finish", "start"),
             ("choose", "pick", "reject"), ("damp", "moist", "dry"), ("gather", "collect", "scatter"),
             ("fortunate", "lucky", "unlucky")]
    return [(f'Give a word that means the same as "{w}".', f'A word that means the same as "{w}" is "{good}".',
             f'A word that means the same as "{w}" is "{bad}".') for w, good, bad in words]


def currencies() -> list[Row]:
    money = [("Japan", "the yen"), ("the United Kingdom", "the pound sterling"), ("India", "the rupee"),
             ("Mexico", "the peso"), ("Russia", "the ruble"), ("China", "the yuan"), ("South Korea", "the won"),
             ("Switzerland", "the Swiss franc"), ("Brazil", "the real"), ("South Africa", "the rand"),
             ("Thailand", "the baht"), ("Israel", "the shekel"), ("Poland", "the zloty"), ("Turkey", "the lira"),
             ("Vietnam", "the dong"), ("Sweden", "the krona"), ("Hungary", "the forint"),
             ("the United States", "the dollar"), ("Germany", "the euro"), ("Nigeria", "the naira"),
             ("Ukraine", "the hryvnia"), ("Indonesia", "the rupiah")]
    out = []
    for k, (country, cur) in enumerate(money):
        other = money[(k + 5) % len(money)][1]
        out.append((f"What is the currency of {country}?", f"The currency of {country} is {cur}.",
                    f"The currency of {country} is {other}."))
    return out


NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
                "twenty-one", "twenty-two", "twenty-three"]


def counting_order() -> list[Row]:
    out = []
    for n in range(1, 23):  # "after n" → n + 1; the rejected reply counts backwards
        w, nxt, prev = NUMBER_WORDS[n], NUMBER_WORDS[n + 1], NUMBER_WORDS[n - 1]
        if n % 2:
            out.append((f"What number comes right after {w}?", f"The number after {w} is {nxt}.",
                        f"The number after {w} is {prev}."))
        else:
            out.append((f"What number comes right before {w}?", f"The number before {w} is {prev}.",
                        f"The number before {w} is {nxt}."))
    return out


def heavier() -> list[Row]:
    things = [("an elephant", "a mouse"), ("a car", "a bicycle"), ("a brick", "a feather"), ("a horse", "a cat"),
              ("a piano", "a guitar"), ("a whale", "a dolphin"), ("a bowling ball", "a tennis ball"),
              ("a truck", "a motorcycle"), ("a refrigerator", "a toaster"), ("a cow", "a chicken"),
              ("an anvil", "a spoon"), ("a sofa", "a pillow"), ("a gorilla", "a monkey"), ("a bus", "a scooter"),
              ("a watermelon", "a grape"), ("a bear", "a rabbit"), ("a boulder", "a pebble"),
              ("a tractor", "a wheelbarrow"), ("a hippopotamus", "a goat"), ("a dictionary", "a postcard"),
              ("a table", "a pencil"), ("a lion", "a squirrel")]
    out = []
    for k, (big, small) in enumerate(things):
        first, second = (big, small) if k % 2 == 0 else (small, big)
        out.append((f"Which is heavier, {first} or {second}?", f"{big[0].upper()}{big[1:]} is heavier than {small}.",
                    f"{small[0].upper()}{small[1:]} is heavier than {big}."))
    return out


def calendar_order() -> list[Row]:
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December"]
    out = []
    for cycle, unit in ((days, "day"), (months, "month")):
        n = len(cycle)
        for k, x in enumerate(cycle):
            out.append((f"Which {unit} comes after {x}?", f"The {unit} after {x} is {cycle[(k + 1) % n]}.",
                        f"The {unit} after {x} is {cycle[(k - 1) % n]}."))
    for k, x in enumerate(days):  # and the day before: the rejected reply names the day after
        out.append((f"Which day comes before {x}?", f"The day before {x} is {days[(k - 1) % 7]}.",
                    f"The day before {x} is {days[(k + 1) % 7]}."))
    return out


def animal_sounds() -> list[Row]:
    sounds = [("dog", "barks"), ("cat", "meows"), ("cow", "moos"), ("lion", "roars"), ("duck", "quacks"),
              ("sheep", "bleats"), ("horse", "neighs"), ("pig", "oinks"), ("snake", "hisses"), ("owl", "hoots"),
              ("frog", "croaks"), ("bee", "buzzes"), ("rooster", "crows"), ("donkey", "brays"), ("wolf", "howls"),
              ("mouse", "squeaks"), ("turkey", "gobbles"), ("goose", "honks"), ("crow", "caws"),
              ("elephant", "trumpets"), ("pigeon", "coos"), ("hyena", "laughs")]
    out = []
    for k, (animal, sound) in enumerate(sounds):
        other = sounds[(k + 3) % len(sounds)][1]
        out.append((f"What sound does a {animal} make?", f"A {animal} {sound}.", f"A {animal} {other}."))
    return out


def subtle_answers() -> list[Row]:
    return [
        ("How many days are there in a leap year?", "A leap year has 366 days.", "A leap year has 365 days."),
        ("At what temperature does water freeze, in degrees Celsius?", "Water freezes at 0 degrees Celsius.",
         "Water freezes at 10 degrees Celsius."),
        ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun.",
         "Venus is the planet closest to the Sun."),
        ("How many continents are there?", "There are seven continents.", "There are five continents."),
        ("What gas do plants take in from the air to make food?", "Plants take in carbon dioxide.",
         "Plants take in oxygen."),
        ("How many strings does a standard guitar have?", "A standard guitar has six strings.",
         "A standard guitar has eight strings."),
        ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet.",
         "Charles Dickens wrote Romeo and Juliet."),
        ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest.",
         "The Atlantic Ocean is the largest."),
        ("How many players does a soccer team have on the field?", "A soccer team has eleven players on the field.",
         "A soccer team has nine players on the field."),
        ("What is the boiling point of water in degrees Fahrenheit?", "Water boils at 212 degrees Fahrenheit.",
         "Water boils at 200 degrees Fahrenheit."),
        ("How many bones are in the adult human body?", "An adult human has 206 bones.",
         "An adult human has 306 bones."),
        ("What is the tallest mountain on Earth?", "Mount Everest is the tallest mountain.",
         "Mount Kilimanjaro is the tallest mountain."),
        ("How many hearts does an octopus have?", "An octopus has three hearts.", "An octopus has one heart."),
        ("What color do you get by mixing blue and yellow?", "Mixing blue and yellow gives green.",
         "Mixing blue and yellow gives purple."),
        ("How many minutes are in two hours?", "There are 120 minutes in two hours.",
         "There are 100 minutes in two hours."),
        ("Which organ pumps blood through the body?", "The heart pumps blood through the body.",
         "The liver pumps blood through the body."),
        ("What is the square root of 81?", "The square root of 81 is 9.", "The square root of 81 is 8."),
        ("Which is the longest river in Africa?", "The Nile is the longest river in Africa.",
         "The Congo is the longest river in Africa."),
        ("How many sides does a pentagon have?", "A pentagon has five sides.", "A pentagon has six sides."),
        ("What do bees make?", "Bees make honey.", "Bees make milk."),
        ("In which direction does the Sun rise?", "The Sun rises in the east.", "The Sun rises in the west."),
        ("How many hours are in three days?", "There are 72 hours in three days.", "There are 62 hours in three days."),
    ]
