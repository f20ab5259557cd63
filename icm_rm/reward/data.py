"""Preference data for RM training and evaluation: `FILE[:format]` specs, the held-out split, tokenisation into the
`chosen_ids` / `rejected_ids` (+ `margin`) columns TRL's RewardTrainer consumes as-is."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..infra.errors import InputError
from .format import encode_for_rm

logger = logging.getLogger(__name__)

from ..data.preferences import PREFERENCE_FORMATS
from ..data.preferences import least_confident, load_preferences

FORMATS = ("auto", *PREFERENCE_FORMATS)
_HUMAN_FORMATS = tuple(f for f in PREFERENCE_FORMATS if f != "trl")


def split_spec(spec: str) -> tuple[str, str]:
    """`path[:format]` → (path, format); a suffix that is not a known format stays part of the path."""
    head, sep, tail = str(spec).rpartition(":")
    if sep and head and tail in FORMATS:
        return head, tail
    return str(spec), "auto"


def load_pairs(spec: str, limit: int | None = None):
    """Read a preference file (any format `load_preferences` knows) → `PreferenceSet`; a missing file is an
    InputError naming it."""
    path, fmt = split_spec(spec)
    if not Path(path).exists():
        head, sep, tail = path.rpartition(":")
        if sep and head and "/" not in tail and Path(head).exists():  # FILE:typo — the file is there, the format not
            raise InputError(head, None, None, f"unknown preference format '{tail}' after ':'; known: "
                                               f"{', '.join(FORMATS)}")
        raise InputError(path, None, None, "preference file not found")
    pairs = load_preferences(path, format=fmt, limit=limit)
    if not pairs.examples:
        raise InputError(path, None, None, f"no usable preference pairs ({pairs.skipped_ties} ties and "
                                           f"{pairs.skipped_invalid} invalid rows skipped)")
    return pairs


def infer_label_source(spec: str) -> str:
    """icm for the label stage's `preferences.jsonl`, gold for `*gold*`, human for the public human-label formats."""
    path, fmt = split_spec(spec)
    name = Path(path).name.lower()
    if "gold" in name:
        return "gold"
    if "random" in name:
        return "random"
    if name.startswith("preferences") or "icm" in name:
        return "icm"
    if fmt in _HUMAN_FORMATS or any(k in str(path).lower() for k in ("hh_rlhf", "alpaca", "feedback")):
        return "human"
    return "other"


def _prompt_key(prompt) -> str:
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def holdout_split(examples: Sequence, fraction: float, seed: int) -> tuple[list, list]:
    """Split into (train, held_out): whole prompts go to one side, prompts ordered by a seeded hash, until the
    held-out side has ≥ round(fraction · n) pairs (at least 1 when fraction > 0 and n > 1). Order-independent, so
    the ICM, gold and random-label files of the same pairs hold out the same pairs."""
    n = len(examples)
    target = max(1, round(fraction * n)) if fraction > 0 and n > 1 else 0
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(_prompt_key(ex.prompt), []).append(i)

    def h(key: str) -> str:
        return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()

    held: set[int] = set()
    for key in sorted(groups, key=h):
        if len(held) >= target:
            break
        held.update(groups[key])
    if target and len(held) == n:  # one giant prompt group: fall back to pair ids so something is left to train
        held = {i for i in sorted(range(n), key=lambda i: h(examples[i].id))[:target]}
    train = [ex for i, ex in enumerate(examples) if i not in held]
    return train, [ex for i, ex in enumerate(examples) if i in held]


def drop_least_confident(examples: Sequence, fraction: float, source: str | None = None) -> tuple[list, int]:
    """(kept, n dropped): without the round(fraction · n) pairs of smallest margin (ties: file order; at least one
    pair kept), where a mostly-right ICM labeling's errors gather (BENCHMARKS §2c); every pair is kept when none has
    a margin."""
    examples = list(examples)
    k = min(round(fraction * len(examples)), len(examples) - 1) if fraction > 0 else 0  # never every pair
    missing = [ex for ex in examples if ex.margin is None]
    if not k or len(missing) == len(examples):
        return examples, 0
    if missing:
        raise InputError(source, None, "margin", f"pair '{missing[0].id}' has no margin while others have one; "
                                                 "drop_least_confident needs a margin on every pair or none")
    dropped = set(least_confident(examples, k))
    return [ex for i, ex in enumerate(examples) if i not in dropped], k


@dataclass
class Tokenized:
    columns: dict[str, list]
    dropped: int  # pairs longer than max_length


def tokenize_pairs(examples: Sequence, tokenizer, max_length: int, margin_scale: float | None = None,
                   source: str | None = None, required: bool = False) -> Tokenized:
    """`format_for_rm` + `encode_for_rm` for both sides of each pair; pairs with a side over `max_length` tokens are
    dropped (with `required`, every pair dropped is an InputError). With `margin_scale`, a `margin` column = scale ·
    example.margin (missing margins are an InputError)."""
    cols: dict[str, list] = {"chosen_ids": [], "rejected_ids": []}
    if margin_scale is not None:
        cols["margin"] = []
    dropped = 0
    for ex in examples:
        c = encode_for_rm(tokenizer, ex.prompt, ex.chosen)
        r = encode_for_rm(tokenizer, ex.prompt, ex.rejected)
        if len(c) > max_length or len(r) > max_length:
            dropped += 1
            continue
        cols["chosen_ids"].append(c)
        cols["rejected_ids"].append(r)
        if margin_scale is not None:
            if ex.margin is None:
                raise InputError(source, None, "margin", f"pair '{ex.id}' has no margin; use_margin needs one on "
                                                         "every pair (set use_margin: false)")
            cols["margin"].append(margin_scale * float(ex.margin))
    if required and examples and dropped == len(examples):  # an error, not a warning followed by one
        raise InputError(source, None, None, f"every pair is longer than max_length={max_length} tokens; raise "
                                             "max_length")
    if dropped:
        logger.warning("%s: dropped %d of %d pairs longer than max_length=%d tokens", source or "data", dropped,
                       len(examples), max_length)
    return Tokenized(cols, dropped)


def to_dataset(tok: Tokenized):
    from datasets import Dataset

    return Dataset.from_dict(tok.columns)
