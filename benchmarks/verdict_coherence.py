"""Which zero-shot verdict could the hybrid term use? Dev tasks only (issue 16): per pair task and model, each
verdict's sign labeling (T/F within-pair, likelihood, and their RMS-normalised sum) scored by the plain probe
(zero_shot_weight 0, leave-one-group-out) — its coherence P = mean y·s — next to its accuracy vs gold.

    python benchmarks/verdict_coherence.py [--models …] [--tasks …]

A gold-free rule "give the hybrid term the most coherent verdict" is usable only if the most coherent verdict is
also the more accurate one on every dev task. Writes results/verdict_coherence.json and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, md_table, write_result  # noqa: E402

from icm_rm.data.protocol import DEV, load_protocol_task, protocol_task, tasks_of  # noqa: E402
from icm_rm.label import LabelConfig  # noqa: E402
from icm_rm.scoring.registry import build_scorer  # noqa: E402
from icm_rm.scoring.verdicts import zero_shot_signal  # noqa: E402


def _rms(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)


def measure(task: str, model: str) -> dict:
    """Per verdict: the plain probe's coherence P of its sign labeling, its LOO sign accuracy, its gold accuracy."""
    cs = load_protocol_task(task, SHARED)
    scorer = build_scorer(LabelConfig(model=model), cs)
    v = {k: zero_shot_signal(cs.claims, s) for k, s in scorer.zero_shot_verdicts(cs.claims).items()}  # as the stage
    v["sum"] = _rms(v["tf"]) + _rms(v["likelihood"])
    plain, n = scorer.baseline(), len(cs.claims)
    gold = np.array([cs.gold[c.id] for c in cs.claims])
    out = {"tf_likelihood_agreement": float(np.mean((v["tf"] > 0) == (v["likelihood"] > 0)))}
    for kind, s in v.items():
        labels = [bool(x > 0) for x in s]
        y = np.where(labels, 1.0, -1.0)
        pred = plain.loo_scores(cs.claims, labels, list(range(n)))
        out[kind] = {"coherence_p": float(np.mean(y * pred)), "loo_sign_accuracy": float(np.mean(np.sign(pred) == y)),
                     "gold_accuracy": float(np.mean(np.array(labels) == gold))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--tasks", nargs="*", default=None, help="dev pair tasks (default: the dev fact tables)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tasks = args.tasks or [t for t in tasks_of(DEV) if protocol_task(t).source == "fact_table"]
    results, rows = {}, []
    for m in args.models:
        for t in tasks:
            r = results.setdefault(m, {})[t] = measure(t, m)
            pick = max(("tf", "likelihood"), key=lambda k: r[k]["coherence_p"])
            best = max(("tf", "likelihood"), key=lambda k: r[k]["gold_accuracy"])
            rows.append([m, t, *(f"{r[k]['coherence_p']:.3f} / {100 * r[k]['gold_accuracy']:.1f}"
                                 for k in ("tf", "likelihood", "sum")),
                         f"{100 * r['tf_likelihood_agreement']:.1f}", pick, "yes" if pick == best else "NO"])
    table = md_table(["model", "task", "T/F: P / acc", "likelihood: P / acc", "sum: P / acc", "T/F = lik (%)",
                      "most coherent", "= more accurate?"], rows)
    write_result("verdict_coherence", {"settings": {"models": args.models, "tasks": tasks}, "results": results,
                                       "report_md": table})
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
