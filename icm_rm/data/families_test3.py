"""Rows of the third set of test families (role `test3` in icm_rm/data/protocol.py): kinds that neither the fact
tables nor the first two family sets cover — word translations, male/female word pairs, young animals' names,
the colours of things, inventors, the tools of a trade, and polite vs rude replies. They were written to judge the
likelihood fallback (issue 16) and committed before any model ran on them; families.py registers them.
Each generator returns (prompt, chosen, rejected) rows.
"""

from __future__ import annotations

Row = tuple[str, str, str]  # prompt, chosen, rejected


def _shifted(items: list[tuple[str, str]], shift: int) -> list[tuple[str, str, str]]:
    """(subject, its answer, another subject's answer) — the rejected reply borrows the answer `shift` rows on."""
    return [(s, a, items[(k + shift) % len(items)][1]) for k, (s, a) in enumerate(items)]


def translations() -> list[Row]:
    words = [("dog", "perro"), ("cat", "gato"), ("house", "casa"), ("water", "agua"), ("book", "libro"),
             ("sun", "sol"), ("moon", "luna"), ("bread", "pan"), ("milk", "leche"), ("tree", "árbol"),
             ("friend", "amigo"), ("school", "escuela"), ("red", "rojo"), ("green", "verde"), ("car", "coche"),
             ("apple", "manzana"), ("city", "ciudad"), ("door", "puerta"), ("flower", "flor"), ("sea", "mar"),
             ("hand", "mano"), ("night", "noche")]
    return [(f'How do you say "{w}" in Spanish?', f'In Spanish, "{w}" is "{good}".', f'In Spanish, "{w}" is "{bad}".')
            for w, good, bad in _shifted(words, 7)]


def gender_pairs() -> list[Row]:
    # (male word, its female counterpart, a wrong word of the same sort)
    words = [("king", "queen", "prince"), ("actor", "actress", "director"), ("uncle", "aunt", "nephew"),
             ("brother", "sister", "cousin"), ("father", "mother", "son"), ("husband", "wife", "groom"),
             ("nephew", "niece", "uncle"), ("prince", "princess", "duke"), ("waiter", "waitress", "chef"),
             ("emperor", "empress", "general"), ("grandfather", "grandmother", "grandson"),
             ("son", "daughter", "father"), ("boy", "girl", "man"), ("man", "woman", "boy"),
             ("duke", "duchess", "baron"), ("monk", "nun", "priest"), ("rooster", "hen", "chick"),
             ("bull", "cow", "calf"), ("stallion", "mare", "foal"), ("gentleman", "lady", "knight"),
             ("god", "goddess", "hero"), ("lion", "lioness", "cub")]
    return [(f'What is the female counterpart of "{m}"?', f'The female counterpart of "{m}" is "{f}".',
             f'The female counterpart of "{m}" is "{bad}".') for m, f, bad in words]


def baby_animals() -> list[Row]:
    young = [("cat", "a kitten"), ("dog", "a puppy"), ("cow", "a calf"), ("sheep", "a lamb"), ("horse", "a foal"),
             ("frog", "a tadpole"), ("goat", "a kid"), ("duck", "a duckling"), ("goose", "a gosling"),
             ("kangaroo", "a joey"), ("swan", "a cygnet"), ("pig", "a piglet"), ("bear", "a cub"),
             ("owl", "an owlet"), ("deer", "a fawn"), ("hen", "a chick"), ("eagle", "an eaglet"),
             ("butterfly", "a caterpillar"), ("rabbit", "a kit"), ("hare", "a leveret"), ("seal", "a pup"),
             ("turkey", "a poult")]
    return [(f"What is a baby {a} called?", f"A baby {a} is called {good}.", f"A baby {a} is called {bad}.")
            for a, good, bad in _shifted(young, 5)]


def colours() -> list[Row]:
    things = [("a ripe banana", "yellow"), ("grass", "green"), ("a clear daytime sky", "blue"), ("snow", "white"),
              ("coal", "black"), ("a ripe tomato", "red"), ("a carrot", "orange"), ("an eggplant", "purple"),
              ("a lemon", "yellow"), ("milk", "white"), ("a polar bear's fur", "white"), ("a fire truck", "red"),
              ("a pumpkin", "orange"), ("a crow", "black"), ("a lime", "green"), ("chocolate", "brown"),
              ("a flamingo", "pink"), ("the inside of a watermelon", "red"), ("a school bus in the US", "yellow"),
              ("a frog", "green"), ("a tree trunk", "brown"), ("the ocean", "blue")]
    out = []
    for k, (thing, colour) in enumerate(things):
        other = next(c for _, c in things[k + 1:] + things[:k] if c != colour)
        out.append((f"What colour is {thing}?", f"{thing[0].upper()}{thing[1:]} is {colour}.",
                    f"{thing[0].upper()}{thing[1:]} is {other}."))
    return out


