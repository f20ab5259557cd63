"""eval-policy: win-rate statistics by hand, length control, and a tiny end-to-end run."""

import json
import math

import numpy as np
import pytest

from rl.evaluate import EvalPolicyConfig, length_controlled_win_rate, outcomes, run_eval_policy, win_rate


def test_outcomes_and_win_rate_by_hand():
    o = outcomes([1.0, 0.2, 0.5, 0.0], [0.0, 0.2, 0.9, 0.05], tie_margin=0.1)
    assert o.tolist() == [1.0, 0.5, 0.0, 0.5]
    r = win_rate(o)
    assert r["win_rate"] == pytest.approx(0.5)
    assert r["se"] == pytest.approx(np.std([1, 0.5, 0, 0.5], ddof=1) / 2)
    assert (r["wins"], r["ties"], r["losses"]) == (1, 2, 1)


def test_length_control_removes_a_pure_length_effect():
    rng = np.random.default_rng(0)
    d = rng.normal(size=400)
    # The policy wins more often the longer it is, and only because of that: at equal length the fit says ~50%,
    # while a policy that is usually longer shows a raw win rate well above it.
    shifted = d + 1.0
    o = (rng.random(400) < 1 / (1 + np.exp(-2 * shifted))).astype(float)
    assert o.mean() > 0.7
    assert length_controlled_win_rate(o, shifted, np.zeros_like(d)) == pytest.approx(0.5, abs=0.08)
    # Wins unrelated to length: the length-controlled rate equals the raw rate.
    o2 = (rng.random(400) < 0.8).astype(float)
    assert length_controlled_win_rate(o2, d, np.zeros_like(d)) == pytest.approx(o2.mean(), abs=0.03)
    # A policy that is always longer and wins 90%: length explains little when the difference is constant.
    assert math.isfinite(length_controlled_win_rate(np.ones(10), np.full(10, 5.0), np.zeros(10)))


def test_eval_policy_end_to_end_tiny(tmp_path):
    from testkit.tiny_models import save_tiny_model

    ref = save_tiny_model(tmp_path / "ref", seed=0)
    pol = save_tiny_model(tmp_path / "pol", seed=1)
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"prompt": f"What is {k}?", "chosen": "good answer", "rejected": "bad"}) + "\n"
                             for k in range(6)))
    cfg = EvalPolicyConfig(policies=[f"icm={pol}"], reference=str(ref), max_prompts=6, max_new_tokens=6,
                           pref_data=[f"{prefs}:trl"], output_dir=str(tmp_path / "out"), device="cpu")
    doc = run_eval_policy(cfg)
    assert doc["judge"].startswith("gold checker") and doc["n_prompts"] == 6
    (r,) = doc["win_rates"]
    assert r["policy"] == "icm" and r["versus"] == "reference" and r["n"] == 6
    assert r["wins"] + r["ties"] + r["losses"] == 6
    pa = doc["preference_accuracy"]
    assert "implicit_accuracy" in pa["icm"]["prefs"] and "implicit_accuracy" not in pa["reference"]["prefs"]
    for f in ("samples.jsonl", "eval_policy.json", "eval_policy.md", "win_rates.png", "run.json"):
        assert (tmp_path / "out" / f).exists()
    rows = [json.loads(x) for x in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"prompt", "reference", "icm", "icm_score"} <= set(rows[0])


def test_implicit_reward_of_the_reference_against_itself_is_not_reported(tmp_path):
    from rl.evaluate import _pref_accuracy

    lc, lr = np.array([-1.0, -2.0, -3.0]), np.array([-2.0, -1.0, -4.0])
    d = _pref_accuracy(lc, lr, None, "reference")
    assert d["logp_accuracy"] == pytest.approx(2 / 3) and "implicit_accuracy" not in d
    d = _pref_accuracy(lc + np.array([1.0, 0.0, 0.0]), lr, (lc, lr), "p")
    assert d["implicit_accuracy"] == pytest.approx(1 / 3)  # only pair 0 moved towards chosen
