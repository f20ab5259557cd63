"""Dev check (issue 18): do demo pairs that reject a non-answer ("A fox.") keep PPO policies from learning one?

Until this check the demo's `animal_quiz` pairs contrasted only the class ("A fox is a mammal." vs "A fox is a
fish."), so no RM saw a non-answer, and on test some RM runs paid more for the subject alone than for the right
sentence (rm_answer_forms.py); their policies learned "A horse.". The remedy, now the task's own pairs: half the pairs
reject a non-answer (`fact_tables.NON_ANSWERS`, by a hash of the pair, as `animal_answers` rejects evasions) instead of
a wrong class; variant `class_only` rebuilds the old pairs. The second check (variant `frequency_distractors`, now
the task's pairs; `non_answers` rebuilds the uniform draws): a wrong class drawn as often as it is right, so that
"mammal" stops predicting the chosen side. The third (variants `hedges`, `hedges3`; not adopted): a third of the pairs
reject a hedge naming the right class and a wrong one instead (`fact_tables.HEDGES`: two or all three templates).
The fourth (variant `two_pairs`; not adopted): two pairs per subject, the task's own and one rejecting a wrong
class (the task's frequency draws, the first one the task's pair does not use), so that each RM sees every animal's
class against a wrong one at least once. The fifth (variant `answer_forms`; not adopted): each pair's class
statements and non-answers in one of `ANSWER_FORMS` ("The fox is a mammal." vs "The fox.", "It is a mammal." vs "It
is an animal.", …; both sides alike), the forms the policy answers in, where RMs trained on one form paid little for
right answers in others (best-of-n samples).
Dev only: the train split's subjects are cut into RL subjects (pairs, RMs, PPO prompts) and dev questions (judged by
the gold checker); no test subject is read.

    python benchmarks/non_answer_pairs.py \
        --variant class_only|non_answers|frequency_distractors|hedges|hedges3|two_pairs|answer_forms --out DIR \
        [--rm_seeds 42 1 2 --rl_seeds 0 --rm_split_seed 42 --name RESULT --set rm.trainer.num_train_epochs=4]

runs `icm-rm pipeline` (the demo config, ICM and gold routes, no controls, no eval-rm: it reads the test split) on
DIR/rl_pairs.jsonl and judges on DIR/dev_prompts.jsonl, then writes results/non_answer_pairs_<variant>.json: per
route and RM seed the dev gain vs the reference, and how often each policy names no class or two or more.
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

from icm_rm.data.builtin import _hash_unit, distractors, gold_check, split_subjects, table_claimset
from icm_rm.data.fact_tables import ANIMAL_QUIZ, HEDGES, NON_ANSWERS
from icm_rm.data.preferences import PreferenceExample, write_preferences_jsonl
from icm_rm.infra.io import atomic_write_jsonl
from icm_rm.pipeline.seed_means import gap_se, read_scores
from icm_rm.reward.config import RewardModelConfig
from rl.eval_stats import paired_comparison

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEV_FRACTION = 0.26  # 34 of the 131 train subjects: the size of the dev rounds in BENCHMARKS §5
_UNIFORM = dataclasses.replace(ANIMAL_QUIZ, distractors_by="uniform")  # the pairs before the frequency check
VARIANTS = {"class_only": dataclasses.replace(_UNIFORM, evasions=()), "non_answers": _UNIFORM,
            "frequency_distractors": ANIMAL_QUIZ, "hedges": dataclasses.replace(ANIMAL_QUIZ, hedges=HEDGES[:2]),
            "hedges3": dataclasses.replace(ANIMAL_QUIZ, hedges=HEDGES), "two_pairs": ANIMAL_QUIZ,
            "answer_forms": ANIMAL_QUIZ}
PAIRS_PER_SUBJECT = {"two_pairs": 2}  # the task's own pair per subject, then pairs rejecting other wrong classes
# variant answer_forms: each pair in one of these forms (by a hash of the subject; both sides the same form, so the
# form says nothing of the label): class statement → its two non-answers, in the order of fact_tables.NON_ANSWERS
ANSWER_FORMS = {
    "{A_subject} is {a_object}.": ("{A_subject}.", "{A_subject} is an animal."),
    "The {subject} is {a_object}.": ("The {subject}.", "The {subject} is an animal."),
    "{Subject} is {a_object}.": ("{Subject}.", "{Subject} is an animal."),
    "It is {a_object}.": ("It is {a_subject}.", "It is an animal."),
    "The answer is {a_object}.": ("The answer is {a_subject}.", "The answer is an animal."),
    "{A_subject} is classified as {a_object}.": ("{A_subject}.", "{A_subject} is classified as an animal."),
}


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
    examples, non, hedges = [], 0, 0
    per_subject = PAIRS_PER_SUBJECT.get(variant, 1)
    for pid, pair in cs.pairs.items():
        subject = pair.meta["subject"]
        if subject not in rl:
            continue
        a_better = cs.gold[f"{pid}:A>B"]
        good, bad = (pair.response_a, pair.response_b) if a_better else (pair.response_b, pair.response_a)
        stated = {table.state(subject, o) for o in table.objects()}  # the subject with any class, right or wrong
        wrong = [table.state(subject, o) for o in distractors(table, subject, per_subject)]
        rejected = [bad] + [w for w in wrong if w != bad][:per_subject - 1]
        for i, rej in enumerate(rejected):
            hedged = classes_named(pair.prompt, rej) > 1
            non += rej not in stated and not hedged
            hedges += hedged
            chosen = good
            if variant == "answer_forms":
                chosen, rej = (restyle(table, subject, x) for x in (good, rej))
            examples.append(PreferenceExample(id=pid if i == 0 else f"{pid}#{i + 1}", prompt=pair.prompt,
                                              chosen=chosen, rejected=rej))
    write_preferences_jsonl(out / "rl_pairs.jsonl", examples)
    atomic_write_jsonl(out / "dev_prompts.jsonl", [{"prompt": table.ask(s)} for s in dev])
    return {"rl_subjects": len(rl), "dev_subjects": len(dev), "pairs": len(examples), "non_answer_pairs": non,
            "hedge_pairs": hedges}


def restyle(table, subject: str, answer: str) -> str:
    """A class statement ("A fox is a mammal.") or non-answer ("A fox.") of the task's pairs in the subject's answer
    form."""
    forms = list(ANSWER_FORMS)
    form = forms[int(_hash_unit(table.name, "form", subject) * len(forms))]
    by_statement = {table.state(subject, o): o for o in table.objects()}
    if answer in by_statement:
        return table.fill(form, subject, by_statement[answer])
    evasions = [table.fill(e, subject) for e in NON_ANSWERS]
    return table.fill(ANSWER_FORMS[form][evasions.index(answer)], subject)


SUBJECT_OF = {ANIMAL_QUIZ.ask(s): s.lower() for s, _ in ANIMAL_QUIZ.rows}


def classes_named(prompt: str, completion: str) -> int:
    """How many classes the answer names, outside the subject's own name ("A swordfish." names none)."""
    low = completion.lower().replace(SUBJECT_OF[prompt], "")
    return sum(o in low for o in ANIMAL_QUIZ.objects())


