"""Gather finished `icm-rm label` runs (their report.json and config.yaml) into one results file and table:
for runs too long for one benchmark process, such as ICM-ICL with a 1.5B model on CPU, started one per seed.

    python benchmarks/label_runs.py RUN_DIR [RUN_DIR ...] --name NAME

Per run: the claims, its data_seed and search seed, iterations, search time, forward tokens, the accuracy of the
returned labels and every baseline the report holds (vs gold; claims: claim accuracy, pairs: pair accuracy), the
gold-free warnings. Per data_seed (pool): the means over the runs. Writes results/NAME.json. No model runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, report_accuracy, write_result  # noqa: E402


def read_run(run: Path) -> dict:
    """One finished label run as a row; a run without report.json or `.complete` is refused by name."""
    if not (run / ".complete").exists() or not (run / "report.json").exists():
        raise SystemExit(f"label_runs: {run} is not a finished label run (no .complete or report.json)")
    report = json.loads((run / "report.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    return {"run": str(run), "model": cfg["model"], "scorer": cfg["scorer"], "data_path": cfg.get("data_path"),
            "limit_groups": cfg.get("limit_groups"), "data_seed": cfg.get("data_seed"),
            "search_seed": cfg["search"]["seed"], "n_claims": report["n_claims"], "iterations": report["iterations"],
            "time_s": report["time_s"], "forward_tokens": report["forward_tokens"], "u": report["final"]["u"],
            "accuracy": report_accuracy(report["accuracy"]),
            "baselines": {k: report_accuracy(v) for k, v in (report.get("baselines") or {}).items()},
            "warnings": [w["code"] for w in report.get("warnings", [])]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--name", required=True, help="results/<name>.json")
    args = ap.parse_args(argv)
    rows = [read_run(r) for r in args.runs]
    names = sorted({k for r in rows for k in r["baselines"]})
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    table = [[r["data_seed"], r["search_seed"], r["n_claims"], r["iterations"], f"{r['time_s']:.0f}",
              r["forward_tokens"], pct(r["accuracy"]), *(pct(r["baselines"][n]) for n in names),
              ", ".join(r["warnings"]) or "—"] for r in rows]
    pools = defaultdict(list)
    for r in rows:
        pools[r["data_seed"]].append(r)
    means = {str(seed): {"runs": len(rs), "accuracy": sum(r["accuracy"] for r in rs) / len(rs),
                         **{n: sum(r["baselines"][n] for r in rs) / len(rs) for n in names}}
             for seed, rs in pools.items()}
    md = (md_table(["data_seed", "search seed", "claims", "iterations", "search s", "forward tokens", "ICM %",
                    *(f"{n} %" for n in names), "warnings"], table) + "\n\n"
          + md_table(["data_seed (pool)", "runs", "ICM mean %", *(f"{n} mean %" for n in names)],
                     [[seed, m["runs"], pct(m["accuracy"]), *(pct(m[n]) for n in names)] for seed, m in means.items()]))
    write_result(args.name, {"runs": rows, "pool_means": means, "report_md": md})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
