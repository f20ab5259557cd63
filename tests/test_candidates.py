"""The result of a search (docs/icm.md): best-seen states, mirrors, verdict-started chains, max U; gold-free
diagnostics and their warnings; the summaries put ICM next to the strongest baseline."""

from types import SimpleNamespace

import numpy as np
import pytest

from icm_rm.data.records import Claim
from icm_rm.data.tasks import ConsistencyRules
from icm_rm.label.candidates import encode_labels, rank
from icm_rm.label.diagnostics import broken_groups, diagnose, warnings
from icm_rm.label.outputs import strongest_baseline
from icm_rm.label.search import ICMSearch, SearchConfig, SearchInterrupted
from icm_rm.pipeline.report import short_summary
from icm_rm.scoring.probe import ProbeScorer
from icm_rm.scoring.settings import ProbeConfig
from icm_rm.scoring.verdicts import anchor_sign, zero_shot_signal
from testkit.table_scorer import TableScorer

from test_probe import planted_pairs
from test_search import one_chain, pair_pool


def verdict_of(labels):
    """A zero-shot signal whose sign is exactly `labels`."""
    return np.array([1.0 if y else -1.0 for y in labels])


def test_a_labeling_whose_mirror_has_higher_u_is_returned_mirrored():
    claims, base, truth = pair_pool(12, seed=1, bias=0.0, signal=1.0, noise=0.1)
    mirror = [not t for t in truth]
    search = ICMSearch(claims, TableScorer(base), ConsistencyRules(), SearchConfig(iterations=0, restarts=1),
                       verdicts={"wrong": verdict_of(mirror)})
    assert search.evaluate(truth).u > search.evaluate(mirror).u
    res = search.run()  # the only complete labeling a chain saw is the verdict's (the mirror image of the truth)
    assert res.labels == truth and res.candidates[0].mirrored and res.candidates[0].source == "verdict:wrong"
    assert [c.u for c in res.candidates[:2]] == sorted([c.u for c in res.candidates[:2]], reverse=True)


def test_anchor_sign_flips_to_a_mirror_with_higher_u_under_the_hybrid_probe():
    claims, source, truth = planted_pairs(n_pairs=30, seed=4)
    scorer = ProbeScorer(source, ProbeConfig(pca_dims=None, zero_shot_weight=0.5))
    search = ICMSearch(claims, scorer, ConsistencyRules(), SearchConfig())
    _, z = source([c.text for c in claims])
    mirror = [not t for t in truth]
    u, u_mirror = search.evaluate(truth).u, search.evaluate(mirror).u
    assert u != pytest.approx(u_mirror)  # the old rule flipped only on an exact tie, so it kept the worse one
    better, worse = (truth, mirror) if u > u_mirror else (mirror, truth)
    got, flipped = anchor_sign(claims, worse, z, lambda ls: search.evaluate(ls).u)
    assert flipped and got == better
    got, flipped = anchor_sign(claims, better, z, lambda ls: search.evaluate(ls).u)
    assert not flipped and got == better


def test_a_chain_started_from_a_perfect_verdict_ends_at_u_at_least_its_start():
    """The verdict is the best labeling a long search finds; a hot chain started there walks away from it, yet the
    chain's result (its best-seen state) and the search's result keep at least its starting U."""
    claims, base, _ = pair_pool(12, seed=1, bias=0.0, signal=1.0, noise=0.3)
    coupling = np.random.default_rng(1).standard_normal((len(claims), len(claims)))
    scorer = TableScorer(base, coupling=coupling, weight=0.5)  # context-dependent scores: greedy moves can cost U
    perfect = ICMSearch(claims, scorer, ConsistencyRules(), SearchConfig(iterations=300, restarts=4)).run().labels
    cfg = SearchConfig(iterations=200, patience=0, restarts=1, t0=1e3, t_min=1e2, seed=5)  # hot
    search = ICMSearch(claims, scorer, ConsistencyRules(), cfg, verdicts={"perfect": verdict_of(perfect)})
    start = search.evaluate(perfect).u
    res = search.run()
    chain = next(c for c in res.chains if c.origin == "verdict:perfect")
    assert chain.u < start - 10  # the chain's final state fell well below its start …
    assert chain.best["u"] >= start and res.evaluation.u >= start  # … but what it reports never does
    assert search.evaluate(res.labels).u == pytest.approx(res.evaluation.u)


