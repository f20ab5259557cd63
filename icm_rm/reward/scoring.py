"""Load an exported reward model and score (prompt, response) pairs in batches — used by RM export, `eval-rm`, the
benchmarks and RL (`rl/rewards.py`).

    rm = RewardModel.from_pretrained("runs/rm/model")
    rewards = rm.score(prompts, responses)            # np.ndarray of raw rewards
    z = rm.normalize(rewards)                         # (r − reward_mean) / reward_std from config.json
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..infra.device import resolve_device
from ..infra.errors import UserError
from ..infra.model_dir import check_model_dir, loading
from .format import Content, format_for_rm


def check_rm_dir(path: str | Path) -> Path:
    """An RM directory as train-rm exports it, checked whole (`check_model_dir`) before transformers reads it."""
    path = Path(path)
    if path.is_dir() and not (path / "config.json").exists():
        raise UserError(f"{path}: not a reward model dir (no config.json); pass the RM's `model/` dir from train-rm")
    if not path.exists():
        raise UserError(f"{path}: reward model dir not found (no config.json); pass the RM's `model/` dir from "
                        "train-rm")
    return check_model_dir(path)


def check_reward_stats(path: Path, config) -> None:
    """reward_mean / reward_std, where config.json has them, must be finite numbers (std > 0): RL divides by them."""
    for key in ("reward_mean", "reward_std"):
        v = getattr(config, key, None)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                (key == "reward_std" and v <= 0):
            raise UserError(f"{path / 'config.json'}: field '{key}' is {v!r}, not a finite number"
                            f"{' > 0' if key == 'reward_std' else ''}; re-export the RM with train-rm")


def load_rm_model(path: str | Path, device: str | None = None, dtype=None):
    """`AutoModelForSequenceClassification` + tokenizer from an RM dir, in eval mode on `device`."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = check_rm_dir(path)
    device = resolve_device(device)
    with loading(path, "reward model"):
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype or torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
    if model.config.num_labels != 1:
        raise UserError(f"{path}: num_labels={model.config.num_labels}, a reward model has exactly 1")
    check_reward_stats(path, model.config)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


class RewardModel:
    """A sequence-classification RM (num_labels=1) + its tokenizer, scoring `format_for_rm` texts."""

    def __init__(self, model, tokenizer, max_length: int | None = None):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None, dtype=None,
                        max_length: int | None = None) -> RewardModel:
        model, tokenizer = load_rm_model(path, device, dtype)
        return cls(model, tokenizer, max_length)

    @property
    def reward_mean(self) -> float | None:
        return getattr(self.model.config, "reward_mean", None)

    @property
    def reward_std(self) -> float | None:
        return getattr(self.model.config, "reward_std", None)

    def normalize(self, rewards: np.ndarray) -> np.ndarray:
        """(r − reward_mean) / reward_std with the held-out statistics stored at export."""
        if self.reward_mean is None or not self.reward_std:
            raise UserError("this reward model's config.json has no reward_mean/reward_std; export it with train-rm")
        return (np.asarray(rewards, dtype=float) - self.reward_mean) / self.reward_std

    def score_texts(self, texts: Sequence[str], batch_size: int = 16, progress: bool = False,
                    desc: str = "scoring") -> np.ndarray:
        """Rewards of already formatted texts (right-padded batches, longest first; left-truncated to max_length, or
        to the model's positions when max_length is null)."""
        import torch
        from tqdm.auto import tqdm

        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        limit = self.max_length or getattr(self.model.config, "max_position_embeddings", None)
        if limit:  # never past the model's positions, even when max_length is null; the end (the response) stays
            ids = [x[-limit:] for x in ids]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.empty(len(ids), dtype=float)
        device = next(self.model.parameters()).device
        pad_id = self.tokenizer.pad_token_id
        starts = range(0, len(order), batch_size)
        with torch.inference_mode():
            for s in tqdm(starts, desc=desc, disable=not progress, unit="batch"):
                idx = order[s:s + batch_size]
                width = max(len(ids[i]) for i in idx)
                input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                    mask[row, :len(ids[i])] = 1
                logits = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                out[idx] = logits.squeeze(-1).float().cpu().numpy()
        return out

    def score(self, prompts: Sequence[Content], responses: Sequence[Content], batch_size: int = 16,
              progress: bool = False) -> np.ndarray:
        """Raw rewards of `responses[i]` to `prompts[i]`."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        texts = [format_for_rm(self.tokenizer, p, r) for p, r in zip(prompts, responses)]
        return self.score_texts(texts, batch_size, progress)

    def score_pairs(self, examples: Sequence, batch_size: int = 16, progress: bool = False,
                    desc: str = "scoring pairs") -> tuple[np.ndarray, np.ndarray]:
        """(chosen rewards, rejected rewards) of `PreferenceExample`s, scored in one batched pass."""
        texts = [format_for_rm(self.tokenizer, ex.prompt, ex.chosen) for ex in examples]
        texts += [format_for_rm(self.tokenizer, ex.prompt, ex.rejected) for ex in examples]
        rewards = self.score_texts(texts, batch_size, progress, desc)
        return rewards[:len(examples)], rewards[len(examples):]
