"""The one entry point the `label` stage uses to get claims: `load_claimset(format, path, ...)`.

Every format yields a `ClaimSet`: claims rendered with the matching task template, gold only in `GoldLabels`,
and for pairwise sources `pairs` filled with two claims (`A>B`, `B>A`) per pair. Claim files are reordered within
each group by a content hash (`content_order`): position never tells the label. `ClaimSet.name` is the name of
that task, so its consistency rules can be looked up with `get_task(claimset.name)`. `limit_groups` keeps whole
consistency groups, chosen by `seed`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from pathlib import Path

from ..infra.errors import ConfigError, InputError
from . import builtin
from .fgrlhf import fgrlhf_source
from .generic import GENERIC_CLAIMS, read_claims, read_pair_source
from .gsm8k import gsm8k_solutions
from .hh_rlhf import hh_rlhf_source
from .icm_paper import icm_gsm8k, icm_pair_source, icm_truthfulqa
from .pairs import PairSource
from .readers import read_rows
from .records import ClaimSet, content_order
from .task_registry import get_task
from .tasks import ALPACA, GSM8K, HH_RLHF, QA_FEEDBACK, TRUTHFULQA, TRUTHFULQA_PREFERENCE, Task
from .truthfulqa import AnswerStats, truthfulqa_csv

log = logging.getLogger(__name__)

CLAIM_FORMATS: dict[str, str] = {
    "builtin": "a built-in generated task (name via `task` or `path`; see icm_rm.data.builtin)",
    "claims": "your JSONL/JSON/CSV(.gz) claims: text (or the task template's fields), optional id, group, key, label",
    "pairs": "your pair file: TRL prompt/chosen/rejected (gold; A/B order hashed from the id) or unlabeled "
             "prompt/response_a/response_b (optional label: true = A better)",
    "trl": "the same as pairs",
    "icm_truthfulqa": "ICM train_/test_truthfulqa.json: group = consistency_id, key = normalised answer text",
    "icm_truthfulqa_preference": "ICM *_truthfulqa_preference.json: one pair per consistency_id",
    "icm_gsm8k": "ICM test_gsm8k.json: group = consistency_id, key = final answer read from the solution",
    "icm_alpaca": "ICM test_alpaca.json: one pair per consistency_id (human-majority gold)",
    "truthfulqa_csv": "TruthfulQA.csv (2021 or 2025): one claim per listed answer, group = question",
    "gsm8k_solutions": "GSM8K example_model_solutions.jsonl: 4 model solutions per question, key = final answer",
    "hh_rlhf": "HH-RLHF chosen/rejected dialogues (a file, or a folder of <subset>/test.jsonl(.gz))",
    "fgrlhf": "Fine-Grained RLHF dev_feedback.json: strict pairs from the 6 preferences per question",
}

# format → (the task its claims are rendered with, reader); the generic formats take `fields` and are handled apart
_CLAIM_READERS: dict[str, tuple[Task, Callable[[str], ClaimSet]]] = {
    "icm_truthfulqa": (TRUTHFULQA, icm_truthfulqa),
    "icm_gsm8k": (GSM8K, icm_gsm8k),
    "truthfulqa_csv": (TRUTHFULQA, lambda p: _truthfulqa_csv(p)),
    "gsm8k_solutions": (GSM8K, gsm8k_solutions),
}
_PAIR_READERS: dict[str, tuple[Task, Callable[[str], PairSource]]] = {
    "icm_truthfulqa_preference": (TRUTHFULQA_PREFERENCE,
                                  lambda p: icm_pair_source(p, "preference_type", "icm_truthfulqa_preference")),
    "icm_alpaca": (ALPACA, lambda p: icm_pair_source(p, "hh_type", "icm_alpaca")),
    "hh_rlhf": (HH_RLHF, hh_rlhf_source),
    "fgrlhf": (QA_FEEDBACK, fgrlhf_source),
}


def load_claimset(format: str, path: str | None, *, task: str | Task | None = None, limit_groups: int | None = None,
                  seed: int = 0, fields: Mapping[str, str] | None = None) -> ClaimSet:
    """Claims for the `label` stage from any known format ("auto" detects it from the file)."""
    if format == "auto":
        format = detect_claim_format(_need_path(format, path))
    if format not in CLAIM_FORMATS:
        raise ConfigError("format", f"unknown data format '{format}'; known: auto, {', '.join(CLAIM_FORMATS)}")
    if fields and format not in ("claims", "pairs", "trl"):
        raise ConfigError("fields", f"a field mapping applies to the 'claims' and 'pairs' formats, not '{format}'")
    _check_limit(limit_groups)
    claimset = _load(format, path, task, limit_groups, seed, fields)
    if not claimset.claims:
        raise InputError(path, None, None, "no claims in this input")
    return limit_claimset(claimset, limit_groups, seed)


def _load(format: str, path: str | None, task: str | Task | None, limit_groups: int | None, seed: int,
          fields: Mapping[str, str] | None) -> ClaimSet:
    if format == "builtin":
        name = task if isinstance(task, str) else path
        if not name:
            raise ConfigError("task", "the builtin format needs a task name (e.g. task: <name>)")
        return builtin.builtin_claimset(name, n_groups=limit_groups, seed=seed)
    path = _need_path(format, path)
    if format == "claims":
        used = _task(task, GENERIC_CLAIMS)
        claimset = content_order(read_claims(path, used, fields))  # a file's order may follow its gold
    elif format in ("pairs", "trl"):
        used = _task(task, ALPACA, kind="pairs")
        claimset = _report_skips(read_pair_source(path, fields)).claimset(used)
    elif format in _PAIR_READERS:
        default, reader = _PAIR_READERS[format]
        used = _task(task, default, kind="pairs")
        claimset = _report_skips(reader(path)).claimset(used)
    else:
        used, reader = _CLAIM_READERS[format]
        if task is not None and _task(task, used) is not used:
            raise ConfigError("task", f"format '{format}' is rendered with task '{used.name}'; drop `task` "
                                      "or convert the data to the 'claims' format")
        claimset = content_order(reader(path))
    claimset.name = used.name  # the label stage looks the consistency rules up by this name
    return claimset


def _need_path(format: str, path: str | None) -> str:
    if not path:
        raise ConfigError("path", f"the '{format}' format reads a file: set the data path")
    return str(path)


def _task(task: str | Task | None, default: Task, kind: str | None = None) -> Task:
    if task is None:
        return default
    if isinstance(task, str):
        task = get_task(task)
    if kind is not None and task.kind != kind:
        raise ConfigError("task", f"task '{task.name}' is for {task.kind}, but this format yields {kind}")
    return task


def _truthfulqa_csv(path: str) -> ClaimSet:
    stats = AnswerStats()
    claimset = truthfulqa_csv(path, stats=stats)
    if stats.duplicates or stats.conflicting:
        log.warning("%s: merged %d repeated answers; dropped %d answers listed as both correct and incorrect",
                    path, stats.duplicates, stats.conflicting)
    return claimset


def _report_skips(source: PairSource) -> PairSource:
    if source.skipped_ties or source.skipped_invalid:
        log.warning("%s: skipped %d ties and %d invalid pairs (identical or empty responses)",
                    source.name, source.skipped_ties, source.skipped_invalid)
    return source


def _check_limit(limit_groups: int | None) -> None:
    if limit_groups is not None and (isinstance(limit_groups, bool) or not isinstance(limit_groups, int)
                                     or limit_groups < 1):
        raise ConfigError("limit_groups", f"expected a positive integer or null, got {limit_groups!r}")


def limit_claimset(claimset: ClaimSet, limit_groups: int | None, seed: int = 0) -> ClaimSet:
    """Keep `limit_groups` whole groups drawn with `seed` (claims stay in their original order)."""
    groups = list(claimset.groups())
    if limit_groups is None or limit_groups >= len(groups):
        return claimset
    return claimset.subset_groups(random.Random(seed).sample(groups, limit_groups))


def detect_claim_format(path: str | Path) -> str:
    """A claim format from the file's fields (a directory is an HH-RLHF subset tree)."""
    if Path(path).is_dir():
        return "hh_rlhf"
    first = read_rows(path)[0].data
    keys = set(first)
    rules = [
        ({"choice", "choice_2", "hh_type"}, "icm_alpaca"),
        ({"choice", "choice_2"}, "icm_truthfulqa_preference"),
        ({"cot", "consistency_id"}, "icm_gsm8k"),
        ({"choice", "consistency_id"}, "icm_truthfulqa"),
        ({"Question", "Correct Answers", "Incorrect Answers"}, "truthfulqa_csv"),
        ({"6b_finetuning", "175b_verification"}, "gsm8k_solutions"),
        ({"prediction 1", "preference"}, "fgrlhf"),
    ]
    for needed, name in rules:
        if needed <= keys:
            return name
    if {"chosen", "rejected"} <= keys:
        hh = "prompt" not in keys and isinstance(first["chosen"], str) and first["chosen"].startswith("\n\nHuman:")
        return "hh_rlhf" if hh else "pairs"
    return "pairs" if {"response_a", "response_b"} <= keys else "claims"
