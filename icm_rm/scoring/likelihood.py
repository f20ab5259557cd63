"""The LM's own pairwise preference: the mean log-likelihood of each response given the prompt.

On the built-in fact pairs this zero-shot signal is strong (SmolLM2-135M / Gemma 3 270M: 0.81–1.00 pair accuracy,
where True/False log-odds are at or below chance), so it is both a baseline the reports show and the sign anchor
of the probe scorer on pairs (which cannot tell a labeling from its mirror image).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..data.records import Claim, PreferencePair
from ..tasks import render_content
from .tokens import prefix_ids, right_pad


class ResponseLikelihood:
    """`claim_signal(claims, pairs)` → per claim: mean log-prob of the response that claim says is better."""

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self._cache: dict[tuple[str, str], float] = {}
        self.forward_tokens = 0

    @torch.inference_mode()
    def mean_logprobs(self, items: Sequence[tuple[str, str]]) -> list[float]:
        """Mean log π(response tokens | prompt + newline) for (prompt, response) texts."""
        todo = sorted({it for it in items if it not in self._cache}, key=lambda it: len(it[0]) + len(it[1]))
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        pre = prefix_ids(self.tokenizer)
        for s in range(0, len(todo), self.batch_size):
            batch = todo[s:s + self.batch_size]
            rows, starts = [], []
            for prompt, response in batch:
                p = pre + self.tokenizer(prompt + "\n", add_special_tokens=False).input_ids
                r = self.tokenizer(response, add_special_tokens=False).input_ids or [pad]
                rows.append(p + r)
                starts.append(len(p))
            x, mask = right_pad(rows, pad)
            logits = self.model(input_ids=x.to(device), attention_mask=mask.to(device)).logits.float()
            self.forward_tokens += int(mask.sum())
            logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, x[:, 1:].to(device)[..., None])[..., 0]
            for i, (row, st) in enumerate(zip(rows, starts)):
                self._cache[batch[i]] = float(logp[i, st - 1:len(row) - 1].mean())
        return [self._cache[it] for it in items]

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
