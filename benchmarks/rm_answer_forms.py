"""What does each reward model of a pipeline run reward *outside* its training pairs? Mean normalised reward, over a
built-in task's test questions, of fixed answer forms: the right statement, a wrong one, the most common class for
every question, the subject alone with no answer ("A fox."), and an evasion. An RM trained only on "A fox is a mammal."
vs "A fox is a fish." learns what a wrong answer costs, not what a non-answer is worth; a policy finds the form the RM
overrates. Gold (the fact table) builds the forms; no choice reads this.

    python benchmarks/rm_answer_forms.py --run RUN_DIR [--task animal_quiz --questions test|dev --name rm_answer_forms]

`--pool RESULT …` (no model runs) sets stored `--questions dev` results beside the dev gain of each RM's policy in the
`non_answer_pairs.py` round of the same run, and ranks one against the other. `--questions dev` scores the dev
questions of `non_answer_pairs.py` (animal_quiz's train split, never in its RL pairs) instead of the test split, for a
choice made on dev.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from icm_rm.infra.quiet import quiet_third_party

if __name__ == "__main__":  # the table, not pages of third-party warnings; before transformers is imported
    quiet_third_party()

import json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, md_table, write_result  # noqa: E402

from icm_rm.data.builtin import get_table, split_subjects  # noqa: E402
from icm_rm.reward.scoring import RewardModel  # noqa: E402
from icm_rm.reward.stats import spearman  # noqa: E402

FORMS = ("right", "wrong", "most_common", "subject_only", "evasion")


def answer_forms(task: str, questions: str = "test") -> tuple[list[str], dict[str, list[str]]]:
    """The task's test (or dev) questions and, per form, one answer to each."""
    table = get_table(task)
    answer = dict(table.rows)
    if questions == "dev":
        from non_answer_pairs import dev_subjects
        subjects = dev_subjects()[1]
    else:
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


def policy_gains() -> dict[Path, dict[str, float]]:
    """Per pipeline dir of a stored non_answer_pairs dev round: the dev gain of each RM's policy, keyed by the RM
    (icm_rm_policy_r1 → rm_icm_r1)."""
    out = {}
    for f in sorted(RESULTS.glob("non_answer_pairs_*.json")):
        doc = json.loads(f.read_text())
        run = (doc.get("settings") or {}).get("out")
        if run and "policies" in doc:
            out[Path(run) / "run"] = {"rm_" + k.replace("_rm_policy", ""): v["gain"]
                                      for k, v in doc["policies"].items() if k != "reference"}
    return out


def pool(names: list[str]) -> dict:
    """Every RM of the stored dev results `names` with its policy's dev gain, and the Spearman rank correlation of
    the gain with what the RM pays for the most common class where it is wrong, and with right − most common."""
    rows, rounds = [], policy_gains()
    for n in names:
        doc = json.loads((RESULTS / f"{n}.json").read_text())
        if doc["settings"].get("split") != "dev":
            sys.exit(f"--pool: {n} was not scored on the dev questions")
        gains = rounds.get(Path(doc["settings"]["run"]))
        if gains is None:
            sys.exit(f"--pool: no stored non_answer_pairs round ran {doc['settings']['run']}")
        rows += [{"result": n, "rm": rm, "gain": gains[rm], "most_common_above_right": v["most_common_above_right"],
                  "right_minus_most_common": v["right"] - v["most_common"]} for rm, v in doc["results"].items()]
    gain = [r["gain"] for r in rows]
    rho = {k: float(spearman([r[k] for r in rows], gain))
           for k in ("most_common_above_right", "right_minus_most_common")}
    return {"rms": rows, "spearman_with_gain": rho}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="pipeline output dir (its rm_*/model folders are scored)")
    ap.add_argument("--pool", nargs="+", metavar="RESULT", help="instead: stored --questions dev results, each RM set "
                                                                "beside its policy's dev gain")
    ap.add_argument("--task", default="animal_quiz")
    ap.add_argument("--questions", choices=("test", "dev"), default="test",
                    help="dev: non_answer_pairs.py's dev questions (animal_quiz only)")
    ap.add_argument("--name", default="rm_answer_forms", help="results/<name>.json")
    args = ap.parse_args(argv)
    if args.pool:
        doc = pool(args.pool)
        print(md_table(["result", "RM", "most common > right, where wrong", "right − most common", "dev gain"],
                       [[r["result"], r["rm"], f"{100 * r['most_common_above_right']:.0f}%",
                         f"{r['right_minus_most_common']:+.2f}", f"{r['gain']:+.3f}"] for r in doc["rms"]]))
        print(", ".join(f"Spearman({k}, dev gain) {v:+.2f}" for k, v in doc["spearman_with_gain"].items())
              + f" over {len(doc['rms'])} RMs")
        print(f"wrote {write_result(args.name, {'settings': {'pool': args.pool}, **doc})}")
        return 0
    if not args.run:
        ap.error("give --run RUN_DIR, or --pool RESULT …")
    if args.questions == "dev" and args.task != "animal_quiz":
        ap.error("--questions dev: the dev questions are animal_quiz's (non_answer_pairs.py)")
    torch.set_num_threads(1)
    questions, forms = answer_forms(args.task, args.questions)
    rms = sorted(d.parent for d in Path(args.run).glob("rm_*/model"))
    if not rms:
        sys.exit(f"{args.run}: no rm_*/model folder")
    wrong = np.array([c != r for c, r in zip(forms["most_common"], forms["right"])])  # questions it is wrong for
    results = {}
    for d in rms:
        rm = RewardModel.from_pretrained(d / "model", device="cpu")
        scores = {f: rm.normalize(rm.score(questions, answers)) for f, answers in forms.items()}
        results[d.name] = {f: float(np.mean(s)) for f, s in scores.items()}
        results[d.name]["subject_only_above_right"] = float(np.mean(scores["subject_only"] > scores["right"]))
        results[d.name]["most_common_above_right"] = float(np.mean((scores["most_common"] > scores["right"])[wrong]))
    rows = [[n, *(f"{r[f]:+.2f}" for f in FORMS), f"{100 * r['subject_only_above_right']:.0f}%",
             f"{100 * r['most_common_above_right']:.0f}%"] for n, r in results.items()]
    print(f"{len(questions)} {args.questions} questions of '{args.task}'; mean normalised reward per answer form")
    print(md_table(["RM", *FORMS, "subject-only > right", "most common > right, where wrong"], rows))
    path = write_result(args.name, {"settings": {"run": args.run, "task": args.task, "split": args.questions,
                                                 "questions": len(questions),
                                                 "examples": {f: a[0] for f, a in forms.items()}},
                                    "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
