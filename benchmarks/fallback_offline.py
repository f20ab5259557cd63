"""Gold-free rules that replace ICM's labels by the likelihood verdict's, judged offline on stored elicitation runs.

    python benchmarks/fallback_offline.py [--results elicitation elicitation_real elicitation_test2 ...]

Every pair-pool run of the given results/<name>.json files (benchmarks/elicitation.py) is one row: ICM's searched
accuracy, the likelihood verdict's accuracy (the `zero_shot_likelihood` baseline: the labeling the fallback returns,
up to ConsistencyFix on tied pairs), the best zero-shot baseline and the run's gold-free diagnostics. A rule looks at
the diagnostics only (departure from the likelihood verdict, the warnings) and says whether the run falls back.
Per protocol role it prints: runs below best zero-shot − 2, runs below 50%, the mean gain over best zero-shot on
tasks where that is < 90% (the issue-16 goal, per model), and what the rule changed (runs, of them fine before,
fixed, made worse; summed accuracy change). Writes results/fallback_offline.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, md_table, write_result  # noqa: E402

from icm_rm.data.protocol import ROLES  # noqa: E402
from icm_rm.label.diagnostics import DEPART  # noqa: E402
from icm_rm.label.fallback import fallback_reasons  # noqa: E402

UNSURE = {"seeds_disagree", "chains_disagree"}


def departure(run: dict) -> float:
    return 1.0 - run["diagnostics"]["verdict_agreement"]["likelihood"]


RULES: dict[str, Callable[[dict], bool]] = {
    "plain ICM": lambda r: False,
    "departs (> 15%)": lambda r: bool(fallback_reasons(r["diagnostics"], "departs")),
    "uncertain (departs, or replicas/chains disagree) [default]":
        lambda r: bool(fallback_reasons(r["diagnostics"], "uncertain")),
    "departs and replicas/chains disagree": lambda r: departure(r) > DEPART and bool(UNSURE & set(r["warnings"])),
    "departs and < 95% replica agreement": lambda r: departure(r) > DEPART and r["seed_agreement"] < 0.95,
    "departs and < 40% of chains agree": lambda r: departure(r) > DEPART and r["chains_agreeing"] < 0.40,
    "departs > 10.2% (the dev maximum)": lambda r: departure(r) > 0.102 + 1e-9,
}


def pair_runs(names: list[str]) -> list[dict]:
    """One row per pair-pool run: model, task, role, seed, ICM (searched) and baseline accuracies, diagnostics."""
    rows = []
    for name in names:
        doc = json.loads((RESULTS / f"{name}.json").read_text())
        for model, per in doc["results"].items():
            for task, r in per.items():
                lik = (r.get("baselines") or {}).get("zero_shot_likelihood")
                if "skipped" in r or not r.get("pairwise") or lik is None:
                    continue
                for run in r["runs"]:
                    d = run["diagnostics"]
                    rows.append({"file": name, "model": model, "task": task, "role": r["role"], "seed": run["seed"],
                                 "icm": run.get("searched_accuracy", run["accuracy"]), "likelihood": lik,
                                 "returned": run["accuracy"] if "fallback" in run else None,  # runs with the rule
                                 "n_pairs": r["n_claims"] // 2,
                                 "best_zero_shot": r["best_zero_shot"], "diagnostics": d,
                                 "warnings": run["warnings"], "seed_agreement": d["seed_agreement"]["min"],
                                 "chains_agreeing": d["chains_agreeing"]})
    return rows


def judge(rows: list[dict], rule: Callable[[dict], bool]) -> dict:
    """The issue-16 goal numbers of the labels a rule returns, and what it changed."""
    out = {"runs": len(rows), "below_best_zs_minus_2": 0, "below_50": 0, "changed": 0, "changed_fine": 0,
           "fixed": 0, "made_worse": 0, "sum_delta_pts": 0.0}
    by_task: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in rows:
        fell = rule(r)
        acc = r["likelihood"] if fell else r["icm"]
        ok = r["icm"] >= r["best_zero_shot"] - 0.02
        out["below_best_zs_minus_2"] += acc < r["best_zero_shot"] - 0.02
        out["below_50"] += acc < 0.5
        if fell:
            out["changed"] += 1
            out["changed_fine"] += ok
            out["fixed"] += (not ok) and acc >= r["best_zero_shot"] - 0.02
            out["made_worse"] += acc < r["icm"] - 1e-9
            out["sum_delta_pts"] += 100 * (acc - r["icm"])
        by_task.setdefault((r["model"], r["task"]), []).append((acc, r["best_zero_shot"]))
    gain = {}
    for model in sorted({m for m, _ in by_task}):
        low = [(np.mean([a for a, _ in v]), v[0][1]) for (m, _), v in by_task.items() if m == model and v[0][1] < 0.9]
        if low:
            gain[model] = 100 * float(np.mean([a for a, _ in low]) - np.mean([b for _, b in low]))
    return out | {"mean_gain_pts_best_zs_below_90": gain}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", nargs="*", default=["elicitation", "elicitation_real", "elicitation_test2",
                                                      "elicitation_test3"])
    ap.add_argument("--name", default="fallback_offline")
    args = ap.parse_args(argv)
    names = [n for n in args.results if (RESULTS / f"{n}.json").exists()]
    rows = pair_runs(names)
    roles = [r for r in ROLES if any(x["role"] == r for x in rows)]
    table, doc = [], {}
    for role in roles:
        mine = [x for x in rows if x["role"] == role]
        for name, rule in RULES.items():
            j = judge(mine, rule)
            doc.setdefault(role, {})[name] = j
            gain = ", ".join(f"{m.split('-')[0]} {g:+.1f}" for m, g in j["mean_gain_pts_best_zs_below_90"].items())
            table.append([role, name, f"{j['below_best_zs_minus_2']}/{j['runs']}", j["below_50"], gain or "—",
                          j["changed"], j["changed_fine"], j["fixed"], j["made_worse"], f"{j['sum_delta_pts']:+.1f}"])
    md = md_table(["role", "rule", "runs < best ZS − 2", "runs < 50%", "mean gain vs best ZS (< 90% tasks)",
                   "runs changed", "of them fine before", "fixed", "made worse", "Σ Δacc (pts)"], table)
    write_result(args.name, {"results_read": names, "depart": DEPART, "rules": list(RULES), "by_role": doc,
                             "runs": [{k: v for k, v in x.items() if k != "diagnostics"} for x in rows],
                             "report_md": md})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
