"""Label accuracy against gold (reports only), claim- and pair-level, and per-group consistency."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..data.records import COMPARISON_KEYS, Claim
from ..data.tasks import ConsistencyRules
from .energy import build_structure, violating_pairs


def claim_accuracy(claims: Sequence[Claim], labels: Sequence[bool | None], gold: Mapping[str, bool]) -> float | None:
    """Fraction of claims whose label equals gold (an unlabeled claim counts as wrong)."""
    if not gold:
        return None
    return float(np.mean([labels[i] is not None and labels[i] == gold[c.id] for i, c in enumerate(claims)]))


def pair_decisions(claims: Sequence[Claim], labels: Sequence[bool | None] | None,
                   scores: Sequence[float]) -> dict[str, bool]:
    """For each swapped pair: True when A is judged better. Consistent labels decide; otherwise the higher score."""
    by_group: dict[str, dict[str, int]] = {}
    for i, c in enumerate(claims):
        if c.key in COMPARISON_KEYS:
            by_group.setdefault(c.group, {})[c.key] = i
    out = {}
    for g, idx in by_group.items():
        if len(idx) != 2:
            continue
        i, j = idx["A>B"], idx["B>A"]
        if labels is not None and labels[i] is not None and labels[j] is not None and labels[i] != labels[j]:
            out[g] = bool(labels[i])
        else:
            si, sj = scores[i], scores[j]
            out[g] = bool((si if np.isfinite(si) else 0.0) > (sj if np.isfinite(sj) else 0.0))
    return out


def pair_accuracy(claims: Sequence[Claim], decisions: Mapping[str, bool], gold: Mapping[str, bool]) -> float | None:
    if not gold or not decisions:
        return None
    gold_a = {c.group: gold[c.id] for c in claims if c.key == "A>B"}
    return float(np.mean([decisions[g] == gold_a[g] for g in decisions]))


def consistency_rate(claims: Sequence[Claim], labels: Sequence[bool | None], rules: ConsistencyRules) -> float:
    """Fraction of multi-claim groups with no rule broken."""
    s = build_structure([c.group for c in claims], [c.key for c in claims], rules)
    if not s.groups:
        return 1.0
    bad = {s.group_of[i] for i, _ in violating_pairs(s, labels)}
    return 1.0 - len(bad) / len(s.groups)


def sign_labels(scores: Sequence[float]) -> list[bool]:
    return [bool(s > 0) for s in scores]
