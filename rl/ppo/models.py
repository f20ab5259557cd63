"""The trained module (policy + critic under one optimizer, as TRL's PolicyAndValueWrapper), the frozen reference,
and the export of the final policy as a plain HF causal-LM directory.

The critic is either a separate value model, an `AutoModelForSequenceClassification` (num_labels=1): a copy of a
backbone plus a scalar `score` head, applied to every position (not just the last) to give per-token values,
initialised from the policy (new head) or from a reward model whose tokenizer matches the policy's; or
(`value_model: shared`) a `ValueHead` on the policy's own last hidden states, as TRL's AutoModelForCausalLMWithValueHead
(PPOv1): one forward gives logits and values, one backward trains both.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from icm_rm.infra.errors import ConfigError, UserError
from icm_rm.infra.io import atomic_write_text
from icm_rm.infra.model_dir import TOKENIZER_FILES, loading, lora_targets

from .config import SHARED, PPOConfig


def position_ids_from(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as `generate()` uses, so training forwards match sampling."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class ValueHead(nn.Module):
    """The shared-backbone critic: a scalar linear head on the policy's last hidden states (TRL's `v_head` without its
    0.1 dropout, which would make the update's values differ from the rollout's). Zero-initialised: values start at 0
    and the value loss sends no gradient into the policy's backbone until the head has learned something."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden).squeeze(-1).float()


class PolicyAndValue(nn.Module):
    """Both trained parts in one module so one DeepSpeed engine / one optimizer holds them: the policy and either a
    separate `value_model` or a `value_head` on the policy's hidden states."""

    is_gradient_checkpointing = False   # read by TRL's unwrap_model_for_generation

    def __init__(self, policy: nn.Module, critic: nn.Module):
        super().__init__()
        self.policy = policy
        if isinstance(critic, ValueHead):
            self.value_head, self.value_model = critic, None
        else:
            self.value_head, self.value_model = None, critic

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_len: int):
        """Logits [B, T, V] predicting each response token, and values [B, T] of the state before it."""
        position_ids = position_ids_from(attention_mask)
        kw = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                  logits_to_keep=response_len + 1, use_cache=False)
        if self.value_head is not None:
            logits, hidden = forward_with_head_input(self.policy, **kw)
            return logits[:, :-1], self.value_head(hidden[:, :-1])
        logits = self.policy(**kw).logits[:, :-1]
        values = value_forward(self.value_model, input_ids, attention_mask, position_ids)[:, -response_len - 1:-1]
        return logits, values


def forward_with_head_input(policy: nn.Module, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy's logits and the hidden states its LM head read to make them (the last layer's, after the final
    norm, at the kept positions): one forward for both, whatever the architecture does around its head."""
    captured = []
    handle = policy.get_output_embeddings().register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    try:
        logits = policy(**kw).logits
    finally:
        handle.remove()
    return logits, captured[-1]


def value_forward(value_model: nn.Module, input_ids, attention_mask, position_ids) -> torch.Tensor:
    """Per-position scalar from a seq-cls model: its backbone's last hidden states through its `score` head."""
    base = value_model.get_base_model() if hasattr(value_model, "get_base_model") else value_model
    backbone = getattr(base, base.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      use_cache=False).last_hidden_state
    return base.score(hidden).squeeze(-1).float()


@contextmanager
def unwrap_for_generation(model: nn.Module, accelerator):
    """The bare module for `generate()`. Under ZeRO-3 TRL's helper gathers the parameters for the duration and lifts
    DeepSpeed's forward hooks (else every generated token would re-gather them); TRL is imported only then."""
    if not _is_zero3(accelerator):
        yield accelerator.unwrap_model(model)
        return
    from trl.models.utils import unwrap_model_for_generation

    with unwrap_model_for_generation(model, accelerator) as unwrapped:
        yield unwrapped


def _is_zero3(accelerator) -> bool:
    plugin = accelerator.state.deepspeed_plugin
    return plugin is not None and plugin.deepspeed_config.get("zero_optimization", {}).get("stage") == 3


def prepare_reference(ref: nn.Module, accelerator) -> nn.Module:
    """The frozen reference on this process: whole on its device, or under ZeRO-3 an inference-only DeepSpeed engine
    sharded like the policy (TRL's prepare_deepspeed)."""
    if not _is_zero3(accelerator):
        return ref.to(accelerator.device)
    from trl.models.utils import prepare_deepspeed

    return prepare_deepspeed(ref, accelerator)


def _dtype(cfg: PPOConfig) -> torch.dtype:
    return torch.float32  # weights stay fp32; accelerate autocasts when mixed_precision is set


