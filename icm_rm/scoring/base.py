"""The Scorer interface: everything the label stage asks of a model, so it never asks a scorer's name.

The core is one question: for each query claim i, its log-odds s_i = log P(True) − log P(False) when *every other
labeled claim* is in context (leave-one-out for labeled claims; "all labeled claims" for unlabeled ones). Labels are
True/False/None (unlabeled: contributes no demonstration); with every label None this is zero-shot scoring.
Around it the label stage reads the LM's own zero-shot verdicts (baselines, sign anchoring, chains started from
them), the variant the random-/golden-label baselines train, a pre-flight check of the pool, work counters, and —
for iterative labeling — a copy of the scorer on a fine-tuned model. Defaults fit an in-context scorer; a new
scorer subclasses `Scorer`, implements `loo_scores` and `build`, and is one line in `registry.SCORERS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..data.records import Claim, ClaimSet
from ..infra.errors import UserError
from .settings import ScorerSettings
from .verdicts import zero_shot_signal

Label = bool | None
Prior = Callable[[Sequence[Claim]], np.ndarray]  # claims → raw per-claim signal (NaN where it has none)

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


class Scorer(ABC):
    """A model as the ICM search and the label stage see it."""

    name: ClassVar[str] = "scorer"  # part of the search's resume fingerprint
    summary: ClassVar[str] = ""  # one line for `--help` and the docs
    finetunable: ClassVar[bool] = False  # iterative labeling can fine-tune it (`model`, `tokenizer`, `rebuilt`)
    carries_labels: ClassVar[bool] = False  # `carry_labels` can fit later batches with earlier ones (`prepare`, `carry`)
    stats: ScorerStats
    prior: Prior | None = None  # pair pools: the LM's response log-likelihood per claim (`likelihood.py`)
    model: Any = None  # the in-process LM, where there is one
    tokenizer: Any = None

    @classmethod
    def build(cls, settings: ScorerSettings, pool: ClaimSet) -> Scorer:
        """This scorer from the label config's scorer fields, for `pool` (whose pairs a prior may need); what
        `registry.build_scorer` calls."""
        raise NotImplementedError(f"{cls.__name__} has no build(): it cannot be registered as a label scorer")

    @abstractmethod
    def loo_scores(self, claims: Sequence[Claim], labels: Sequence[Label], queries: Sequence[int]) -> np.ndarray:
        """Scores of `claims[q]` for q in `queries`, each with context = demos of all labeled claims except q,
        in the canonical order of `icm_rm.scoring.order`. Returns float64 array aligned with `queries`."""

    def zero_shot(self, claims: Sequence[Claim]) -> np.ndarray:
        """The LM's True/False log-odds per claim with nothing in context."""
        return self.loo_scores(claims, [None] * len(claims), list(range(len(claims))))

    def zero_shot_verdicts(self, claims: Sequence[Claim]) -> dict[str, np.ndarray]:
        """Every zero-shot verdict this scorer has, by kind (positive = True): `tf` (the True/False log-odds) and,
        with a prior, `likelihood` (on swapped pairs the within-pair response-likelihood comparison)."""
        out = {"tf": np.asarray(self.zero_shot(claims), dtype=np.float64)}
        if self.prior is not None:
            out["likelihood"] = zero_shot_signal(claims, self.prior(claims))
        return out

    def sign_verdict(self, claims: Sequence[Claim]) -> np.ndarray | None:
        """Per-claim verdicts that choose between a labeling and its mirror image when the energy cannot tell them
        apart; None when the scores already fix the sign (in-context scorers)."""
        return None

    def baseline(self) -> Scorer:
        """The scorer the random- and golden-label baselines train (in-context scorers: this one)."""
        return self

    def check_pool(self, claims: Sequence[Claim]) -> None:
        """Refuse (UserError, one line) a pool this scorer cannot read, before anything is written."""

    def work_stats(self) -> dict:
        """Work counters for reports, including forward passes outside `loo_scores` (e.g. feature extraction)."""
        return self.stats.as_dict()

    def session(self, claims: Sequence[Claim], labels: Sequence[Label], carry: Any = None) -> Any:
        """An incrementally updated state of this scorer for one search over `claims` — `trial(changes)` → an
        object with `.p`, `commit(trial)`, `score(i)`, `scores()`, `p`, `state_dict()` / `load_state_dict()` — or
        None, and the search re-scores every labeled claim per candidate (memoised)."""
        return None

    def prepare(self, claims: Sequence[Claim]) -> None:
        """Called once with the whole pool before its batches when labels are carried between them."""

    def carry(self, claims: Sequence[Claim], labels: Sequence[Label], onto: Any = None) -> Any:
        """A finished batch's labels in the form `session(carry=…)` takes, added to `onto` (`carries_labels`)."""
        raise UserError(f"the {self.name} scorer cannot carry labels between batches; use scorer probe")

    def rebuilt(self, model: Any) -> Scorer:
        """The same scorer on `model` (iterative labeling's fine-tuned labeler)."""
        raise UserError(f"the {self.name} scorer cannot be fine-tuned between batches; use scorer icl or naive")
