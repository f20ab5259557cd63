"""Exact leave-one-out (and leave-one-group-out) ridge predictions in closed form, in the kernel (dual) and the
primal form.

Kernel form. With K = XXᵀ and A = (K + λI)⁻¹, α = A·y: the fit's residual is λ·α and, for a held-out block G,
    ŷ_{−G} = y_G − (A_GG)⁻¹ α_G          (exact; a single claim is the 1×1 case ŷ_{−i} = y_i − α_i / A_ii)
so every LOO prediction comes from one n×n inverse instead of n re-fits: O(n²) memory, O(n³) per labeled set.

Primal form (d < n). With M = XᵀX + λI, w = M⁻¹Xᵀy, r = y − Xw and H = X M⁻¹ Xᵀ, A = (I − H)/λ and α = r/λ, so
    ŷ_{−G} = y_G − (I − H_GG)⁻¹ r_G,     H_GG = X_G M⁻¹ X_Gᵀ   (|G|×|G|)
the same numbers from a d×d inverse: O(n·d) memory, O(n·d²) per labeled set, O(d²) per flipped label.
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


def ridge_lambda(ridge: float, sq_norm_sum: float, n: int) -> float:
    """λ relative to the mean squared feature norm of the n training rows (= ridge · mean diag K)."""
    return ridge * max(sq_norm_sum / n, 1e-12)


def sym_inv(M: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix, symmetrised first (float64)."""
    return np.linalg.inv((M + M.T) / 2)


def blocks_by_size(blocks: Sequence[Sequence[int]]) -> dict[int, np.ndarray]:
    """Index blocks grouped by size: {k: (m, k) int array}, so each size is one vectorised computation."""
    out: dict[int, list] = {}
    for g in blocks:
        out.setdefault(len(g), []).append(list(g))
    return {k: np.array(v, dtype=np.int64).reshape(len(v), k) for k, v in out.items() if k}


def block_inverses(Xb: np.ndarray, Minv: np.ndarray) -> np.ndarray:
    """B_G = (I − X_G M⁻¹ X_Gᵀ)⁻¹ for a stack of blocks Xb (m, k, d) → (m, k, k). Zero rows of Xb (padding or
    unlabeled members) get the identity there, so they drop out of every product with B."""
    k = Xb.shape[1]
    H = (Xb @ Minv) @ Xb.transpose(0, 2, 1)
    if k == 1:
        return 1.0 / (1.0 - H)
    I_H = np.eye(k) - H
    if k == 2:  # closed form: most blocks are single claims or pairs
        det = I_H[:, 0, 0] * I_H[:, 1, 1] - I_H[:, 0, 1] * I_H[:, 1, 0]
        out = np.empty_like(I_H)
        out[:, 0, 0], out[:, 1, 1] = I_H[:, 1, 1] / det, I_H[:, 0, 0] / det
        out[:, 0, 1], out[:, 1, 0] = -I_H[:, 0, 1] / det, -I_H[:, 1, 0] / det
        return out
    return np.linalg.inv(I_H)


def primal_group_loo(X: np.ndarray, y: np.ndarray, blocks: Sequence[Sequence[int]], lam: float) -> np.ndarray:
    """ŷ_{−G} for each block G (index lists partitioning range(n)) from the d×d system: equals
    `group_loo_predictions(ridge_dual(X Xᵀ, λ), y, blocks)` without any n×n matrix."""
    Minv = sym_inv(X.T @ X + lam * np.eye(X.shape[1]))
    w = Minv @ (X.T @ y)
    r = y - X @ w
    out = np.empty_like(y, dtype=np.float64)
    for idx in blocks_by_size(blocks).values():
        B = block_inverses(X[idx], Minv)  # (m, k, k)
        out[idx] = y[idx] - np.einsum("mkl,ml->mk", B, r[idx])
    return out

