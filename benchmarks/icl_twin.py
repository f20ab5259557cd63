"""Golden-label ICL on preference pairs, with and without the query's twin in its context. A pair gives two claims
("Response 1 is better than Response 2" with the responses in either order) with opposite labels; the paper's
context (every other labeled claim, what `HFScorer` and ICM's P(D) use) shows each query its twin and the twin's
label, which answers the query. This measures how much golden ICL moves with the twin, on the groups
`elicitation_paper.py` runs its in-context columns on. Prints a table, writes benchmarks/results/icl_twin.json.

    python benchmarks/icl_twin.py --models qwen2.5-coder-1.5b-instruct --tasks hh_rlhf alpaca qa_feedback
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402
from elicitation_paper import REAL, accuracy, icl_subset, load_pool  # noqa: E402

from icm_rm.infra.lm import load_causal_lm  # noqa: E402
from icm_rm.label.metrics import sign_labels  # noqa: E402
from icm_rm.scoring.hf import HFScorer  # noqa: E402


def twin_out_scores(scorer: HFScorer, claims, labels: list[bool]) -> np.ndarray:
    """Each claim scored with every labeled claim of *other* groups in context (its own group left out)."""
    out = np.zeros(len(claims))
    for g in sorted({c.group for c in claims}):
        idx = [i for i, c in enumerate(claims) if c.group == g]
        shown = [None if c.group == g else y for c, y in zip(claims, labels)]
        out[idx] = scorer.loo_scores(claims, shown, idx)
    return out


def copy_rate(claims, labels: list[bool], scores: np.ndarray) -> float:
    """Share of claims whose ICL verdict (score > 0) equals the label shown for its twin (its pair's other claim)."""
    verdicts, hits = sign_labels(scores), []
    for i, c in enumerate(claims):
        twins = [j for j, d in enumerate(claims) if d.group == c.group and j != i]
        hits += [verdicts[i] == labels[j] for j in twins]
    return float(np.mean(hits))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["qwen2.5-coder-1.5b-instruct"])
    ap.add_argument("--tasks", nargs="+", default=["hh_rlhf", "alpaca", "qa_feedback"], choices=sorted(REAL))
    ap.add_argument("--real-groups", type=int, default=12, help="groups loaded per set (as elicitation_paper.py)")
    ap.add_argument("--icl-groups", type=int, default=6, help="the first N groups are scored")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--name", default="icl_twin")
    a = ap.parse_args()
    results, rows = {}, []
    for model_name in a.models:
        model, tok = load_causal_lm(model_name, dtype=a.dtype)
        for task in a.tasks:
            pool = load_pool(task, a.real_groups)
            if pool is None or not pool.is_pairwise:
                print(f"[icl_twin] {task}: skipped ({'no shared data' if pool is None else 'not pairs'})")
                continue
            claims = [pool.claims[i] for i in icl_subset(pool.claims, a.icl_groups)]
            gold = [bool(pool.gold[c.id]) for c in claims]
            t0 = time.time()
            scorer = HFScorer(model, tok, max_demos=None)
            with_twin = scorer.loo_scores(claims, gold, list(range(len(claims))))
            without = twin_out_scores(scorer, claims, gold)
            r = {"pairs": len({c.group for c in claims}), "claims": len(claims),
                 "golden_icl_twin_in": accuracy(pool, claims, sign_labels(with_twin), with_twin),
                 "golden_icl_twin_out": accuracy(pool, claims, sign_labels(without), without),
                 "copies_twin_label_twin_in": copy_rate(claims, gold, with_twin),
                 "seconds": time.time() - t0, "forward_tokens": scorer.stats.forward_tokens}
            results.setdefault(model_name, {})[task] = r
            rows.append([model_name, task, r["pairs"], f"{100 * r['golden_icl_twin_in']:.1f}",
                         f"{100 * r['golden_icl_twin_out']:.1f}", f"{100 * r['copies_twin_label_twin_in']:.1f}",
                         f"{r['seconds']:.0f}"])
            print(f"[icl_twin] {model_name} / {task}: {r}", flush=True)
    table = md_table(["model", "task", "pairs", "golden ICL, twin in context %", "twin left out %",
                      "verdict = twin's label % (twin in)", "s"], rows)
    print(table)
    print(f"wrote {write_result(a.name, {'settings': vars(a), 'results': results, 'table_md': table})}")


if __name__ == "__main__":
    main()
