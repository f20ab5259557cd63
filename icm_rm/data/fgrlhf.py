"""Fine-Grained RLHF QA-Feedback (`dev_feedback.json`): 4 sampled answers per question, 6 pairwise human
preferences each, in the order (1v2, 1v3, 1v4, 2v3, 2v4, 3v4); 1 = the first of the pair is preferred, 2 = the
second, 0 = no preference (a tie: skipped and counted)."""

from __future__ import annotations

from pathlib import Path

from .pairs import LabeledPair, PairSource, place, same_content
from .readers import Row, read_rows

COMPARISONS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))


def fgrlhf_source(path: str | Path, include_passages: bool = False) -> PairSource:
    """Strict pairs (ties skipped); pair id = '<row>:<i>v<j>', subset = '<i>v<j>'; prompt = the question."""
    source = PairSource(name=f"fgrlhf:{Path(path).stem}")
    for row in read_rows(path, file_format="json"):
        prompt = row.text("question")
        if include_passages:
            prompt = _passages(row) + "\n\nQuestion: " + prompt
        answers = {k: row.text(f"prediction {k}") for k in range(1, 5)}
        for (i, j), verdict in zip(COMPARISONS, _preferences(row)):
            if verdict == 0:
                source.skipped_ties += 1
                continue
            if same_content(answers[i], answers[j]):
                source.skipped_invalid += 1
                continue
            better, worse = (answers[i], answers[j]) if verdict == 1 else (answers[j], answers[i])
            pair, a_better = place(f"{row.number}:{i}v{j}", prompt, better, worse, {"row": row.number})
            source.pairs.append(LabeledPair(pair, a_better, subset=f"{i}v{j}"))
    return source


def _preferences(row: Row) -> list[int]:
    value = row.raw("preference")
    if not (isinstance(value, list) and len(value) == len(COMPARISONS)):
        raise row.error("preference", f"expected a list of {len(COMPARISONS)} integers (1v2, 1v3, 1v4, 2v3, 2v4, "
                                      f"3v4), got {value!r}")
    for v in value:
        if isinstance(v, bool) or v not in (0, 1, 2):
            raise row.error("preference", f"each entry must be 0 (no preference), 1 or 2, got {v!r}")
    return value


def _passages(row: Row) -> str:
    value = row.raw("passages")
    if not (isinstance(value, list) and all(isinstance(p, list) and p and all(isinstance(x, str) for x in p)
                                            for p in value)):
        raise row.error("passages", "expected a list of [title, text, …] string lists")
    return "\n\n".join(f"{p[0]}: {' '.join(p[1:])}" for p in value)
