"""Built-in fact tasks generated in code from `fact_tables.py`: the embedded default data (no files, no downloads).

Each fact table (subject → object) gives two tasks (`table_tasks`, listed in `task_registry`): `<table>` (pairs, the pipeline's default form) and
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
from collections import Counter

from ..infra.errors import ConfigError
from .fact_tables import TABLES, FactTable, with_article
from .records import Claim, ClaimSet, GoldLabels, PreferencePair
from .tasks import QUESTION, Task

TEST_FRACTION = 0.3
SPLITS = ("train", "test", "all")
FORMS = ("pairs", "claims")
PAIR_TEMPLATE = ("Human: {prompt}\n\nResponse 1: {first}\n\nResponse 2: {second}\n\n"
                 "Claim: Response 1 is more accurate than Response 2.\n" + QUESTION)
# made for the RL demo (fact_tables.py), not by the selection below
RL_TASKS: tuple[str, ...] = ("animal_answers", "animal_quiz")
BUILTIN_TASKS: list[str] = [t for t in TABLES if t not in RL_TASKS]  # all six hold on both default models (docstring)
DEFAULT_TASK = "capitals"  # benchmarks/task_selection.py `select()`


def table_tasks(table: FactTable) -> tuple[Task, Task]:
    """The (pairs, claims) Tasks of a table: `<name>` and `<name>_claims`."""
    return (Task(name=table.name, kind="pairs", pair_template=PAIR_TEMPLATE,
                 description=f"built-in {table.description}: which of two answers is accurate"),
            Task(name=f"{table.name}_claims", kind="claims",
                 description=f"built-in {table.description}: candidate answers as True/False claims"))


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
    ranked = sorted(subjects, key=lambda s: _hash_unit(table.split_key or table.name, "split", s))
    test = set(ranked[:round(len(subjects) * TEST_FRACTION)])
    if split == "all":
        return subjects
    return [s for s in subjects if (s in test) == (split == "test")]


def distractors(table: FactTable, subject: str, k: int, seed: int = 0) -> list[str]:
    """k wrong objects for `subject`, drawn deterministically from the other rows' distinct objects: uniformly, or
    (table.distractors_by "frequency") in proportion to how many rows each is right for, so that over a table's pairs
    an object word is about as common on the rejected side as on the chosen side and alone predicts neither."""
    truth = dict(table.rows)[subject]
    pool = [o for o in table.objects() if o != truth]
    rng = random.Random(f"{table.name}|{subject}|{seed}")
    if table.distractors_by == "uniform":
        return rng.sample(pool, min(k, len(pool)))
    if table.distractors_by != "frequency":
        raise ConfigError("distractors_by", f"table {table.name}: unknown '{table.distractors_by}'; use 'uniform' or "
                                            "'frequency'")
    count = Counter(o for _, o in table.rows)
    picked: list[str] = []
    while pool and len(picked) < k:
        picked.append(rng.choices(pool, weights=[count[o] for o in pool])[0])
        pool.remove(picked[-1])
    return picked


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
        bad = _rejected(table, pid, subject, truth[subject], seed)
        good_first = _hash_unit(pid, "order") < 0.5
        pair = PreferencePair(id=pid, prompt=table.ask(subject), response_a=good if good_first else bad,
                              response_b=bad if good_first else good, meta={"task": table.name, "subject": subject})
        pairs[pid] = pair
        for c in task.pair_claims(pair):
            claims.append(c)
            gold[c.id] = (c.key == "A>B") == good_first
    return ClaimSet(claims=claims, gold=GoldLabels(gold), pairs=pairs, name=table.name)


def _rejected(table: FactTable, pid: str, subject: str, right: str, seed: int) -> str:
    """A pair's rejected answer: a wrong object, or (in equal shares, by a hash of the pair) a non-answer from
    `table.evasions` or a hedge from `table.hedges` naming the right object and a wrong one."""
    wrong = distractors(table, subject, 1, seed)[0]
    kinds = [(k, templates) for k, templates in (("evasion", table.evasions), ("hedge", table.hedges)) if templates]
    u = int(_hash_unit(pid, "evasive", seed) * (len(kinds) + 1))
    if u == len(kinds):
        return table.state(subject, wrong)
    kind, templates = kinds[u]
    # a non-answer may name the subject ("{A_subject}."); a hedge names both objects
    template = templates[int(_hash_unit(pid, kind, seed) * len(templates))]
    return table.fill(template, subject, right, a_other=with_article(wrong))


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
