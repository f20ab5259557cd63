"""The likelihood fallback (issue 16): when the gold-free diagnostics distrust the searched labels of a pair pool,
the batch returns the likelihood verdict's labeling after ConsistencyFix; otherwise the searched labels stay."""

import numpy as np
import pytest

from icm_rm.data.records import GoldLabels
from icm_rm.data.tasks import ConsistencyRules
from icm_rm.label.candidates import encode_labels
from icm_rm.label.diagnostics import broken_groups, diagnose, merge, warnings
from icm_rm.label.fallback import fallback_reasons, likelihood_fallback
from icm_rm.label.search import ICMSearch, SearchConfig
from testkit.table_scorer import TableScorer

from test_candidates import verdict_of
from test_search import pair_pool


def pool_departing_from(flipped: int, seed: int = 4):
    """20 pairs whose likelihood verdict is the truth, and a scorer whose best labeling is the truth with the first
    `flipped` pairs reversed (what ICM finds, departing from a correct verdict on flipped/20 of the pairs)."""
    claims, base, truth = pair_pool(20, seed=seed, bias=0.0, signal=1.5, noise=0.2)
    groups = sorted({c.group for c in claims})[:flipped]
    wrong = np.array([-1.0 if c.group in groups else 1.0 for c in claims])
    return claims, base * wrong, truth, verdict_of(truth)


def searched(claims, scorer_base, lik, **cfg):
    search = ICMSearch(claims, TableScorer(scorer_base), ConsistencyRules(),
                       SearchConfig(**({"iterations": 100, "restarts": 2, "replicas": 2, "seed": 0} | cfg)),
                       verdicts={"likelihood": lik})
    res = search.run()
    d = diagnose(claims, res.labels, res.candidates, {"likelihood": lik},
                 u_mirror=search.evaluate([not y for y in res.labels]).u, violations=res.evaluation.i,
                 groups_broken=broken_groups(search.structure, res.labels))
    return search, res, d


def test_labels_departing_from_a_correct_likelihood_verdict_fall_back_to_it():
    claims, base, truth, lik = pool_departing_from(5)
    search, res, d = searched(claims, base, lik)
    assert d["verdict_agreement"]["likelihood"] == 0.75 and res.labels != truth  # ICM departs on 5 of 20 pairs
    labels, ev, rec = likelihood_fallback(search, res.labels, res.evaluation.scores, d, {"likelihood": lik},
                                          "uncertain")
    assert labels == truth and ev.u == pytest.approx(search.evaluate(truth).u) and ev.u < res.evaluation.u
    assert rec["reasons"] == ["departs_from_likelihood"] and rec["source"] == "likelihood verdict after ConsistencyFix"
    assert rec["searched_labels"] == encode_labels(res.labels) and rec["searched_u"] == res.evaluation.u
    assert rec["agreement_with_searched"] == 0.75 and rec["u"] == ev.u
    assert likelihood_fallback(search, res.labels, res.evaluation.scores, d, {"likelihood": lik}, "departs")[0] == truth
    assert likelihood_fallback(search, res.labels, res.evaluation.scores, d, {"likelihood": lik}, "off") is None


def test_no_fallback_within_the_departure_threshold_when_the_search_agrees_with_itself():
    claims, base, truth, lik = pool_departing_from(3)  # 15% = DEPART: not more
    search, res, d = searched(claims, base, lik)
    assert d["verdict_agreement"]["likelihood"] == 0.85 and d["seed_agreement"]["min"] == 1.0 and not d["near_ties"]
    assert likelihood_fallback(search, res.labels, res.evaluation.scores, d, {"likelihood": lik}, "uncertain") is None


def test_a_tied_likelihood_verdict_is_made_consistent():
    """A pair the verdict cannot tell apart (signal 0 on both orderings) says False twice; ConsistencyFix repairs it
    the way U prefers, so the returned labeling breaks no rule."""
    claims, base, truth, lik = pool_departing_from(5)
    lik = lik.copy()
    lik[:2] = 0.0
    search, res, d = searched(claims, base, lik)
    labels, ev, _ = likelihood_fallback(search, res.labels, res.evaluation.scores, d, {"likelihood": lik}, "uncertain")
    assert ev.i == 0 and labels[0] != labels[1] and labels[2:] == truth[2:]


