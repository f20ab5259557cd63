"""Seed means: a route trains one policy per RL seed; its per-prompt judge scores averaged over the seeds are compared
with the reference and with the other routes by eval-policy's own statistics, with each seed's diff and their spread
beside them, so the label effect shows apart from RL run-to-run variance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rl.eval_stats import paired_comparison

SCORE = "_score"


def read_scores(eval_dir: Path) -> dict[str, np.ndarray]:
    """Per-prompt judge scores of every evaluated policy (the reference included), from eval-policy's samples.jsonl."""
    rows = [json.loads(line) for line in (eval_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines() if line]
    names = [k[:-len(SCORE)] for k in (rows[0] if rows else {}) if k.endswith(SCORE)]
    return {n: np.asarray([r[n + SCORE] for r in rows], dtype=float) for n in names}


def gap_se(icm_diffs: list[float], human_diffs: list[float]) -> float:
    """Standard error of the difference of two routes' seed means, their runs taken as independent draws: how much
    that difference varies from one set of RM/RL seeds to the next."""
    return float(np.sqrt(np.var(icm_diffs, ddof=1) / len(icm_diffs) + np.var(human_diffs, ddof=1) / len(human_diffs)))


def seed_means(scores: dict[str, np.ndarray], policies: dict[str, list[tuple[int, str]]], *, tie_margin: float,
               seed: int, head_to_head: bool) -> dict:
    """Per route (`policies`: route → [(RL seed, policy name)]): the seed-mean score and its comparison with the
    reference, each seed's diff vs the reference and their sd; every pair of routes on seed means (`head_to_head`);
    and the ICM–gold seed-mean gap next to its standard error over the runs (`gold_gap`, where both routes exist with
    ≥ 2 seeds): within two of them, run-to-run variance alone could have made it."""
    ref = scores["reference"]
    mean = {route: np.mean([scores[name] for _, name in pols], axis=0) for route, pols in policies.items()}
    routes = {}
    for route, pols in policies.items():
        diffs = [float(np.mean(scores[name] - ref)) for _, name in pols]
        routes[route] = {"seeds": [s for s, _ in pols], "policies": [name for _, name in pols],
                         "score": float(np.mean(mean[route])), "seed_diffs": diffs,
                         "seed_sd": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
                         "seed_range": [min(diffs), max(diffs)],
                         "vs_reference": paired_comparison(mean[route], ref, tie_margin=tie_margin, seed=seed)}
    names = list(policies)
    pairs = [{"route": a, "versus": b, **paired_comparison(mean[a], mean[b], tie_margin=tie_margin, seed=seed)}
             for i, a in enumerate(names) for b in names[i + 1:]] if head_to_head else []
    out = {"routes": routes, "pairs": pairs}
    if {"icm", "human"} <= set(routes) and routes["icm"]["seed_sd"] is not None:
        icm, human = routes["icm"], routes["human"]
        gap = float(np.mean(mean["icm"] - mean["human"]))
        se = gap_se(icm["seed_diffs"], human["seed_diffs"])
        out["gold_gap"] = {"diff": gap, "seed_sd": max(icm["seed_sd"], human["seed_sd"]), "seed_se": se,
                           "within_seed_spread": abs(gap) <= 2 * se}
    return out
