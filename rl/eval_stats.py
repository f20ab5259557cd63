"""Per-prompt paired statistics of two policies' judge scores: outcomes, win rate ± SE, the mean score difference with
a paired-bootstrap CI and a sign test, and a length-controlled win rate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def outcomes(a: Sequence[float], b: Sequence[float], tie_margin: float = 0.0) -> np.ndarray:
    """Per prompt: 1 when a's score beats b's by more than the margin, 0.5 for a tie, 0 for a loss."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return np.where(d > tie_margin, 1.0, np.where(d < -tie_margin, 0.0, 0.5))


def win_rate(o: np.ndarray) -> dict:
    """Win rate (ties count half) with its standard error over prompts."""
    n = len(o)
    se = float(np.std(o, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"win_rate": float(np.mean(o)) if n else float("nan"), "se": se, "n": n, "wins": int(np.sum(o == 1.0)),
            "ties": int(np.sum(o == 0.5)), "losses": int(np.sum(o == 0.0))}


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test of wins vs losses (ties dropped): P(a split at least this uneven | no difference)."""
    m, k = wins + losses, min(wins, losses)
    if m == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2**m)


def paired_difference(a: Sequence[float], b: Sequence[float], *, level: float = 0.95, n_boot: int = 10_000,
                      seed: int = 0) -> dict:
    """Mean per-prompt score difference a − b, its paired-bootstrap CI (prompts resampled with replacement, percentile
    interval) and the sign test over prompts; `verdict` says whether the CI lies above 0, below 0 or includes it."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n == 0:
        return {"diff": float("nan"), "ci": [float("nan"), float("nan")], "sign_p": 1.0, "verdict": "no prompts"}
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    lo, hi = np.quantile(d[idx].mean(axis=1), [(1 - level) / 2, (1 + level) / 2])
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "no clear difference"
    return {"diff": float(d.mean()), "ci": [float(lo), float(hi)], "level": level,
            "sign_p": sign_test_p(int(np.sum(d > 0)), int(np.sum(d < 0))), "verdict": verdict}


def length_controlled_win_rate(o: np.ndarray, len_a: Sequence[float], len_b: Sequence[float],
                               l2: float = 1e-2, iters: int = 50) -> float:
    """σ(intercept) of a logistic fit of the outcome on the standardised length difference (ties weigh ½ each way):
    the win rate the fit predicts when both answers have the same length."""
    d = np.asarray(len_a, dtype=float) - np.asarray(len_b, dtype=float)
    if len(o) == 0:
        return float("nan")
    x = d / (np.std(d) + 1e-9) if np.std(d) > 0 else np.zeros_like(d)
    X = np.stack([np.ones_like(x), x], axis=1)
    w = np.zeros(2)
    for _ in range(iters):  # Newton on the L2-penalised log-likelihood, soft targets in {0, ½, 1}
        p = 1 / (1 + np.exp(-X @ w))
        grad = X.T @ (o - p) - l2 * w
        H = -(X.T * (p * (1 - p))) @ X - l2 * np.eye(2)
        step = np.linalg.solve(H, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(1 / (1 + np.exp(-w[0])))


def format_diff(d: dict) -> str:
    """`+0.120 [+0.040, +0.200]`: a paired score difference and its CI."""
    return f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"


def paired_comparison(a: Sequence[float], b: Sequence[float], *, tie_margin: float = 0.0, seed: int = 0) -> dict:
    """a vs b over prompts as eval-policy reports it: win rate ± SE and W/T/L of the per-prompt outcomes, and the
    paired score difference (`paired_difference`) under `score_diff`."""
    return {**win_rate(outcomes(a, b, tie_margin)), "score_diff": paired_difference(a, b, seed=seed)}
