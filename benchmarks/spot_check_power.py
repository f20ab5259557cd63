"""How often the label stage's random spot check (`spot_check.jsonl`: 10 pairs drawn at random; "if 3 or more are
wrong, do not train on these labels") would flag each stored labeling, judged offline on the elicitation runs.

    python benchmarks/spot_check_power.py [--results elicitation elicitation_real elicitation_test2 ...]

Every pair-pool run of the given results/<name>.json files is one row, with the accuracy of the labels the label
stage returns under today's default (runs made before the likelihood fallback existed: the fallback rule applied to
their stored diagnostics, as `fallback_offline.py` does; later runs: what they returned). A run with n pairs of which
W are wrong is flagged with the hypergeometric probability that a draw of k = min(10, n) pairs holds at least
`spot_check_threshold(k)` wrong ones. Printed per accuracy band: runs, mean / min / max chance of a flag; and every
run below 60% on its own line. Writes results/spot_check_power.json. No model runs.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, md_table, write_result  # noqa: E402
from fallback_offline import RULES, pair_runs  # noqa: E402

from icm_rm.label.outputs import SPOT_SIZE, spot_check_threshold  # noqa: E402

DEFAULT_RULE = "uncertain (departs, or replicas/chains disagree) [default]"
BANDS = ((0.9, 1.01, "≥ 90%"), (0.7, 0.9, "70–90%"), (0.5, 0.7, "50–70%"), (0.0, 0.5, "< 50%"))


def p_flag(n: int, wrong: int, k: int = SPOT_SIZE) -> float:
    """P(a draw of min(k, n) of n pairs, `wrong` of them wrong, holds ≥ spot_check_threshold wrong ones)."""
    k = min(k, n)
    t = spot_check_threshold(k)
    return sum(math.comb(wrong, j) * math.comb(n - wrong, k - j) for j in range(t, k + 1)) / math.comb(n, k)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", nargs="*", default=["elicitation", "elicitation_real", "elicitation_test2",
                                                      "elicitation_test3", "elicitation_test4"])
    ap.add_argument("--name", default="spot_check_power")
    args = ap.parse_args(argv)
    names = [n for n in args.results if (RESULTS / f"{n}.json").exists()]
    rows = []
    for r in pair_runs(names):
        acc = r["returned"] if r["returned"] is not None else (r["likelihood"] if RULES[DEFAULT_RULE](r) else r["icm"])
        wrong = round((1 - acc) * r["n_pairs"])
        rows.append({k: r[k] for k in ("file", "model", "task", "role", "seed", "n_pairs")}
                    | {"returned": acc, "wrong": wrong, "p_flag": p_flag(r["n_pairs"], wrong)})
    bands = []
    for lo, hi, name in BANDS:
        mine = [x["p_flag"] for x in rows if lo <= x["returned"] < hi]
        if mine:
            bands.append([name, len(mine), f"{100 * sum(mine) / len(mine):.1f}%", f"{100 * min(mine):.1f}%",
                          f"{100 * max(mine):.1f}%"])
    low = [[x["role"], x["model"], x["task"], x["seed"], x["n_pairs"], f"{100 * x['returned']:.1f}",
            f"{100 * x['p_flag']:.1f}%"] for x in sorted(rows, key=lambda x: x["returned"]) if x["returned"] < 0.6]
    md = (md_table(["labels returned (accuracy vs gold)", "runs", "mean chance of a flag", "min", "max"], bands)
          + "\n\n" + md_table(["role", "model", "task", "seed", "pairs", "returned %", "chance of a flag"], low))
    write_result(args.name, {"results_read": names, "spot_size": SPOT_SIZE, "rule": DEFAULT_RULE,
                             "runs": rows, "report_md": md})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
