"""eval-policy: win-rate statistics by hand, length control, a tiny end-to-end run, degenerate answers, judge refusal."""

import json
import math

import numpy as np
import pytest

from icm_rm.infra.errors import ConfigError

from rl.eval_stats import length_controlled_win_rate, outcomes, win_rate
from rl.evaluate import EvalPolicyConfig, run_eval_policy


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


def _eos_only_model(path):
    """A tiny model whose every next token is the end token: constant embeddings, blocks that add nothing, and a
    head that reads the constant state as EOS."""
    import torch
    from transformers import AutoModelForCausalLM

    from testkit.tiny_models import save_tiny_model

    save_tiny_model(path, seed=2)
    model = AutoModelForCausalLM.from_pretrained(path)
    eos = model.config.eos_token_id
    with torch.no_grad():
        model.model.embed_tokens.weight.fill_(1.0)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        model.lm_head.weight[eos] = 10.0
    model.save_pretrained(path)
    return path


def test_a_policy_that_only_ends_is_flagged_and_fails_the_command(tmp_path, capsys):
    from rl.evaluate import main

    from testkit.tiny_models import save_tiny_model

    ref = save_tiny_model(tmp_path / "ref", seed=0)
    mute = _eos_only_model(tmp_path / "mute")
    out = tmp_path / "out"
    args = ["--reference", str(ref), "--policies", f"mute={mute}", "--max_prompts", "5", "--max_new_tokens", "4",
            "--device", "cpu", "--output_dir", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "every answer of mute is empty" in err and "prompt_format" in err
    doc = json.loads((out / "eval_policy.json").read_text())
    assert doc["degenerate"]["mute"]["flags"] == ["all empty"] and doc["degenerate"]["mute"]["n"] == 5
    assert "all empty" not in doc["degenerate"]["reference"]["flags"]
    assert "| mute | 0.000 | all empty |" in (out / "eval_policy.md").read_text()
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert all(r["mute"] == "" for r in rows)
    # the reference alone answering: exit 0
    assert main(args[:2] + ["--policies", f"same={ref}"] + args[4:]) == 0


def test_a_judge_rm_the_policy_was_trained_against_is_refused(tmp_path):
    from rl.judges import refuse_judging_with_training_rm, training_rms

    rm, other = tmp_path / "rm", tmp_path / "other_rm"
    rm.mkdir(), other.mkdir()
    (tmp_path / "ppo" / "policy").mkdir(parents=True)
    (tmp_path / "ppo" / "run.json").write_text(json.dumps({"config": {"reward_model": str(rm), "reward": None}}))
    (tmp_path / "mix" / "policy").mkdir(parents=True)
    (tmp_path / "mix" / "run.json").write_text(json.dumps({"config": {"reward": {"type": "mix", "sources": [
        {"type": "hf", "path": str(other), "weight": 1.0}, {"type": "python", "function": "m:f"}]}}}))
    named = [("reference", "smollm2-135m"), ("p", str(tmp_path / "ppo" / "policy")),
             ("q", str(tmp_path / "mix" / "policy"))]
    assert training_rms(named[1][1]) == [rm.resolve()] and training_rms(named[2][1]) == [other.resolve()]
    for judge, name in ((rm, "p"), (other, "q")):
        with pytest.raises(ConfigError) as e:
            refuse_judging_with_training_rm(str(judge), named)
        assert e.value.key == "judge" and f"'{name}' was trained against" in e.value.message
    refuse_judging_with_training_rm("gold:capitals", named)
    refuse_judging_with_training_rm(None, named)
    held_out = tmp_path / "held_out_rm"
    held_out.mkdir()
    refuse_judging_with_training_rm(str(held_out), named)


def test_rm_means_score_each_distinct_answer_once_and_equal_scoring_every_policy(monkeypatch):
    import rl.evaluate as ev

    scored = []

    class FakeRM:  # a reward that depends on prompt and answer; counts what it scores
        reward_mean, reward_std = 1.0, 2.0

        @classmethod
        def from_pretrained(cls, path, device=None):
            return cls()

        def score(self, prompts, answers):
            scored.extend(answers)
            return np.array([len(p) * 0.1 + len(a) + a.count("a") for p, a in zip(prompts, answers)], dtype=float)

        def normalize(self, r):
            return (np.asarray(r) - self.reward_mean) / self.reward_std

    monkeypatch.setattr(ev, "RewardModel", FakeRM)
    prompts = ["Is a cat a mammal?", "Is a trout a fish?", "Is a frog a bird?"]
    answers = {"reference": ["A cat is a mammal.", "A fish.", "No."], "p1": ["A cat is a mammal.", "A fish.", "Yes."],
               "p2": ["A cat is a mammal.", "A trout is a fish.", "No."]}
    cfg = EvalPolicyConfig(rms=["a=x", "b=y"], device="cpu")
    got = ev._rm_means(cfg, prompts, answers, "cpu")
    assert len(scored) == 2 * 5  # 5 distinct (prompt, answer) pairs among 9 answers, per RM
    rm = FakeRM()
    for pol, ans in answers.items():  # the naive way: every policy's answers scored in full
        r = rm.normalize(rm.score(prompts, ans))
        for name in ("a", "b"):
            assert got[pol][name]["mean"] == float(np.mean(r))
            assert got[pol][name]["se"] == float(np.std(r, ddof=1) / math.sqrt(len(r)))


def test_greedy_answers_do_not_depend_on_the_generation_batch(tmp_path):
    """The demo generates its 56 questions in one batch (batch_size 64): left padding to a longer batch gives each
    prompt the same greedy answer as the shipped batches of 16 did (prompts of different lengths, padded apart)."""
    import dataclasses

    from rl.evaluate import generate, load_policy
    from testkit.tiny_models import save_tiny_model

    model, tok = load_policy(str(save_tiny_model(tmp_path / "m", seed=3)), "cpu")
    prompts = [f"What is {k} + {k * k}? Answer in one short sentence{'.' * (k % 4)}" for k in range(12)]
    cfg = EvalPolicyConfig(max_new_tokens=8, device="cpu", prompt_format="raw")
    small = generate(model, tok, prompts, dataclasses.replace(cfg, batch_size=4), "small")
    whole = generate(model, tok, prompts, dataclasses.replace(cfg, batch_size=64), "whole")
    assert small == whole and len(set(small[0])) > 1
