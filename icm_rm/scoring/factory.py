"""Build a scorer (and the LM's zero-shot verdicts, which baselines and sign anchoring read) from the label config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.records import Claim
from ..errors import ConfigError
from .base import Scorer, zero_shot_scores

SCORERS = {
    "probe": "exact LOO ridge probe on hidden states (works with small models)",
    "icl": "many-shot in-context log-odds, exact LOO with KV-cache prefix sharing",
    "naive": "many-shot in-context log-odds, one forward per query (the reference; slow)",
    "openai": "an OpenAI-compatible /v1/completions server with logprobs (llama.cpp, vLLM)",
}


@dataclass
class ScorerBundle:
    """The search's scorer, the LM's zero-shot log-odds per claim, and the model (for iterative fine-tuning)."""

    scorer: Scorer
    zero_shot: Callable[[Sequence[Claim]], np.ndarray]
    model: Any = None
    tokenizer: Any = None
    likelihood: Any = None  # ResponseLikelihood: the LM's pairwise preference (baseline and probe sign anchor)


def build_scorer(backend: str, model_name: str, *, dtype: str = "float32", device: str = "auto",
                 clamp: float = 11.5, max_demos: int | None = None, probe_cfg=None,
                 feature_cache: str | Path | None = None, server: dict | None = None) -> ScorerBundle:
    if backend not in SCORERS:
        raise ConfigError("scorer", f"unknown scorer '{backend}'; choose one of: {', '.join(SCORERS)}")
    if backend == "openai":
        from .openai_compat import OpenAICompatScorer

        scorer = OpenAICompatScorer.from_config(server or {}, clamp=clamp, max_demos=max_demos)
        return ScorerBundle(scorer=scorer, zero_shot=lambda claims: zero_shot_scores(scorer, claims))

    from ..models import load_causal_lm

    model, tokenizer = load_causal_lm(model_name, dtype=dtype, device=_device(device))
    from .likelihood import ResponseLikelihood

    likelihood = ResponseLikelihood(model, tokenizer)
    if backend == "probe":
        from .features import FeatureExtractor
        from .probe import ProbeConfig, ProbeScorer

        probe_cfg = probe_cfg or ProbeConfig()
        extractor = FeatureExtractor(model, tokenizer, cache_dir=feature_cache, batch_size=probe_cfg.batch_size,
                                     clamp=clamp)
        n_layers = int(model.config.num_hidden_layers)
        layer = round(2 * n_layers / 3) if probe_cfg.layer is None else probe_cfg.layer
        if not 0 <= layer <= n_layers:
            raise ConfigError("probe.layer", f"model has layers 0..{n_layers}, got {layer}")

        def source(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
            states, z = extractor.get(texts)
            return states[:, layer], z

        scorer = ProbeScorer(source, probe_cfg)
        scorer.stats.extra["layer"] = layer
        scorer.extractor = extractor
        return ScorerBundle(scorer=scorer, zero_shot=lambda claims: extractor.get([c.text for c in claims])[1],
                            model=model, tokenizer=tokenizer, likelihood=likelihood)
    if backend == "icl":
        from .hf import HFScorer

        scorer = HFScorer(model, tokenizer, clamp=clamp, max_demos=max_demos)
    else:
        from .naive import NaiveScorer

        scorer = NaiveScorer(model, tokenizer, clamp=clamp, max_demos=max_demos)
    return ScorerBundle(scorer=scorer, zero_shot=lambda claims: zero_shot_scores(scorer, claims),
                        model=model, tokenizer=tokenizer, likelihood=likelihood)


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
