"""A scorer from a table, for tests and examples: s_i(C) = base_i + w · Σ_{j∈C} (±1 for True/False demos)·c_ij.

With `w = 0` scores ignore the context; with a coupling matrix c the score depends on the labels in context
(e.g. c_ij = agreement of hidden truths, which makes the truth mutually predictable).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from icm_rm.data.records import Claim
from icm_rm.scoring.base import Scorer, ScorerStats
from icm_rm.scoring.order import loo_orders


class TableScorer(Scorer):
    name = "table"

    def __init__(self, base: Sequence[float], coupling: np.ndarray | None = None, weight: float = 0.0):
        self.base = np.asarray(base, dtype=np.float64)
        self.coupling = coupling
        self.weight = weight
        self.stats = ScorerStats()

    def loo_scores(self, claims: Sequence[Claim], labels: Sequence[bool | None], queries: Sequence[int]) -> np.ndarray:
        orders = loo_orders([c.group for c in claims], labels, queries)
        out = np.empty(len(queries))
        for k, q in enumerate(queries):
            s = self.base[q]
            if self.weight:
                for j in orders[q]:
                    c = 1.0 if self.coupling is None else self.coupling[q, j]
                    s += self.weight * (1.0 if labels[j] else -1.0) * c
            out[k] = s
        self.stats.queries += len(queries)
        self.stats.forward_calls += 1
        return out
