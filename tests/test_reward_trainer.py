"""train-rm on a tiny random Llama: learning a separable toy preference, export layout and reward stats, LoRA
save/merge/reload, resume, and eval-rm end to end on the trained models."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from icm_rm.data.preferences import PreferenceExample, load_preferences, write_preferences_jsonl
from icm_rm.reward.config import RewardModelConfig
from icm_rm.reward.format import format_for_rm

WORDS = "the quick brown fox jumps over lazy dog capital france paris spain rome".split()
SEED = 42
FAST = {"per_device_train_batch_size": 16, "per_device_eval_batch_size": 16, "learning_rate": 5e-3,
        "activation_checkpointing": False, "report_to": ["tensorboard"], "logging_steps": 4, "save_steps": 1000,
        "disable_tqdm": True}


def toy_pairs(n: int, seed: int) -> list[PreferenceExample]:
    """Separable: the chosen response ends in " yes", the rejected one in " no" (same stem). The tiny model's fresh
    reward head (seed 42) ranks these the wrong way round (~20% accuracy), so learning must do the work.
    (`write_preferences_jsonl` keeps prompt/chosen/rejected/margin: ids become row numbers, subsets are dropped.)"""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        stem = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        out.append(PreferenceExample(f"s{seed}-{i}", f"Question {seed}-{i}: {stem}?", f"{stem} yes", f"{stem} no",
                                     margin=rng.choice([0.5, 1.0]), subset="short" if i % 2 else "long"))
    return out


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is ~10× faster than oversubscribed spinning."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("toy")
    write_preferences_jsonl(d / "train.jsonl", toy_pairs(64, 1))
    write_preferences_jsonl(d / "heldout.jsonl", toy_pairs(32, 2))
    return {"train": d / "train.jsonl", "heldout": d / "heldout.jsonl"}


def make_cfg(tiny_model_dir, toy_files, out: Path, **kw) -> RewardModelConfig:
    trainer = {**FAST, "num_train_epochs": 3, **kw.pop("trainer", {})}
    return RewardModelConfig(model=str(tiny_model_dir), train_data=str(toy_files["train"]),
                             eval_data=str(toy_files["heldout"]), output_dir=str(out), seed=SEED, trainer=trainer,
                             **kw)


@pytest.fixture(scope="module")
def full_run(tiny_model_dir, toy_files, tmp_path_factory):
    from icm_rm.reward.trainer import train_reward_model

    cfg = make_cfg(tiny_model_dir, toy_files, tmp_path_factory.mktemp("rm_full") / "run")
    return cfg, train_reward_model(cfg)


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, toy_files, tmp_path_factory):
    from icm_rm.reward.trainer import train_reward_model

    cfg = make_cfg(tiny_model_dir, toy_files, tmp_path_factory.mktemp("rm_lora") / "run", use_lora=True, lora_r=4,
                   lora_alpha=8, lora_dropout=0.0, trainer={"learning_rate": 2e-2})
    return cfg, train_reward_model(cfg)


def heldout(toy_files) -> list[PreferenceExample]:
    return load_preferences(toy_files["heldout"]).examples


def plain_hf_rewards(model_dir: Path, examples, which: str) -> np.ndarray:
    """Score with nothing but transformers: format_for_rm text, add_special_tokens=False, one text at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    out = []
    with torch.no_grad():
        for ex in examples:
            ids = tok(format_for_rm(tok, ex.prompt, getattr(ex, which)), add_special_tokens=False,
                      return_tensors="pt")
            out.append(model(**ids).logits[0, 0].item())
    return np.asarray(out)


@pytest.fixture(scope="module")
def plain_rewards(full_run, toy_files) -> tuple[np.ndarray, np.ndarray]:
    _, res = full_run
    examples = heldout(toy_files)
    return (plain_hf_rewards(res.model_dir, examples, "chosen"), plain_hf_rewards(res.model_dir, examples, "rejected"))


def fresh_head_accuracy(tiny_model_dir, toy_files) -> float:
    """Held-out accuracy of the untrained model with the reward head TRL initialises (set_seed(seed) first)."""
    from transformers import set_seed

    from icm_rm.reward.export import load_base_seqcls
    from icm_rm.reward.scoring import RewardModel
    from icm_rm.reward.trainer import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    set_seed(SEED)
    rm = RewardModel(load_base_seqcls(tiny_model_dir, tok.pad_token_id).eval(), tok)
    c, r = rm.score_pairs(heldout(toy_files))
    return float((c > r).mean())


def test_training_moves_heldout_accuracy_from_wrong_to_right(full_run, tiny_model_dir, toy_files):
    cfg, res = full_run
    assert fresh_head_accuracy(tiny_model_dir, toy_files) <= 0.35  # the starting point is worse than chance
    held = res.metrics["held_out"]
    assert held["n"] == 32 and held["accuracy"] >= 0.9
    run = json.loads((Path(cfg.output_dir) / "run.json").read_text())
    assert run["world_size"] == 1 and run["metrics"]["held_out"]["accuracy"] == held["accuracy"]


