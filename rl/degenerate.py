"""Degenerate generations (empty, all identical, cut at the token limit) are reported as flags, never scored silently.

eval-policy flags each policy's answers; PPO and GRPO log the same fractions per step and warn when a step's rollouts
are degenerate. "All empty" is the one hard failure (eval-policy exits non-zero): nothing was generated to judge.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_THRESHOLD = 0.5


def degenerate_stats(texts: Sequence[str], cut: Sequence[bool], threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Fractions of empty and cut (no EOS within max_new_tokens) answers, the number of distinct answers, and the
    flags they raise: `all empty`, `N% empty` / `N% cut at the token limit` (above `threshold`), `all identical`."""
    n = len(texts)
    stripped = [t.strip() for t in texts]
    empty = sum(not t for t in stripped)
    n_cut = sum(bool(c) for c in cut)
    distinct = len(set(stripped))
    flags = []
    if n and empty == n:
        flags.append("all empty")
    else:
        if n and empty / n > threshold:
            flags.append(f"{100 * empty / n:.0f}% empty")
        if n > 1 and distinct == 1:
            flags.append("all identical")
    if n and n_cut / n > threshold:
        flags.append(f"{100 * n_cut / n:.0f}% cut at the token limit")
    return {"n": n, "empty_frac": empty / n if n else 0.0, "cut_frac": n_cut / n if n else 0.0, "distinct": distinct,
            "flags": flags, "all_empty": bool(n) and empty == n}


def rollout_metrics(texts: Sequence[str], cut: Sequence[bool]) -> dict[str, float]:
    """The per-step RL log entries: rollout/empty_frac, rollout/distinct_frac, rollout/cut_frac."""
    s = degenerate_stats(texts, cut)
    n = max(1, s["n"])
    return {"rollout/empty_frac": s["empty_frac"], "rollout/distinct_frac": s["distinct"] / n,
            "rollout/cut_frac": s["cut_frac"]}

