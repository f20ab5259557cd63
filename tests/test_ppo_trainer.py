"""PPOTrainer end to end on a tiny random Llama: it learns a reward that prefers one token, resumes onto the same
curve, scores with an RM whose tokenizer differs from the policy's, trains LoRA, and exports a plain HF policy."""

import json
import math
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


@pytest.mark.parametrize("lora,critic", [(False, None), (True, None), (False, "shared"), (True, "shared")])
def test_resume_gives_the_same_curve(tiny_model_dir, prompts_file, tmp_path, lora, critic):
    """Stop after 2 of 4 steps (as a kill right after a checkpoint would), resume: same losses as one straight run.
    With LoRA the checkpoint holds the trainable weights only (adapters, value head), not the frozen base (nor the
    LM head tied to its frozen embeddings, as SmolLM2's is). Both critics: a separate value model, a shared head."""
    from safetensors.torch import load_file
    from testkit.tiny_models import save_tiny_model

    from rl.ppo import train_ppo

    if lora:
        tiny_model_dir = save_tiny_model(tmp_path / "tied", tie_word_embeddings=True)

    kw = dict(adaptive_kl=True, kl_target=0.5, kl_horizon=50, lr_scheduler="linear", num_mini_batches=2,
              micro_batch_size=2, lora=lora, lora_r=4, value_model=critic)
    straight = train_ppo(tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "a", **kw))
    cfg_b = tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "b", max_steps_this_run=2, **kw)
    assert train_ppo(cfg_b) is None
    ckpt = tmp_path / "b" / "checkpoints" / "step-000002"
    saved = set(load_file(ckpt / "model.safetensors"))
    base = set(load_file(tiny_model_dir / "model.safetensors"))
    assert ("value_head.summary.weight" in saved) == (critic == "shared")
    assert any(k.startswith("value_model.") for k in saved) == (critic is None)
    if lora:
        assert saved and all("lora_" in k or "modules_to_save" in k or k.startswith("value_head.") for k in saved), \
            sorted(saved)
    else:
        assert len(saved) > len(base)                    # the whole policy is trained: all of it is saved
    with pytest.raises(Exception, match="resume"):
        train_ppo(PPOConfig(**{**cfg_b.__dict__, "max_steps_this_run": None}))
    if lora:                                             # a checkpoint without one of the run's trainable weights
        from safetensors.torch import save_file

        shutil.copytree(tmp_path / "b", tmp_path / "c")
        weights = load_file(tmp_path / "c" / "checkpoints" / "step-000002" / "model.safetensors")
        weights.pop("value_head.summary.weight" if critic else sorted(weights)[0])
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


def test_shared_critic_values_are_the_head_on_the_same_forward(tiny_model_dir, prompts_file, tmp_path):
    """value_model: shared: one forward gives the logits and values = head(last hidden state) at the state before
    each response token, as a naive separate computation (output_hidden_states, full logits, sliced) gives them."""
    from rl.ppo.models import PolicyAndValue, ValueHead, position_ids_from
    from rl.ppo.trainer import PPOTrainer

    trainer = PPOTrainer(tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "run", value_model="shared", num_steps=1))
    model = trainer.acc.unwrap_model(trainer.model)
    assert isinstance(model, PolicyAndValue) and isinstance(model.value_head, ValueHead) and model.value_model is None
    assert not model.value_head.summary.weight.any() and not model.value_head.summary.bias.any()   # zero init
    torch.manual_seed(3)
    with torch.no_grad():           # a non-zero head, so the comparison can fail
        model.value_head.summary.weight.normal_()
        model.value_head.summary.bias.fill_(0.5)
    ids = torch.randint(3, 300, (3, 12))
    attn = torch.ones_like(ids)
    attn[0, :4] = 0                 # left padding
    attn[1, :2] = 0
    T = 5
    logits, values = model(ids, attn, T)
    out = model.policy(input_ids=ids, attention_mask=attn, position_ids=position_ids_from(attn),
                       output_hidden_states=True, use_cache=False)
    hidden = out.hidden_states[-1]
    want_values = hidden[:, -T - 1:-1] @ model.value_head.summary.weight[0] + 0.5
    torch.testing.assert_close(values, want_values, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, out.logits[:, -T - 1:-1], rtol=1e-5, atol=1e-5)
    assert values.shape == (3, T) and logits.shape[:2] == (3, T)


@pytest.mark.parametrize("lora", [False, True])
def test_shared_critic_step_trains_head_and_policy_and_exports_plain(tiny_model_dir, prompts_file, tmp_path, lora):
    """One PPO step with the shared head changes the head and the adapters (or weights); the export is a plain
    causal LM without value-head keys."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from rl.ppo.trainer import PPOTrainer

    cfg = tiny_cfg(tiny_model_dir, prompts_file, tmp_path / "run", value_model="shared", lora=lora, lora_r=4,
                   num_steps=1, save_steps=0, missing_eos_penalty=1.0)      # cut responses: returns ≠ 0
    trainer = PPOTrainer(cfg)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert "value_head.summary.weight" in before
    row = trainer.step()
    assert math.isfinite(row["value/loss"]) and row["value/loss"] > 0
    after = dict(trainer.model.named_parameters())
    changed = {n for n, w in before.items() if not torch.equal(w, after[n])}
    assert {"value_head.summary.weight", "value_head.summary.bias"} <= changed
    policy_changed = [n for n in changed if n.startswith("policy.")]
    assert policy_changed and (not lora or all("lora_" in n for n in policy_changed))
    exported = trainer.export()
    keys = set(load_file(exported / "model.safetensors"))
    assert not any("value" in k or "lora" in k for k in keys)
    assert keys <= set(load_file(tiny_model_dir / "model.safetensors"))
    AutoModelForCausalLM.from_pretrained(exported)


def test_vf_coef_trains_the_shared_backbone(tiny_model_dir, prompts_file, tmp_path):
    """With the shared head the value loss reaches the policy's weights through vf_coef: once the head is non-zero,
    the same micro-batch gives other policy gradients with vf_coef 0 and 1, and the head a gradient only with 1."""
    from rl.ppo.trainer import PPOTrainer

    def grads(vf_coef: float) -> dict[str, torch.Tensor]:
        trainer = PPOTrainer(tiny_cfg(tiny_model_dir, prompts_file, tmp_path / f"vf{vf_coef}", value_model="shared",
                                      vf_coef=vf_coef))
        with torch.no_grad():
            trainer.model.value_head.summary.weight.fill_(0.1)
        torch.manual_seed(1)
        exp = trainer.rollout(trainer._next_prompts())
        exp.scores = torch.linspace(-1.0, 1.0, len(exp))
        trainer.compute_advantages(exp)
        trainer.model.zero_grad()
        trainer._micro_step(exp.select(slice(0, 4)).trimmed())
        return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}

    g0, g1 = grads(0.0), grads(1.0)
    assert not g0["value_head.summary.weight"].any()
    assert g1["value_head.summary.weight"].abs().sum() > 0
    assert any(not torch.allclose(g0[n], g1[n]) for n in g0 if n.startswith("policy."))