@pytest.mark.parametrize("mode, diag, reasons", [
    ("uncertain", {"likelihood": 0.90, "seed": 0.80, "near": False}, ["seeds_disagree"]),
    ("departs", {"likelihood": 0.90, "seed": 0.80, "near": False}, []),
    ("uncertain", {"likelihood": 0.95, "seed": 1.0, "near": True}, ["chains_disagree"]),
    ("uncertain", {"likelihood": 0.40, "seed": 1.0, "near": False}, ["against_likelihood"]),
    ("departs", {"likelihood": 0.80, "seed": 1.0, "near": False}, ["departs_from_likelihood"]),
    ("uncertain", {"likelihood": 0.85, "seed": 1.0, "near": False}, []),
    ("uncertain", {"likelihood": None, "seed": 0.50, "near": True}, []),  # no likelihood verdict: claims pool
    ("off", {"likelihood": 0.40, "seed": 0.50, "near": True}, []),
])
def test_fallback_reasons_are_the_warnings_of_each_mode(mode, diag, reasons):
    d = {"u": 10.0, "u_mirror": -10.0, "orientation_margin_rel": 1.0, "groups_broken": 0,
         "verdict_agreement": {"likelihood": diag["likelihood"], "tf": 0.5},
         "seed_agreement": {"min": diag["seed"], "mean": diag["seed"], "replicas": 2},
         "near_ties": [{"origin": "chain 1", "u": 9.99, "agreement": 0.5}] if diag["near"] else []}
    assert fallback_reasons(d, mode) == reasons


def test_merged_report_says_which_batches_fell_back_and_warns_first():
    claims, base, truth, lik = pool_departing_from(5)
    search, res, d = searched(claims, base, lik)
    _, _, d["fallback"] = likelihood_fallback(search, res.labels, res.evaluation.scores, d, {"likelihood": lik},
                                              "uncertain")
    merged = merge([(len(claims), d)])
    assert merged["fallback"] == [{"reasons": ["departs_from_likelihood"], "mode": "uncertain",
                                   "source": "likelihood verdict after ConsistencyFix", "u": d["fallback"]["u"],
                                   "searched_u": res.evaluation.u, "agreement_with_searched": 0.75, "batch": 0}]
    codes = [w.code for w in warnings(merged, pairwise=True)]
    assert codes[0] == "likelihood_fallback" and "departs_from_likelihood" in codes
    assert "--fallback off" in warnings(merged, pairwise=True)[0].message


def test_label_stage_returns_the_fallback_records_it_and_reads_no_gold_before_the_reports(tmp_path, tiny_model_dir,
                                                                                          monkeypatch):
    """End to end on a tiny random model (its labels disagree with its own likelihood verdict): the batch returns the
    likelihood labeling — the stage's pair accuracy equals the likelihood baseline — report.json keeps the searched
    labels, and `fallback off` returns exactly those. Gold is a tripwire until the reports are written."""
    import json

    from icm_rm.label import run_label, stage
    from test_label import tiny_cfg

    searching = {"on": True}

    class Tripwire(GoldLabels):
        def __getitem__(self, key):
            if searching["on"]:
                raise AssertionError("gold read before the reports")
            return super().__getitem__(key)

    load, write = stage.load_pool, stage.write_outputs

    def guarded_load(cfg):
        pool = load(cfg)
        pool.gold = Tripwire(dict(pool.gold._labels))
        searching["on"] = True
        return pool

    def reports(*args, **kw):
        searching["on"] = False
        return write(*args, **kw)

    monkeypatch.setattr(stage, "load_pool", guarded_load)
    monkeypatch.setattr(stage, "write_outputs", reports)
    search = SearchConfig(iterations=25, patience=0, restarts=1, replicas=2)
    out = run_label(tiny_cfg(tmp_path, tiny_model_dir, search=search, batch_size=24, report_to="none"))
    off = run_label(tiny_cfg(tmp_path, tiny_model_dir, search=search, batch_size=24, report_to="none",
                             fallback="off", output_dir=str(tmp_path / "off")))
    rep, rep_off = (json.loads((d / "report.json").read_text()) for d in (out, off))
    fb = rep["per_batch"][0]["diagnostics"]["fallback"]
    assert fb["reasons"] and rep["diagnostics"]["fallback"][0]["reasons"] == fb["reasons"]
    assert rep["warnings"][0]["code"] == "likelihood_fallback"
    assert rep["accuracy"]["pair"] == rep["baselines"]["zero_shot_likelihood"]["pair"]
    assert rep["accuracy_searched"] == rep_off["accuracy"] and "fallback" not in rep_off["diagnostics"]
    labels = [json.loads(line)["label"] for line in (off / "labels.jsonl").read_text().splitlines()]
    assert fb["searched_labels"] == encode_labels(labels)
    assert rep["per_batch"][0]["candidates"] == rep_off["per_batch"][0]["candidates"]  # the same search
    assert rep["per_batch"][0]["u"] == fb["u"] and rep_off["per_batch"][0]["u"] == pytest.approx(fb["searched_u"])
