"""The LM's own pairwise preference: the mean log-likelihood of each response given the prompt.

On the built-in fact pairs this zero-shot signal is strong (SmolLM2-135M / Gemma 3 270M: 0.81–1.00 pair accuracy,
where True/False log-odds are at or below chance), so it is both a baseline the reports show and the sign anchor
of the probe scorer on pairs (which cannot tell a labeling from its mirror image).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.records import Claim, ClaimSet, PreferencePair
from ..data.tasks import render_content
from ..infra.lm import response_token_logprobs
from .tokens import prefix_ids


class ResponseLikelihood:
    """`claim_signal(claims, pairs)` → per claim: mean log-prob of the response that claim says is better."""

    def __init__(self, model, tokenizer, batch_size: int = 16, max_logits_mb: float = 1024, show_progress: bool = True):
        """batch_size caps rows per forward; max_logits_mb caps its logits (rows × tokens × vocab × 4 bytes);
        show_progress: a bar when a call scores more than one batch (long dialogues take minutes at 1.5B)."""
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.max_logits_mb, self.show_progress = max_logits_mb, show_progress
        self._cache: dict[tuple[str, str], tuple[float, float, int]] = {}  # → (mean, sum, response tokens)
        self.forward_tokens = 0

    def mean_logprobs(self, items: Sequence[tuple[str, str]]) -> list[float]:
        """Mean log π(response tokens | prompt + newline) for (prompt, response) texts."""
        self._score(items)
        return [self._cache[it][0] for it in items]

    def summed_logprobs(self, items: Sequence[tuple[str, str]]) -> list[tuple[float, int]]:
        """(summed log π(response tokens | prompt + newline), response tokens) per (prompt, response): for callers
        that normalise otherwise (benchmarks/likelihood_variants.py); one forward per text serves both accessors."""
        self._score(items)
        return [self._cache[it][1:] for it in items]

    @torch.inference_mode()
    def _score(self, items: Sequence[tuple[str, str]]) -> None:
        """Fill the cache for the texts not scored yet, in length-sorted batches whose logits are bounded."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        pre = prefix_ids(self.tokenizer)
        encoded = {}  # (prompt, response) → (token ids, where the response starts)
        for prompt, response in {it for it in items if it not in self._cache}:
            p = pre + self.tokenizer(prompt + "\n", add_special_tokens=False).input_ids
            encoded[(prompt, response)] = (p + (self.tokenizer(response, add_special_tokens=False).input_ids or [pad]),
                                           len(p))
        todo = sorted(encoded, key=lambda it: (len(encoded[it][0]), it))  # by token length: batches pad little
        ids = [encoded[it] for it in todo]
        # a batch's logits are rows × length × vocab floats (a few copies): bound them, not just the row count
        vocab = self.model.get_output_embeddings().weight.shape[0]
        max_cells = max(1, int(self.max_logits_mb * 2**20 / (4 * 3 * vocab)))
        start = 0
        bar = tqdm(total=len(todo), desc="likelihood", unit="text", leave=False,
                   disable=not self.show_progress or len(todo) <= self.batch_size)
        while start < len(todo):
            stop = start + 1
            while (stop < len(todo) and stop - start < self.batch_size
                   and (stop - start + 1) * len(ids[stop][0]) <= max_cells):
                stop += 1
            batch, rows, starts = todo[start:stop], [r for r, _ in ids[start:stop]], [s for _, s in ids[start:stop]]
            start = stop
            self.forward_tokens += sum(map(len, rows))
            for item, logp in zip(batch, response_token_logprobs(self.model, rows, starts, pad)):
                self._cache[item] = (float(logp.mean()), float(logp.sum()), len(logp))
            bar.update(len(batch))
        bar.close()

    def claim_signal(self, claims: Sequence[Claim], pairs: Mapping[str, PreferencePair]) -> np.ndarray:
        """Per claim of a swapped pair: the mean log-likelihood of the response it ranks first (A for `A>B`);
        `zero_shot_signal` turns these into the within-pair difference. NaN for claims outside pairs."""
        items, where = [], []
        for k, c in enumerate(claims):
            pair = pairs.get(str(c.meta.get("pair", c.group)))
            if pair is None or c.key not in ("A>B", "B>A"):
                continue
            resp = pair.response_a if c.key == "A>B" else pair.response_b
            items.append((render_content(pair.prompt), render_content(resp)))
            where.append(k)
        out = np.full(len(claims), np.nan)
        if items:
            out[where] = self.mean_logprobs(items)
        return out


def pair_prior(model, tokenizer, pool: ClaimSet) -> Callable[[Sequence[Claim]], np.ndarray] | None:
    """An in-process scorer's prior on a pair pool: each claim's response log-likelihood under the labeler (the
    zero-shot likelihood baseline; the probe's hybrid term and sign). None for claim pools."""
    if not pool.is_pairwise:
        return None
    return partial(ResponseLikelihood(model, tokenizer).claim_signal, pairs=pool.pairs)
