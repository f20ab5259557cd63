"""The probe in primal form (d×d system, incremental under label changes) equals today's kernel form (n×n) to 1e-9:
random pools, both LOO modes, claims and pairs, labeled and unlabeled queries, and after long runs of changes."""

import numpy as np
import pytest

from icm_rm.data.records import Claim
from icm_rm.label.energy import predictability
from icm_rm.scoring.primal_probe import CarriedFit, PrimalProbe
from icm_rm.scoring.probe import ProbeConfig, ProbeScorer
from icm_rm.scoring.ridge import group_loo_predictions, primal_group_loo, ridge_dual, ridge_refit_predict

TOL = 1e-9


def random_pool(kind: str, n_groups: int, seed: int, D: int = 12):
    """claims: groups of 1–4 single claims; pairs: swapped A>B / B>A twins. Features are random per text."""
    rng = np.random.default_rng(seed)
    claims = []
    for g in range(n_groups):
        if kind == "pairs":
            claims += [Claim(id=f"g{g}:{k}", group=f"g{g}", key=k, text=f"g{g} {k}") for k in ("A>B", "B>A")]
        else:
            claims += [Claim(id=f"g{g}:{m}", group=f"g{g}", key=f"k{m}", text=f"g{g} {m}")
                       for m in range(int(rng.integers(1, 5)))]
    table = {c.text: (rng.standard_normal(D) + 2.0, float(rng.standard_normal())) for c in claims}
    source = lambda ts: (np.stack([table[t][0] for t in ts]), np.array([table[t][1] for t in ts]))  # noqa: E731
    return claims, source


def random_labels(rng, n, p_none=0.3):
    return [None if rng.random() < p_none else bool(rng.random() < 0.5) for _ in range(n)]


def scorers(loo: str, **kw):
    base = dict(loo=loo, pca_dims=5, zero_shot_weight=0.3, ridge=0.7, score_scale=1.3, **kw)
    return ProbeScorer(None, ProbeConfig(form="primal", **base)), ProbeScorer(None, ProbeConfig(form="kernel", **base))


