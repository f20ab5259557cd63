"""OpenAI grade-school-math files: reference problems (train/test.jsonl) and the labelled model solutions
(example_model_solutions.jsonl) as verification claims keyed by their extracted final answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .answers import NO_ANSWER, gsm8k_reference_answer, model_solution_answer, normalize_answer
from .readers import Row, read_rows
from .records import Claim, ClaimSet, GoldLabels
from .tasks import GSM8K

SOLUTION_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


@dataclass(frozen=True)
class GSM8KProblem:
    """One reference problem: the worked solution (with calculator annotations) and its '#### x' final answer."""

    id: str
    question: str
    solution: str
    final_answer: str

    @property
    def answer_key(self) -> str:
        return normalize_answer(self.final_answer)


def read_gsm8k_problems(path: str | Path) -> list[GSM8KProblem]:
    """train.jsonl / test.jsonl → problems with the reference final answer extracted (id = row number)."""
    problems = []
    for row in read_rows(path, file_format="jsonl"):
        solution = row.text("answer")
        final = gsm8k_reference_answer(solution)
        if not final:
            raise row.error("answer", "no '#### <final answer>' line in the reference solution")
        problems.append(GSM8KProblem(id=str(row.number), question=row.text("question"), solution=solution,
                                     final_answer=final))
    return problems


def gsm8k_solutions(path: str | Path) -> ClaimSet:
    """example_model_solutions.jsonl → 4 verification claims per question (group = the question's row)."""
    claims, gold = [], {}
    for row in read_rows(path, file_format="jsonl"):
        question = row.text("question")
        for model in SOLUTION_MODELS:
            solution, correct = _model_solution(row, model)
            answer = model_solution_answer(solution) or ""
            cid = f"{row.number}:{model}"
            claims.append(Claim(id=cid, group=str(row.number), key=normalize_answer(answer),
                                text=GSM8K.render_claim(question=question, solution=solution,
                                                        answer=answer or NO_ANSWER),
                                meta={"row": row.number, "model": model}))
            gold[cid] = correct
    return ClaimSet(claims=claims, gold=GoldLabels(gold), name=f"gsm8k_solutions:{Path(path).stem}")


def _model_solution(row: Row, model: str) -> tuple[str, bool]:
    value = row.raw(model)
    if not isinstance(value, dict):
        raise row.error(model, "expected an object {\"solution\": str, \"is_correct\": bool}")
    nested = Row(row.path, row.number, {f"{model}.{k}": v for k, v in value.items()})
    return nested.text(f"{model}.solution"), nested.label(f"{model}.is_correct")