def _lora_config(cfg: PPOConfig, task_type: str):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, task_type=task_type,
                      target_modules=cfg.lora_target_modules or "all-linear")


def load_policy(cfg: PPOConfig, path: str | None = None) -> nn.Module:
    from transformers import AutoModelForCausalLM

    path = path or cfg.model
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(cfg))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot load a causal LM ({str(e).splitlines()[0]})") from None
    if cfg.lora:
        from peft import get_peft_model

        with lora_targets(cfg.lora_target_modules):
            model = get_peft_model(model, _lora_config(cfg, "CAUSAL_LM"))
    return model


def load_value_model(cfg: PPOConfig, policy_tokenizer, reward_path: str | None, policy: nn.Module) -> nn.Module:
    """The critic: a `ValueHead` on `policy` (value_model: shared), else a seq-cls model with a scalar head, from the
    policy (new head) or from the RM when tokenizers match."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if cfg.value_model == SHARED:
        return ValueHead(policy.get_output_embeddings().in_features)
    source = cfg.value_model
    if source == "reward_model":
        if reward_path is None:
            raise ConfigError("value_model", "'reward_model' needs `reward_model` to be an RM directory")
        source = reward_path
    path = source or cfg.model
    if source is not None:
        with loading(source, "value model's tokenizer"):
            vocab = AutoTokenizer.from_pretrained(source).get_vocab()
        if vocab != policy_tokenizer.get_vocab():
            raise ConfigError("value_model", f"{source}: its tokenizer differs from the policy's, so it cannot read "
                                             "the policy's tokens; leave value_model null to start from the policy")
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    if source is None:      # from a causal LM: "score.weight newly initialised" is the point, not news
        hf_logging.set_verbosity_error()
    try:
        with loading(path, "value model"):
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=_dtype(cfg))
    finally:
        hf_logging.set_verbosity(level)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = policy_tokenizer.pad_token_id
    if cfg.lora:
        from peft import get_peft_model

        with lora_targets(cfg.lora_target_modules):
            model = get_peft_model(model, _lora_config(cfg, "SEQ_CLS"))
    return model


def load_reference(cfg: PPOConfig, policy_tokenizer) -> nn.Module:
    """The frozen KL reference; a separate `ref_model` must read the policy's tokens (same vocabulary)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = cfg.ref_model or cfg.model
    with loading(path, "reference model"):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(cfg))
        ref_vocab = (AutoTokenizer.from_pretrained(path).get_vocab()
                     if cfg.ref_model and any((Path(path) / f).is_file() for f in TOKENIZER_FILES) else None)
    rows = model.get_input_embeddings().weight.shape[0]
    if cfg.ref_model and (rows < len(policy_tokenizer) or (ref_vocab is not None
                                                           and ref_vocab != policy_tokenizer.get_vocab())):
        raise ConfigError("ref_model", f"{path}: its vocabulary ({rows} embedding rows"
                                       f"{', a different tokenizer' if ref_vocab is not None else ''}) is not the "
                                       f"policy's ({len(policy_tokenizer)} tokens), so it cannot score the policy's "
                                       "tokens; use a reference with the policy's tokenizer, or leave ref_model null")
    return model.eval().requires_grad_(False)


@contextmanager
def _without_zero3_init():
    """Load a whole model on one process even under ZeRO-3: accelerate registers its DeepSpeed config with transformers,
    which would make `from_pretrained` partition the weights collectively (and wait forever for the other ranks)."""
    try:
        import transformers.integrations.deepspeed as hf_ds
    except ImportError:
        yield
        return
    saved = hf_ds._hf_deepspeed_config_weak_ref
    hf_ds._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = saved


def export_policy(cfg: PPOConfig, state_dict: dict[str, torch.Tensor], tokenizer, out_dir: str | Path) -> Path:
    """Write the trained policy as a plain HF causal-LM dir (LoRA merged) from the wrapper's full state dict."""
    out_dir = Path(out_dir)
    with _without_zero3_init():
        policy = load_policy(cfg)
    sd = {k[len("policy."):]: v for k, v in state_dict.items() if k.startswith("policy.")}
    missing, unexpected = policy.load_state_dict(sd, strict=False)
    tied = getattr(policy.config, "tie_word_embeddings", False)
    missing = [k for k in missing if not (tied and k.endswith("lm_head.weight"))]
    if missing or unexpected:
        raise RuntimeError(f"export: state dict does not match the policy (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if cfg.lora:
        policy = policy.merge_and_unload()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    atomic_write_text(tmp / "README.md", f"Policy trained with icm-rm PPO from `{cfg.model}`.\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
