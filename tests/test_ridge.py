"""Closed-form (hat-matrix) LOO ridge predictions == explicit re-fits."""

import numpy as np
import pytest

from icm_rm.scoring.ridge import group_loo_predictions, ridge_dual, ridge_refit_predict


@pytest.mark.parametrize("n,d,lam", [(7, 3, 0.5), (20, 40, 2.0), (33, 5, 1e-2)])
def test_loo_equals_refits(n, d, lam):
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, d))
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    A = ridge_dual(X @ X.T, lam)
    fast = group_loo_predictions(A, y, [[i] for i in range(n)])
    for i in range(n):
        keep = np.arange(n) != i
        ref = ridge_refit_predict(X[keep], y[keep], X[i:i + 1], lam)[0]
        assert fast[i] == pytest.approx(ref, abs=1e-8)


def test_group_loo_equals_refits_without_the_group():
    rng = np.random.default_rng(0)
    n, d, lam = 18, 6, 0.7
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    blocks = [[0, 1], [2, 3, 4], [5], [6, 7]] + [[i] for i in range(8, n)]
    fast = group_loo_predictions(ridge_dual(X @ X.T, lam), y, blocks)
    for g in blocks:
        keep = np.setdiff1d(np.arange(n), g)
        ref = ridge_refit_predict(X[keep], y[keep], X[g], lam)
        np.testing.assert_allclose(fast[g], ref, atol=1e-8)
