"""The search's current labeling and everything derived from it, kept up to date by deltas, so one iteration costs
the same at 1k and at 100k claims.

A *candidate* is the current labeling plus `changes` ({claim: label}); evaluating it touches only what changed:
I(D) by the changed claims' groups (`GroupViolations`), P(D) through the scorer's incremental session where it has
one (the primal probe: running sums), and the sampling weights only on commit (`PrioritySampler`). A scorer without a
session is scored as before: every labeled claim re-scored, memoised by a Zobrist hash of the labeling (O(1) to
update) instead of an O(n) string.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.records import Claim
from ..infra.errors import UserError
from ..scoring.base import Scorer
from .energy import GroupStructure, GroupViolations, predictability, utility
from .sampling import PrioritySampler


@dataclass
class Candidate:
    """U, P, I of the current labeling with `changes` applied (no-op entries dropped)."""

    changes: dict
    u: float
    p: float
    i: int
    counts: dict = field(default_factory=dict)  # GroupViolations counts of the touched groups
    trial: Any = None  # the session's trial, or the scores array (NaN where unlabeled) without a session


class ScoreMemo:
    """LRU memo of (P, scores) by labeling, keyed by a 128-bit Zobrist hash (XOR of one random word per claim and
    label state), shared by every chain and by `ICMSearch.evaluate` of a search."""

    def __init__(self, n: int, size: int = 512):
        rng = np.random.default_rng(0x1C3)
        self._z = [[int(a) << 64 | int(b) for a, b in zip(*rng.integers(0, 2**63, size=(2, 3)))] for _ in range(n)]
        self._items: OrderedDict[int, tuple[float, np.ndarray]] = OrderedDict()
        self.size = size

    @staticmethod
    def _slot(y: bool | None) -> int:
        return 0 if y is None else (1 if y else 2)

    def key(self, labels: Sequence[bool | None]) -> int:
        k = 0
        for i, y in enumerate(labels):
            k ^= self._z[i][self._slot(y)]
        return k

    def moved(self, key: int, i: int, old: bool | None, new: bool | None) -> int:
        return key ^ self._z[i][self._slot(old)] ^ self._z[i][self._slot(new)]

    def get(self, key: int):
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        return hit

    def put(self, key: int, value: tuple[float, np.ndarray]) -> None:
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)


def priority_weights(structure: GroupStructure, labels: Sequence[bool | None], priority: float) -> list[float]:
    """Sampling weight per claim: `priority` for an unlabeled claim whose group has a labeled member, else 1."""
    labeled_groups = {structure.group_of[i] for i, y in enumerate(labels)
                      if y is not None and structure.group_of[i] >= 0}
    return [priority if y is None and structure.group_of[i] in labeled_groups else 1.0 for i, y in enumerate(labels)]


class LabelState:
    """One chain's current labeling (`labels`, updated in place on commit) with its U, P, I and sampling weights."""

    def __init__(self, claims: Sequence[Claim], scorer: Scorer, structure: GroupStructure, alpha: float, priority: float,
                 labels: list, memo: ScoreMemo, *, evaluation: tuple[float, float, int] | None = None,
                 scores: Sequence[float | None] | None = None, scorer_state: dict | None = None,
                 carry: Any = None):
        """evaluation/scores/scorer_state: a resumed chain's saved (u, p, i), scores and session sums; carry: claims
        labeled before this search that join every fit (the scorer's `carry` object; needs a session)."""
        self.claims, self.scorer, self.s, self.alpha = claims, scorer, structure, alpha
        self.labels, self.memo, self.n = labels, memo, len(labels)
        self.evaluations = 0
        self.violations = GroupViolations(structure, labels)
        self.in_group = [0] * len(structure.groups)  # labeled members per group
        for i, y in enumerate(labels):
            if y is not None and structure.group_of[i] >= 0:
                self.in_group[structure.group_of[i]] += 1
        self.n_labeled = sum(y is not None for y in labels)
        self.priority = priority
        if float(priority).is_integer():
            self.sampler = PrioritySampler([int(w) for w in priority_weights(structure, labels, priority)])
        else:
            self.sampler = None  # fractional weights: fall back to numpy's choice over the full weight vector
        self.session = scorer.session(claims, labels, carry=carry)
        if carry is not None and self.session is None:
            raise UserError("carrying labels between batches needs a scorer that keeps an incremental fit (the probe "
                            "in primal form); drop carry_labels or use scorer probe")
        if self.session is not None and scorer_state:
            self.session.load_state_dict(scorer_state)
        self.key = memo.key(labels)
        self._scores: np.ndarray | None = None  # committed scores (no session)
        self.u: float | None = None
        if evaluation is not None:
            self.u, self.p, self.i = evaluation
            if self.session is None:
                self._scores = np.array([np.nan if x is None else x for x in scores], dtype=np.float64)
        else:
            c = self.evaluate({})
            self.u, self.p, self.i = c.u, c.p, c.i
            if self.session is None:
                self._scores = c.trial

    # ------------------------------------------------------------------ candidates

    def label(self, i: int, changes: dict):
        return changes[i] if i in changes else self.labels[i]

    def evaluate(self, changes: dict) -> Candidate:
        """U, P, I of the current labeling with `changes` applied; the current one itself when nothing changes."""
        changes = {i: y for i, y in changes.items() if y != self.labels[i]}
        if not changes and self.u is not None:
            return Candidate(changes={}, u=self.u, p=self.p, i=self.i, trial=self._scores)
        i_new, counts = self.violations.trial(changes)
        if self.session is not None:
            trial = self.session.trial(changes)
            p = trial.p
            self.evaluations += 1
        else:
            p, trial = self._generic_p(changes)
        return Candidate(changes=changes, u=utility(self.alpha, p, i_new), p=p, i=i_new, counts=counts, trial=trial)

    def _generic_p(self, changes: dict) -> tuple[float, np.ndarray]:
        key = self.key
        for i, y in changes.items():
            key = self.memo.moved(key, i, self.labels[i], y)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        labels = list(self.labels)
        for i, y in changes.items():
            labels[i] = y
        labeled = [i for i, y in enumerate(labels) if y is not None]
        scores = np.full(self.n, np.nan)
        if labeled:
            scores[labeled] = self.scorer.loo_scores(self.claims, labels, labeled)
        value = (predictability(scores, labels), scores)
        self.evaluations += 1
        self.memo.put(key, value)
        return value

    def fix(self, cand: Candidate, rounds: int) -> Candidate:
        """Algorithm 2 (ConsistencyFix) on a candidate: up to `rounds` rounds; for each violating pair apply the best
        consistent assignment if it strictly raises U."""
        for _ in range(rounds):
            pairs = self.violations.pairs(cand.changes, cand.counts)
            if not pairs:
                break
            improved = False
            for i, j in pairs:
                if not self.violations.violates(i, j, cand.changes):
                    continue  # already resolved by an earlier fix this round
                best: Candidate | None = None
                for a, b in self.s.options(i, j):
                    c = self.evaluate({**cand.changes, i: a, j: b})
                    if c.u > (best.u if best else cand.u):
                        best = c
                if best is not None:
                    cand, improved = best, True
            if not improved:
                break
        return cand

    def commit(self, cand: Candidate) -> None:
        """Make a candidate the current labeling."""
        if self.session is not None and cand.changes:
            self.session.commit(cand.trial)
        for i, y in cand.changes.items():
            old = self.labels[i]
            self.key = self.memo.moved(self.key, i, old, y)
            self.labels[i] = y
            if (old is None) != (y is None):
                self._labeled_changed(i, y is not None)
        self.violations.commit(cand.counts)
        if self.session is None:
            self._scores = cand.trial
        self.u, self.p, self.i = cand.u, cand.p, cand.i

    def _labeled_changed(self, i: int, now_labeled: bool) -> None:
        self.n_labeled += 1 if now_labeled else -1
        g = self.s.group_of[i]
        if g < 0:
            return
        before = self.in_group[g]
        self.in_group[g] += 1 if now_labeled else -1
        if self.sampler is None:
            return
        if (before == 0) != (self.in_group[g] == 0):  # the group gained its first / lost its last labeled member
            for m in self.s.groups[g]:
                self.sampler.set(m, self._weight(m))
        else:
            self.sampler.set(i, self._weight(i))

    def _weight(self, i: int) -> int:
        g = self.s.group_of[i]
        return int(self.priority) if self.labels[i] is None and g >= 0 and self.in_group[g] else 1

    # ------------------------------------------------------------------ reads

    def pick(self, rng: np.random.Generator) -> int:
        """A claim drawn with the priority weights (one rng.random())."""
        if self.sampler is not None:
            return self.sampler.draw(rng)
        w = np.array(priority_weights(self.s, self.labels, self.priority))
        return int(rng.choice(self.n, p=w / w.sum()))

    def query_score(self, i: int) -> float:
        """Claim i's score with every other labeled claim in context (its LOO score when labeled)."""
        if self.session is not None:
            return self.session.score(i)
        if self.labels[i] is not None:
            return float(self._scores[i])
        return float(self.scorer.loo_scores(self.claims, list(self.labels), [i])[0])

    def scores(self) -> np.ndarray:
        """Every claim's score under the current labeling (NaN where unlabeled); O(n)."""
        return self.session.scores() if self.session is not None else self._scores

    def scorer_state(self) -> dict:
        return self.session.state_dict() if self.session is not None else {}
