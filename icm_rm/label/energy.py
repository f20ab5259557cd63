"""The ICM objective (docs/icm.md): U(D) = α·P(D) − I(D).

P(D) = mean over labeled i of (+s_i if y_i else −s_i), s_i scored with every other labeled claim in context.
I(D) = number of unordered same-group pairs of labeled claims whose labels break a consistency rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.tasks import ConsistencyRules, consistent_assignments, pair_violates

Labels = Sequence[bool | None]


@dataclass(frozen=True)
class GroupStructure:
    """Consistency groups of a pool (only groups with ≥ 2 members matter), keys, and the task's rules."""

    groups: tuple[tuple[int, ...], ...]
    keys: tuple[str, ...]
    group_of: tuple[int, ...]  # claim index → group number (−1 for groups of one)
    rules: ConsistencyRules

    def pairs(self):
        """All unordered same-group index pairs (i < j), in deterministic order."""
        for members in self.groups:
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    yield members[a], members[b]

    def options(self, i: int, j: int) -> list[tuple[bool, bool]]:
        return consistent_assignments(self.keys[i], self.keys[j], self.rules)


def build_structure(groups: Sequence[str], keys: Sequence[str], rules: ConsistencyRules) -> GroupStructure:
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    multi = tuple(tuple(m) for m in by_group.values() if len(m) > 1)
    group_of = [-1] * len(groups)
    for gi, members in enumerate(multi):
        for i in members:
            group_of[i] = gi
    return GroupStructure(groups=multi, keys=tuple(keys), group_of=tuple(group_of), rules=rules)


def predictability(scores: np.ndarray, labels: Labels) -> float:
    """Mean signed log-odds over labeled claims (0.0 when nothing is labeled)."""
    idx = [i for i, y in enumerate(labels) if y is not None]
    if not idx:
        return 0.0
    signs = np.array([1.0 if labels[i] else -1.0 for i in idx])
    return float(np.mean(signs * np.asarray(scores, dtype=np.float64)[idx]))


def violating_pairs(structure: GroupStructure, labels: Labels) -> list[tuple[int, int]]:
    """Same-group pairs of labeled claims whose labels break a rule."""
    out = []
    for i, j in structure.pairs():
        yi, yj = labels[i], labels[j]
        if yi is not None and yj is not None and pair_violates(structure.keys[i], yi, structure.keys[j], yj,
                                                               structure.rules):
            out.append((i, j))
    return out


def inconsistency(structure: GroupStructure, labels: Labels) -> int:
    return len(violating_pairs(structure, labels))


def utility(alpha: float, p: float, i: int | float) -> float:
    return alpha * p - i


class GroupViolations:
    """I(D) of a labeling kept per group, so a change to a few claims costs only their groups' pairs.

    `labels` is the search's current label list (read, never copied); a candidate is that list plus `changes`
    ({claim: new label}). Violating pairs come out in `GroupStructure.pairs()` order, as `violating_pairs` gives them.
    """

    def __init__(self, structure: GroupStructure, labels: Labels):
        self.s, self.labels = structure, labels
        self.count = [self._count(g, {}) for g in range(len(structure.groups))]
        self.total = sum(self.count)
        self.bad = {g for g, c in enumerate(self.count) if c}

    def _label(self, i: int, changes: dict):
        return changes[i] if i in changes else self.labels[i]

    def violates(self, i: int, j: int, changes: dict) -> bool:
        yi, yj = self._label(i, changes), self._label(j, changes)
        return yi is not None and yj is not None and pair_violates(self.s.keys[i], yi, self.s.keys[j], yj,
                                                                   self.s.rules)

    def _count(self, g: int, changes: dict) -> int:
        m = self.s.groups[g]
        return sum(self.violates(m[a], m[b], changes) for a in range(len(m)) for b in range(a + 1, len(m)))

    def trial(self, changes: dict) -> tuple[int, dict[int, int]]:
        """(I of the candidate, its new violation count per touched group)."""
        touched = {self.s.group_of[i] for i in changes} - {-1}
        counts = {g: self._count(g, changes) for g in touched}
        return self.total + sum(c - self.count[g] for g, c in counts.items()), counts

    def commit(self, counts: dict[int, int]) -> None:
        """Take a trial's group counts (after its changes were written into `labels`)."""
        for g, c in counts.items():
            self.total += c - self.count[g]
            self.count[g] = c
            (self.bad.add if c else self.bad.discard)(g)

    def pairs(self, changes: dict, counts: dict[int, int]) -> list[tuple[int, int]]:
        """The candidate's violating pairs, in `GroupStructure.pairs()` order."""
        groups = sorted((self.bad - counts.keys()) | {g for g, c in counts.items() if c})
        out = []
        for g in groups:
            m = self.s.groups[g]
            out += [(m[a], m[b]) for a in range(len(m)) for b in range(a + 1, len(m))
                    if self.violates(m[a], m[b], changes)]
        return out
