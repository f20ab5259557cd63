"""Are an ICM labeling's errors where its confidence is lowest? Per pair task, model and seed: the label stage with
every default (as `benchmarks/elicitation.py` runs it), then the pairs of `preferences.jsonl` ordered by `margin`
(the labeler's confidence) and, per fraction q dropped from the bottom (`train-rm --drop_least_confident q`):
the kept pairs' accuracy vs gold, the errors removed and the correct pairs removed.

    python benchmarks/label_confidence.py [--roles dev] [--models smollm2-135m gemma3-270m] [--seeds 0 1 2]

Dev tasks choose the RM stage's `drop_least_confident` (with the dev RL round in BENCHMARKS.md §5); the other roles
only report it. Gold is read from `preferences_gold.jsonl` (reports only). Writes results/label_confidence[_ROLE].json
and prints one table per role (sums over tasks × models × seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, md_table, write_result  # noqa: E402
from elicitation import label_config  # noqa: E402

from icm_rm.data.preferences import load_preferences  # noqa: E402
from icm_rm.data.protocol import DEV, load_protocol_task, tasks_of  # noqa: E402
from icm_rm.label import run_label  # noqa: E402
from icm_rm.reward.data import drop_least_confident  # noqa: E402

FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3)


def pair_outcomes(out: Path) -> list[tuple[float, bool]]:
    """(margin, label right?) per pair of one label run."""
    gold = {ex.id: ex.chosen for ex in load_preferences(str(out / "preferences_gold.jsonl"), format="trl").examples}
    return [(float(ex.margin), gold[ex.id] == ex.chosen)
            for ex in load_preferences(str(out / "preferences.jsonl"), format="trl").examples]


def drop_table(outcomes: list[tuple[float, bool]]) -> dict[str, dict]:
    """Per fraction: pairs kept, errors kept and removed, correct pairs removed (the RM stage's own rule)."""
    exs = [SimpleNamespace(margin=m, ok=ok, id=str(i)) for i, (m, ok) in enumerate(outcomes)]
    rows = {}
    for q in FRACTIONS:
        kept, n_drop = drop_least_confident(exs, q)
        wrong_kept = sum(not e.ok for e in kept)
        wrong = sum(not e.ok for e in exs)
        rows[f"{q:g}"] = {"kept": len(kept), "dropped": n_drop, "wrong_kept": wrong_kept,
                          "wrong_removed": wrong - wrong_kept, "right_removed": n_drop - (wrong - wrong_kept)}
    return rows


def run_one(task: str, model: str, seed: int) -> dict | None:
    cs = load_protocol_task(task, SHARED)
    if cs is None or not cs.is_pairwise:  # a real set not beside the checkout, or a claim task: no pairs to drop
        return None
    with tempfile.TemporaryDirectory(prefix=f"conf_{task}_") as tmp:
        out = Path(tmp) / "run"
        cfg = label_config(task, model, seed, out, quick=False)
        run_label(cfg)
        return drop_table(pair_outcomes(out))


def summarise(rows: list[dict]) -> list[dict]:
    """Sums over runs per fraction: kept accuracy, share of the errors removed, error rate among the dropped."""
    out = []
    for q in FRACTIONS:
        k = f"{q:g}"
        kept = sum(r[k]["kept"] for r in rows)
        wk = sum(r[k]["wrong_kept"] for r in rows)
        wr = sum(r[k]["wrong_removed"] for r in rows)
        rr = sum(r[k]["right_removed"] for r in rows)
        out.append({"fraction": q, "kept": kept, "kept_accuracy": 1 - wk / kept if kept else None,
                    "errors_removed": wr, "errors_total": wk + wr, "right_removed": rr,
                    "dropped_error_rate": wr / (wr + rr) if wr + rr else None,
                    "runs_with_fewer_errors": sum(r[k]["wrong_removed"] > 0 for r in rows),
                    "runs_losing_accuracy": sum(
                        (r[k]["kept"] - r[k]["wrong_kept"]) / r[k]["kept"]
                        < (r["0"]["kept"] - r["0"]["wrong_kept"]) / r["0"]["kept"] - 1e-12 for r in rows)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roles", nargs="*", default=[DEV])
    ap.add_argument("--models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--tasks", nargs="*", default=None, help="only these tasks of the roles")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results: dict = {}
    for role in args.roles:
        runs = {}
        for task in tasks_of(role):
            if args.tasks and task not in args.tasks:
                continue
            for model in args.models:
                for seed in args.seeds:
                    r = run_one(task, model, seed)
                    if r is not None:
                        runs[f"{task}/{model}/s{seed}"] = r
                        print(f"{role} {task} {model} s{seed}: errors {r['0']['wrong_kept']}/{r['0']['kept']}, "
                              f"after 0.1: {r['0.1']['wrong_kept']}/{r['0.1']['kept']}", flush=True)
        summary = summarise(list(runs.values())) if runs else []
        results[role] = {"runs": runs, "summary": summary}
        print(f"\n## {role}: {len(runs)} runs (pair tasks × models × seeds)\n")
        print(md_table(["dropped", "kept", "kept accuracy", "errors removed", "correct removed",
                        "error rate of dropped", "runs with fewer errors", "runs losing accuracy"],
                       [[f"{s['fraction']:g}", s["kept"], f"{100 * s['kept_accuracy']:.1f}",
                         f"{s['errors_removed']}/{s['errors_total']}", s["right_removed"],
                         "—" if s["dropped_error_rate"] is None else f"{100 * s['dropped_error_rate']:.1f}",
                         s["runs_with_fewer_errors"], s["runs_losing_accuracy"]] for s in summary]))
    name = "label_confidence" + ("" if args.roles == [DEV] else "_" + "_".join(args.roles))
    write_result(name, {"roles": args.roles, "models": args.models, "seeds": args.seeds, "fractions": FRACTIONS,
                        "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
