"""The elicitation protocol: which tasks may choose defaults (dev) and which are only reported (test).

Every default of the labeler (probe layer, PCA dims, hybrid weight, α, number of chains, candidate set) is chosen on
DEV tasks only. TEST tasks are run with those defaults and reported; no choice looks at them. The six fact tables
and TruthfulQA are dev: the existing defaults were tuned on them. The test tasks are the code-built families of
other kinds (icm_rm/data/families.py) and the real GSM8K / Alpaca / TruthfulQA-preference sets. The TEST tasks
were looked at while the gold-free warnings were designed, so they are "seen"; TEST2 tasks (families_fresh.py)
were written after the defaults and warnings were frozen (commit before any model ran on them); they were seen when
the likelihood fallback was designed, and TEST3 tasks (families_test3.py, committed before any model ran on them)
are its unseen check. TEST4 tasks (families_test4.py) were written after the fallback was frozen and committed
before any model ran on them: the shipped defaults on kinds no choice has seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..infra.errors import ConfigError
from .builtin import builtin_claimset
from .families import family_claimset
from .records import ClaimSet
from .spec import load_claimset

DEV, TEST, TEST2, TEST3, TEST4 = "dev", "test", "test2", "test3", "test4"
ROLES = (DEV, TEST, TEST2, TEST3, TEST4)
FRESH_FAMILIES = ("synonyms", "currencies", "counting_order", "heavier", "calendar_order", "animal_sounds",
                  "subtle_answers")
THIRD_FAMILIES = ("translations", "gender_pairs", "baby_animals", "colours", "inventors", "trade_tools",
                  "polite_replies")
FOURTH_FAMILIES = ("workplaces", "habitats", "body_functions", "rhymes", "materials", "authors", "safe_advice")


@dataclass(frozen=True)
class ProtocolTask:
    """One benchmark task: its role, where its claims come from, and how many groups a benchmark takes."""

    name: str
    role: str  # DEV, TEST, TEST2, TEST3 or TEST4
    source: str  # fact_table | family | real
    format: str = "builtin"  # real sets: the data format of `path`
    path: str | None = None  # real sets: relative to the shared data dir
    groups: int | None = None  # real sets: groups taken (seed 0)


PROTOCOL: tuple[ProtocolTask, ...] = (
    *(ProtocolTask(t, DEV, "fact_table") for t in (
        "capitals", "us_state_capitals", "continents", "element_symbols", "animal_classes", "languages")),
    ProtocolTask("truthfulqa", DEV, "real", "icm_truthfulqa", "icm_unsupervised_elicitation/train_truthfulqa.json", 80),
    *(ProtocolTask(t, TEST, "family") for t in (
        "antonyms", "plurals", "past_tense", "spelling", "number_compare", "sums", "unit_facts", "assistant_answers")),
    ProtocolTask("gsm8k", TEST, "real", "icm_gsm8k", "icm_unsupervised_elicitation/test_gsm8k.json", 60),
    ProtocolTask("alpaca", TEST, "real", "icm_alpaca", "icm_unsupervised_elicitation/test_alpaca.json", 80),
    ProtocolTask("truthfulqa_preference", TEST, "real", "icm_truthfulqa_preference",
                 "icm_unsupervised_elicitation/test_truthfulqa_preference.json", 80),
    *(ProtocolTask(t, TEST2, "family") for t in FRESH_FAMILIES),
    *(ProtocolTask(t, TEST3, "family") for t in THIRD_FAMILIES),
    *(ProtocolTask(t, TEST4, "family") for t in FOURTH_FAMILIES),
)
_BY_NAME = {t.name: t for t in PROTOCOL}


def protocol_task(name: str) -> ProtocolTask:
    if name not in _BY_NAME:
        raise ConfigError("task", f"'{name}' is not a protocol task; known: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def tasks_of(role: str) -> list[str]:
    """Names of the DEV, TEST, TEST2, TEST3 or TEST4 tasks, in protocol order."""
    return [t.name for t in PROTOCOL if t.role == role]


def load_protocol_task(name: str, shared: str | Path, groups: int | None = None) -> ClaimSet | None:
    """The task's claims (fact tables: the train subjects as pairs); None when a real set's file is missing."""
    t = protocol_task(name)
    if t.source == "fact_table":
        return builtin_claimset(name, form="pairs", split="train")
    if t.source == "family":
        return family_claimset(name)
    path = Path(shared) / str(t.path)
    if not path.exists():
        return None
    return load_claimset(t.format, str(path), limit_groups=groups or t.groups, seed=0)