def test_export_layout_and_plain_transformers_scores_identically(full_run, toy_files, plain_rewards):
    from icm_rm.reward.scoring import RewardModel

    cfg, res = full_run
    out = Path(cfg.output_dir)
    assert res.model_dir == out / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (res.model_dir / name).exists(), name
    for name in ("config.yaml", "run.json", ".complete"):
        assert (out / name).exists(), name
    assert list(out.glob("runs/**/events.out.tfevents.*")), "no TensorBoard event file"
    from transformers import AutoConfig

    conf = AutoConfig.from_pretrained(res.model_dir)
    assert conf.num_labels == 1 and conf.architectures == ["LlamaForSequenceClassification"]
    assert conf.pad_token_id == 0  # the tiny tokenizer's <pad>

    examples = heldout(toy_files)
    plain_c, plain_r = plain_rewards
    rm = RewardModel.from_pretrained(res.model_dir)
    batched_c, batched_r = rm.score_pairs(examples, batch_size=5)  # padded batches
    np.testing.assert_allclose(batched_c, plain_c, atol=1e-5)
    np.testing.assert_allclose(batched_r, plain_r, atol=1e-5)
    # ... and the in-memory trained model agrees with the exported one
    mem = RewardModel(res.trainer.model.eval(), rm.tokenizer).score_pairs(examples)
    np.testing.assert_allclose(mem[0], plain_c, atol=1e-5)


def test_reward_mean_std_in_config_json_equal_hand_computation(full_run, plain_rewards):
    _, res = full_run
    rewards = [float(x) for x in np.concatenate(plain_rewards)]  # all 64 held-out rewards, chosen and rejected
    mean = sum(rewards) / len(rewards)
    std = (sum((x - mean) ** 2 for x in rewards) / len(rewards)) ** 0.5
    conf = json.loads((res.model_dir / "config.json").read_text())
    assert conf["reward_mean"] == pytest.approx(mean, abs=1e-5)
    assert conf["reward_std"] == pytest.approx(std, abs=1e-5)
    assert conf["reward_stats_n"] == 64
    card = (res.model_dir / "README.md").read_text()
    assert f"{res.metrics['held_out']['accuracy']:.4f}" in card and "label source" in card


def test_lora_adapter_merge_and_reload_give_identical_rewards(lora_run, tiny_model_dir, toy_files):
    from peft import PeftModel

    from icm_rm.reward.export import load_base_seqcls
    from icm_rm.reward.scoring import RewardModel

    cfg, res = lora_run
    assert isinstance(res.trainer.model, PeftModel)
    examples = heldout(toy_files)
    merged = RewardModel.from_pretrained(res.model_dir)
    in_memory = RewardModel(res.trainer.model.eval(), merged.tokenizer)
    base = load_base_seqcls(tiny_model_dir, merged.tokenizer.pad_token_id)
    reloaded = RewardModel(PeftModel.from_pretrained(base, Path(cfg.output_dir) / "adapter").eval(), merged.tokenizer)
    m_c, m_r = merged.score_pairs(examples)
    for other in (in_memory, reloaded):
        o_c, o_r = other.score_pairs(examples)
        np.testing.assert_allclose(o_c, m_c, atol=1e-5)
        np.testing.assert_allclose(o_r, m_r, atol=1e-5)
    assert res.metrics["held_out"]["accuracy"] >= 0.9
    assert "LoRA r=4" in (res.model_dir / "README.md").read_text()


def test_resume_continues_from_last_checkpoint(tiny_model_dir, toy_files, tmp_path):
    from transformers import TrainerCallback

    from icm_rm.infra.errors import UserError
    from icm_rm.reward.trainer import train_reward_model

    class CountSteps(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kw):
            CountSteps.steps += 1

    out = tmp_path / "run"
    trainer = {"max_steps": 4, "save_steps": 2, "report_to": []}
    train_reward_model(make_cfg(tiny_model_dir, toy_files, out, trainer=trainer))
    assert (out / "checkpoint-4").is_dir()
    counter = CountSteps()
    with pytest.raises(UserError, match=r"refusing to resume — config key 'trainer.max_steps' changed \(4 → 6\)"):
        train_reward_model(make_cfg(tiny_model_dir, toy_files, out, resume=True, trainer={**trainer, "max_steps": 6}))
    res = train_reward_model(make_cfg(tiny_model_dir, toy_files, out, resume="force",  # a longer run: forced, logged
                                      trainer={**trainer, "max_steps": 6}), callbacks=[counter])
    assert CountSteps.steps == 2  # steps 5 and 6 only: 1-4 came from checkpoint-4
    assert res.trainer.state.global_step == 6
    # overwrite starts over in an emptied dir: no stale checkpoints left for a later resume to pick up
    train_reward_model(make_cfg(tiny_model_dir, toy_files, out, overwrite=True, trainer={**trainer, "max_steps": 2}))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]


