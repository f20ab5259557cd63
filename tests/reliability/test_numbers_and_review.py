"""The catalogue's last two classes (issue #19): wrong numbers a run reported, and correctness found in review.

- wrong numbers: `run.json`'s `train_loss` after a train-rm resume covered only the resumed steps (0.67 / 0.0
  instead of 0.68);
- review: GRPO's missing-EOS penalty counted only `tokenizer.eos_token_id`; the ICM paper's claim files list a true
  answer first in every group while the in-context scorers present demonstrations in pool order.

Each test records a passed "check" in $ICM_RM_RELIABILITY_LOG (see summarize.py)."""

from __future__ import annotations

import json

import pytest

from icm_rm.data.spec import load_claimset
from rl.grpo import TRLRewardFunction
from test_data_spec import ICM, jsonl  # the functional tests' helpers and fixtures
from test_grpo import REWARD, grpo_cfg, prompts_file  # noqa: F401  (prompts_file is a fixture)
from test_reward_trainer import make_cfg, toy_files  # noqa: F401  (toy_files is a fixture)

from .conftest import record


# ----------------------------------------------------------------------------------------------- wrong numbers

def test_train_loss_after_a_resume_is_the_whole_runs(tiny_model_dir, toy_files, tmp_path):
    """run.json's train_loss after a resume is the mean over every step (not just the resumed tail, nor 0.0 when
    the resume had nothing left to train): equal to an uninterrupted run's. logging_steps 3 does not divide
    save_steps 2, so the log forced at each save is what carries the steps before the checkpoint."""
    from transformers import TrainerCallback

    from icm_rm.reward.trainer import train_reward_model

    class Crash(Exception):
        pass

    class CrashAtStep3(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 3:
                raise Crash

    trainer = {"max_steps": 5, "save_steps": 2, "logging_steps": 3, "report_to": []}
    whole = train_reward_model(make_cfg(tiny_model_dir, toy_files, tmp_path / "a", trainer=trainer))
    with pytest.raises(Crash):
        train_reward_model(make_cfg(tiny_model_dir, toy_files, tmp_path / "b", trainer=trainer),
                           callbacks=[CrashAtStep3()])
    resumed = train_reward_model(make_cfg(tiny_model_dir, toy_files, tmp_path / "b", trainer=trainer, resume=True))
    expected = whole.metrics["train"]["train_loss"]
    assert expected > 0 and resumed.metrics["train"]["train_loss"] == pytest.approx(expected, rel=1e-4)
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["metrics"]["train"]["train_loss"] == pytest.approx(expected, rel=1e-4)
    record("check", case="rm-train-loss-after-resume", cls="numbers")


# ----------------------------------------------------------------------------------------------- review

def test_missing_eos_penalty_counts_every_generation_config_end_token(tiny_model_dir, prompts_file, tmp_path,
                                                                     monkeypatch):
    """GRPO takes its end tokens from the policy the way PPO does (`eos_ids_of`): the tokenizer's EOS and every
    generation-config EOS, so a completion ending in the second end token is not penalised as unfinished."""
    import shutil

    import rl.grpo as grpo
    from rl.ppo.rollout import eos_ids_of
    from rl.rewards import build_reward_source

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "two_eos")
    gen = json.loads((model_dir / "generation_config.json").read_text())
    (model_dir / "generation_config.json").write_text(json.dumps({**gen, "eos_token_id": [2, 5]}))
    seen = []

    class Recording(TRLRewardFunction):
        def __call__(self, *a, **kw):
            seen.append(set(self.eos_ids))
            return super().__call__(*a, **kw)

    monkeypatch.setattr(grpo, "TRLRewardFunction", Recording)
    grpo.train_grpo(grpo_cfg(model_dir, prompts_file, tmp_path / "run", num_steps=1, per_device_batch_size=4,
                             num_generations=2, missing_eos_penalty=1.0))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    expected = set(eos_ids_of(AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)))
    assert seen and seen[0] == expected and {2, 5} <= expected
    fn = TRLRewardFunction(build_reward_source(REWARD), eos_ids=sorted(expected), reward_clip=None,
                           missing_eos_penalty=1.0)
    assert fn(["p", "p"], ["a", "b"], completion_ids=[[7, 5], [7, 9]]) == [0.0, -1.0]
    record("check", case="grpo-eos-penalty-every-end-token", cls="review")


def test_claim_files_are_ordered_within_groups_by_content_not_gold(tmp_path):
    """A file listing the true answer first in every group: the pool the scorers see has the same groups in the same
    slots, but each group's order is a hash of its claims' text — the same order with the labels flipped."""
    rows = [{"id": f"{g}-{k}", "question": f"Question {g}?", "answer": f"answer {g}.{k}", "group": f"g{g}",
             "label": k == 0} for g in range(60) for k in range(4)]
    a = load_claimset("claims", jsonl(tmp_path / "a.jsonl", rows), task="truthfulqa")
    b = load_claimset("claims", jsonl(tmp_path / "b.jsonl", [{**r, "label": not r["label"]} for r in rows]),
                      task="truthfulqa")
    assert a.claims == b.claims  # gold-independent
    assert [c.group for c in a.claims] == [r["group"] for r in rows]  # same slots per group
    assert sorted(c.id for c in a.claims) == sorted(r["id"] for r in rows)
    firsts = [a.claims[m[0]] for m in a.groups().values()]
    assert 5 <= sum(a.gold[c.id] for c in firsts) <= 25  # 60 groups, 1 true of 4: ~15 (it was 60 in file order)
    assert a.claims == load_claimset("claims", str(tmp_path / "a.jsonl"), task="truthfulqa").claims
    record("check", case="claim-order-not-gold-correlated", cls="review")


@pytest.mark.parametrize("name, fmt", [("test_truthfulqa.json", "icm_truthfulqa"), ("test_gsm8k.json", "icm_gsm8k"),
                                       ("train_truthfulqa.json", "icm_truthfulqa")])
def test_first_claim_of_a_group_is_not_gold_correlated_on_the_icm_files(shared_data, name, fmt):
    """The ICM paper's test files put a true answer first in 100% of groups; after loading, the first claim is true
    about as often as a random member is (within 4 standard errors)."""
    raw = json.loads((shared_data / ICM / name).read_text())
    cs = load_claimset(fmt, str(shared_data / ICM / name))
    groups = list(cs.groups().values())
    first = sum(cs.gold[cs.claims[m[0]].id] for m in groups) / len(groups)
    shares = [sum(cs.gold[cs.claims[i].id] for i in m) / len(m) for m in groups]
    expected = sum(shares) / len(groups)
    se = (sum(s * (1 - s) for s in shares) ** 0.5) / len(groups)
    assert abs(first - expected) < 4 * se, (first, expected, se)
    if name.startswith("test"):  # the file itself is gold-ordered: the check above would fail on file order
        seen: dict = {}
        for r in raw:
            seen.setdefault(r["consistency_id"], r["label"])
        assert all(seen.values())
    record("check", case="icm-files-first-claim-not-gold-correlated", cls="review")
