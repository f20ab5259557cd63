"""Seed means of RL policies from one `icm-rm eval-policy` run: per policy and per route (the mean per-prompt judge
score over a route's seeds) the paired difference vs the reference (bootstrap CI, sign test) and the win rate, and
every pair of routes on seed means: the pipeline's seed-mean report (icm_rm.pipeline.seed_means) over policies that
several eval-policy runs judged (joined by prompt).

    python benchmarks/seed_means.py --samples EVAL_DIR/samples.jsonl --route icm=icm_s0,icm_s1,icm_s2 \
        --route human=human_s0,human_s1 [--name pipeline_e2e_seeds --settings extra.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from icm_rm.pipeline.seed_means import seed_means
from rl.eval_stats import format_diff, paired_comparison

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402


def read_scores(samples: list[Path]) -> dict[str, np.ndarray]:
    """policy name (and `reference`) → per-prompt judge scores in the first file's prompt order; several files (eval
    runs of other policies on the same prompts) are joined by prompt and must agree on the reference's scores."""
    scores: dict[str, np.ndarray] = {}
    order: list[str] = []
    for path in samples:
        rows = {}
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[r["prompt"]] = r
        order = order or list(rows)
        if sorted(rows) != sorted(order):
            sys.exit(f"{path}: not the same prompts as {samples[0]}")
        for n in (k[: -len("_score")] for k in rows[order[0]] if k.endswith("_score")):
            s = np.array([float(rows[p][f"{n}_score"]) for p in order])
            if n in scores and not np.array_equal(scores[n], s):
                sys.exit(f"{path}: {n} scores differ from an earlier file's")
            scores[n] = s
    return scores


def summarize(scores: dict[str, np.ndarray], routes: dict[str, list[str]]) -> dict:
    """Each policy vs the reference, then the pipeline's own seed-mean report (icm_rm.pipeline.seed_means) per route
    and for every pair of routes, plus the mean of each route's per-seed win rates."""
    ref = scores["reference"]
    per_policy = {p: {**paired_comparison(scores[p], ref), "score": float(scores[p].mean())}
                  for ps in routes.values() for p in ps}
    doc = seed_means(scores, {r: list(enumerate(ps)) for r, ps in routes.items()}, tie_margin=0.0, seed=0,
                     head_to_head=True)
    for r, ps in routes.items():
        doc["routes"][r]["mean_seed_win_rate"] = float(np.mean([per_policy[p]["win_rate"] for p in ps]))
    return {"reference_score": float(ref.mean()), "n_prompts": len(ref), "policies": per_policy, **doc}


def row(d: dict) -> list[str]:
    diff = d["score_diff"]
    return [format_diff(diff), f"{diff['sign_p']:.2g}", f"{d['wins']}/{d['ties']}/{d['losses']}",
            f"{100 * d['win_rate']:.1f}%"]


def print_tables(doc: dict) -> None:
    print(f"reference score {doc['reference_score']:.3f} on {doc['n_prompts']} prompts")
    head = ["diff vs reference [95% CI]", "sign p", "W/T/L", "win rate"]
    print(md_table(["policy", "score", *head], [[p, f"{d['score']:.3f}", *row(d)] for p, d in doc["policies"].items()]))
    rows = [[r, " / ".join(f"{g:+.3f}" for g in d["seed_diffs"]), f"{d['score']:.3f}", *row(d["vs_reference"]),
             f"{100 * d['mean_seed_win_rate']:.1f}%"] for r, d in doc["routes"].items()]
    print(md_table(["route (seed mean)", "per-seed diff", "score", *head, "mean per-seed win rate"], rows))
    rows = [[f"{d['route']} vs {d['versus']}", *row(d)] for d in doc["pairs"]]
    if rows:
        print(md_table(["seed means", "diff [95% CI]", "sign p", "W/T/L", "win rate"], rows))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, nargs="+", required=True, help="eval-policy's samples.jsonl (one or more)")
    ap.add_argument("--route", action="append", default=[], help="NAME=policy,policy,... (one policy per seed)")
    ap.add_argument("--name", help="write benchmarks/results/NAME.json")
    ap.add_argument("--settings", type=Path, help="a JSON object merged into the results file (commands, timings)")
    args = ap.parse_args(argv)
    scores = read_scores(args.samples)
    routes = {}
    for spec in args.route:
        name, _, pols = spec.partition("=")
        routes[name] = pols.split(",")
        missing = [p for p in routes[name] if p not in scores]
        if missing:
            ap.error(f"--route {name}: no scores for {missing} in {[str(p) for p in args.samples]}")
    doc = summarize(scores, routes)
    print_tables(doc)
    if args.name:
        extra = json.loads(args.settings.read_text()) if args.settings else {}
        print(write_result(args.name, {**extra, "samples": [str(p) for p in args.samples], **doc}))


if __name__ == "__main__":
    main()
