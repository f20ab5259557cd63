"""Iterative labeling (the paper's "beyond one batch"): LoRA-fine-tune the labeler as a True/False classifier on
the ICM labels of batches 1..j, then label batch j+1 with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.records import Claim
from ..infra.config import cfg_field
from ..infra.errors import ConfigError
from ..infra.lm import right_pad
from ..scoring.base import Label, Scorer
from ..scoring.tokens import prefix_ids


@dataclass
class IterativeConfig:
    """LoRA fine-tuning of the labeler between batches."""

    enabled: bool = cfg_field(False, "fine-tune the labeler on earlier batches' labels before each next batch")
    epochs: int = cfg_field(2, "passes over the labeled claims per fine-tuning round", ge=1)
    learning_rate: float = cfg_field(1e-4, "AdamW learning rate of the LoRA weights", gt=0)
    batch_size: int = cfg_field(8, "claims per optimisation step", ge=1)
    lora_r: int = cfg_field(8, "LoRA rank", ge=1)
    lora_alpha: int = cfg_field(16, "LoRA α", gt=0)
    seed: int = cfg_field(0, "seed of the shuffling and LoRA init", ge=0)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.lora_r < 1:
            raise ConfigError("iterative", "epochs, batch_size and lora_r must be ≥ 1")


def finetune_labeler(model, tokenizer, claims: Sequence[Claim], labels: Sequence[bool], cfg: IterativeConfig,
                     save_dir: str | Path | None = None):
    """Train LoRA adapters so the model answers " True"/" False" after each claim as its ICM label; returns the
    adapted model (eval mode). Cross-entropy over the two answer tokens' first ids."""
    from peft import LoraConfig, PeftModel, get_peft_model  # heavy, and only iterative labeling needs it

    torch.manual_seed(cfg.seed)
    if not isinstance(model, PeftModel):
        targets = [n for n in ("q_proj", "v_proj") if any(n in m for m, _ in model.named_modules())]
        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                                 target_modules=targets or None, task_type="CAUSAL_LM"))
    t_id = tokenizer(" True", add_special_tokens=False).input_ids[0]
    f_id = tokenizer(" False", add_special_tokens=False).input_ids[0]
    prefix = prefix_ids(tokenizer)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    g = torch.Generator().manual_seed(cfg.seed)
    model.train()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for _ in tqdm(range(cfg.epochs), desc="fine-tune labeler", leave=False):
        order = torch.randperm(len(claims), generator=g).tolist()
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            ids = [prefix + tokenizer(claims[i].text, add_special_tokens=False).input_ids for i in idx]
            x, mask = right_pad(ids, pad)
            logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits
            last = logits[torch.arange(len(ids)), torch.tensor([len(s) - 1 for s in ids])]  # (b, vocab)
            two = torch.stack([last[:, f_id], last[:, t_id]], dim=-1)  # (b, 2): class 1 = True
            target = torch.tensor([int(bool(labels[i])) for i in idx], device=device)
            loss = torch.nn.functional.cross_entropy(two.float(), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    if save_dir is not None:
        model.save_pretrained(str(save_dir))
    return model


def next_labeler(scorer: Scorer, cfg: IterativeConfig, claims: Sequence[Claim], labels: Sequence[Label],
                 adapter_dir: Path) -> Scorer:
    """The scorer on its labeler fine-tuned on the labeled `claims` (or on the adapter saved at `adapter_dir` by
    an earlier, interrupted run)."""
    from peft import PeftModel  # heavy, and only iterative labeling needs it

    if (adapter_dir / "adapter_config.json").exists():
        base = scorer.model.get_base_model() if isinstance(scorer.model, PeftModel) else scorer.model
        model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    else:
        keep = [k for k, y in enumerate(labels) if y is not None]
        model = finetune_labeler(scorer.model, scorer.tokenizer, [claims[k] for k in keep], [labels[k] for k in keep],
                                 cfg, save_dir=adapter_dir)
    return scorer.rebuilt(model)
