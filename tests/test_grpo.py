"""GRPO through TRL's GRPOTrainer with our reward sources: it learns, passes TRL fields through, resumes."""

import json
from pathlib import Path

import pytest

from icm_rm.infra.errors import ConfigError
from rl.grpo import GRPOConfig, TRLRewardFunction, to_trl_args

REWARD = {"type": "python", "function": "rl.rewards:substring_reward", "kwargs": {"text": " the", "scale": 0.25}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    p.write_text("".join(json.dumps({"prompt": f"Question {i}: what is {i} plus {i + 1}?"}) + "\n" for i in range(24)))
    return p


def grpo_cfg(model_dir, prompts_file, out, **kw) -> GRPOConfig:
    base = dict(model=str(model_dir), prompts=str(prompts_file), reward=REWARD, output_dir=str(out), num_steps=30,
                per_device_batch_size=16, num_generations=4, max_new_tokens=8, learning_rate=6e-3,
                lr_scheduler="constant", beta=0.01, save_steps=1000, tensorboard=False, seed=0)
    base.update(kw)
    return GRPOConfig(**base)


def rewards_of(out) -> list[float]:
    rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [r["rollout/reward_mean"] for r in rows if "rollout/reward_mean" in r]


def test_grpo_raises_reward(tiny_model_dir, prompts_file, tmp_path, capfd, monkeypatch):
    from transformers import AutoModelForCausalLM

    from rl.grpo import train_grpo

    monkeypatch.delenv("ICM_RM_DEBUG", raising=False)
    cfg = grpo_cfg(tiny_model_dir, prompts_file, tmp_path / "run")
    policy = train_grpo(cfg)
    assert "'loss'" not in capfd.readouterr().out  # the per-step dicts go to metrics.jsonl, not the terminal
    r = rewards_of(cfg.output_dir)
    assert len(r) == 30
    assert sum(r[-5:]) / 5 > sum(r[:5]) / 5 + 0.5, r
    assert AutoModelForCausalLM.from_pretrained(policy) is not None
    assert (Path(cfg.output_dir) / "training.png").exists() and (Path(cfg.output_dir) / ".complete").exists()


def test_grpo_stop_and_resume(tiny_model_dir, prompts_file, tmp_path):
    from rl.grpo import train_grpo

    cfg = grpo_cfg(tiny_model_dir, prompts_file, tmp_path / "run", num_steps=3, save_steps=2, max_steps_this_run=2)
    assert train_grpo(cfg) is None
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    policy = train_grpo(GRPOConfig(**{**cfg.__dict__, "max_steps_this_run": None, "resume": True}))
    assert policy is not None and len(rewards_of(cfg.output_dir)) == 3


def test_trl_pass_through_and_defaults(tiny_model_dir, prompts_file, tmp_path):
    cfg = grpo_cfg(tiny_model_dir, prompts_file, tmp_path, trl={"loss_type": "grpo", "epsilon": 0.3})
    args = to_trl_args(cfg)
    assert (args.loss_type, args.epsilon, args.max_steps, args.max_completion_length) == ("grpo", 0.3, 30, 8)
    assert GRPOConfig(model="m", prompts="p", reward_model="x:y").beta > 0      # a reference model by default
    with pytest.raises(ConfigError, match="trl.loss_typ"):
        grpo_cfg(tiny_model_dir, prompts_file, tmp_path, trl={"loss_typ": "grpo"})
    with pytest.raises(ConfigError, match="set `beta` instead"):
        grpo_cfg(tiny_model_dir, prompts_file, tmp_path, trl={"beta": 0.1})
    with pytest.raises(ConfigError):
        to_trl_args(grpo_cfg(tiny_model_dir, prompts_file, tmp_path, per_device_batch_size=6, num_generations=4))


def test_reward_function_adapter_penalises_missing_eos():
    from rl.rewards import build_reward_source

    fn = TRLRewardFunction(build_reward_source(REWARD), eos_ids=[2], reward_clip=None, missing_eos_penalty=1.0)
    out = fn(prompts=["a", "b"], completions=[" the the", [{"role": "assistant", "content": " the"}]],
             completion_ids=[[5, 2], [7, 8]])
    assert out == [0.5, 0.25 - 1.0]


def test_reward_function_adapter_logs_and_flags_degenerate_completions(capsys):
    from rl.rewards import build_reward_source

    fn = TRLRewardFunction(build_reward_source(REWARD), eos_ids=[2], reward_clip=None, missing_eos_penalty=None)
    logged = {}
    fn(prompts=["a", "b"], completions=[" the", "x"], completion_ids=[[5, 2], [7, 8]], log_metric=logged.__setitem__)
    assert logged["rollout/cut_frac"] == 0.5 and logged["rollout/empty_frac"] == 0.0
    assert logged["rollout/distinct_frac"] == 1.0 and fn.flags == []
    fn(prompts=["a", "b"], completions=["", ""], completion_ids=[[2], [2]], log_metric=logged.__setitem__)
    assert fn.flags == ["all empty"] and logged["rollout/empty_frac"] == 1.0
    assert "grpo: degenerate completions: all empty" in capsys.readouterr().err
    fn(prompts=["a", "b"], completions=["", ""], completion_ids=[[2], [2]])
    assert capsys.readouterr().err == ""  # said once, not every batch