def summarise(run: Path) -> dict:
    """Per policy: dev gain vs the reference, gold-checked score, share of answers naming no class."""
    scores = read_scores(run / "eval_policy")
    rows = [json.loads(x) for x in (run / "eval_policy" / "samples.jsonl").read_text().splitlines() if x]
    ref = scores["reference"]
    out = {}
    for name, s in scores.items():
        named = [classes_named(r["prompt"], r[name]) for r in rows]
        correct = float(np.mean([bool(gold_check("animal_quiz", r["prompt"], r[name])) for r in rows]))
        out[name] = {"score": float(s.mean()), "gain": float(np.mean(s - ref)), "no_class": float(np.mean(
            [n == 0 for n in named])), "two_classes": float(np.mean([n > 1 for n in named])), "gold_correct": correct}
    return out


def run_key(policy: str, first_rm_seed: int) -> str:
    """A pipeline policy name → route/RM seed/RL seed (icm_rm_policy_r4_s1 → icm/rm4/s1; no _rK = the run's first
    RM seed, no _sJ = RL seed 0)."""
    m = re.fullmatch(r"(icm|human)_rm_policy(?:_r(\d+))?(?:_s(\d+))?", policy)
    return f"{m.group(1)}/rm{m.group(2) or first_rm_seed}/s{m.group(3) or 0}"


def class_only_round() -> dict[str, float]:
    """The stored class-only test policies' diffs vs the reference by route/RM seed/RL seed: RM seeds 42/1/2
    (results/rm_seeds_test.json: icm_s0, icmr1_s0, human_s0, goldr1_s0, …) and 3/4 (rm_seeds_pooled.json)."""
    out = {}
    for name, v in json.loads((RESULTS / "rm_seeds_test.json").read_text())["policies"].items():
        m = re.fullmatch(r"(icm|human|gold)(?:r(\d+))?_s(\d+)", name)
        route = "icm" if m.group(1) == "icm" else "human"
        out[f"{route}/rm{m.group(2) or 42}/s{m.group(3)}"] = v["score_diff"]["diff"]
    for name, d in json.loads((RESULTS / "rm_seeds_pooled.json").read_text())["new_policies"].items():
        out[run_key(name, 3)] = d
    return out


