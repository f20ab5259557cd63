"""What the in-process in-context scorers (`hf.HFScorer`, `naive.NaiveScorer`) share: loading from a model name or
from the label config (with the response-likelihood prior on pair pools), and rebuilding on a fine-tuned labeler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.records import ClaimSet
from ..infra.lm import load_causal_lm
from .base import Scorer
from .likelihood import pair_prior
from .settings import ScorerSettings


class InContextScorer(Scorer):
    """An in-context scorer over a transformers causal LM: `cls(model, tokenizer, clamp=…, max_demos=…, prior=…)`."""

    finetunable = True
    clamp: float
    max_demos: int | None

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, dtype: str | None = None, device: str | None = None, **kw):
        """From a registry name or a local dir; the tokenizer as saved (no pad token added), sdpa attention."""
        model, tokenizer = load_causal_lm(name_or_path, dtype, device or "auto", set_pad_token=False,
                                          attn_implementation="sdpa")
        return cls(model, tokenizer, **kw)

    @classmethod
    def build(cls, settings: ScorerSettings, pool: ClaimSet) -> InContextScorer:
        model, tokenizer = load_causal_lm(settings.model, dtype=settings.dtype, device=settings.device)
        return cls(model, tokenizer, prior=pair_prior(model, tokenizer, pool), **cls.settings_kwargs(settings))

    @classmethod
    def settings_kwargs(cls, settings: ScorerSettings) -> dict:
        """Constructor arguments read from the label config."""
        return {"clamp": settings.clamp, "max_demos": settings.max_demos}

    def rebuild_kwargs(self) -> dict:
        """Constructor arguments a rebuilt copy keeps."""
        return {"clamp": self.clamp, "max_demos": self.max_demos}

    def rebuilt(self, model: Any) -> InContextScorer:
        """On a fine-tuned labeler (no prior: its likelihoods are no longer the LM's own)."""
        return type(self)(model, self.tokenizer, **self.rebuild_kwargs())
