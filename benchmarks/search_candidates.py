"""DEV tasks only: how many chains does the probe search need, and which candidates win?

    python benchmarks/search_candidates.py [--models smollm2-135m gemma3-270m] [--seeds 3] [--chains 16]

Per dev task (icm_rm/data/protocol.py), model and seed, one search with `--chains` random chains plus one chain per
zero-shot verdict (default probe, default search settings otherwise) records every chain's best-seen labeling, its
final state, their U and accuracy vs gold (read only here), and the wall time per chain. Then it replays the result
selection of docs/icm.md on subsets of the chains: k random chains (k = 1, 2, 4, 8, 16), with and without the verdict
chains and mirrors, and the old rule (best *final* U of the random chains, mirror only on an exact U tie). Chains
are independent (chain c's random stream is [seed, c]), so the first k chains are what `restarts = k` would run.
Writes results/search_candidates.json. Test tasks are refused: defaults are chosen on dev tasks only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, md_table, write_result  # noqa: E402

from icm_rm.data.protocol import DEV, load_protocol_task, protocol_task, tasks_of  # noqa: E402
from icm_rm.label.candidates import Candidate, rank, verdict_labels  # noqa: E402
from icm_rm.label.search_state import decode_labels  # noqa: E402
from icm_rm.label.metrics import claim_accuracy, pair_accuracy, pair_decisions  # noqa: E402
from icm_rm.label.search import ICMSearch, SearchConfig  # noqa: E402
from icm_rm.scoring.settings import ProbeConfig  # noqa: E402
from labeler import labeler_parts  # noqa: E402

KS = (1, 2, 4, 8, 16)


def accuracy(pool, claims, labels, scores) -> float:
    if pool.is_pairwise:
        return pair_accuracy(claims, pair_decisions(claims, labels, scores), pool.gold)
    return claim_accuracy(claims, labels, pool.gold)


def run_one(pool, parts, seed: int, chains: int, iterations: int) -> dict:
    claims, scorer, verdicts, sign, rules = parts
    cfg = SearchConfig(restarts=chains, replicas=1, seed=seed, iterations=iterations)
    search = ICMSearch(claims, scorer, rules, cfg, verdicts=verdicts, sign=sign)
    times: list[float] = []
    t = [time.perf_counter()]

    def on_step(st) -> None:
        if st.iteration == 1 and st.chain > 0:
            times.append(time.perf_counter() - t[0])
            t[0] = time.perf_counter()

    res = search.run(on_step=on_step)
    times.append(time.perf_counter() - t[0])
    acc = lambda ls: accuracy(pool, claims, ls, search.evaluate(ls).scores)  # noqa: E731
    cands = {(c.chain, c.mirrored): c for c in res.candidates}
    chain_rows = []
    for st in res.chains:
        best = cands[(st.chain, False)]
        chain_rows.append({"chain": st.chain, "origin": st.origin, "iterations": st.iteration,
                           "final_u": st.u, "final_acc": acc(st.labels), "best_u": best.u,
                           "best_acc": acc(decode_labels(best.labels)), "best_iteration": best.iteration,
                           "mirror_u": cands[(st.chain, True)].u,
                           "mirror_acc": acc(decode_labels(cands[(st.chain, True)].labels))})
    n_rand = chains
    strategies = {}
    for k in KS:
        if k > n_rand:
            continue
        pick = lambda cs: [c for c in res.candidates if c.chain < k or (cs and c.source != "random")]  # noqa: E731
        for name, cs, mirrors in ((f"random{k}", False, False), (f"random{k}+mirror", False, True),
                                  (f"random{k}+mirror+verdict", True, True)):
            pool_c = [c for c in pick(cs) if mirrors or not c.mirrored]
            win: Candidate = rank(pool_c)[0]
            labels = decode_labels(win.labels)
            strategies[name] = {"u": win.u, "acc": acc(labels), "source": win.source, "mirrored": win.mirrored,
                                "labels": win.labels}
        # the old rule: best final U among k random chains, then anchor_sign only on an exact tie
        rows = [r for r in res.chains if r.origin == "random" and r.chain < k]
        b = max(rows, key=lambda r: (r.u, -r.chain))
        old, _ = anchor_sign_old(claims, b.labels, sign, search)
        strategies[f"old{k}"] = {"u": search.evaluate(old).u, "acc": acc(old)}
    verdict_only = [c for c in res.candidates if c.source != "random"]
    strategies["verdict_chains_only"] = {"u": rank(verdict_only)[0].u,
                                         "acc": acc(decode_labels(rank(verdict_only)[0].labels))}
    gold = [bool(pool.gold[c.id]) for c in claims]
    objective = {"gold": search.evaluate(gold).u, "winner": res.candidates[0].u}
    objective |= {f"verdict:{k}": search.evaluate(verdict_labels(s)).u
                  for k, s in verdicts.items()}
    return {"chains": chain_rows, "strategies": strategies, "chain_seconds": times, "objective": objective,
            "verdicts_acc": {k: acc(verdict_labels(s))
                             for k, s in verdicts.items()}}


def anchor_sign_old(claims, labels, signal, search):
    """The rule before this change: the mirror only when its U equals the labeling's and the verdict prefers it."""
    mirror = [not y for y in labels]
    agree = float(sum(s if y else -s for y, s in zip(labels, np.nan_to_num(signal))))
    u, um = search.evaluate(labels).u, search.evaluate(mirror).u
    if agree < 0 and abs(um - u) <= 1e-9 * max(1.0, abs(u)):
        return mirror, True
    return labels, False