@pytest.mark.parametrize("kind", ["claims", "pairs"])
@pytest.mark.parametrize("loo", ["group", "claim"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_primal_loo_scores_equal_kernel_form(kind, loo, seed):
    claims, source = random_pool(kind, 30, seed)
    primal, kernel = scorers(loo)
    primal.features = kernel.features = source
    rng = np.random.default_rng(seed + 10)
    for p_none in (0.0, 0.3, 0.9):
        labels = random_labels(rng, len(claims), p_none)
        q = list(range(len(claims)))
        a, b = primal.loo_scores(claims, labels, q), kernel.loo_scores(claims, labels, q)
        assert np.max(np.abs(a - b)) <= TOL
    none = [None] * len(claims)  # nothing labeled: only the zero-shot term
    np.testing.assert_allclose(primal.loo_scores(claims, none, q), kernel.loo_scores(claims, none, q), atol=TOL)


def test_primal_group_loo_equals_dual():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((25, 4))
    y = np.where(rng.random(25) < 0.5, 1.0, -1.0)
    blocks = [[0, 1], [2, 3, 4], [5], [6, 7, 8, 9]] + [[i] for i in range(10, 25)]
    np.testing.assert_allclose(primal_group_loo(X, y, blocks, 0.8),
                               group_loo_predictions(ridge_dual(X @ X.T, 0.8), y, blocks), atol=TOL)


def kernel_reference(kernel: ProbeScorer, claims, labels):
    lab = [i for i, y in enumerate(labels) if y is not None]
    s = np.full(len(claims), np.nan)
    if lab:
        s[lab] = kernel.loo_scores(claims, labels, lab)
    return predictability(s, labels), kernel.loo_scores(claims, labels, list(range(len(claims))))


@pytest.mark.parametrize("kind,loo", [("claims", "group"), ("pairs", "group"), ("claims", "claim")])
def test_incremental_trials_and_commits_track_the_kernel_form(kind, loo):
    """A random walk of flips, new labels, removed labels and multi-claim changes; trials are committed or dropped.
    Every trial's P and, after each step, every claim's score equal the kernel form computed from scratch."""
    claims, source = random_pool(kind, 20, 5)
    primal, kernel = scorers(loo)
    primal.features = kernel.features = source
    rng = np.random.default_rng(7)
    labels = random_labels(rng, len(claims), 0.8)
    state = primal.session(claims, labels)
    assert isinstance(state, PrimalProbe)
    n = len(claims)
    for step in range(60):
        k = int(rng.integers(1, 4))
        idx = rng.choice(n, size=k, replace=False)
        changes = {}
        for i in idx:
            r = rng.random()
            changes[int(i)] = (not labels[i]) if (labels[i] is not None and r < 0.6) else (
                None if r < 0.7 else bool(rng.random() < 0.5))
        trial = state.trial(changes)
        cand = list(labels)
        for i, v in changes.items():
            cand[i] = v
        p_ref, _ = kernel_reference(kernel, claims, cand)
        assert trial.p == pytest.approx(p_ref, abs=TOL)
        if rng.random() < 0.6:
            state.commit(trial)
            labels = cand
        p_ref, s_ref = kernel_reference(kernel, claims, labels)
        assert state.p == pytest.approx(p_ref, abs=TOL)
        got = np.array([state.score(q) for q in range(n)])
        assert np.max(np.abs(got - s_ref)) <= TOL, step
        lab = [i for i in range(n) if labels[i] is not None]
        np.testing.assert_allclose(state.scores()[lab], s_ref[lab], atol=TOL)
        assert np.isnan(state.scores()[[i for i in range(n) if labels[i] is None]]).all()


def test_saved_running_sums_resume_bit_for_bit():
    claims, source = random_pool("pairs", 15, 3)
    primal, _ = scorers("group")
    primal.features = source
    rng = np.random.default_rng(1)
    labels = random_labels(rng, len(claims), 0.0)
    state = primal.session(claims, labels)
    for _ in range(20):  # flips only: the running sums drift from a fresh fit in the last bits
        i = int(rng.integers(len(claims)))
        t = state.trial({i: not labels[i]})
        state.commit(t)
        labels[i] = not labels[i]
    saved = state.state_dict()
    again = primal.session(claims, labels)
    again.load_state_dict(saved)
    t1, t2 = state.trial({0: not labels[0]}), again.trial({0: not labels[0]})
    assert t1.p == t2.p and state.p == again.p
    assert [state.score(q) for q in range(len(claims))] == [again.score(q) for q in range(len(claims))]


def test_carried_labels_join_the_fit_but_not_the_score():
    """carry = claims labeled in earlier batches: part of every fit (and of λ's mean), never held out or scored."""
    rng = np.random.default_rng(2)
    n, m, d, ridge = 14, 9, 4, 0.6
    X, Xc = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    yc = np.where(rng.random(m) < 0.5, 1.0, -1.0)
    labels = [bool(b) for b in rng.random(n) < 0.5]
    labels[3] = None
    Xs, Xcs = X / np.sqrt(d), Xc / np.sqrt(d)
    carry = CarriedFit.empty(d).extend(Xcs[:4], yc[:4], ["a"]).extend(Xcs[4:], yc[4:], ["b"])
    state = PrimalProbe(X, np.zeros(n), [f"g{i}" for i in range(n)], labels, ridge=ridge, loo="claim", carry=carry)
    lab = [i for i in range(n) if labels[i] is not None]
    y = {i: 1.0 if labels[i] else -1.0 for i in lab}
    lam = ridge * (np.sum(Xs[lab] ** 2) + np.sum(Xcs ** 2)) / (len(lab) + m)
    for i in lab:
        keep = [j for j in lab if j != i]
        Xt = np.vstack([Xs[keep], Xcs])
        yt = np.concatenate([[y[j] for j in keep], yc])
        assert state.score(i) == pytest.approx(ridge_refit_predict(Xt, yt, Xs[i:i + 1], lam)[0], abs=TOL)
    Xt, yt = np.vstack([Xs[lab], Xcs]), np.concatenate([[y[j] for j in lab], yc])
    assert state.score(3) == pytest.approx(ridge_refit_predict(Xt, yt, Xs[3:4], lam)[0], abs=TOL)
    p = np.mean([y[i] * state.score(i) for i in lab])
    assert state.p == pytest.approx(p, abs=TOL)


def test_auto_form_and_no_kernel_in_primal():
    claims, source = random_pool("claims", 20, 0)
    scorer = ProbeScorer(source, ProbeConfig(pca_dims=5))
    labels = [True, False] * (len(claims) // 2) + [None] * (len(claims) % 2)
    scorer.loo_scores(claims, labels, list(range(len(claims))))
    pool = scorer.pool(claims)
    assert scorer.primal(pool) and pool._kernel is None
    tiny = ProbeScorer(source, ProbeConfig(pca_dims=None))  # d = 12 ≥ n = 4: kernel form
    assert not tiny.primal(tiny.pool(claims[:4]))


@pytest.mark.parametrize("kind", ["claims", "pairs"])
def test_large_pool_principal_axes_give_the_same_scores(kind, monkeypatch):
    """Pools above SVD_MAX_ELEMENTS take PCA axes from the Gram matrix: same subspace, same scores."""
    import icm_rm.scoring.probe as probe

    claims, source = random_pool(kind, 40, 9)
    labels = random_labels(np.random.default_rng(0), len(claims), 0.3)
    q = list(range(len(claims)))
    small = ProbeScorer(source, ProbeConfig(pca_dims=4)).loo_scores(claims, labels, q)
    monkeypatch.setattr(probe, "SVD_MAX_ELEMENTS", 0)
    large = ProbeScorer(source, ProbeConfig(pca_dims=4)).loo_scores(claims, labels, q)
    assert np.max(np.abs(large - small)) <= TOL
