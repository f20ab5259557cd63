"""Dev check (issue 18): do demo pairs that reject a non-answer ("A fox.") keep PPO policies from learning one?

Until this check the demo's `animal_quiz` pairs contrasted only the class ("A fox is a mammal." vs "A fox is a
fish."), so no RM saw a non-answer, and on test some RM runs paid more for the subject alone than for the right
sentence (rm_answer_forms.py); their policies learned "A horse.". The remedy, now the task's own pairs: half the pairs
reject a non-answer (`fact_tables.NON_ANSWERS`, by a hash of the pair, as `animal_answers` rejects evasions) instead of
a wrong class; variant `class_only` rebuilds the old pairs. Dev only: the train split's subjects are cut into RL
subjects (pairs, RMs, PPO prompts) and dev questions (judged by the gold checker); no test subject is read.

    python benchmarks/non_answer_pairs.py --variant class_only|non_answers --out DIR [--rm_seeds 42 1 2 --rl_seeds 0]

runs `icm-rm pipeline` (the demo config, ICM and gold routes, no controls, no eval-rm: it reads the test split) on
DIR/rl_pairs.jsonl and judges on DIR/dev_prompts.jsonl, then writes results/non_answer_pairs_<variant>.json: per
route and RM seed the dev gain vs the reference, and how often each policy answers without naming a class.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from icm_rm.data.builtin import _hash_unit, gold_check, split_subjects, table_claimset
from icm_rm.data.fact_tables import ANIMAL_QUIZ
from icm_rm.pipeline.seed_means import read_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEV_FRACTION = 0.26  # 34 of the 131 train subjects: the size of the dev rounds in BENCHMARKS §5
VARIANTS = {"class_only": dataclasses.replace(ANIMAL_QUIZ, evasions=()), "non_answers": ANIMAL_QUIZ}


def dev_subjects() -> tuple[list[str], list[str]]:
    """(RL subjects, dev subjects) of the train split: the DEV_FRACTION with the smallest hashes are dev."""
    train = split_subjects(ANIMAL_QUIZ, "train")
    ranked = sorted(train, key=lambda s: _hash_unit(ANIMAL_QUIZ.name, "dev", s))
    dev = set(ranked[:round(len(train) * DEV_FRACTION)])
    return [s for s in train if s not in dev], [s for s in train if s in dev]


def write_data(variant: str, out: Path) -> dict:
    """rl_pairs.jsonl (TRL columns, RL subjects) and dev_prompts.jsonl; returns counts."""
    table = VARIANTS[variant]
    rl, dev = dev_subjects()
    cs = table_claimset(table, form="pairs", split="train")
    rows, non = [], 0
    for pair in cs.pairs.values():
        subject = pair.meta["subject"]
        if subject not in rl:
            continue
        good = table.state(subject, dict(table.rows)[subject])
        bad = pair.response_b if pair.response_a == good else pair.response_a
        rows.append({"prompt": pair.prompt, "chosen": good, "rejected": bad})
        non += bad not in {table.state(subject, o) for o in table.objects()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "rl_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (out / "dev_prompts.jsonl").write_text("".join(json.dumps({"prompt": table.ask(s)}) + "\n" for s in dev),
                                           encoding="utf-8")
    return {"rl_subjects": len(rl), "dev_subjects": len(dev), "pairs": len(rows), "non_answer_pairs": non}


SUBJECT_OF = {ANIMAL_QUIZ.ask(s): s.lower() for s, _ in ANIMAL_QUIZ.rows}


def names_a_class(prompt: str, completion: str) -> bool:
    """Does the answer name a class, outside the subject's own name ("A swordfish." names none)?"""
    low = completion.lower().replace(SUBJECT_OF[prompt], "")
    return any(o in low for o in ANIMAL_QUIZ.objects())


def summarise(run: Path) -> dict:
    """Per policy: dev gain vs the reference, gold-checked score, share of answers naming no class."""
    scores = read_scores(run / "eval_policy")
    rows = [json.loads(x) for x in (run / "eval_policy" / "samples.jsonl").read_text().splitlines() if x]
    ref = scores["reference"]
    out = {}
    for name, s in scores.items():
        no_class = float(np.mean([not names_a_class(r["prompt"], r[name]) for r in rows]))
        correct = float(np.mean([bool(gold_check("animal_quiz", r["prompt"], r[name])) for r in rows]))
        out[name] = {"score": float(s.mean()), "gain": float(np.mean(s - ref)), "no_class": no_class,
                     "gold_correct": correct}
    return out


def stored_name(policy: str) -> str:
    """A pipeline policy name (icm_rm_policy_r1_s1, human_rm_policy_s2) → results/rm_seeds_test.json's (icmr1_s1,
    human_s2; gold RMs of other seeds are goldrK there)."""
    m = re.fullmatch(r"(icm|human)_rm_policy(?:_r(\d+))?(?:_s(\d+))?", policy)
    route, rm, rl = m.group(1), m.group(2), m.group(3) or "0"
    head = route if not rm else ("icm" if route == "icm" else "gold") + "r" + rm
    return f"{head}_s{rl}"


