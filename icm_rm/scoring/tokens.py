"""The token contract every transformers scorer shares, so fast and naive scorers build identical inputs.

context ids = prefix + demo(C_1) + … + demo(C_k) + query, where
- prefix = what the tokenizer puts at the start of a sequence (BOS when it adds one, else nothing);
- demo(C) = `demo_text(C.text, label)` tokenized on its own, without special tokens;
- query = the claim text tokenized on its own, without special tokens.
Tokenizing pieces separately (not the joined string) is what lets a KV cache reuse a demonstration's tokens in any
context. The score is read from the logits at the last query token (docs/icm.md):
s = logsumexp(logits[T]) − logsumexp(logits[F]) (the softmax normaliser cancels), T/F = every vocabulary id whose
decoded text `.strip().lower()` is "true"/"false".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data.tasks import demo_text
from ..infra.errors import UserError

_TF_CACHE: dict[int, tuple[object, tuple[list[int], list[int]]]] = {}


def tokenizer_name(tokenizer) -> str:
    return getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__


def prefix_ids(tokenizer) -> list[int]:
    """Ids the tokenizer adds at the start of a sequence: BOS when it uses one, else nothing."""
    ids = list(tokenizer("", add_special_tokens=True).input_ids)
    eos = tokenizer.eos_token_id
    while ids and eos is not None and ids[-1] == eos:
        ids.pop()
    return ids


def true_false_token_ids(tokenizer) -> tuple[list[int], list[int]]:
    """(T, F): every id whose decoded text, stripped and lower-cased, is "true" / "false". Cached per tokenizer."""
    hit = _TF_CACHE.get(id(tokenizer))
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    t_ids = [i for i, s in enumerate(texts) if s.strip().lower() == "true"]
    f_ids = [i for i, s in enumerate(texts) if s.strip().lower() == "false"]
    if not t_ids or not f_ids:
        missing = "'true'" if not t_ids else "'false'"
        raise UserError(f"tokenizer '{tokenizer_name(tokenizer)}' has no token whose text is {missing}; "
                        "the in-context scorers need True/False tokens (use the probe scorer instead)")
    _TF_CACHE[id(tokenizer)] = (tokenizer, (t_ids, f_ids))
    return t_ids, f_ids


def log_odds(logits: torch.Tensor, n_true: int) -> torch.Tensor:
    """logits [..., |T|+|F|] (T first, then F) → log-odds [...] in float64."""
    z = logits.double()
    return torch.logsumexp(z[..., :n_true], dim=-1) - torch.logsumexp(z[..., n_true:], dim=-1)


class TokenCache:
    """Per-text tokenizations under the contract above (texts repeat across thousands of search steps)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.prefix = prefix_ids(tokenizer)
        self._query: dict[str, list[int]] = {}
        self._demo: dict[tuple[str, bool], list[int]] = {}

    def query(self, text: str) -> list[int]:
        ids = self._query.get(text)
        if ids is None:
            ids = self._query[text] = list(self.tokenizer(text, add_special_tokens=False).input_ids)
        return ids

    def demo(self, text: str, label: bool) -> list[int]:
        key = (text, bool(label))
        ids = self._demo.get(key)
        if ids is None:
            ids = self._demo[key] = list(self.tokenizer(demo_text(text, label), add_special_tokens=False).input_ids)
        return ids

    def demos(self, texts: Sequence[str], labels: Sequence[bool]) -> list[int]:
        """Concatenated demonstration ids, in the given order."""
        out: list[int] = []
        for text, label in zip(texts, labels):
            out.extend(self.demo(text, label))
        return out

    def context(self, query_text: str, demo_texts: Sequence[str], demo_labels: Sequence[bool]) -> list[int]:
        """Full input ids for one query: prefix + demos + query."""
        return self.prefix + self.demos(demo_texts, demo_labels) + self.query(query_text)


def check_context_length(claim_id: str, n_tokens: int, max_positions: int | None) -> None:
    """UserError when one query's context does not fit the model's positions."""
    if max_positions is not None and n_tokens > max_positions:
        raise UserError(f"claim '{claim_id}': its context is {n_tokens} tokens, more than the model's "
                        f"{max_positions} positions; set max_demos to cap the demonstrations per query")