def test_best_seen_state_beats_the_final_state():
    claims, base, _ = pair_pool(15, seed=6, bias=0.3, signal=0.3, noise=1.5)
    cfg = SearchConfig(iterations=200, patience=0, restarts=3, t0=50.0, t_min=20.0, seed=2)
    res = ICMSearch(claims, TableScorer(base), ConsistencyRules(), cfg).run()
    for c in res.chains:
        assert c.best["u"] >= max(h[1] for h in c.history if h[6] == len(claims)) - 1e-12
    assert res.evaluation.u >= max(c.u for c in res.chains)


def test_replicas_that_disagree_raise_the_seed_warning():
    """Two blocks of claims that each want one shared label, and nothing to say which: four labelings share the top
    U, so independent replicas end at different ones."""
    n = 24
    claims = [Claim(id=f"c{i}", group=f"g{i}", key="k", text=f"c{i}") for i in range(n)]
    block = np.arange(n) < n // 2
    scorer = TableScorer(np.zeros(n), coupling=(block[:, None] == block[None, :]).astype(float), weight=0.1)
    cfg = SearchConfig(iterations=150, restarts=1, replicas=3, seed=0, verdict_chains=False)
    search = ICMSearch(claims, scorer, ConsistencyRules(), cfg)
    res = search.run()
    d = diagnose(claims, res.labels, res.candidates, {}, u_mirror=search.evaluate([not y for y in res.labels]).u,
                 violations=res.evaluation.i, groups_broken=broken_groups(search.structure, res.labels))
    assert d["seed_agreement"] == {"min": 0.5, "mean": pytest.approx(2 / 3), "replicas": 3}
    codes = [w.code for w in warnings(d, pairwise=False)]
    assert "seeds_disagree" in codes and "chains_disagree" in codes and "small_margin" in codes


def test_replicas_that_agree_raise_no_warning():
    claims, base, truth = pair_pool(30, seed=2, bias=0.0, signal=1.5, noise=0.2)
    lik = verdict_of(truth)
    cfg = SearchConfig(iterations=200, restarts=2, replicas=2, seed=0)
    search = ICMSearch(claims, TableScorer(base), ConsistencyRules(), cfg, verdicts={"likelihood": lik})
    res = search.run()
    mirror = [not y for y in res.labels]
    d = diagnose(claims, res.labels, res.candidates, {"likelihood": lik}, u_mirror=search.evaluate(mirror).u,
                 violations=res.evaluation.i, groups_broken=broken_groups(search.structure, res.labels))
    assert res.labels == truth and d["seed_agreement"]["min"] == 1.0
    assert d["verdict_agreement"]["likelihood"] == 1.0 and d["balance"]["a_preferred_share"] == pytest.approx(
        np.mean([t for c, t in zip(claims, truth) if c.key == "A>B"]))
    assert warnings(d, pairwise=True) == []


def test_labels_against_the_likelihood_verdict_raise_a_warning():
    claims, base, truth = pair_pool(20, seed=4, bias=0.0, signal=1.5, noise=0.2)
    lik = -verdict_of(truth)  # the model's preference is exactly reversed
    search = ICMSearch(claims, TableScorer(base), ConsistencyRules(), one_chain(iterations=100),
                       verdicts={"likelihood": lik})
    res = search.run()
    d = diagnose(claims, res.labels, res.candidates, {"likelihood": lik},
                 u_mirror=search.evaluate([not y for y in res.labels]).u, violations=0, groups_broken=0)
    assert d["verdict_agreement"]["likelihood"] == 0.0
    assert "against_likelihood" in [w.code for w in warnings(d, pairwise=True)]


@pytest.mark.parametrize("flipped, fires", [(0, False), (3, False), (4, True), (10, True), (11, False)])
def test_labels_that_depart_from_the_likelihood_verdict_raise_a_warning(flipped, fires):
    """20 pairs labeled as the truth; the likelihood verdict differs on `flipped` pairs (both claims of each):
    3/20 = 15% is within DEPART, 4/20 and 10/20 depart, 11/20 (agreement below half) is against_likelihood."""
    claims, base, truth = pair_pool(20, seed=4, bias=0.0, signal=1.5, noise=0.2)
    groups = sorted({c.group for c in claims})[:flipped]
    lik = np.array([(-1.0 if c.group in groups else 1.0) * (1.0 if t else -1.0) for c, t in zip(claims, truth)])
    search = ICMSearch(claims, TableScorer(base), ConsistencyRules(), one_chain(iterations=100),
                       verdicts={"likelihood": lik})
    res = search.run()
    assert res.labels == truth
    d = diagnose(claims, res.labels, res.candidates, {"likelihood": lik},
                 u_mirror=search.evaluate([not y for y in res.labels]).u, violations=0, groups_broken=0)
    assert d["verdict_agreement"]["likelihood"] == pytest.approx(1 - flipped / 20)
    codes = [w.code for w in warnings(d, pairwise=True)]
    assert ("departs_from_likelihood" in codes) == fires
    assert ("against_likelihood" in codes) == (flipped > 10)
    assert "departs_from_likelihood" not in [w.code for w in warnings(d, pairwise=False)]


