"""ICM-RM vs gold-RM policies over more RM seeds: the stored per-policy diffs vs the reference of an earlier seed round
(results/rm_seeds_test.json: RM seeds 42/1/2 × RL seeds 0–2 per route) pooled with a new pipeline run's (other RM
seeds on the same held-out split, judged on the same prompts), each route's seed mean and the ICM–gold gap next to two
standard errors of the seed means — the pipeline's own rule (icm_rm.pipeline.seed_means.gap_se). Per-prompt CIs of the
pooled means need every run's samples, which the earlier round did not keep: the new run's own report has them.

    python benchmarks/rm_seeds_pooled.py --run RUN_DIR [--stored results/rm_seeds_test.json --name rm_seeds_pooled]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from icm_rm.pipeline.seed_means import gap_se, read_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def route_of(policy: str) -> str:
    """icm… → icm; human…/gold… → human (the stored round names gold-label policies both ways)."""
    return "icm" if policy.startswith("icm") else "human"


def pooled(stored: dict[str, float], new: dict[str, float]) -> dict:
    """Per route: every policy's diff vs the reference, their mean and sd; the ICM–gold gap and its standard error."""
    routes = {}
    for r in ("icm", "human"):
        old = [d for p, d in stored.items() if route_of(p) == r]
        add = [d for p, d in new.items() if route_of(p) == r]
        routes[r] = {"stored": old, "new": add, "n": len(old + add), "mean": float(np.mean(old + add)),
                     "sd": float(np.std(old + add, ddof=1)), "new_mean": float(np.mean(add)),
                     "stored_mean": float(np.mean(old))}
    gap = routes["icm"]["mean"] - routes["human"]["mean"]
    se = gap_se(*(routes[r]["stored"] + routes[r]["new"] for r in ("icm", "human")))
    return {"routes": routes, "gap": gap, "gap_se": se, "within_two_se": abs(gap) <= 2 * se,
            "within_goal_5_points": abs(gap) <= 0.05}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="pipeline output dir whose eval_policy judged the new policies")
    ap.add_argument("--stored", default=str(RESULTS / "rm_seeds_test.json"))
    ap.add_argument("--name", default="rm_seeds_pooled", help="results/<name>.json")
    args = ap.parse_args(argv)
    doc = json.loads(Path(args.stored).read_text())
    scores = read_scores(Path(args.run) / "eval_policy")
    ref = scores.pop("reference")
    if len(ref) != doc["n_prompts"] or abs(float(ref.mean()) - doc["reference_score"]) > 1e-9:
        sys.exit(f"{args.run}: reference judged {ref.mean():.4f} on {len(ref)} prompts, the stored round "
                 f"{doc['reference_score']:.4f} on {doc['n_prompts']}: not the same prompts or judge")
    new = {p: float(np.mean(s - ref)) for p, s in scores.items()}
    stored = {p: v["score_diff"]["diff"] for p, v in doc["policies"].items()}
    out = pooled(stored, new)
    r = out["routes"]
    rows = [[name, r[k]["n"], f"{r[k]['stored_mean']:+.3f}", f"{r[k]['new_mean']:+.3f}", f"{r[k]['mean']:+.3f}",
             f"{r[k]['sd']:.3f}"] for k, name in (("icm", "ICM-RM"), ("human", "gold-RM"))]
    rows.append(["ICM − gold", "", "", "", f"{out['gap']:+.3f}", f"±{2 * out['gap_se']:.3f} (2 SE)"])
    print(md_table(["route", "policies", "stored round", "new run", "pooled mean", "sd"], rows))
    print(f"new run's policies: {', '.join(f'{p} {d:+.3f}' for p, d in new.items())}")
    path = write_result(args.name, {"settings": {"run": args.run, "stored": args.stored}, "new_policies": new, **out})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
