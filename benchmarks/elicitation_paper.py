"""Elicitation quality by method, as in the ICM paper's table: zero-shot, random/golden ICL, the supervised probe,
ICM-probe (pure and hybrid) and ICM-ICL per task and model, over 3 seeds (the issue-16 protocol with the label
stage's defaults is benchmarks/elicitation.py).

    python benchmarks/elicitation_paper.py [--quick] [--models smollm2-135m gemma3-270m] [--tasks capitals truthfulqa …]

Methods (accuracy vs gold; pairs: pair accuracy, claims: claim accuracy):
  zero-shot T/F      the LM's True/False log-odds with no context (pairs: the two orderings compared)
  zero-shot lik.     pairs only: which response the LM finds more likely (mean token log-prob)
  random ICL         in-context log-odds with random-label demonstrations (max_demos per query) *
  golden ICL         the same with gold-label demonstrations *
  supervised probe   the probe (pure, no hybrid term) trained on gold labels, leave-one-group-out
  ICM-probe          ICM with the pure probe scorer (sign anchored by the LM's zero-shot verdict)
  ICM-probe hybrid   ICM with the default hybrid probe (probe + 0.3 × zero-shot verdict)
  ICM-ICL            ICM with the in-context scorer (max_demos per query) *
* on the first `icl_groups` groups only: each in-context re-score is a forward pass per claim, slow on CPU.
Seeds vary the search (and the random labels); mean ± half-range over seeds. Writes results/elicitation_paper.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, finished_tasks, md_table, write_result  # noqa: E402

from icm_rm.data.builtin import builtin_claimset  # noqa: E402
from icm_rm.data.protocol import load_protocol_task  # noqa: E402
from icm_rm.data.spec import load_claimset  # noqa: E402
from icm_rm.data.task_registry import get_task  # noqa: E402
from icm_rm.infra.lm import load_causal_lm  # noqa: E402
from icm_rm.infra.model_registry import icm_rm_home  # noqa: E402
from icm_rm.label.metrics import claim_accuracy, pair_accuracy, pair_decisions, sign_labels  # noqa: E402
from icm_rm.label.search import ICMSearch, SearchConfig  # noqa: E402
from icm_rm.scoring.features import FeatureExtractor  # noqa: E402
from icm_rm.scoring.hf import HFScorer  # noqa: E402
from icm_rm.scoring.likelihood import ResponseLikelihood  # noqa: E402
from icm_rm.scoring.probe import ProbeScorer  # noqa: E402
from icm_rm.scoring.settings import ProbeConfig  # noqa: E402
from icm_rm.scoring.verdicts import anchor_sign, zero_shot_signal  # noqa: E402

BUILTIN = ["capitals", "us_state_capitals", "continents", "element_symbols", "animal_classes", "languages"]
REAL = {  # name → (format, file, groups)
    "truthfulqa": ("icm_truthfulqa", "icm_unsupervised_elicitation/train_truthfulqa.json", 80),
    "gsm8k": ("icm_gsm8k", "icm_unsupervised_elicitation/test_gsm8k.json", 60),
    "alpaca": ("icm_alpaca", "icm_unsupervised_elicitation/test_alpaca.json", 80),
    "truthfulqa_preference": ("icm_truthfulqa_preference",
                              "icm_unsupervised_elicitation/train_truthfulqa_preference.json", 80),
    "hh_rlhf": ("hh_rlhf", "hh_rlhf", 80),
    "qa_feedback": ("fgrlhf", "fine_grained_rlhf_qa_feedback/dev_feedback.json", 80),
}
PAPER = [("GSM8K verification (8B)", 48.0, 64.8, 81.1, 81.5, "—"), ("TruthfulQA (70B)", 60.3, 74.1, 91.0, 92.1, "—"),
         ("Alpaca preferences (70B)", 49.7, 66.7, 68.1, "—", 65.5)]


def load_pool(task: str, real_groups: int | None = None):
    if task in REAL:
        fmt, rel, groups = REAL[task]
        groups = real_groups or groups
        path = SHARED / rel
        if not path.exists():
            return None
        return load_claimset(fmt, str(path), limit_groups=groups, seed=0)
    name, _, form = task.partition(":")  # "capitals:claims" = the candidate-answer form
    if name not in BUILTIN and not form:  # a protocol family (the dev/test task families of elicitation.py)
        return load_protocol_task(name, SHARED)
    return builtin_claimset(name, form=form or "pairs", split="train")


def accuracy(pool, claims, labels, scores) -> float:
    if pool.is_pairwise:
        return pair_accuracy(claims, pair_decisions(claims, labels, scores), pool.gold)
    return claim_accuracy(claims, labels, pool.gold)


def icl_subset(claims, icl_groups: int) -> list[int]:
    """Indices of the claims in the first `icl_groups` groups (sorted by name): where the in-context methods run."""
    keep = set(sorted({c.group for c in claims})[:icl_groups])
    return [i for i, c in enumerate(claims) if c.group in keep]


def run_task(task: str, model_name: str, model, tok, seeds: list[int], icl_groups: int, icl_iters: int,
             icl_seeds: int, iters: int, max_demos: int, real_groups: int | None, icl: bool = True) -> dict:
    pool = load_pool(task, real_groups)
    if pool is None:
        return {"skipped": f"shared data for {task} not found"}
    claims = pool.claims
    gold = [bool(pool.gold[c.id]) for c in claims]
    rules = get_task(pool.name).rules if pool.name else get_task(task.partition(":")[0]).rules
    q = list(range(len(claims)))
    out: dict = {"n_claims": len(claims), "n_groups": len({c.group for c in claims}), "pairwise": pool.is_pairwise}
    t = time.time()
    ex = FeatureExtractor(model, tok, cache_dir=icm_rm_home() / "features", show_progress=False)
    n_layers = model.config.num_hidden_layers
    layer = round(2 * n_layers / 3)
    states, z = ex.get([c.text for c in claims])
    src = lambda texts: (ex.get(texts)[0][:, layer], ex.get(texts)[1])  # noqa: E731
    lik = ResponseLikelihood(model, tok, show_progress=False)
    prior = (lambda cl: lik.claim_signal(cl, pool.pairs)) if pool.is_pairwise else None
    pure = ProbeScorer(src, ProbeConfig(zero_shot_weight=0.0), prior=prior)
    hybrid = ProbeScorer(src, ProbeConfig(), prior=prior)
    zs = zero_shot_signal(claims, z) if pool.is_pairwise else z
    res: dict[str, list[float]] = {}
    res["zero-shot T/F"] = [accuracy(pool, claims, sign_labels(z), zs)]
    anchor_z = prior(claims) if prior else z
    if pool.is_pairwise:
        sig = zero_shot_signal(claims, anchor_z)
        res["zero-shot lik."] = [accuracy(pool, claims, sign_labels(sig), sig)]
    s = pure.loo_scores(claims, gold, q)
    res["supervised probe"] = [accuracy(pool, claims, sign_labels(s), s)]
    # In-context methods run on a subset of groups (on CPU each re-score is a forward pass per claim):
    sub_idx = icl_subset(claims, icl_groups)
    sub = [claims[i] for i in sub_idx]
    sub_gold = [gold[i] for i in sub_idx]
    sq = list(range(len(sub)))
    icl_scorer = HFScorer(model, tok, max_demos=max_demos or None)  # 0: every labeled claim in context
    if icl:
        sc = icl_scorer.loo_scores(sub, sub_gold, sq)
        res["golden ICL"] = [accuracy(pool, sub, sign_labels(sc), sc)]
    res["random ICL"], res["ICM-probe"], res["ICM-probe hybrid"], res["ICM-ICL"] = [], [], [], []
    costs = []
    for seed in seeds:
        if icl:
            rnd = [bool(x) for x in np.random.default_rng(seed).random(len(sub)) < 0.5]
            sc = icl_scorer.loo_scores(sub, rnd, sq)
            res["random ICL"].append(accuracy(pool, sub, sign_labels(sc), sc))
        for name, scorer in (("ICM-probe", pure), ("ICM-probe hybrid", hybrid)):
            search = ICMSearch(claims, scorer, rules, SearchConfig(iterations=iters, restarts=4, seed=seed,
                                                                    patience=400))
            r = search.run()
            labels, _ = anchor_sign(claims, r.labels, anchor_z, lambda ls: search.evaluate(ls).u)
            res[name].append(accuracy(pool, claims, labels, search.evaluate(labels).scores))
        if seed - seeds[0] >= icl_seeds or not icl:
            continue
        scorer = HFScorer(model, tok, max_demos=max_demos or None)
        t_icl = time.time()
        search = ICMSearch(sub, scorer, rules, SearchConfig(iterations=icl_iters, seed=seed,
                                                            patience=min(icl_iters, 300)))
        r = search.run()
        res["ICM-ICL"].append(accuracy(pool, sub, r.labels, r.evaluation.scores))
        costs.append({"claims": len(sub), "iterations": r.chains[0].iteration,
                      "labeled": sum(y is not None for y in r.labels),
                      "forward_tokens": scorer.stats.forward_tokens, "seconds": time.time() - t_icl})
    out["icl_subset"] = {"groups": len({c.group for c in sub}), "claims": len(sub)}
    out["accuracy"] = {k: {"mean": float(np.mean(v)), "half_range": float((max(v) - min(v)) / 2), "runs": v}
                       for k, v in res.items() if v}
    out["icm_icl_cost"] = costs
    out["seconds"] = time.time() - t
    return out


METHODS = ["zero-shot T/F", "zero-shot lik.", "random ICL", "golden ICL", "supervised probe", "ICM-probe",
           "ICM-probe hybrid", "ICM-ICL"]


def tables(results: dict) -> tuple[str, str]:
    """(our accuracy table, the paper's table) in markdown."""
    rows = []
    for m, per in results.items():
        for task, r in per.items():
            if "skipped" in r:
                rows.append([m, task, r["skipped"]] + [""] * (len(METHODS) - 1))
                continue
            acc = r["accuracy"]
            icl = f"; ICL: {r['icl_subset']['groups']}" if "golden ICL" in acc else ""
            rows.append([m, f"{task} ({r['n_groups']} groups{icl})"] + [
                f"{100 * acc[k]['mean']:.1f}" + (f" ± {100 * acc[k]['half_range']:.1f}" if len(acc[k]["runs"]) > 1
                                                 else "") if k in acc else "—" for k in METHODS])
    paper = md_table(["task (paper, Llama)", "zero-shot base", "zero-shot chat", "ICM", "golden", "human"],
                     [list(p) for p in PAPER])
    return md_table(["model", "task"] + METHODS, rows), paper


def save(name: str, settings: dict, results: dict, complete: bool) -> None:
    table, paper = tables(results)
    write_result(name, {"settings": settings, "complete": complete, "results": results, "table_md": table,
                        "paper_table_md": paper})


def merge(name: str, parts: list[Path]) -> int:
    """Combine per-model result files (e.g. two models run in parallel) into results/<name>.json."""
    docs = [json.loads(p.read_text()) for p in parts]
    results = {m: per for d in docs for m, per in d["results"].items()}
    settings = {**docs[0]["settings"], "models": list(results), "merged_from": [p.name for p in parts]}
    save(name, settings, results, all(d.get("complete", True) for d in docs))
    print(tables(results)[0])
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="capitals + truthfulqa, SmolLM2 only, 3 seeds, short searches")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--tasks", nargs="*", default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed … first-seed + seeds − 1 (one "
                                                              "process per seed on a multi-core box)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--dtype", default="float32", help="model dtype (bfloat16: 2.5× faster at 1.5B on AVX512-BF16)")
    ap.add_argument("--real-groups", type=int, default=None, help="groups per real set (default: 80/60/80; quick 20)")
    ap.add_argument("--icl-groups", type=int, default=6, help="groups the in-context methods run on")
    ap.add_argument("--max-demos", type=int, default=None, help="demonstrations per in-context query (default 8; "
                                                                "quick 6; 0: every labeled claim, the paper's context)")
    ap.add_argument("--icl-iters", type=int, default=20, help="ICM-ICL iterations (default 20, a short look; 3000 with "
                                                              "patience 300 is a complete default search)")
    ap.add_argument("--icl-seeds", type=int, default=1, help="seeds that run ICM-ICL (0: skip it)")
    ap.add_argument("--iters", type=int, default=None, help="ICM-probe iterations (default 1500; quick 600)")
    ap.add_argument("--icl-tasks", nargs="*", default=None,
                    help="run the in-context methods (random/golden ICL, ICM-ICL) only on these tasks (default: all)")
    ap.add_argument("--name", default=None, help="results/<name>.json (default elicitation[_quick])")
    ap.add_argument("--fresh", action="store_true", help="ignore finished tasks in results/<name>.json (default: keep "
                                                          "them when the settings match, and run only the rest)")
    ap.add_argument("--merge", nargs="*", type=Path, help="merge these result files into results/<name>.json, run nothing")
    args = ap.parse_args(argv)
    name = args.name or ("elicitation_paper_quick" if args.quick else "elicitation_paper")
    if args.merge:
        return merge(name, args.merge)
    torch.set_num_threads(args.threads)
    models = args.models or (["smollm2-135m"] if args.quick else ["smollm2-135m", "gemma3-270m"])
    tasks = args.tasks or (["capitals", "truthfulqa"] if args.quick else BUILTIN + list(REAL))
    # ICM-ICL re-scores every labeled claim per proposal and per ConsistencyFix candidate (~4k tokens each on CPU), so
    # its subset stays small in both modes; the probe searches run on every group.
    kw = dict(icl_groups=args.icl_groups, icl_iters=args.icl_iters, icl_seeds=args.icl_seeds,
              iters=args.iters or (600 if args.quick else 1500),
              max_demos=(6 if args.quick else 8) if args.max_demos is None else args.max_demos,
              real_groups=args.real_groups or (20 if args.quick else None))
    icl_tasks = tasks if args.icl_tasks is None else args.icl_tasks
    settings = {**kw, "seeds": args.seeds, "first_seed": args.first_seed, "models": models, "tasks": tasks,
                "icl_tasks": icl_tasks, "dtype": args.dtype}
    same = ("icl_groups", "icl_iters", "icl_seeds", "iters", "max_demos", "real_groups", "seeds", "first_seed", "dtype")
    old_defaults = {"dtype": "float32", "first_seed": 0}  # what runs from before these settings used
    results = {} if args.fresh else finished_tasks(name, settings, same, old_defaults)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    for m in models:
        todo = [t for t in tasks if t not in results.get(m, {})]
        if not todo:
            continue
        model, tok = load_causal_lm(m, dtype=args.dtype)
        for task in todo:
            print(f"[elicitation] {m} / {task} …", file=sys.stderr, flush=True)
            results.setdefault(m, {})[task] = run_task(task, m, model, tok, seeds,
                                                       icl=task in icl_tasks, **kw)
            save(name, settings, results, complete=False)  # a cut-short run keeps its finished tasks
        del model
    save(name, settings, results, complete=True)
    table, paper = tables(results)
    print(table + "\n\nThe paper's numbers, for scale (not measured here):\n\n" + paper)
    return 0


if __name__ == "__main__":
    sys.exit(main())
