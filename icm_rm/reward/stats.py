"""Pure statistics for pairwise reward evaluation (numpy + standard library only), shared by `eval-rm`, RM export and
the benchmarks.

Conventions: a pair is *correct* when r_chosen > r_rejected strictly (a reward tie counts as wrong and is reported);
P(chosen) = σ(r_chosen − r_rejected); calibration bins the confidence in the predicted winner, max(p, 1 − p).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def z_for(level: float) -> float:
    """Two-sided normal quantile for a confidence level (0.95 → 1.95996…)."""
    from statistics import NormalDist

    return Z95 if level == 0.95 else NormalDist().inv_cdf(0.5 + level / 2)


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n == 0."""
    if n == 0:
        return (math.nan, math.nan)
    z = z_for(level)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_resamples: int = 1000, level: float = 0.95,
                 seed: int = 0, statistic=np.mean) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over `values` (resampled with replacement, seeded)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    stats = np.asarray([statistic(x[row]) for row in idx]) if statistic is not np.mean else x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return (float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha)))


def accuracy_from_rewards(chosen: Sequence[float] | np.ndarray, rejected: Sequence[float] | np.ndarray,
                          level: float = 0.95) -> dict:
    """Pairwise accuracy (r_c > r_r) with its Wilson interval, the number of reward ties and the mean margin."""
    c, r = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    if c.shape != r.shape:
        raise ValueError(f"chosen ({c.shape}) and rejected ({r.shape}) rewards differ in shape")
    n = int(c.size)
    correct = int((c > r).sum())
    lo, hi = wilson_ci(correct, n, level)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else math.nan, "ci_low": lo, "ci_high": hi,
            "reward_ties": int((c == r).sum()), "mean_margin": float((c - r).mean()) if n else math.nan}


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def reliability_bins(p_chosen: Sequence[float] | np.ndarray, n_bins: int = 10) -> list[dict]:
    """Bins of confidence max(p, 1 − p) over [0.5, 1]: count, mean confidence and accuracy (p > 0.5) per bin."""
    p = np.asarray(p_chosen, dtype=float)
    conf = np.maximum(p, 1 - p)
    correct = p > 0.5
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        m = which == b
        k = int(m.sum())
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": k,
                     "confidence": float(conf[m].mean()) if k else math.nan,
                     "accuracy": float(correct[m].mean()) if k else math.nan})
    return bins


def ece(p_chosen: Sequence[float] | np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error: Σ_b (n_b / N) · |accuracy_b − confidence_b| over `reliability_bins`."""
    bins = reliability_bins(p_chosen, n_bins)
    total = sum(b["count"] for b in bins)
    if total == 0:
        return math.nan
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation; nan when either side is constant or has < 2 values."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (scipy.stats.rankdata's default)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=float)
    sx = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    return pearson(rankdata(x), rankdata(y))
