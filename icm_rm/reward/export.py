"""Export a trained RM as a plain `AutoModelForSequenceClassification` dir (num_labels=1) + tokenizer + README.md,
with `reward_mean` / `reward_std` measured on held-out pairs written into its config.json.

Layout of `<output_dir>/model/`:
    config.json          num_labels=1, pad_token_id, reward_mean, reward_std, reward_stats_n
    model.safetensors    the weights (a LoRA adapter merged in; the adapter itself stays in `<output_dir>/adapter/`)
    tokenizer files      the tokenizer the RM was trained with (pad token set)
    README.md            model card: base, data, label source, held-out accuracy ± CI, reward mean/std, usage
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..infra.errors import UserError
from ..infra.io import atomic_write_json, atomic_write_text
from .scoring import RewardModel
from .stats import accuracy_from_rewards


@dataclass
class HeldOutStats:
    """Rewards of the held-out pairs as the exported model scores them."""

    n_pairs: int
    reward_mean: float  # over all 2·n_pairs chosen and rejected rewards
    reward_std: float  # population std (ddof=0) over the same rewards
    accuracy: dict = field(default_factory=dict)  # `accuracy_from_rewards` output

    @classmethod
    def from_rewards(cls, chosen: np.ndarray, rejected: np.ndarray) -> HeldOutStats:
        both = np.concatenate([np.asarray(chosen, float), np.asarray(rejected, float)])
        return cls(n_pairs=len(chosen), reward_mean=float(both.mean()), reward_std=float(both.std()),
                   accuracy=accuracy_from_rewards(chosen, rejected))


@contextmanager
def zero3_init_disabled() -> Iterator[None]:
    """`from_pretrained` on one rank must not enter DeepSpeed ZeRO-3 partitioned init: that is a collective the other
    ranks never join. transformers keeps the active DeepSpeed config in a module-level weakref; lift it meanwhile."""
    from transformers.integrations import deepspeed as hf_ds

    ref = hf_ds._hf_deepspeed_config_weak_ref
    hf_ds.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = ref


def load_base_seqcls(base_path: str | Path, pad_token_id: int | None, dtype=None):
    """The base checkpoint as a 1-label sequence classifier (a causal LM gets a new `score` head)."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    with suppress_seqcls_warning():
        model = AutoModelForSequenceClassification.from_pretrained(base_path, num_labels=1,
                                                                   dtype=dtype or torch.float32)
    model.config.pad_token_id = pad_token_id
    return model


def merge_lora(base_path: str | Path, adapter_dir: str | Path, model_dir: str | Path, tokenizer, dtype=None) -> None:
    """Base + saved adapter (LoRA + trained score head) → merged plain model in `model_dir`."""
    from peft import PeftModel

    with zero3_init_disabled():
        base = load_base_seqcls(base_path, tokenizer.pad_token_id, dtype)
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)


def write_reward_stats(model_dir: str | Path, stats: HeldOutStats) -> None:
    """Add reward_mean / reward_std (the contract RL normalises with) to the exported config.json."""
    path = Path(model_dir) / "config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg.update(reward_mean=stats.reward_mean, reward_std=stats.reward_std, reward_stats_n=2 * stats.n_pairs)
    atomic_write_json(path, cfg)


def model_card(info: dict, stats: HeldOutStats) -> str:
    """README.md for the exported RM; `info` holds base, train/eval data, label source, counts and hyperparameters."""
    acc = stats.accuracy
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-classification", "tags: [reward-model, icm-rm, trl]",
        "---", "", f"# Reward model: {info['name']}", "",
        "A Bradley–Terry reward model (`AutoModelForSequenceClassification`, `num_labels=1`) trained with "
        "icm-rm `train-rm` (TRL `RewardTrainer`).", "",
        "| | |", "|---|---|",
        f"| base model | `{info['base_model']}` |",
        f"| training data | `{info['train_data']}` ({info['n_train']} pairs) |",
        f"| label source | {info['label_source']} |",
        f"| held-out data | `{info['eval_data']}` ({stats.n_pairs} pairs) |",
        f"| held-out accuracy | {acc['accuracy']:.4f} (95% Wilson CI {acc['ci_low']:.4f}–{acc['ci_high']:.4f}; "
        f"{acc['correct']}/{acc['n']}) |",
        f"| reward mean / std (held-out) | {stats.reward_mean:.6g} / {stats.reward_std:.6g} |",
        f"| training | {info['method']}, {info['hyperparameters']} |",
        "", "## Usage", "",
        "```python",
        "from icm_rm.reward.scoring import RewardModel",
        f"rm = RewardModel.from_pretrained(\"{info['model_dir']}\")",
        "r = rm.score([prompt], [response])      # raw reward",
        "z = rm.normalize(r)                      # (r - reward_mean) / reward_std",
        "```", "",
        "Texts are built by `icm_rm.reward.format.format_for_rm(tokenizer, prompt, response)` and tokenised with "
        "`add_special_tokens=False`; with plain transformers, score that text and read `logits[:, 0]`. "
        "`reward_mean` / `reward_std` in `config.json` are measured on the held-out pairs above.", "",
    ]
    return "\n".join(lines)


def finalize_export(model_dir: str | Path, eval_examples: Sequence, info: dict, batch_size: int = 16,
                    progress: bool = True) -> HeldOutStats:
    """Score the held-out pairs with the *exported* model, then write the reward stats and the model card."""
    with zero3_init_disabled():
        rm = RewardModel.from_pretrained(model_dir)
    chosen, rejected = rm.score_pairs(eval_examples, batch_size=batch_size, progress=progress,
                                      desc="held-out rewards")
    stats = HeldOutStats.from_rewards(chosen, rejected)
    if not (math.isfinite(stats.reward_mean) and math.isfinite(stats.reward_std) and stats.reward_std > 0):
        raise UserError(f"{model_dir}: the trained RM's held-out rewards have mean {stats.reward_mean} and std "
                        f"{stats.reward_std} (training diverged, or every reward is the same), so RL could not "
                        "normalise them; the RM is not exported — lower trainer.learning_rate or check the data")
    write_reward_stats(model_dir, stats)
    atomic_write_text(Path(model_dir) / "README.md", model_card(info, stats))
    return stats
