"""α sensitivity: accuracy and accepted flips over iterations for α ∈ {10, 20, 30, 50, 100} (one PNG).

    python benchmarks/alpha_sensitivity.py [--quick] [--model smollm2-135m] [--task capitals] [--scorer pure|hybrid]

Runs the ICM search (probe scorer) on a built-in task for each α and seed, records accuracy vs gold from the label
snapshots (reports only) and accepted flips over iterations; writes
results/alpha_sensitivity[_hybrid][_quick].json and .png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, md_table, write_result  # noqa: E402

from icm_rm.data.builtin import builtin_claimset  # noqa: E402
from icm_rm.data.task_registry import get_task  # noqa: E402
from icm_rm.infra.io import save_figure  # noqa: E402
from icm_rm.infra.lm import load_causal_lm  # noqa: E402
from icm_rm.infra.model_registry import icm_rm_home  # noqa: E402
from icm_rm.label.search import ICMSearch, SearchConfig  # noqa: E402
from icm_rm.label.search_state import decode_labels  # noqa: E402
from icm_rm.scoring.features import FeatureExtractor  # noqa: E402
from icm_rm.scoring.likelihood import ResponseLikelihood  # noqa: E402
from icm_rm.scoring.probe import ProbeScorer  # noqa: E402
from icm_rm.scoring.settings import ProbeConfig  # noqa: E402
from icm_rm.scoring.verdicts import anchor_sign  # noqa: E402

ALPHAS = (10.0, 20.0, 30.0, 50.0, 100.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="capitals")
    ap.add_argument("--scorer", default="pure", choices=("pure", "hybrid"))
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    iters = 600 if args.quick else 1500
    model, tok = load_causal_lm(args.model)
    pool = builtin_claimset(args.task, form="pairs", split="train")
    claims, gold = pool.claims, [bool(pool.gold[c.id]) for c in pool.claims]
    ex = FeatureExtractor(model, tok, cache_dir=icm_rm_home() / "features", show_progress=False)
    layer = round(2 * model.config.num_hidden_layers / 3)
    lik = ResponseLikelihood(model, tok, show_progress=False)
    prior = lambda cl: lik.claim_signal(cl, pool.pairs)  # noqa: E731
    cfg = ProbeConfig(zero_shot_weight=0.0) if args.scorer == "pure" else ProbeConfig()
    scorer = ProbeScorer(lambda t: (ex.get(t)[0][:, layer], ex.get(t)[1]), cfg, prior=prior)
    rules = get_task(args.task).rules
    runs = {}
    for alpha in ALPHAS:
        for seed in range(args.seeds):
            search = ICMSearch(claims, scorer, rules, SearchConfig(alpha=alpha, iterations=iters, seed=seed,
                                                                   patience=0, snapshot_every=10, restarts=1,
                                                                   replicas=1))
            r = search.run()
            final, _ = anchor_sign(claims, r.labels, prior(claims), lambda ls: search.evaluate(ls).u)
            c = r.chains[0]
            curve = []
            for it, snap in c.snapshots:
                labels = decode_labels(snap)
                lab = [k for k, y in enumerate(labels) if y is not None]
                acc = float(np.mean([labels[k] == gold[k] for k in lab])) if lab else float("nan")
                curve.append([it, max(acc, 1 - acc)])  # before anchoring the side is arbitrary
            runs[f"{alpha}/{seed}"] = {"alpha": alpha, "seed": seed, "final_accuracy": float(np.mean(
                [a == b for a, b in zip(final, gold)])), "accepted": [[h[0], h[5]] for h in c.history],
                "accuracy_curve": curve, "u": r.evaluation.u, "i": r.evaluation.i}
    rows = []
    for alpha in ALPHAS:
        rs = [v for v in runs.values() if v["alpha"] == alpha]
        acc = [v["final_accuracy"] for v in rs]
        rows.append([alpha, f"{100 * np.mean(acc):.1f} ± {100 * (max(acc) - min(acc)) / 2:.1f}",
                     f"{np.mean([v['accepted'][-1][1] for v in rs]):.0f}", f"{np.mean([v['i'] for v in rs]):.1f}"])
    table = md_table(["α", "final accuracy (mean ± half-range)", "accepted flips", "final I(D)"], rows)
    print(table)
    name = "alpha_sensitivity" + ("_hybrid" if args.scorer == "hybrid" else "") + ("_quick" if args.quick else "")
    plot(runs, RESULTS / f"{name}.png", f"{args.task}, {args.model}, {args.scorer} probe")
    write_result(name, {"settings": vars(args) | {"iterations": iters}, "table_md": table,
                                       "runs": runs})
    return 0


def plot(runs: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    colors = dict(zip(ALPHAS, plt.cm.viridis(np.linspace(0, 0.9, len(ALPHAS)))))
    for v in runs.values():
        lab = f"α={v['alpha']:g}" if v["seed"] == 0 else None
        c = np.array(v["accuracy_curve"])
        a1.plot(c[:, 0], 100 * c[:, 1], color=colors[v["alpha"]], lw=1, alpha=0.8, label=lab)
        h = np.array(v["accepted"])
        a2.plot(h[:, 0], h[:, 1], color=colors[v["alpha"]], lw=1, alpha=0.8, label=lab)
    a1.set(xlabel="iteration", ylabel="accuracy of labeled claims (%)", title=f"accuracy — {title}", ylim=(40, 101))
    a2.set(xlabel="iteration", ylabel="accepted proposals", title="accepted flips")
    a1.legend(fontsize=8)
    a2.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
