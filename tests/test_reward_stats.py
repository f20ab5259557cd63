"""Pure statistics of eval-rm against hand computations, and the report built from them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from icm_rm.data.preferences import PreferenceExample
from icm_rm.reward.evaluate import evaluate_rewards, markdown_report
from icm_rm.reward.stats import (accuracy_from_rewards, bootstrap_ci, ece, pearson, rankdata, reliability_bins, sigmoid,
                                 spearman, wilson_ci)


def test_wilson_ci_textbook_values():
    # 8/10: p=.8, z²=3.8415 → centre (.8+.19207)/1.38415 = .71675, half 1.96·√(.016+.0096037)/1.38415 = .22658
    assert wilson_ci(8, 10) == pytest.approx((0.49016, 0.94331), abs=1e-5)
    assert wilson_ci(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_ci(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    lo, hi = wilson_ci(8, 10, level=0.5)
    assert 0.49016 < lo < 0.8 < hi < 0.94331  # a narrower interval at a lower level
    assert all(math.isnan(x) for x in wilson_ci(0, 0))


def test_accuracy_from_a_fixed_score_list():
    chosen = [1.0, 2.0, 3.0, 0.5, -1.0]
    rejected = [0.0, 2.5, 1.0, 0.5, -2.0]
    a = accuracy_from_rewards(chosen, rejected)
    # correct: 1>0, 3>1, -1>-2 → 3 of 5; the 0.5/0.5 tie counts as wrong and is reported
    assert (a["n"], a["correct"], a["accuracy"], a["reward_ties"]) == (5, 3, 0.6, 1)
    assert a["mean_margin"] == pytest.approx((1 - 0.5 + 2 + 0 + 1) / 5)
    assert (a["ci_low"], a["ci_high"]) == wilson_ci(3, 5)
    with pytest.raises(ValueError):
        accuracy_from_rewards([1.0], [1.0, 2.0])


def test_ece_and_reliability_bins_by_hand():
    # confidences .95 .85 .75 .65 (mid-bin with 5 bins over [.5, 1]); predicted winner right, right, wrong, right
    p = np.array([0.95, 0.85, 0.25, 0.65])
    bins = reliability_bins(p, n_bins=5)
    assert [b["count"] for b in bins] == [0, 1, 1, 1, 1]
    assert bins[2]["accuracy"] == 0.0 and bins[2]["confidence"] == pytest.approx(0.75)
    assert ece(p, n_bins=5) == pytest.approx((0.05 + 0.15 + 0.75 + 0.35) / 4)
    assert sigmoid(np.array([0.0, 800.0, -800.0])).tolist() == [0.5, 1.0, 0.0]


def test_bootstrap_ci_equals_a_plain_loop():
    x = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=float)
    lo, hi = bootstrap_ci(x, n_resamples=200, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, x.size, size=(200, x.size))
    means = [float(np.mean([x[j] for j in row])) for row in idx]
    assert (lo, hi) == pytest.approx((np.quantile(means, 0.025), np.quantile(means, 0.975)))
    assert bootstrap_ci(np.ones(7)) == (1.0, 1.0)


def test_correlations_by_hand():
    # x = 1,2,3; y = 1,2,4: cov·3 = 3, √(2·14/3) → r = 3/√(28/3) = .98198
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(28 / 3))
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def _ex(i: int, chosen: str, rejected: str, subset: str | None) -> PreferenceExample:
    return PreferenceExample(id=str(i), prompt="p", chosen=chosen, rejected=rejected, subset=subset)


def test_evaluate_rewards_subsets_and_length_bias():
    examples = [_ex(0, "long answer", "no", "a"), _ex(1, "yes", "longer no", "a"), _ex(2, "ok", "fine", "b"),
                _ex(3, "same", "size", None)]
    chosen, rejected = np.array([2.0, 0.0, 1.0, 3.0]), np.array([1.0, 1.0, 0.0, 0.0])
    m = evaluate_rewards(chosen, rejected, examples, n_bins=4)
    assert m["accuracy"] == 0.75
    assert m["subsets"] == {"a": {"n": 2, "correct": 1, "accuracy": 0.5, "ci_low": wilson_ci(1, 2)[0],
                                  "ci_high": wilson_ci(1, 2)[1]},
                            "b": {"n": 1, "correct": 1, "accuracy": 1.0, "ci_low": wilson_ci(1, 1)[0],
                                  "ci_high": wilson_ci(1, 1)[1]}}
    # lengths differ in pairs 0-2; the RM prefers the longer response in pair 0 (chosen, 11 vs 2 chars, wins) and
    # pair 1 (rejected, 9 vs 3, wins), the shorter in pair 2 (chosen, 2 vs 4, wins) → 2 of 3
    assert m["length"]["longer_preferred"] == pytest.approx(2 / 3)
    lengths = [11, 3, 2, 4, 2, 9, 4, 4]
    assert m["length"]["pearson"] == pytest.approx(pearson([2, 0, 1, 3, 1, 1, 0, 0], lengths))
    both = np.array([2, 0, 1, 3, 1, 1, 0, 0.0])
    assert (m["reward_mean"], m["reward_std"]) == pytest.approx((both.mean(), both.std()))


def test_markdown_side_by_side_table():
    row = dict(n=10, correct=8, accuracy=0.8, ci_low=0.49, ci_high=0.943, reward_ties=0, mean_margin=0.5, ece=0.1,
               skipped_ties=2)
    doc = {"config": {"ci_level": 0.95}, "models": ["icm/model", "gold/model"], "datasets": ["test_alpaca"],
           "results": [{**row, "model_name": "icm/model", "data_name": "test_alpaca"},
                       {**row, "accuracy": 0.9, "model_name": "gold/model", "data_name": "test_alpaca"}]}
    md = markdown_report(doc)
    assert "| data | n | icm/model | gold/model |" in md
    assert "| test_alpaca | 10 | 0.800 [0.490, 0.943] | 0.900 [0.490, 0.943] |" in md


def test_repeated_flags_become_one_list():
    from icm_rm.infra.config import parse_config
    from icm_rm.reward.evaluate import EvalRMConfig

    cfg, _ = parse_config(EvalRMConfig, ["--model", "a", "--data", "x.json:trl", "--model=b", "--limit", "3"])
    assert cfg.model == ["a", "b"] and cfg.data == ["x.json:trl"] and cfg.limit == 3