def test_finished_run_is_not_overwritten_without_overwrite(full_run, tiny_model_dir, toy_files):
    from icm_rm.infra.errors import UserError
    from icm_rm.reward.trainer import train_reward_model

    cfg, _ = full_run
    with pytest.raises(UserError, match="already holds a finished reward model"):
        train_reward_model(make_cfg(tiny_model_dir, toy_files, Path(cfg.output_dir)))
    with pytest.raises(UserError, match="has no run.json"):
        train_reward_model(make_cfg(tiny_model_dir, toy_files, toy_files["train"].parent, overwrite=True))


def test_eval_rm_accuracy_and_ci_match_hand_computation(full_run, lora_run, toy_files, tmp_path, capsys):
    from icm_rm.cli import main
    from icm_rm.reward.scoring import RewardModel
    from icm_rm.reward.stats import wilson_ci

    _, full = full_run
    _, lora = lora_run
    out = tmp_path / "eval"
    rc = main(["eval-rm", "--model", str(full.model_dir), "--model", str(lora.model_dir),
               "--data", f"{toy_files['heldout']}:trl", "--limit", "20", "--output_dir", str(out)])
    assert rc == 0
    doc = json.loads((out / "eval_rm.json").read_text())
    assert [r["n"] for r in doc["results"]] == [20, 20]
    examples = heldout(toy_files)[:20]
    for row, model_dir in zip(doc["results"], (full.model_dir, lora.model_dir)):
        c, r = RewardModel.from_pretrained(model_dir).score_pairs(examples)
        k = int(sum(ci > ri for ci, ri in zip(c, r)))
        assert row["correct"] == k and row["accuracy"] == k / 20
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(wilson_ci(k, 20))
        assert row["mean_margin"] == pytest.approx(float(np.mean(c - r)), abs=1e-6)
    md = (out / "eval_rm.md").read_text()
    assert doc["models"] == ["rm_full0/run/model", "rm_lora0/run/model"]
    assert f"| heldout | 20 | {doc['results'][0]['accuracy']:.3f}" in md
    assert (out / "reliability_heldout.png").stat().st_size > 1000
    assert "Held-out preference accuracy" in capsys.readouterr().out
    assert [r["seen_in_training"] for r in doc["results"]] == [0, 0] and "Not held out" not in md


def test_eval_rm_says_when_the_held_out_set_holds_training_pairs(full_run, toy_files, tmp_path):
    """train-rm records (as hashes) the pairs it trained on; eval-rm on its own training file says the score is fit,
    not held-out accuracy — with a label flipped the pair still counts as seen."""
    from icm_rm.cli import main
    from icm_rm.reward.seen_pairs import count_seen

    _, full = full_run
    train = load_preferences(toy_files["train"]).examples
    assert count_seen(full.model_dir, train) == 64 and count_seen(full.model_dir, heldout(toy_files)) == 0
    flipped = [PreferenceExample(e.id, e.prompt, e.rejected, e.chosen) for e in train[:5]]
    mixed = tmp_path / "mixed.jsonl"
    write_preferences_jsonl(mixed, flipped + heldout(toy_files)[:7])
    assert main(["eval-rm", "--model", str(full.model_dir), "--data", f"{mixed}:trl", "--output_dir",
                 str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "eval_rm.json").read_text())["results"][0]["seen_in_training"] == 5
    assert "**Not held out:** 5 of the 12 pairs of mixed are pairs run/model was trained on" in \
        (tmp_path / "eval" / "eval_rm.md").read_text()
    assert count_seen(tmp_path, train) is None  # an RM trained elsewhere carries no record



@pytest.mark.parametrize("installed", ["ProgressCallback", "PrinterCallback"])
def test_the_terminal_gets_the_progress_bar_not_the_log_dicts(full_run, installed):
    from transformers import trainer_callback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from icm_rm.infra.quiet import bar_only_progress

    trainer = full_run[1].trainer
    for c in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(c)
    # transformers installs ProgressCallback where tqdm is on, PrinterCallback (prints every dict) where it is off
    trainer.add_callback(getattr(trainer_callback, installed))
    bar_only_progress(trainer)
    callbacks = trainer.callback_handler.callbacks
    assert not any(type(c) in (ProgressCallback, PrinterCallback) for c in callbacks)
    bars = [c for c in callbacks if isinstance(c, ProgressCallback)]
    assert len(bars) == 1

    written = []
    bars[0].training_bar = type("Bar", (), {"write": lambda self, text: written.append(text)})()
    bars[0].on_log(trainer.args, trainer.state, trainer.control, logs={"loss": 0.5})
    assert written == []
    ProgressCallback.on_log(bars[0], trainer.args, trainer.state, trainer.control, logs={"loss": 0.5})
    assert written  # the plain callback would have printed the dict
