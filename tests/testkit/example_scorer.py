"""The example plug-in scorer of docs/architecture.md: a whole scorer in one file, registered by one line
(`SCORERS["overlap"] = OverlapScorer`). A claim leans True when the labeled claims sharing its words are True."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from icm_rm.data.records import Claim, ClaimSet
from icm_rm.scoring.base import Label, Scorer, ScorerStats
from icm_rm.scoring.settings import ScorerSettings


class OverlapScorer(Scorer):
    """s_i = Σ over the other labeled claims j of (±1 for True/False) · Jaccard(words_i, words_j), clamped."""

    name = "overlap"
    summary = "word-overlap vote of the labeled claims (an example; no model)"

    def __init__(self, clamp: float):
        self.clamp, self.stats = clamp, ScorerStats()

    @classmethod
    def build(cls, settings: ScorerSettings, pool: ClaimSet) -> OverlapScorer:
        return cls(clamp=settings.clamp)

    def loo_scores(self, claims: Sequence[Claim], labels: Sequence[Label], queries: Sequence[int]) -> np.ndarray:
        words = [set(c.text.lower().split()) for c in claims]
        out = np.zeros(len(queries))
        for k, q in enumerate(queries):
            for j, y in enumerate(labels):
                if y is not None and j != q:
                    out[k] += (1.0 if y else -1.0) * len(words[q] & words[j]) / len(words[q] | words[j])
        self.stats.queries += len(queries)
        return np.clip(out, -self.clamp, self.clamp)
