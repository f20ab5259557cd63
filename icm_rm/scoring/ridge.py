"""Exact leave-one-out (and leave-one-group-out) ridge predictions in closed form, in the kernel (dual) form.

With K = XXᵀ and A = (K + λI)⁻¹, α = A·y: the fit's residual is λ·α and, for a held-out block G,
    ŷ_{−G} = y_G − (A_GG)⁻¹ α_G          (exact; a single claim is the 1×1 case ŷ_{−i} = y_i − α_i / A_ii)
so every LOO prediction comes from one n×n inverse instead of n re-fits, and a label flip only changes α = A·y:
O(n²) per re-score, O(n) per flipped claim.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ridge_dual(K: np.ndarray, lam: float) -> np.ndarray:
    """A = (K + λI)⁻¹ for a PSD kernel K (symmetrised, float64)."""
    n = K.shape[0]
    M = K + lam * np.eye(n)
    return np.linalg.inv((M + M.T) / 2)


def group_loo_predictions(A: np.ndarray, y: np.ndarray, blocks: Sequence[Sequence[int]]) -> np.ndarray:
    """ŷ_{−G} for each block G (index lists partitioning range(n)), from A = (K + λI)⁻¹."""
    alpha = A @ y
    out = np.empty_like(y, dtype=np.float64)
    for g in blocks:
        g = list(g)
        if len(g) == 1:
            i = g[0]
            out[i] = y[i] - alpha[i] / A[i, i]
        else:
            out[g] = y[g] - np.linalg.solve(A[np.ix_(g, g)], alpha[g])
    return out


def ridge_refit_predict(X_train: np.ndarray, y_train: np.ndarray, X_query: np.ndarray, lam: float) -> np.ndarray:
    """Explicit primal ridge fit w = (XᵀX + λI)⁻¹Xᵀy, then X_query·w — the reference the closed form must match."""
    d = X_train.shape[1]
    w = np.linalg.solve(X_train.T @ X_train + lam * np.eye(d), X_train.T @ y_train)
    return X_query @ w
