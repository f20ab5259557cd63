"""Held-out preference sets for reward-model training and evaluation, and the label → train-rm contract file.

`load_preferences` reads any known preference format into `PreferenceExample`s (TRL's prompt/chosen/rejected);
`write_preferences_jsonl` writes the contract file (`prompt, chosen, rejected` [+ `margin`]) that
`datasets.load_dataset("json", data_files=...)` and `load_preferences(format="trl")` both read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..infra.errors import ConfigError, InputError
from ..infra.io import atomic_write_jsonl
from .fgrlhf import fgrlhf_source
from .generic import read_pair_source
from .hh_rlhf import hh_rlhf_source
from .icm_paper import icm_pair_source
from .pairs import LabeledPair, PairSource
from .readers import read_rows

Content = str | list[dict]

PREFERENCE_FORMATS: dict[str, str] = {
    "trl": "prompt/chosen/rejected JSONL/JSON/CSV (.gz ok): strings or message lists; chosen/rejected-only "
           "dialogues are split at their shared prefix; optional numeric margin",
    "hh_rlhf": "Anthropic HH-RLHF chosen/rejected dialogues: one file, or a folder of <subset>/test.jsonl(.gz) "
               "(subset = helpful-base, harmless-base, …); pairs with identical or empty responses skipped",
    "icm_alpaca": "ICM test_alpaca.json: one example per consistency_id (rows come in both orders); "
                  "subset = hh_type",
    "icm_truthfulqa_preference": "ICM train_/test_truthfulqa_preference.json: one example per consistency_id; "
                                 "subset = preference_type",
    "fgrlhf": "Fine-Grained RLHF QA-Feedback dev_feedback.json: 6 comparisons per question, ties skipped; "
              "subset = the compared predictions (1v2 … 3v4)",
}


@dataclass(frozen=True)
class PreferenceExample:
    """One preference: `chosen` is the better response to `prompt` (TRL's columns), with optional margin/subset."""

    id: str
    prompt: Content
    chosen: Content
    rejected: Content
    margin: float | None = None
    subset: str | None = None


@dataclass
class PreferenceSet:
    """A loaded preference file: examples in file order plus how many rows were ties or invalid (skipped)."""

    name: str
    examples: list[PreferenceExample]
    skipped_ties: int = 0
    skipped_invalid: int = 0


def load_preferences(path: str | Path, format: str = "auto", limit: int | None = None) -> PreferenceSet:
    """Read a preference file of `format` (see PREFERENCE_FORMATS; "auto" detects it); keep the first `limit`."""
    if format == "auto":
        format = detect_preference_format(path)
    if format not in _READERS:
        raise ConfigError("format", f"unknown preference format '{format}'; known: auto, "
                                    f"{', '.join(PREFERENCE_FORMATS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError("limit", f"expected a non-negative integer or null, got {limit!r}")
    source = _READERS[format](path)
    examples = [_example(lp, path) for lp in source.pairs]
    return PreferenceSet(name=source.name, examples=examples[:limit] if limit is not None else examples,
                         skipped_ties=source.skipped_ties, skipped_invalid=source.skipped_invalid)


def _trl(path: str | Path) -> PairSource:
    return read_pair_source(str(path), name=f"trl:{Path(path).name}")


_READERS: dict[str, Callable[[str | Path], PairSource]] = {
    "trl": _trl,
    "hh_rlhf": hh_rlhf_source,
    "icm_alpaca": lambda p: icm_pair_source(p, "hh_type", "icm_alpaca"),
    "icm_truthfulqa_preference": lambda p: icm_pair_source(p, "preference_type", "icm_truthfulqa_preference"),
    "fgrlhf": fgrlhf_source,
}


def _example(lp: LabeledPair, path: str | Path) -> PreferenceExample:
    pair = lp.pair
    if lp.a_better is None:
        raise InputError(path, pair.meta.get("row"), "label", "missing field: a pair without a preference cannot be "
                                                              "a preference example (use chosen/rejected)")
    chosen, rejected = (pair.response_a, pair.response_b) if lp.a_better else (pair.response_b, pair.response_a)
    return PreferenceExample(id=pair.id, prompt=pair.prompt, chosen=chosen, rejected=rejected, margin=lp.margin,
                             subset=lp.subset)


def detect_preference_format(path: str | Path) -> str:
    """The format of a preference file from its fields (a directory is an HH-RLHF subset tree)."""
    if Path(path).is_dir():
        return "hh_rlhf"
    first = read_rows(path)[0].data
    keys = set(first)
    if {"choice", "choice_2"} <= keys:
        return "icm_alpaca" if "hh_type" in keys else "icm_truthfulqa_preference"
    if {"prediction 1", "preference"} <= keys:
        return "fgrlhf"
    if {"chosen", "rejected"} <= keys:
        hh = "prompt" not in keys and isinstance(first["chosen"], str) and first["chosen"].startswith("\n\nHuman:")
        return "hh_rlhf" if hh else "trl"
    raise InputError(path, 1, None, f"cannot tell the preference format from the fields {sorted(keys)}; "
                                    f"pass format= one of: {', '.join(PREFERENCE_FORMATS)}")


def least_confident(examples: Sequence[PreferenceExample], k: int) -> list[int]:
    """Indices of the k pairs with the smallest `margin` (the labeler's confidence), least sure first, ties in file
    order. Every pair needs a margin."""
    return sorted(range(len(examples)), key=lambda i: (float(examples[i].margin), i))[:max(0, k)]


def write_preferences_jsonl(path: str | Path, examples: Iterable[PreferenceExample]) -> None:
    """Atomically write TRL columns (`prompt, chosen, rejected`), plus `margin` when every example has one."""
    examples = list(examples)
    with_margin = bool(examples) and all(e.margin is not None for e in examples)
    rows = []
    for i, e in enumerate(examples):
        row = {"prompt": e.prompt, "chosen": e.chosen, "rejected": e.rejected}
        if with_margin:
            if not math.isfinite(e.margin):
                raise ValueError(f"example {i} ({e.id}): margin must be finite, got {e.margin}")
            row["margin"] = float(e.margin)
        rows.append(row)
    atomic_write_jsonl(path, rows)
