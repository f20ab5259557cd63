"""The scorers the label stage can use: config name → Scorer class. `LabelConfig.scorer` is checked against it.

Adding a scorer: write one module with a `Scorer` subclass (`loo_scores` + `build`; docs/architecture.md shows a
30-line example) and add its line here.
"""

from __future__ import annotations

from ..data.records import ClaimSet
from ..infra.errors import ConfigError
from .base import Scorer
from .hf import HFScorer
from .naive import NaiveScorer
from .openai_compat import OpenAICompatScorer
from .probe import ProbeScorer
from .settings import ScorerSettings

SCORERS: dict[str, type[Scorer]] = {
    "probe": ProbeScorer,
    "icl": HFScorer,
    "naive": NaiveScorer,
    "openai": OpenAICompatScorer,
}


def scorer_class(name: str) -> type[Scorer]:
    """The registered class of a config's `scorer` name (ConfigError naming the choices otherwise)."""
    if name not in SCORERS:
        raise ConfigError("scorer", f"unknown scorer '{name}'; choose one of: {', '.join(SCORERS)}")
    return SCORERS[name]


def build_scorer(settings: ScorerSettings, pool: ClaimSet) -> Scorer:
    """The configured scorer for `pool`, checked against the pool before anything is written."""
    scorer = scorer_class(settings.scorer).build(settings, pool)
    scorer.check_pool(pool.claims)
    return scorer
