"""The LM's zero-shot verdicts as the label stage uses them: on swapped pairs the within-pair comparison
z_i − z_twin (`zero_shot_signal`), and the choice between a labeling and its mirror image (`anchor_sign`; the
search's candidate ranking uses the same tie rule)."""

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


def tied_u(a: float, b: float) -> bool:
    """Whether two U values are equal up to float noise (a labeling and its mirror under a sign-symmetric probe)."""
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def signed_agreement(labels: Sequence[bool | None], signal: np.ndarray | None) -> float:
    """Σ over labeled claims of +signal (True) / −signal (False): how far a labeling sides with a verdict."""
    if signal is None:
        return 0.0
    s = np.nan_to_num(np.asarray(signal, dtype=np.float64))
    return float(sum(s[k] if y else -s[k] for k, y in enumerate(labels) if y is not None))


def anchor_sign(claims: Sequence[Claim], labels: list, zero_shot: np.ndarray,
                evaluate: Callable[[list], float]) -> tuple[list, bool]:
    """Between a labeling and its mirror image, the one with the higher U; when the two tie (a probe without
    intercept cannot tell them apart), the one the LM's zero-shot verdict (Σ ±z_i) agrees with.
    Returns (labels, flipped)."""
    if any(y is None for y in labels):
        return labels, False
    signal = zero_shot_signal(claims, zero_shot)
    mirror = [not y for y in labels]
    u, u_mirror = evaluate(labels), evaluate(mirror)
    if tied_u(u, u_mirror):
        flip = signed_agreement(mirror, signal) > signed_agreement(labels, signal)
    else:
        flip = u_mirror > u
    return (mirror, True) if flip else (labels, False)