def test_compare(run: Path, stored_path: Path) -> dict:
    """The new pairs' test policies next to the stored class-only round's policies of the same RM and RL seeds."""
    stored = json.loads(stored_path.read_text())
    rm_seeds = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("rm_seeds") or [42]
    if rm_seeds[0] != 42:  # the pipeline names the first RM seed's policies without _rK, as the stored round's seed 42
        sys.exit(f"{run}: rm_seeds {rm_seeds} must start with 42 to be compared with the stored round")
    policies = summarise(run)
    ref = policies.pop("reference")
    if abs(ref["score"] - stored["reference_score"]) > 1e-9:
        sys.exit(f"{run}: reference scores {ref['score']:.4f}, the stored round {stored['reference_score']:.4f}")
    routes = {}
    for r in ("icm", "human"):
        mine = {stored_name(k): v for k, v in policies.items() if k.startswith(f"{r}_rm_policy")}
        old = {k: stored["policies"][k]["score_diff"]["diff"] for k in mine}
        routes[r] = {"policies": sorted(mine), "new": {k: v["gain"] for k, v in mine.items()}, "class_only": old,
                     "new_mean": float(np.mean([v["gain"] for v in mine.values()])),
                     "class_only_mean": float(np.mean(list(old.values()))),
                     "no_class_mean": float(np.mean([v["no_class"] for v in mine.values()]))}
    return {"reference": ref, "routes": routes, "policies": policies}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=list(VARIANTS))
    ap.add_argument("--out", help="run directory (pipeline output + data files)")
    ap.add_argument("--rm_seeds", type=int, nargs="+", default=[42, 1, 2])
    ap.add_argument("--rl_seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--summarise_only", action="store_true", help="read an earlier run's eval_policy")
    ap.add_argument("--test_run", help="instead: a test pipeline run on the task's own pairs, compared with the stored "
                                       "class-only round (results/rm_seeds_test.json) on the same RM/RL seeds")
    args = ap.parse_args(argv)
    if args.test_run:
        doc = test_compare(Path(args.test_run), ROOT / "benchmarks/results/rm_seeds_test.json")
        for r, v in doc["routes"].items():
            print(f"{r}: non-answer pairs {v['new_mean']:+.3f} vs class-only {v['class_only_mean']:+.3f} over "
                  f"{len(v['policies'])} policies ({', '.join(v['policies'])}); no class {v['no_class_mean']:.2f}")
        print(f"wrote {write_result('non_answer_pairs_test', {'benchmark': 'non_answer_pairs', **doc})}")
        return 0
    out = Path(args.out)
    data = write_data(args.variant, out / "data_dev")  # deterministic: a re-summarised run rewrites the same bytes
    if not args.summarise_only:
        cmd = [sys.executable, "-m", "icm_rm.cli", "pipeline", "--config", str(ROOT / "configs/pipeline/default.yaml"),
               "--output_dir", str(out / "run"), "--controls", "[]",
               "--rm_seeds", json.dumps(args.rm_seeds), "--rl_seeds", json.dumps(args.rl_seeds),
               "--stages", "[label, rm, rl, eval_policy]",
               "--label.data_format", "trl", "--label.data_path", str(out / "data_dev/rl_pairs.jsonl"),
               "--ppo.prompts", str(out / "data_dev/rl_pairs.jsonl"), "--ppo.prompt_split", "all",
               "--eval_policy.prompts", str(out / "data_dev/dev_prompts.jsonl"),
               "--eval_policy.prompt_split", "all", "--eval_policy.judge", "gold:animal_quiz"]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    policies = summarise(out / "run")
    routes = {}
    for r in ("icm", "human"):
        gains = [v["gain"] for k, v in policies.items() if k.startswith(f"{r}_rm_policy")]
        routes[r] = {"gains": gains, "mean": float(np.mean(gains)) if gains else None,
                     "no_class_mean": float(np.mean([v["no_class"] for k, v in policies.items()
                                                     if k.startswith(f"{r}_rm_policy")])) if gains else None}
    summary = json.loads((out / "run" / "summary.json").read_text()) if (out / "run" / "summary.json").exists() else {}
    label_acc = (summary.get("label") or {}).get("accuracy")
    rows = [[k, f"{v['score']:.3f}", f"{v['gain']:+.3f}", f"{v['no_class']:.2f}"] for k, v in policies.items()]
    table = md_table(["policy", "dev score", "gain vs reference", "answers naming no class"], rows)
    print("\n" + table)
    for r, v in routes.items():
        if v["mean"] is not None:
            print(f"{r}: mean dev gain {v['mean']:+.3f} over {len(v['gains'])} policies; no class {v['no_class_mean']:.2f}")
    path = write_result(f"non_answer_pairs_{args.variant}", {
        "benchmark": "non_answer_pairs", "variant": args.variant, "settings": vars(args), "data": data,
        "label_accuracy": label_acc, "policies": policies, "routes": routes, "table_md": table})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
