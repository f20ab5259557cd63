"""Advantages: GAE(γ, λ) over per-token rewards, and masked whitening. Pure torch, no trainer state.

Shapes: B = sequences in the batch, T = response tokens (right-padded). `mask[b, t] = 1` for real response tokens;
every row's mask is a prefix (ones, then zeros): a response ends at its EOS or at `max_new_tokens`.
"""

from __future__ import annotations

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, vectorised over time as one matrix product.

    δ_t = r_t + γ·V_{t+1} − V_t  (V past the last real token is 0: the episode ends there)
    A_t = Σ_{k≥0} (γλ)^k δ_{t+k}   computed as δ @ Dᵀ with D[t, s] = (γλ)^(s−t) for s ≥ t.
    Returns (advantages, returns = advantages + values), both [B, T], zero on padding.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)   # [B, T]; 0 after the end
    deltas = (rewards + gamma * next_values - values) * mask                              # [B, T]
    T = deltas.shape[1]
    idx = torch.arange(T, device=deltas.device)
    power = (idx[None, :] - idx[:, None]).to(deltas.dtype)                                # [T, T]: s − t
    discount = torch.where(power >= 0, torch.tensor(gamma * lam, dtype=deltas.dtype, device=deltas.device) ** power.clamp(min=0),
                           torch.zeros((), dtype=deltas.dtype, device=deltas.device))     # D[t, s]
    advantages = (deltas @ discount.T) * mask                                              # [B, T]
    return advantages, (advantages + values) * mask


def masked_moments(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[Σx, Σx², n] over masked entries, as one tensor so processes can all-reduce it in one call."""
    mask = mask.to(x.dtype)
    return torch.stack([(x * mask).sum(), (x * x * mask).sum(), mask.sum()])


def moments_to_mean_var(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance (Bessel-corrected, as TRL's masked_var) from `masked_moments` sums."""
    s, sq, n = moments.unbind()
    mean = s / n.clamp(min=1)
    var = (sq / n.clamp(min=1) - mean**2).clamp(min=0)
    var = var * n / (n - 1).clamp(min=1)
    return mean, var


def whiten(x: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor | None = None, var: torch.Tensor | None = None,
           shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean)/√(var + eps) on masked entries (zero elsewhere). Stats default to this batch's masked ones;
    pass the all-reduced `mean`/`var` to whiten with statistics over every process."""
    if mean is None or var is None:
        mean, var = moments_to_mean_var(masked_moments(x, mask))
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)
