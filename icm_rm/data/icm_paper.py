"""The ICM paper's released files (Wen et al., 2025): TruthfulQA claims, TruthfulQA preference pairs, GSM8K
verification claims and the Alpaca human-preference pairs.

Pair files hold every comparison twice, in consecutive-or-not rows sharing a `consistency_id`: the original order and
a swapped copy (`choice` ⇄ `choice_2`, opposite `label`). We keep one `PreferencePair` per comparison and place its
better response at a hash-chosen position (TruthfulQA-preference files always list the better answer first).
"""

from __future__ import annotations

from pathlib import Path

from .answers import NO_ANSWER, answer_after_marker, normalize_answer, normalize_text
from .pairs import LabeledPair, PairSource, place, same_content
from .readers import Row, read_rows
from .records import Claim, ClaimSet, GoldLabels
from .tasks import GSM8K, TRUTHFULQA


def icm_truthfulqa(path: str | Path) -> ClaimSet:
    """train_/test_truthfulqa.json → claims: group = consistency_id, key = the normalised answer text."""
    claims, gold = [], {}
    for row in read_rows(path, file_format="json"):
        question, answer = row.text("question"), row.text("choice")
        cid = str(row.number)
        claims.append(Claim(id=cid, group=row.identifier("consistency_id"), key=normalize_text(answer),
                            text=TRUTHFULQA.render_claim(question=question, answer=answer), meta={"row": row.number}))
        gold[cid] = row.label("label")
    return ClaimSet(claims=claims, gold=GoldLabels(gold), name=f"icm_truthfulqa:{Path(path).stem}")


def icm_gsm8k(path: str | Path) -> ClaimSet:
    """test_gsm8k.json → verification claims: group = consistency_id, key = the final answer read from `cot`."""
    claims, gold = [], {}
    for row in read_rows(path, file_format="json"):
        question, solution = row.text("question"), row.text("cot")
        answer = answer_after_marker(solution) or ""
        cid = str(row.number)
        claims.append(Claim(id=cid, group=row.identifier("consistency_id"), key=normalize_answer(answer),
                            text=GSM8K.render_claim(question=question, solution=solution, answer=answer or NO_ANSWER),
                            meta={"row": row.number}))
        gold[cid] = row.label("label")
    return ClaimSet(claims=claims, gold=GoldLabels(gold), name=f"icm_gsm8k:{Path(path).stem}")


def icm_pair_source(path: str | Path, subset_field: str, name: str = "icm") -> PairSource:
    """A two-orderings pair file → one labeled pair per `consistency_id` (the first row's order is the original)."""
    source = PairSource(name=f"{name}:{Path(path).stem}")
    for first, second in _orderings(read_rows(path, file_format="json")):
        question, a, b = first.text("question"), first.text("choice"), first.text("choice_2")
        if same_content(a, b):
            source.skipped_invalid += 1
            continue
        better, worse = (a, b) if first.label("label") else (b, a)
        pair_id = first.identifier("consistency_id")
        pair, a_better = place(pair_id, question, better, worse, {"row": first.number})
        subset = first.text(subset_field) if first.has(subset_field) else None
        source.pairs.append(LabeledPair(pair, a_better, subset=subset))
    return source


def _orderings(rows: list[Row]) -> list[tuple[Row, Row]]:
    """(original, swapped copy) per consistency_id, checked: same question, swapped choices, opposite labels."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.identifier("consistency_id"), []).append(row)
    out = []
    for cid, members in groups.items():
        if len(members) != 2:
            raise members[-1].error("consistency_id", f"consistency_id {cid} has {len(members)} row(s); expected "
                                                      "a comparison and its swapped copy")
        first, second = sorted(members, key=lambda r: (not r.has("candidate_label"), r.number))
        if (second.text("choice"), second.text("choice_2")) != (first.text("choice_2"), first.text("choice")):
            raise second.error("choice", f"not the swapped copy of row {first.number} (same consistency_id {cid})")
        if second.text("question") != first.text("question"):
            raise second.error("question", f"differs from row {first.number} (same consistency_id {cid})")
        if second.label("label") == first.label("label"):
            raise second.error("label", f"same label as its swapped copy at row {first.number}; one order must win")
        out.append((first, second))
    return out