def summary(results: dict) -> str:
    rows = []
    names = [f"old{k}" for k in KS] + [f"random{k}+mirror" for k in KS] + [f"random{k}+mirror+verdict" for k in KS]
    for name in names + ["verdict_chains_only"]:
        accs = [r["strategies"][name]["acc"] for m in results.values() for t in m.values() for r in t["seeds"]
                if name in r["strategies"]]
        if not accs:
            continue
        rows.append([name, f"{100 * np.mean(accs):.1f}", f"{100 * np.min(accs):.1f}", str(len(accs))])
    return md_table(["selection", "mean acc", "min acc", "runs"], rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--tasks", nargs="*", default=None, help="dev tasks (default: all of them)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--chains", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=SearchConfig().iterations)
    ap.add_argument("--zero-shot-weight", type=float, default=ProbeConfig().zero_shot_weight)
    ap.add_argument("--zero-shot-scale", default=ProbeConfig().zero_shot_scale, choices=("raw", "rms"))
    ap.add_argument("--pca-dims", type=int, default=ProbeConfig().pca_dims, help="0 = no PCA")
    ap.add_argument("--name", default="search_candidates")
    args = ap.parse_args(argv)
    tasks = args.tasks or tasks_of(DEV)
    for t in tasks:
        if protocol_task(t).role != DEV:
            ap.error(f"'{t}' is a test task: defaults are chosen on dev tasks only")
    torch.set_num_threads(1)
    probe = ProbeConfig(zero_shot_weight=args.zero_shot_weight, pca_dims=args.pca_dims or None,
                        zero_shot_scale=args.zero_shot_scale)
    settings = {"seeds": args.seeds, "chains": args.chains, "iterations": args.iterations, "tasks": tasks,
                "zero_shot_weight": probe.zero_shot_weight, "pca_dims": probe.pca_dims,
                "zero_shot_scale": probe.zero_shot_scale}
    results: dict = {}
    for m in args.models:
        for task in tasks:
            pool = load_protocol_task(task, SHARED)
            if pool is None:
                continue
            parts = labeler_parts(pool, m, probe)
            print(f"[search_candidates] {m} / {task} …", file=sys.stderr, flush=True)
            t0 = time.time()
            seeds = [run_one(pool, parts, s, args.chains, args.iterations) for s in range(args.seeds)]
            results.setdefault(m, {})[task] = {"n_claims": len(pool.claims), "seeds": seeds,
                                               "seconds": time.time() - t0}
            write_result(args.name, {"settings": settings, "results": results, "table_md": summary(results)})
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
