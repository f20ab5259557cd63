"""The Scorer protocol: log-odds s_i = log P(True) − log P(False) of claim i given a context of labeled demos.

Every scorer answers one question: for each query claim i, its score when *every other labeled claim* is in context
(leave-one-out for labeled claims; "all labeled claims" for unlabeled ones). Labels are True/False/None (unlabeled:
contributes no demonstration). With every label None this is zero-shot scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..data.records import Claim

Label = bool | None

DEFAULT_CLAMP = 11.5  # ≈ −log 1e-5, the released code's floor on each side's probability mass


@dataclass
class ScorerStats:
    """Work counters: what a benchmark or report reads to say how much a search cost."""

    forward_tokens: int = 0  # tokens actually run through the model (cache hits excluded)
    forward_calls: int = 0  # model forward invocations
    queries: int = 0  # scores returned
    cache_hits: int = 0  # scores served from the (query, context labels) cache
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"forward_tokens": self.forward_tokens, "forward_calls": self.forward_calls, "queries": self.queries,
                "cache_hits": self.cache_hits, **self.extra}


@runtime_checkable
class Scorer(Protocol):
    """What the ICM search needs from a model."""

    name: str
    stats: ScorerStats

    def loo_scores(self, claims: Sequence[Claim], labels: Sequence[Label], queries: Sequence[int]) -> np.ndarray:
        """Scores of `claims[q]` for q in `queries`, each with context = demos of all labeled claims except q,
        in the canonical order of `icm_rm.scoring.order`. Returns float64 array aligned with `queries`."""
        ...


def zero_shot_scores(scorer: Scorer, claims: Sequence[Claim]) -> np.ndarray:
    """Scores with an empty context (every label None)."""
    return scorer.loo_scores(claims, [None] * len(claims), list(range(len(claims))))


def clamp_scores(s: np.ndarray, bound: float) -> np.ndarray:
    return np.clip(s, -bound, bound)