def pooled_runs(runs: list[Path]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ICM and gold policies' per-prompt scores of pipeline runs judged on the same prompts, keyed
    route/RM seed/RL seed, and the reference's scores (exits if a run's reference differs: other prompts)."""
    scores, ref = {}, None
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        rm_seed = (cfg.get("rm") or {}).get("seed", RewardModelConfig.seed)
        first = (cfg.get("rm_seeds") or [rm_seed])[0]  # the RM seed its policies are named without _rK
        got = read_scores(run / "eval_policy")
        this_ref = got.pop("reference")
        if ref is not None and not np.array_equal(ref, this_ref):
            sys.exit(f"{run}: the reference's per-prompt scores differ from the first run's: not the same prompts")
        ref = this_ref
        scores.update({run_key(k, first): v for k, v in got.items() if k.startswith(("icm_rm", "human_rm"))})
    return scores, ref


def compare_test_runs(runs: list[Path], against: list[Path] | None = None) -> dict:
    """Test policies pooled over pipeline runs judged on the same prompts, next to the policies of the same RM and
    RL seeds in `against` (earlier runs on the same prompts), or by default in the stored class-only rounds."""
    scores, ref = pooled_runs(runs)
    if against:
        old_scores, old_ref = pooled_runs(against)
        if not np.array_equal(ref, old_ref):
            sys.exit("--against: the reference's per-prompt scores differ from --test_run's: not the same prompts")
        old = {k: float(np.mean(v - old_ref)) for k, v in old_scores.items()}
    else:
        old = class_only_round()
    routes = {}
    for r in ("icm", "human"):
        keys = sorted(k for k in scores if k.startswith(r + "/"))
        new = {k: float(np.mean(scores[k] - ref)) for k in keys}
        before = {k: old[k] for k in keys if k in old}
        routes[r] = {"new": new, "before": before, "new_mean": float(np.mean(list(new.values()))),
                     "before_mean": float(np.mean(list(before.values()))),
                     "mean_scores": np.mean([scores[k] for k in keys], axis=0)}
    gap = paired_comparison(routes["icm"].pop("mean_scores"), routes["human"].pop("mean_scores"))
    icm, gold = list(routes["icm"]["new"].values()), list(routes["human"]["new"].values())
    se = gap_se(icm, gold) if min(len(icm), len(gold)) > 1 else None  # a spread needs two runs per route
    return {"runs": [str(r) for r in runs], "before": [str(r) for r in against] if against else "class-only rounds",
            "reference_score": float(ref.mean()), "n_prompts": len(ref), "routes": routes, "icm_vs_gold": gap,
            "icm_vs_gold_seed_se": se}


def dev_gains(doc: dict) -> dict[str, float]:
    """A stored dev round's policy gains keyed route/RM seed/RL seed (reference left out)."""
    first = doc["settings"]["rm_seeds"][0]
    return {run_key(k, first): v["gain"] for k, v in doc["policies"].items() if k != "reference"}


