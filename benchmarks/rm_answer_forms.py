"""What does each reward model of a pipeline run reward *outside* its training pairs? Mean normalised reward, over a
built-in task's test questions, of fixed answer forms: the right statement, a wrong one, the most common class for
every question, the subject alone with no answer ("A fox."), and an evasion. An RM trained only on "A fox is a mammal."
vs "A fox is a fish." learns what a wrong answer costs, not what a non-answer is worth; a policy finds the form the RM
overrates. Gold (the fact table) builds the forms; no choice reads this.

    python benchmarks/rm_answer_forms.py --run RUN_DIR [--task animal_quiz --name rm_answer_forms]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from icm_rm.infra.quiet import quiet_third_party

if __name__ == "__main__":  # the table, not pages of third-party warnings; before transformers is imported
    quiet_third_party()

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402

from icm_rm.data.builtin import get_table, split_subjects  # noqa: E402
from icm_rm.reward.scoring import RewardModel  # noqa: E402

FORMS = ("right", "wrong", "most_common", "subject_only", "evasion")


def answer_forms(task: str) -> tuple[list[str], dict[str, list[str]]]:
    """The task's test questions and, per form, one answer to each."""
    table = get_table(task)
    answer = dict(table.rows)
    subjects = split_subjects(table, "test")
    objects = table.objects()
    common = Counter(answer[s] for s in subjects).most_common(1)[0][0]
    evasion = "I am not sure; it depends on how you define it."
    forms = {"right": [table.state(s, answer[s]) for s in subjects],
             "wrong": [table.state(s, objects[(objects.index(answer[s]) + 1) % len(objects)]) for s in subjects],
             "most_common": [table.state(s, common) for s in subjects],
             "subject_only": [table.fields(s)["A_subject"] + "." for s in subjects],
             "evasion": [evasion] * len(subjects)}
    return [table.ask(s) for s in subjects], forms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="pipeline output dir (its rm_*/model folders are scored)")
    ap.add_argument("--task", default="animal_quiz")
    ap.add_argument("--name", default="rm_answer_forms", help="results/<name>.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    questions, forms = answer_forms(args.task)
    rms = sorted(d.parent for d in Path(args.run).glob("rm_*/model"))
    if not rms:
        sys.exit(f"{args.run}: no rm_*/model folder")
    results = {}
    for d in rms:
        rm = RewardModel.from_pretrained(d / "model", device="cpu")
        scores = {f: rm.normalize(rm.score(questions, answers)) for f, answers in forms.items()}
        results[d.name] = {f: float(np.mean(s)) for f, s in scores.items()}
        results[d.name]["subject_only_above_right"] = float(np.mean(scores["subject_only"] > scores["right"]))
    rows = [[n, *(f"{r[f]:+.2f}" for f in FORMS), f"{100 * r['subject_only_above_right']:.0f}%"]
            for n, r in results.items()]
    print(f"{len(questions)} test questions of '{args.task}'; mean normalised reward per answer form")
    print(md_table(["RM", *FORMS, "subject-only > right"], rows))
    path = write_result(args.name, {"settings": {"run": args.run, "task": args.task, "questions": len(questions),
                                                 "examples": {f: a[0] for f, a in forms.items()}},
                                    "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