def inventors() -> list[Row]:
    made = [("the telephone", "Alexander Graham Bell"), ("the light bulb", "Thomas Edison"),
            ("the airplane", "the Wright brothers"), ("the World Wide Web", "Tim Berners-Lee"),
            ("the printing press", "Johannes Gutenberg"), ("dynamite", "Alfred Nobel"),
            ("the theory of relativity", "Albert Einstein"), ("penicillin", "Alexander Fleming"),
            ("the radio", "Guglielmo Marconi"), ("the steam engine", "James Watt"),
            ("the polio vaccine", "Jonas Salk"), ("the laws of motion", "Isaac Newton"),
            ("the theory of evolution", "Charles Darwin"), ("the periodic table", "Dmitri Mendeleev"),
            ("the alternating current motor", "Nikola Tesla"), ("radioactivity research", "Marie Curie"),
            ("the telescope's use in astronomy", "Galileo Galilei"), ("the cotton gin", "Eli Whitney"),
            ("the Model T car", "Henry Ford"), ("the diesel engine", "Rudolf Diesel"),
            ("the battery", "Alessandro Volta"), ("the phonograph", "Thomas Edison")]
    out = []
    for k, (thing, who) in enumerate(made):
        other = next(w for _, w in made[k + 3:] + made[:k + 3] if w != who)
        out.append((f"Who is known for {thing}?", f"{who[0].upper()}{who[1:]} is known for {thing}.",
                    f"{other[0].upper()}{other[1:]} is known for {thing}."))
    return out


def trade_tools() -> list[Row]:
    tools = [("carpenter", "a hammer"), ("doctor", "a stethoscope"), ("painter", "a paintbrush"),
             ("plumber", "a pipe wrench"), ("barber", "scissors"), ("chef", "a kitchen knife"),
             ("photographer", "a camera"), ("farmer", "a tractor"), ("astronomer", "a telescope"),
             ("firefighter", "a fire hose"), ("gardener", "a rake"), ("dentist", "a dental drill"),
             ("tailor", "a sewing machine"), ("surgeon", "a scalpel"), ("fisherman", "a fishing net"),
             ("lumberjack", "an axe"), ("musician", "an instrument"), ("pilot", "an airplane"),
             ("baker", "an oven"), ("miner", "a pickaxe"), ("biologist", "a microscope"), ("writer", "a pen")]
    return [(f"What tool does a {job} use most?", f"A {job} uses {good}.", f"A {job} uses {bad}.")
            for job, good, bad in _shifted(tools, 9)]


def polite_replies() -> list[Row]:
    return [
        ("Thank you for your help!", "You're welcome, happy to help!", "Whatever. Don't bother me again."),
        ("Could you tell me where the station is?", "Sure, it's two streets down on the left.",
         "Figure it out yourself."),
        ("Sorry I'm late.", "No problem, we've only just started.", "Typical. You are always useless."),
        ("Can I sit here?", "Of course, please have a seat.", "No. Go away."),
        ("I didn't understand the last step.", "No worries, let me explain it again more slowly.",
         "That's because you're not very bright."),
        ("Happy birthday!", "Thank you so much, that's kind of you!", "Who cares about birthdays?"),
        ("Could you pass the salt, please?", "Here you go.", "Get it yourself."),
        ("I made a mistake in the report.", "Thanks for telling me; let's fix it together.",
         "Of course you did. You always ruin everything."),
        ("Excuse me, is this seat taken?", "No, it's free. Go ahead.", "Can't you see I'm busy? Leave."),
        ("Can you help me carry this box?", "Sure, I'll take one side.", "Not my problem."),
        ("I'm feeling a bit nervous about the exam.", "That's normal; you've prepared well and you'll do fine.",
         "Stop whining."),
        ("Good morning!", "Good morning! How are you today?", "Ugh, don't talk to me."),
        ("May I ask a question?", "Of course, go ahead.", "No, your questions are stupid."),
        ("I lost my keys somewhere here.", "Oh no, let me help you look for them.", "That's your own fault."),
        ("Could you speak a little slower?", "Of course, sorry about that.", "Just listen harder."),
        ("I'd like to return this shirt.", "Certainly, do you have the receipt?", "No returns. Go away."),
        ("Nice to meet you.", "Nice to meet you too!", "I can't say the same."),
        ("Can you recommend a good book?", "Sure, I really enjoyed a mystery novel last month; want the title?",
         "Read whatever, I don't care."),
        ("Thanks for dinner, it was delicious.", "I'm so glad you liked it!", "Finally, now leave."),
        ("Could you turn the music down a bit?", "Sure, sorry, is this better?", "No. Buy earplugs."),
        ("I'm new here and don't know anyone.", "Welcome! Come and join us for lunch.",
         "That's not my problem."),
        ("Could you check my essay for errors?", "Happy to. Send it over and I'll look tonight.",
         "Why would I waste my time on that?"),
    ]
