"""The LM's zero-shot verdicts as the label stage uses them: on swapped pairs the within-pair comparison
z_i − z_twin (`zero_shot_signal`), and the choice between a labeling and its mirror image (`anchor_sign`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..data.records import COMPARISON_KEYS, Claim


def twin_index(claims: Sequence[Claim]) -> list[int | None]:
    """For each claim of a swapped pair (a group of exactly the keys A>B and B>A), the index of its twin."""
    by_group: dict[str, list[int]] = {}
    for i, c in enumerate(claims):
        by_group.setdefault(c.group, []).append(i)
    twin: list[int | None] = [None] * len(claims)
    for members in by_group.values():
        if len(members) == 2 and {claims[m].key for m in members} == set(COMPARISON_KEYS):
            twin[members[0]], twin[members[1]] = members[1], members[0]
    return twin


def zero_shot_signal(claims: Sequence[Claim], z: np.ndarray) -> np.ndarray:
    """The LM's zero-shot verdict per claim; for swapped pairs the within-pair comparison z_i − z_twin."""
    tw = twin_index(claims)
    z = np.nan_to_num(np.asarray(z, dtype=np.float64))
    return np.array([z[i] - z[t] if t is not None else z[i] for i, t in enumerate(tw)], dtype=np.float64)


def anchor_sign(claims: Sequence[Claim], labels: list, zero_shot: np.ndarray,
                evaluate: Callable[[list], float]) -> tuple[list, bool]:
    """Pick between a labeling and its mirror image by the LM's zero-shot verdicts.

    Only when the mirror has the same U (the probe cannot tell them apart) and agrees better with the zero-shot
    signal (Σ ±z_i) is it returned. Returns (labels, flipped).
    """
    if any(y is None for y in labels):
        return labels, False
    signal = zero_shot_signal(claims, zero_shot)
    agreement = float(sum(s if y else -s for y, s in zip(labels, signal)))
    mirror = [not y for y in labels]
    if agreement < 0 and abs(evaluate(mirror) - evaluate(labels)) <= 1e-9 * max(1.0, abs(evaluate(labels))):
        return mirror, True
    return labels, False
