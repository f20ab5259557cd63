"""The search's delta bookkeeping equals recomputing from scratch: priority sampling (== numpy's choice on the same
stream), I(D) and violating pairs by group deltas, U/P/I of candidates, the memo key after commits."""

import numpy as np
import pytest

from icm_rm.data.records import Claim
from icm_rm.data.tasks import TRUTHFULQA, ConsistencyRules
from icm_rm.label.energy import GroupViolations, build_structure, inconsistency, violating_pairs
from icm_rm.label.sampling import PrioritySampler
from icm_rm.label.search import ICMSearch, SearchConfig
from icm_rm.label.state import ScoreMemo, priority_weights
from icm_rm.scoring.probe import ProbeConfig, ProbeScorer
from testkit.table_scorer import TableScorer


STANCE_KEYS = ("yes it is", "yes", "no", "no never", "maybe")


def mixed_pool(n_groups: int, seed: int, keys: tuple[str, ...] = ("k0", "k1")):
    """Pairs (A>B/B>A) and claim groups of 1–4 with repeated keys, so every consistency rule can fire."""
    rng = np.random.default_rng(seed)
    claims = []
    for g in range(n_groups):
        if g % 2:
            claims += [Claim(id=f"g{g}:{k}", group=f"g{g}", key=k, text=f"g{g}{k}") for k in ("A>B", "B>A")]
        else:
            claims += [Claim(id=f"g{g}:{m}", group=f"g{g}", key=keys[rng.integers(len(keys))], text=f"g{g}:{m}")
                       for m in range(int(rng.integers(1, 5)))]
    return claims


def random_change(rng, labels, k=3):
    idx = rng.choice(len(labels), size=k, replace=False)
    return {int(i): [None, True, False][int(rng.integers(3))] for i in idx}


def test_sampler_draws_what_numpy_choice_draws():
    rng0 = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng0.integers(1, 500))
        w = np.where(rng0.random(n) < 0.3, 100, 1)
        s = PrioritySampler(w.tolist())
        a, b = np.random.default_rng(trial), np.random.default_rng(trial)
        for _ in range(200):
            if rng0.random() < 0.3:
                i, v = int(rng0.integers(n)), int(rng0.choice([1, 100]))
                w[i] = v
                s.set(i, v)
            assert s.draw(b) == int(a.choice(n, p=w / w.sum()))
        assert a.random() == b.random()  # one uniform per draw: the streams stay aligned


@pytest.mark.parametrize("keys, rules", [
    (("k0", "k1"), ConsistencyRules()),
    (STANCE_KEYS, TRUTHFULQA.rules),  # the yes/no stance rule (and same-key), different answers otherwise free
    (STANCE_KEYS, ConsistencyRules(different_keys_both_true=False, opposite_stances_both_true=True,
                                   same_key_different_labels=False)),
])
def test_group_violations_track_recomputation(keys, rules):
    claims = mixed_pool(30, 1, keys)
    s = build_structure([c.group for c in claims], [c.key for c in claims], rules)
    rng = np.random.default_rng(2)
    labels = [None] * len(claims)
    gv = GroupViolations(s, labels)
    for _ in range(300):
        changes = random_change(rng, labels)
        cand = list(labels)
        for i, y in changes.items():
            cand[i] = y
        total, counts = gv.trial(changes)
        assert total == inconsistency(s, cand)
        assert gv.pairs(changes, counts) == violating_pairs(s, cand)  # same pairs, same order
        if rng.random() < 0.5:
            for i, y in changes.items():
                labels[i] = y
            gv.commit(counts)
            assert gv.total == inconsistency(s, labels)


@pytest.mark.parametrize("scorer_kind", ["table", "probe"])
def test_candidates_and_commits_equal_scoring_from_scratch(scorer_kind):
    claims = mixed_pool(24, 3)
    rng = np.random.default_rng(4)
    if scorer_kind == "table":
        scorer = TableScorer(rng.standard_normal(len(claims)), coupling=rng.standard_normal((len(claims),) * 2),
                             weight=0.1)
    else:
        table = {c.text: rng.standard_normal(10) for c in claims}
        scorer = ProbeScorer(lambda ts: (np.stack([table[t] for t in ts]), np.zeros(len(ts))), ProbeConfig(pca_dims=4))
    search = ICMSearch(claims, scorer, ConsistencyRules(), SearchConfig(alpha=20.0))
    labels = [None] * len(claims)
    state = search._state(labels)
    for _ in range(60):
        changes = random_change(rng, labels)
        cand = state.evaluate(changes)
        full = list(labels)
        for i, y in changes.items():
            full[i] = y
        ref = search.evaluate(full)
        assert (cand.u, cand.p, cand.i) == pytest.approx((ref.u, ref.p, ref.i), abs=1e-9)
        if rng.random() < 0.5:
            state.commit(cand)
            assert state.labels == full and state.n_labeled == sum(y is not None for y in full)
            assert state.key == search._memo.key(full)
            assert state.sampler.w == priority_weights(search.structure, full, 100.0)
            q = int(rng.integers(len(claims)))
            expect = scorer.loo_scores(claims, full, [q])[0]
            assert state.query_score(q) == pytest.approx(expect, abs=1e-9)
    assert state.evaluate({}).u == state.u  # the current labeling is never re-scored


def test_memo_keys_follow_moves():
    memo = ScoreMemo(5)
    labels = [None, True, False, None, True]
    k = memo.key(labels)
    k2 = memo.moved(k, 0, None, False)
    assert k2 == memo.key([False, True, False, None, True]) and k2 != k
    assert memo.moved(k2, 0, False, None) == k
