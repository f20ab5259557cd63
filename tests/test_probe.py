"""Probe scorer: exact LOO, antisymmetry on pairs, planted-direction recovery, sign anchoring, restarts."""

import numpy as np
import pytest

from icm_rm.data.records import Claim
from icm_rm.data.tasks import ConsistencyRules
from icm_rm.label.search import ICMSearch, SearchConfig
from icm_rm.scoring.probe import ProbeScorer
from icm_rm.scoring.ridge import ridge_refit_predict
from icm_rm.scoring.settings import ProbeConfig
from icm_rm.scoring.verdicts import anchor_sign, twin_index, zero_shot_signal

from test_search import one_chain


PURE = ProbeConfig(pca_dims=None, zero_shot_weight=0.0)  # the plain probe: mirror-symmetric, no hybrid term


def planted_pairs(n_pairs=40, d=24, signal=1.0, noise=1.0, seed=0):
    """Claim features = shared offset + truth·w + noise; zero-shot log-odds weakly track the truth."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d)
    offset = 3.0 * rng.standard_normal(d)
    claims, table, truth = [], {}, []
    for p in range(n_pairs):
        a_better = bool(rng.random() < 0.5)
        for key, t in (("A>B", a_better), ("B>A", not a_better)):
            c = Claim(id=f"p{p}:{key}", group=f"p{p}", key=key, text=f"pair {p} {key}")
            claims.append(c)
            truth.append(t)
            feat = offset + (signal if t else -signal) * w + noise * rng.standard_normal(d)
            z = (0.3 if t else -0.3) + rng.standard_normal()  # a weak, noisy zero-shot verdict
            table[c.text] = (feat, z)
    source = lambda texts: (np.stack([table[t][0] for t in texts]), np.array([table[t][1] for t in texts]))  # noqa
    return claims, source, truth


def test_claim_loo_equals_explicit_refits():
    rng = np.random.default_rng(0)
    n, d = 15, 6
    X = rng.standard_normal((n, d))
    claims = [Claim(id=f"c{i}", group=f"g{i}", key="k", text=f"t{i}") for i in range(n)]
    table = {c.text: X[i] for i, c in enumerate(claims)}
    cfg = ProbeConfig(loo="claim", ridge=0.5)
    scorer = ProbeScorer(lambda ts: (np.stack([table[t] for t in ts]), np.zeros(len(ts))), cfg)
    labels = [bool(b) for b in rng.random(n) < 0.5]
    labels[3] = None
    labeled = [i for i in range(n) if labels[i] is not None]
    got = scorer.loo_scores(claims, labels, labeled + [3])
    F = scorer.pool(claims).features / np.sqrt(d)  # kernel = F Fᵀ / d
    y = np.array([1.0 if labels[i] else -1.0 for i in labeled])
    lam = 0.5 * np.mean(np.sum(F[labeled] ** 2, axis=1))
    for k, i in enumerate(labeled):
        keep = [j for j in labeled if j != i]
        ref = ridge_refit_predict(F[keep], y[[labeled.index(j) for j in keep]], F[i:i + 1], lam)[0]
        assert got[k] == pytest.approx(ref, abs=1e-8)
    assert got[-1] == pytest.approx(ridge_refit_predict(F[labeled], y, F[3:4], lam)[0], abs=1e-8)


def test_pair_features_are_antisymmetric_and_keep_i_zero():
    claims, source, truth = planted_pairs(n_pairs=12)
    scorer = ProbeScorer(source, PURE)
    pool = scorer.pool(claims)
    tw = twin_index(claims)
    for i, t in enumerate(tw):
        np.testing.assert_allclose(pool.features[i], -pool.features[t], atol=1e-12)
    rng = np.random.default_rng(1)
    labels = []
    for p in range(12):
        a = bool(rng.random() < 0.5)
        labels += [a, not a]
    s = scorer.loo_scores(claims, labels, list(range(len(claims))))
    np.testing.assert_allclose(s[0::2], -s[1::2], atol=1e-10)
    res = ICMSearch(claims, scorer, ConsistencyRules(), one_chain(iterations=200, seed=0)).run()
    assert res.evaluation.i == 0


def test_search_recovers_planted_labels_with_anchoring():
    claims, source, truth = planted_pairs(n_pairs=40, signal=1.0, noise=1.0, seed=3)
    scorer = ProbeScorer(source, PURE)
    search = ICMSearch(claims, scorer, ConsistencyRules(), one_chain(iterations=400, seed=0, alpha=50.0))
    res = search.run()
    _, z = source([c.text for c in claims])
    labels, flipped = anchor_sign(claims, res.labels, z, lambda ls: search.evaluate(ls).u)
    acc = np.mean([a == b for a, b in zip(labels, truth)])
    assert acc >= 0.95


def test_anchor_sign_picks_the_side_the_lm_agrees_with():
    claims, source, truth = planted_pairs(n_pairs=30, seed=4)
    scorer = ProbeScorer(source, PURE)
    search = ICMSearch(claims, scorer, ConsistencyRules(), SearchConfig())
    mirror = [not t for t in truth]
    _, z = source([c.text for c in claims])
    assert search.evaluate(mirror).u == pytest.approx(search.evaluate(truth).u)  # the probe cannot tell
    fixed, flipped = anchor_sign(claims, mirror, z, lambda ls: search.evaluate(ls).u)
    assert flipped and fixed == truth
    same, flipped = anchor_sign(claims, list(truth), z, lambda ls: search.evaluate(ls).u)
    assert not flipped and same == truth


def test_restarts_never_lower_u_on_probe():
    claims, source, _ = planted_pairs(n_pairs=25, signal=0.4, noise=1.5, seed=5)
    one = ICMSearch(claims, ProbeScorer(source, PURE), ConsistencyRules(), one_chain(iterations=150, seed=2)).run()
    many = ICMSearch(claims, ProbeScorer(source, PURE), ConsistencyRules(),
                     SearchConfig(iterations=150, seed=2, restarts=3)).run()
    assert many.evaluation.u >= one.evaluation.u


def test_group_centering_and_pca_keep_shapes():
    claims = [Claim(id=f"c{i}", group=f"g{i // 3}", key=str(i % 3), text=f"t{i}") for i in range(12)]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 10))
    src = lambda ts: (X[[int(t[1:]) for t in ts]], np.zeros(len(ts)))  # noqa: E731
    pool = ProbeScorer(src, ProbeConfig(center="group", pca_dims=4)).pool(claims)
    assert pool.features.shape == (12, 4)
    raw = ProbeScorer(src, ProbeConfig(center="group")).pool(claims).features
    for g in range(4):
        np.testing.assert_allclose(raw[3 * g:3 * g + 3].sum(axis=0), 0, atol=1e-9)


def test_hybrid_term_adds_the_zero_shot_verdict_and_breaks_the_mirror_tie():
    claims, source, truth = planted_pairs(n_pairs=10, seed=6)
    pure = ProbeScorer(source, PURE)
    hybrid = ProbeScorer(source, ProbeConfig(pca_dims=None, zero_shot_weight=0.5, zero_shot_scale="raw"))
    q = list(range(len(claims)))
    _, z = source([c.text for c in claims])
    signal = zero_shot_signal(claims, z)
    np.testing.assert_allclose(hybrid.loo_scores(claims, truth, q) - pure.loo_scores(claims, truth, q),
                               0.5 * signal, atol=1e-12)
    rms = ProbeScorer(source, ProbeConfig(pca_dims=None, zero_shot_weight=0.5, zero_shot_scale="rms"))
    np.testing.assert_allclose(rms.loo_scores(claims, truth, q) - pure.loo_scores(claims, truth, q),
                               0.5 * signal / np.sqrt(np.mean(signal ** 2)), atol=1e-12)
    s = ICMSearch(claims, hybrid, ConsistencyRules(), SearchConfig())
    mirror = [not t for t in truth]
    assert s.evaluate(truth).u != pytest.approx(s.evaluate(mirror).u)


def test_labels_carried_between_batches_fix_the_sign_of_later_batches(tmp_path):
    """Batch 1 searched with batch 0's labels in the fit (after `prepare` on the whole pool) takes batch 0's
    orientation, whichever mirror image batch 0 landed on; a resume under other carried labels is refused."""
    from icm_rm.infra.errors import UserError

    claims, source, truth = planted_pairs(n_pairs=60, signal=1.0, noise=1.0, seed=11)
    b0, b1 = claims[:60], claims[60:]
    for seed in range(3):
        scorer = ProbeScorer(source, PURE)
        scorer.prepare(claims)
        first = ICMSearch(b0, scorer, ConsistencyRules(), SearchConfig(iterations=300, seed=seed)).run()
        acc0 = np.mean([a == b for a, b in zip(first.labels, truth[:60])])
        assert acc0 >= 0.9 or acc0 <= 0.1
        second = ICMSearch(b1, scorer, ConsistencyRules(), SearchConfig(iterations=300, seed=seed),
                           carry=scorer.carry(b0, first.labels)).run(state_path=tmp_path / f"s{seed}.json")
        acc1 = np.mean([a == b for a, b in zip(second.labels, truth[60:])])
        assert (acc1 >= 0.9) == (acc0 >= 0.9) and (acc1 <= 0.1) == (acc0 <= 0.1)
        mirror = [not y for y in first.labels]
        with pytest.raises(UserError, match="different pool"):
            ICMSearch(b1, scorer, ConsistencyRules(), SearchConfig(iterations=300, seed=seed),
                      carry=scorer.carry(b0, mirror)).run(state_path=tmp_path / f"s{seed}.json", resume=True)
    with pytest.raises(ValueError, match="prepare"):
        ProbeScorer(source, PURE).carry(b0, truth[:60])
    # carrying batch by batch = carrying everything at once (the same sums; the digest names the order)
    halves = scorer.carry(b0[30:], truth[30:60], onto=scorer.carry(b0[:30], truth[:30]))
    whole = scorer.carry(b0, truth[:60])
    np.testing.assert_allclose(halves.G, whole.G, atol=1e-12)
    np.testing.assert_allclose(halves.b, whole.b, atol=1e-12)
    assert (halves.n, halves.sq) == pytest.approx((whole.n, whole.sq))
