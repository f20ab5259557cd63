"""PPOTrainer end to end on a tiny random Llama: it learns a reward that prefers one token, resumes onto the same
curve, scores with an RM whose tokenizer differs from the policy's, trains LoRA, and exports a plain HF policy."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from icm_rm.infra.errors import UserError
from rl.ppo.config import PPOConfig

REWARD = {"type": "python", "function": "rl.rewards:substring_reward", "kwargs": {"text": " the", "scale": 0.25}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    rows = [{"prompt": f"Question {i}: what is {i} plus {i + 1}?", "chosen": "x", "rejected": "y"} for i in range(24)]
    rows.append({"prompt": [{"role": "user", "content": "Say something."}]})
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def tiny_cfg(model_dir, prompts_file, out, **kw) -> PPOConfig:
    base = dict(model=str(model_dir), prompts=str(prompts_file), reward=REWARD, output_dir=str(out),
                max_new_tokens=8, max_prompt_length=32, temperature=1.0, rollout_batch_size=8, micro_batch_size=4,
                ppo_epochs=2, learning_rate=3e-3, lr_scheduler="constant", kl_coef=0.01, num_steps=4, save_steps=2,
                tensorboard=False, plot_steps=100, seed=0)
    base.update(kw)
    return PPOConfig(**base)


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_ppo_raises_reward(tiny_model_dir, prompts_file, tmp_path):
    from rl.ppo import train_ppo

    cfg = tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "run", num_steps=30, rollout_batch_size=16,
                   micro_batch_size=8, ppo_epochs=4, save_steps=0, plot_steps=15, tensorboard=True)
    policy = train_ppo(cfg)
    rewards = [m["rollout/reward_mean"] for m in metrics(cfg.output_dir)]
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert last > first + 0.5, rewards                       # max possible is 2.0 (8 tokens × 0.25)
    assert (policy / "model.safetensors").exists() and (policy / "tokenizer_config.json").exists()
    row = metrics(cfg.output_dir)[-1]
    for key in ("rollout/reward_mean", "ppo/approx_kl_k3", "ppo/clipfrac", "ppo/entropy", "value/loss",
                "value/explained_variance", "rollout/response_length", "kl/ref_k1", "timing/rollout",
                "rollout/empty_frac", "rollout/distinct_frac", "rollout/cut_frac"):
        assert key in row
    assert (Path(cfg.output_dir) / "training.png").stat().st_size > 1000
    assert list((Path(cfg.output_dir) / "tensorboard").glob("events.out.tfevents.*"))
    assert (Path(cfg.output_dir) / ".complete").exists()
    run = json.loads((Path(cfg.output_dir) / "run.json").read_text())
    assert run["world_size"] == 1 and run["batch_plan"]["grad_accum"] == 2
    assert all(m["rollout/cut_frac"] == pytest.approx(1 - m["rollout/eos_frac"]) for m in metrics(cfg.output_dir))


@pytest.mark.parametrize("lora", [False, True])
def test_resume_gives_the_same_curve(tiny_model_dir, prompts_file, tmp_path, lora):
    """Stop after 2 of 4 steps (as a kill right after a checkpoint would), resume: same losses as one straight run.
    With LoRA the checkpoint holds the trainable weights only (adapters, value head), not the frozen base (nor the
    LM head tied to its frozen embeddings, as SmolLM2's is)."""
    from safetensors.torch import load_file
    from testkit.tiny_models import save_tiny_model

    from rl.ppo import train_ppo

    if lora:
        tiny_model_dir = save_tiny_model(tmp_path / "tied", tie_word_embeddings=True)

    kw = dict(adaptive_kl=True, kl_target=0.5, kl_horizon=50, lr_scheduler="linear", num_mini_batches=2,
              micro_batch_size=2, lora=lora, lora_r=4)
    straight = train_ppo(tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "a", **kw))
    cfg_b = tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "b", max_steps_this_run=2, **kw)
    assert train_ppo(cfg_b) is None
    ckpt = tmp_path / "b" / "checkpoints" / "step-000002"
    saved = set(load_file(ckpt / "model.safetensors"))
    base = set(load_file(tiny_model_dir / "model.safetensors"))
    if lora:
        assert saved and all("lora_" in k or "modules_to_save" in k for k in saved), sorted(saved)
    else:
        assert len(saved) > len(base)                    # the whole policy is trained: all of it is saved
    with pytest.raises(Exception, match="resume"):
        train_ppo(PPOConfig(**{**cfg_b.__dict__, "max_steps_this_run": None}))
    if lora:                                             # a checkpoint without one of the run's trainable weights
        from safetensors.torch import save_file

        shutil.copytree(tmp_path / "b", tmp_path / "c")
        weights = load_file(tmp_path / "c" / "checkpoints" / "step-000002" / "model.safetensors")
        weights.pop(sorted(weights)[0])
        save_file(weights, tmp_path / "c" / "checkpoints" / "step-000002" / "model.safetensors")
        with pytest.raises(UserError, match="lacks 1 trainable weight"):
            train_ppo(PPOConfig(**{**cfg_b.__dict__, "output_dir": str(tmp_path / "c"), "max_steps_this_run": None,
                                   "resume": True}))
    resumed = train_ppo(PPOConfig(**{**cfg_b.__dict__, "max_steps_this_run": None, "resume": True}))
    a, b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [m["step"] for m in b] == [1, 2, 3, 4]
    for ma, mb in zip(a, b):
        for key in ("ppo/loss", "value/loss", "rollout/reward_mean", "kl/ref_k1", "kl/beta", "optim/lr"):
            assert ma[key] == pytest.approx(mb[key], rel=1e-5, abs=1e-7), (ma["step"], key)
    wa, wb = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_rm_with_another_tokenizer_lora_and_export(tiny_model_dir, prompts_file, tmp_path):
    """The RM reads text with its own (smaller) tokenizer; LoRA trains; the export is a merged plain causal LM."""
    from safetensors.torch import load_file
    from test_rl_rewards import save_tiny_rm
    from transformers import AutoModelForCausalLM

    from icm_rm.infra.errors import ConfigError
    from rl.ppo import train_ppo

    rm = save_tiny_rm(tmp_path / "rm")
    mix = {"type": "mix", "sources": [{"type": "hf", "path": str(rm), "weight": 1.0, "name": "rm"},
                                      {**REWARD, "weight": 0.5, "name": "the"}]}
    cfg = tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "run", reward=mix, lora=True, lora_r=4, num_steps=2,
                   save_steps=0, missing_eos_penalty=1.0, reward_clip=3.0, learning_rate=1e-2)
    policy = train_ppo(cfg)
    row = metrics(cfg.output_dir)[-1]
    assert "reward/rm" in row and "reward/the" in row
    model = AutoModelForCausalLM.from_pretrained(policy)
    assert not any("lora" in n for n, _ in model.named_parameters())
    trained, init = load_file(policy / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(trained[k], init[k]) for k in init)           # the merged adapter changed weights
    with pytest.raises(ConfigError, match="tokenizer differs"):
        train_ppo(tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "v", reward_model=str(rm), reward=None,
                           value_model="reward_model"))


