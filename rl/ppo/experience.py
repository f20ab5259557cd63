"""One rollout batch on one process, from generation to the PPO update. B = sequences, P = prompt tokens
(left-padded), T = response tokens (right-padded after EOS)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class Experience:
    query_ids: torch.Tensor            # [B, P]  prompt token ids, left-padded
    query_mask: torch.Tensor           # [B, P]  1 on prompt tokens, 0 on left padding
    response_ids: torch.Tensor         # [B, T]  sampled tokens, pad after the first EOS
    response_mask: torch.Tensor        # [B, T]  1 up to and including the first EOS (prefix mask)
    logprobs: torch.Tensor             # [B, T]  log π_old(token), at the sampling temperature
    ref_logprobs: torch.Tensor         # [B, T]  log π_ref(token), same temperature
    values: torch.Tensor               # [B, T]  V_old(state before each token)
    scores: torch.Tensor               # [B]     sequence reward after normalisation, clipping and EOS penalty
    has_eos: torch.Tensor              # [B]     bool: the response ended with EOS within max_new_tokens
    kl: torch.Tensor | None = None     # [B, T]  per-token KL estimate used in the reward
    rewards: torch.Tensor | None = None      # [B, T]  −β·kl, plus the score on the last real token
    advantages: torch.Tensor | None = None   # [B, T]  GAE, whitened when configured
    returns: torch.Tensor | None = None      # [B, T]  GAE advantages + values (targets for the value head)

    def __len__(self) -> int:
        return self.query_ids.shape[0]

    def select(self, index: torch.Tensor | slice) -> Experience:
        """The rows at `index` (a micro-batch), every tensor field sliced alike."""
        return Experience(**{f.name: (v[index] if isinstance(v, torch.Tensor) else v)
                             for f in dataclasses.fields(self) for v in [getattr(self, f.name)]})

    def trimmed(self) -> Experience:
        """Drop prompt columns that are padding in every row and response columns past the longest response."""
        q0 = int((self.query_mask.sum(0) > 0).nonzero()[0]) if self.query_mask.any() else 0
        t1 = int(self.response_mask.sum(1).max())
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor) and v.dim() == 2:
                v = v[:, q0:] if f.name in ("query_ids", "query_mask") else v[:, :t1]
            out[f.name] = v
        return Experience(**out)

    @staticmethod
    def concat(parts: list[Experience], pad_token_id: int) -> Experience:
        """Join generation chunks; prompts re-padded on the left, responses on the right."""
        out = {}
        for f in dataclasses.fields(Experience):
            vals = [getattr(p, f.name) for p in parts]
            if vals[0] is None:
                out[f.name] = None
                continue
            if vals[0].dim() == 1:
                out[f.name] = torch.cat(vals)
                continue
            width = max(v.shape[1] for v in vals)
            left = f.name in ("query_ids", "query_mask")
            fill = pad_token_id if f.name in ("query_ids", "response_ids") else 0
            padded = []
            for v in vals:
                pad = v.new_full((v.shape[0], width - v.shape[1]), fill)
                padded.append(torch.cat([pad, v] if left else [v, pad], dim=1))
            out[f.name] = torch.cat(padded)
        return Experience(**out)