def test_rank_prefers_complete_labelings_and_breaks_ties_by_the_verdict():
    claims, source, truth = planted_pairs(n_pairs=10, seed=6)
    scorer = ProbeScorer(source, ProbeConfig(pca_dims=None, zero_shot_weight=0.0))  # mirror-symmetric
    _, z = source([c.text for c in claims])
    signal = zero_shot_signal(claims, z)
    search = ICMSearch(claims, scorer, ConsistencyRules(), SearchConfig(iterations=0, restarts=1),
                       verdicts={"tf": signal}, sign=signal)
    res = search.run()
    win, twin = res.candidates[0], next(c for c in res.candidates[1:] if c.chain == res.candidates[0].chain)
    assert win.u == pytest.approx(twin.u) and win.sign_agreement >= twin.sign_agreement
    partial = [c for c in res.candidates if "." in c.labels]
    assert partial and all("." not in c.labels for c in res.candidates[:len(res.candidates) - len(partial)])
    assert rank(list(reversed(res.candidates)))[0] == win


def test_pipeline_summary_names_the_strongest_baseline(tmp_path):
    baselines = {"zero_shot": {"pair": 0.492}, "zero_shot_likelihood": {"pair": 1.0},
                 "random_label": {"pair": 0.55}, "golden_label": {"pair": 0.966}}
    lab = {"accuracy": {"pair": 0.983}, "baselines": baselines, "strongest_baseline": strongest_baseline(baselines),
           "warnings": [{"code": "small_margin", "message": "the direction rests on a weak signal"}]}
    assert lab["strongest_baseline"] == {"name": "zero_shot_likelihood", "accuracy": 1.0}  # not the gold ceiling
    pipeline = SimpleNamespace(human_is_icm=lambda: False)
    text = "\n".join(short_summary(pipeline, lab, None, None))
    assert "ICM 98.3% vs strongest baseline zero_shot_likelihood 100.0%" in text
    assert "WARNING: the direction rests on a weak signal" in text


@pytest.mark.parametrize("probe", [False, True])
@pytest.mark.parametrize("kill_at", [1, 40, 333])
def test_resume_keeps_best_seen_states_origins_and_candidates(tmp_path, probe, kill_at):
    """Killed anywhere (in a random or a verdict chain, hot enough that best-seen ≠ final), the resumed search names
    the same candidates as an uninterrupted one: best-seen states and chain origins survive the state file."""
    if probe:  # the primal probe keeps P(D) as running sums in a session
        claims, source, truth = planted_pairs(n_pairs=12, seed=3)
        make = lambda: ProbeScorer(source, ProbeConfig(pca_dims=4, zero_shot_weight=0.5, form="primal"))  # noqa: E731
    else:
        claims, base, truth = pair_pool(12, seed=1, bias=0.0, signal=1.0, noise=0.3)
        coupling = np.random.default_rng(1).standard_normal((len(claims), len(claims)))
        make = lambda: TableScorer(base, coupling=coupling, weight=0.5)  # noqa: E731
    cfg = SearchConfig(iterations=60, patience=0, restarts=2, replicas=2, t0=1e3, t_min=1e2, seed=4,
                       checkpoint_every=7)
    verdicts = {"lik": verdict_of(truth), "tf": -verdict_of(truth)}
    search = lambda: ICMSearch(claims, make(), ConsistencyRules(), cfg, verdicts=verdicts)  # noqa: E731
    full = search().run()
    assert probe or any(c.best["u"] > c.u for c in full.chains)  # a chain's best-seen state is not its final one
    state, steps = tmp_path / "state.json", {"n": 0}
    with pytest.raises(SearchInterrupted):
        search().run(state_path=state, should_stop=lambda: steps["n"] >= kill_at,
                     on_step=lambda st: steps.__setitem__("n", steps["n"] + 1))
    resumed = search().run(state_path=state, resume=True)
    assert [(c.origin, c.replica, c.best) for c in resumed.chains] == [(c.origin, c.replica, c.best) for c in full.chains]
    assert [c.as_dict() for c in resumed.candidates] == [c.as_dict() for c in full.candidates]
    assert resumed.labels == full.labels
