"""`PolicyTrainingConfig`: the fields PPO and GRPO share — the policy, the reward source, the prompts, the common
optimisation and LoRA settings, and the run directory — so `PPOConfig` and `GRPOConfig` hold only what is theirs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

from icm_rm.infra.config import cfg_field
from icm_rm.infra.errors import ConfigError, UserError
from icm_rm.infra.models import resolve_model


@dataclass
class PolicyTrainingConfig:
    """Train a causal-LM policy against a reward source (RM dir, HTTP RM, Python function or a mix)."""

    MODEL_FIELDS: ClassVar[tuple[str, ...]] = ("model", "tokenizer")  # fields naming a model (registry name or dir)

    # ---------------------------------------------------------------- policy
    model: str = cfg_field("", "Policy to start from: an HF causal-LM directory or a registry name (also the "
                               "reference for the KL penalty).")
    tokenizer: str | None = cfg_field(None, "Tokenizer directory for the policy; default: the `model` directory.")
    mixed_precision: Literal["no", "bf16", "fp16"] = cfg_field("no", "Training precision (accelerate autocast).",
                                                                choices=("no", "bf16", "fp16"))
    # ---------------------------------------------------------------- reward
    reward_model: str | None = cfg_field(None, "Reward source in one string: an RM directory, an http(s) URL of an RM "
                                               "server, or 'module:function' / 'file.py:function'.")
    reward: dict | None = cfg_field(None, "Reward source as a mapping (wins over reward_model), e.g. {type: mix, "
                                          "sources: [{type: hf, path: DIR, weight: 0.5}, ...]}; see rl/rewards.py.")
    normalize_reward: bool = cfg_field(True, "Normalise HF RM scores with the reward_mean/reward_std stored in the RM's "
                                             "config.json.")
    reward_clip: float | None = cfg_field(None, "Clip sequence scores to ±reward_clip (after normalisation); null = no "
                                                "clip.", gt=0)
    missing_eos_penalty: float | None = cfg_field(None, "Subtract this from the score of responses that hit "
                                                        "max_new_tokens without EOS; null = no penalty.", ge=0)
    reward_batch_size: int = cfg_field(8, "Texts per forward pass of an HF reward model.", ge=1)
    # ---------------------------------------------------------------- data
    prompts: str = cfg_field("", "Prompts: a JSONL/JSON file with a `prompt` field (a TRL preference file works), "
                                 "or 'builtin:NAME' for a built-in task's prompts.")
    prompt_split: str = cfg_field("train", "Split for builtin:NAME prompts.")
    prompt_format: Literal["auto", "raw", "chat"] = cfg_field(
        "auto", "auto: chat (the chat template) when the policy's tokenizer has one, else raw; chat: string prompts "
                "become one user message; raw: never apply the chat template. eval-policy uses the same rule.",
        choices=("auto", "raw", "chat"))
    max_prompts: int | None = cfg_field(None, "Use only the first N distinct prompts.", ge=1)
    # ---------------------------------------------------------------- optimisation
    num_steps: int = cfg_field(200, "Optimizer steps of the run (PPO: PPO steps; GRPO: TRL's max_steps).", ge=1)
    max_new_tokens: int = cfg_field(64, "Response tokens sampled per prompt (generation stops early at EOS).", ge=1)
    temperature: float = cfg_field(1.0, "Sampling temperature.", gt=0)
    learning_rate: float = cfg_field(1e-6, "AdamW learning rate of the policy.", gt=0)
    lr_scheduler: str = cfg_field("linear", "Learning-rate schedule over all optimizer steps, after warmup.")
    warmup_steps: int = cfg_field(0, "Optimizer steps of linear warmup.", ge=0)
    max_grad_norm: float = cfg_field(1.0, "Gradient-norm clip.", gt=0)
    # ---------------------------------------------------------------- LoRA
    lora: bool = cfg_field(False, "Train LoRA adapters (peft); the reference is the policy with its adapter disabled. "
                                  "The exported policy is merged.")
    lora_r: int = cfg_field(16, "LoRA rank.", ge=1)
    lora_alpha: int = cfg_field(32, "LoRA alpha.", ge=1)
    lora_dropout: float = cfg_field(0.0, "LoRA dropout.", ge=0, lt=1)
    lora_target_modules: list[str] | None = cfg_field(None, "Modules to adapt; default: all linear layers.")
    # ---------------------------------------------------------------- run
    output_dir: str = cfg_field("runs/policy", "Run directory: policy/, checkpoints, metrics.jsonl, training.png, "
                                               "run.json.", resume_safe=True)
    seed: int = cfg_field(0, "Seed for initialisation, sampling and data order.", ge=0)
    save_steps: int = cfg_field(50, "Checkpoint every N steps.", ge=0)
    save_total_limit: int | None = cfg_field(2, "Keep the newest N checkpoints (null = all).", ge=1, resume_safe=True)
    resume: bool | Literal["force"] = cfg_field(False, "Continue from the newest good checkpoint in output_dir; a changed "
                                                       "config or data is refused, 'force' continues anyway.",
                                                resume_safe=True)
    overwrite: bool = cfg_field(False, "Replace a finished or started run in output_dir: the new run is written aside "
                                       "and swapped in only when complete.", resume_safe=True)
    max_steps_this_run: int | None = cfg_field(None, "Stop after this many steps in this invocation (checkpointing "
                                                     "first), e.g. to split a run across job slots.",
                                                     ge=1, resume_safe=True)
    tensorboard: bool = cfg_field(True, "Write TensorBoard scalars to output_dir/tensorboard.", resume_safe=True)

    def __post_init__(self):
        if not self.model:
            raise ConfigError("model", "set `model` to the policy's HF directory")
        if not self.prompts:
            raise ConfigError("prompts", "set `prompts` to a JSONL file with a `prompt` field or to builtin:NAME")
        if self.reward is None and not self.reward_model:
            raise ConfigError("reward_model", "set `reward_model` (RM dir, URL or module:function) or `reward`")
        for name in ("num_steps", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be ≥ 1, got {getattr(self, name)}")
        if self.max_steps_this_run is not None and self.max_steps_this_run < 1:
            raise ConfigError("max_steps_this_run", "must be ≥ 1 or null")
        if self.overwrite and (self.resume or self.max_steps_this_run is not None):
            raise ConfigError("overwrite", "overwrite starts the run over (aside, swapped in when complete); it cannot "
                                           "be combined with resume or max_steps_this_run")

    def with_resolved_models(self):
        """A copy whose model fields hold local dirs: registry names (`smollm2-135m`, see `icm-rm models`) → the
        cached HF dirs (fetched on first use); unset fields and PPO's `value_model` keywords stay."""
        fields = {}
        for name in self.MODEL_FIELDS:
            value = getattr(self, name)
            if value and value not in ("reward_model", "shared"):
                try:  # each dir checked for what is read from it: the tokenizer dir needs no weights, a ref no tokenizer
                    fields[name] = resolve_model(value, weights=name != "tokenizer",
                                                 tokenizer=name in ("tokenizer", "value_model")
                                                 or (name == "model" and not self.tokenizer))
                except ConfigError:
                    raise
                except UserError as e:
                    raise ConfigError(name, str(e)) from None
        return dataclasses.replace(self, **fields)