def compare_dev_rounds(new: list[dict], old: list[dict]) -> dict:
    """Paired dev comparison of two settings: d = gain(new) − gain(old) per route, RM seed and RL seed present in
    both; the mean of d and its standard error over those pairs, overall and per route."""
    gains_new = {k: v for doc in new for k, v in dev_gains(doc).items()}
    gains_old = {k: v for doc in old for k, v in dev_gains(doc).items()}
    keys = sorted(k for k in gains_new if k in gains_old)
    if len(keys) < 2:
        sys.exit(f"--dev_rounds: {len(keys)} policies have a twin in --baseline (route, RM seed, RL seed); need ≥ 2")
    d = {k: gains_new[k] - gains_old[k] for k in keys}

    def stats(ks: list[str]) -> dict:
        x = np.array([d[k] for k in ks])
        se = float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None
        return {"n": len(x), "mean_new": float(np.mean([gains_new[k] for k in ks])),
                "mean_old": float(np.mean([gains_old[k] for k in ks])), "mean_d": float(x.mean()), "se_d": se}

    per_route = {r: stats([k for k in keys if k.startswith(r + "/")]) for r in ("icm", "human")}
    return {"d": d, "all": stats(keys), "routes": {r: v for r, v in per_route.items() if v["n"]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=list(VARIANTS))
    ap.add_argument("--out", help="run directory (pipeline output + data files)")
    ap.add_argument("--rm_seeds", type=int, nargs="+", default=[42, 1, 2])
    ap.add_argument("--rl_seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--rm_split_seed", type=int, help="the RMs' held-out split (default: the first RM seed's); give 42 "
                                                      "to pool a run of other RM seeds with one of 42/1/2")
    ap.add_argument("--summarise_only", action="store_true", help="read an earlier run's eval_policy")
    ap.add_argument("--test_run", nargs="+", help="instead: test pipeline runs on the task's own pairs (any RM seeds, "
                                                  "same prompts), pooled and compared with the stored class-only "
                                                  "rounds on the same RM/RL seeds")
    ap.add_argument("--against", nargs="+", help="with --test_run: earlier test runs to compare with (same prompts) "
                                                 "instead of the stored class-only rounds")
    ap.add_argument("--name", help="results/<name>.json (default non_answer_pairs_<variant>, or _test for --test_run)")
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="pipeline overrides for a dev round, e.g. rm.trainer.num_train_epochs=4")
    ap.add_argument("--dev_rounds", nargs="+", metavar="RESULT",
                    help="instead: stored dev rounds (results/<RESULT>.json) of one setting, paired by route and seed "
                         "with --baseline's")
    ap.add_argument("--baseline", nargs="+", metavar="RESULT", help="with --dev_rounds: the stored rounds to pair with")
    args = ap.parse_args(argv)
    if args.dev_rounds:
        if not args.baseline:
            ap.error("--dev_rounds needs --baseline")
        missing = [n for n in args.dev_rounds + args.baseline if not (RESULTS / f"{n}.json").is_file()]
        if missing:
            ap.error(f"no stored result {RESULTS / missing[0]}.json")
        load = lambda names: [json.loads((RESULTS / f"{n}.json").read_text()) for n in names]  # noqa: E731
        doc = compare_dev_rounds(load(args.dev_rounds), load(args.baseline))
        for name, v in {"both routes": doc["all"], **doc["routes"]}.items():
            se = f"{v['se_d']:.3f}" if v["se_d"] is not None else "n/a"
            print(f"{name}: {v['n']} pairs, {v['mean_old']:+.3f} → {v['mean_new']:+.3f}, "
                  f"d {v['mean_d']:+.3f} (SE {se})")
        name = args.name or "non_answer_pairs_dev_comparison"
        doc = {"benchmark": "non_answer_pairs", "dev_rounds": args.dev_rounds, "baseline": args.baseline, **doc}
        print(f"wrote {write_result(name, doc)}")
        return 0
    if args.test_run:
        doc = compare_test_runs([Path(r) for r in args.test_run], [Path(r) for r in args.against or []])
        for r, v in doc["routes"].items():
            print(f"{r}: these runs {v['new_mean']:+.3f} over {len(v['new'])} policies; "
                  f"{'the --against runs' if args.against else 'the class-only rounds'} "
                  f"{v['before_mean']:+.3f} on the {len(v['before'])} of them with a twin there")
        d = doc["icm_vs_gold"]["score_diff"]
        se = doc["icm_vs_gold_seed_se"]
        print(f"ICM vs gold {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]; 2 SE of the seed means "
              + (f"±{2 * se:.3f}" if se is not None else "n/a (one run per route)"))
        print(f"wrote {write_result(args.name or 'non_answer_pairs_test', {'benchmark': 'non_answer_pairs', **doc})}")
        return 0
    if not (args.variant and args.out):
        ap.error("give --variant and --out (a dev run), or --test_run RUN [RUN …]")
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
        if args.rm_split_seed is not None:
            cmd += ["--rm.split_seed", str(args.rm_split_seed)]
        for kv in args.set:
            key, sep, value = kv.partition("=")
            if not sep or not key:
                ap.error(f"--set {kv!r}: give KEY=VALUE")
            cmd += [f"--{key}", value]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    policies = summarise(out / "run")
    routes = {}
    for r in ("icm", "human"):
        mine = [v for k, v in policies.items() if k.startswith(f"{r}_rm_policy")]
        routes[r] = {"gains": [v["gain"] for v in mine],
                     "mean": float(np.mean([v["gain"] for v in mine])) if mine else None,
                     "no_class_mean": float(np.mean([v["no_class"] for v in mine])) if mine else None}
    summary = json.loads((out / "run" / "summary.json").read_text()) if (out / "run" / "summary.json").exists() else {}
    label_acc = (summary.get("label") or {}).get("accuracy")
    rows = [[k, f"{v['score']:.3f}", f"{v['gain']:+.3f}", f"{v['no_class']:.2f}", f"{v['two_classes']:.2f}"]
            for k, v in policies.items()]
    table = md_table(["policy", "dev score", "gain vs reference", "answers naming no class", "naming two or more"],
                     rows)
    print("\n" + table)
    for r, v in routes.items():
        if v["mean"] is not None:
            print(f"{r}: mean dev gain {v['mean']:+.3f} over {len(v['gains'])} policies; "
                  f"no class {v['no_class_mean']:.2f}")
    path = write_result(args.name or f"non_answer_pairs_{args.variant}", {
        "benchmark": "non_answer_pairs", "variant": args.variant, "settings": vars(args), "data": data,
        "label_accuracy": label_acc, "policies": policies, "routes": routes, "table_md": table})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
