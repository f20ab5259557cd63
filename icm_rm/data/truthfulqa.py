"""TruthfulQA.csv (2021 original or 2025 revision) → one claim per candidate answer, grouped by question.

Correct answers are gold True, incorrect ones (plus `Best Incorrect Answer` when it is not already listed) False.
Answers are split on ';' and stripped; empty ones are dropped; an answer repeated in one list is kept once; an
answer listed as both correct and incorrect (e.g. "Unknown") has no usable gold and is dropped from its question.
Claims within a question are ordered by a hash of their key, so position says nothing about the label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .answers import normalize_text
from .readers import Row, read_rows
from .records import Claim, ClaimSet, GoldLabels
from .tasks import TRUTHFULQA


@dataclass
class AnswerStats:
    """What the answer lists held beyond the kept claims."""

    duplicates: int = 0
    conflicting: int = 0
    excluded_questions: int = 0


def truthfulqa_csv(path: str | Path, exclude_questions: Iterable[str] = (),
                   stats: AnswerStats | None = None) -> ClaimSet:
    """The CSV → ClaimSet (group = question, key = normalised answer); `exclude_questions` holds questions out."""
    stats = stats if stats is not None else AnswerStats()
    excluded = {normalize_text(q) for q in exclude_questions}
    claims, gold, groups = [], {}, {}
    for row in read_rows(path, file_format="csv"):
        question = row.text("Question")
        if normalize_text(question) in excluded:
            stats.excluded_questions += 1
            continue
        group = groups.setdefault(normalize_text(question), str(row.number))
        answers = _answers(row, stats)
        for j, key in enumerate(sorted(answers, key=lambda k: hashlib.sha256(k.encode()).hexdigest())):
            text, label = answers[key]
            cid = f"{row.number}:{j}"
            claims.append(Claim(id=cid, group=group, key=key,
                                text=TRUTHFULQA.render_claim(question=question, answer=text),
                                meta={"row": row.number}))
            gold[cid] = label
    return ClaimSet(claims=claims, gold=GoldLabels(gold), name=f"truthfulqa_csv:{Path(path).parent.name}")


def _answers(row: Row, stats: AnswerStats) -> dict[str, tuple[str, bool]]:
    """normalised key → (answer text, is correct), with duplicates merged and contradictions removed."""
    listed = [(a, True) for a in _split(row.text("Correct Answers"))]
    listed += [(a, False) for a in _split(row.text("Incorrect Answers"))]
    out: dict[str, tuple[str, bool]] = {}
    conflicted: set[str] = set()
    for text, label in listed:
        key = normalize_text(text)
        if key in conflicted:
            continue
        if key not in out:
            out[key] = (text, label)
        elif out[key][1] == label:
            stats.duplicates += 1
        else:
            del out[key]
            conflicted.add(key)
            stats.conflicting += 1
    if row.has("Best Incorrect Answer"):  # usually one of the incorrect answers already; add it when it is not
        text = row.text("Best Incorrect Answer", allow_empty=True).strip()
        key = normalize_text(text)
        if key and key not in out and key not in conflicted:
            out[key] = (text, False)
    if not out:
        raise row.error("Correct Answers", "no usable answers for this question")
    return out


def _split(cell: str) -> list[str]:
    return [a.strip() for a in cell.split(";") if a.strip() and normalize_text(a)]
