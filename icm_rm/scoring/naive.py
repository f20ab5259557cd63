"""The reference scorer: one full forward per query over the context `order.context_orders` gives it.

Slow by design (O(n²L) tokens for n claims of L tokens) and deliberately plain: the fast `HFScorer` is tested
against it to float tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.records import Claim
from .base import DEFAULT_CLAMP, Label, Prior, ScorerStats
from .incontext import InContextScorer
from .order import context_orders
from .tokens import TokenCache, check_context_length, log_odds, true_false_token_ids


class NaiveScorer(InContextScorer):
    """Exact leave-one-out log-odds, each query's full context run from scratch."""

    name = "naive"
    summary = "many-shot in-context log-odds, one forward per query (the reference; slow)"

    def __init__(self, model, tokenizer, clamp: float = DEFAULT_CLAMP, max_demos: int | None = None,
                 prior: Prior | None = None):
        self.model, self.tokenizer, self.prior = model, tokenizer, prior
        self.clamp, self.max_demos = clamp, max_demos
        self.stats = ScorerStats()
        self.tokens = TokenCache(tokenizer)
        self.t_ids, self.f_ids = true_false_token_ids(tokenizer)
        self.device = next(model.parameters()).device
        self.max_positions = getattr(model.config.get_text_config(), "max_position_embeddings", None)

    def context_ids(self, claims: Sequence[Claim], labels: Sequence[Label], q: int, demos: Sequence[int]) -> list[int]:
        """Input ids for query q with demonstrations `demos` (pool indices, in order)."""
        return self.tokens.context(claims[q].text, [claims[j].text for j in demos], [bool(labels[j]) for j in demos])

    def loo_scores(self, claims: Sequence[Claim], labels: Sequence[Label], queries: Sequence[int]) -> np.ndarray:
        orders = context_orders([c.group for c in claims], labels, queries, self.max_demos)
        out = np.empty(len(queries))
        for k, q in enumerate(queries):
            ids = self.context_ids(claims, labels, q, orders[q])
            check_context_length(claims[q].id, len(ids), self.max_positions)
            with torch.inference_mode():
                logits = self.model(input_ids=torch.tensor([ids], device=self.device), logits_to_keep=1).logits
            z = logits[0, -1, self.t_ids + self.f_ids]  # [|T|+|F|]
            out[k] = float(log_odds(z, len(self.t_ids)))
            self.stats.forward_calls += 1
            self.stats.forward_tokens += len(ids)
        self.stats.queries += len(queries)
        return np.clip(out, -self.clamp, self.clamp)