def test_value_model_from_rm_with_same_tokenizer(tiny_model_dir, prompts_file, tmp_path):
    from test_rl_rewards import save_tiny_rm

    from rl.ppo.trainer import PPOTrainer

    rm = save_tiny_rm(tmp_path / "rm", vocab_size=384)        # the policy's tokenizer (384 + " True"/" False")
    trainer = PPOTrainer(tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "run", reward_model=str(rm), reward=None,
                                  value_model="reward_model", num_steps=1))
    head = trainer.acc.unwrap_model(trainer.model).value_model.score.weight
    from transformers import AutoModelForSequenceClassification

    torch.testing.assert_close(head, AutoModelForSequenceClassification.from_pretrained(rm).score.weight)
    assert "rollout/reward_mean" in trainer.step()


def test_cli_errors_are_one_line(tiny_model_dir, prompts_file, tmp_path, capsys):
    from icm_rm.cli import main

    rc = main(["ppo", "--model", str(tiny_model_dir), "--prompts", str(prompts_file), "--reward_model",
               "rl.rewards:substring_reward", "--rollout_batch_size", "6", "--micro_batch_size", "4",
               "--output_dir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "micro_batch_size" in err and err.count("\n") == 1
    assert main(["ppo", "--config", "configs/ppo/tiny.yaml", "--kl_coeff", "0.1"]) == 2



def test_micro_batch_size_changes_memory_not_the_update(tiny_model_dir, prompts_file, tmp_path):
    """The loss is a token mean over the mini-batch: 8 uneven responses in one micro-batch or in four micro-batches
    of 2 give the same optimizer step (a per-micro-batch mean would weight a short response's tokens more)."""
    from rl.ppo.trainer import PPOTrainer

    def one_update(micro: int) -> dict[str, torch.Tensor]:
        trainer = PPOTrainer(tiny_cfg(tiny_model_dir, prompts_file, tmp_path / f"m{micro}", micro_batch_size=micro))
        torch.manual_seed(1)
        exp = trainer.rollout(trainer._next_prompts())
        T = exp.response_ids.shape[1]
        exp.response_mask = torch.arange(T)[None] < torch.tensor([1, 8, 2, 7, 3, 8, 1, 5])[:, None]
        exp.scores = torch.linspace(-1.0, 1.0, len(exp))
        trainer.compute_advantages(exp)
        torch.manual_seed(2)
        trainer.update(exp)
        return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

    whole, split = one_update(8), one_update(2)
    for name, w in whole.items():
        torch.testing.assert_close(split[name], w, rtol=1e-4, atol=1e-6, msg=name)
