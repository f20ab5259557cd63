"""`RewardModelConfig`: what `icm-rm train-rm` reads (configs/rm/*.yaml). TRL `RewardConfig` fields pass through the
`trainer:` mapping (`--trainer.learning_rate 1e-4`); the fields icm-rm owns are rejected there with the fix."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Literal

from ..infra.config import cfg_field
from ..infra.errors import ConfigError
from ..infra.values import check_pass_through, coerce_pass_through
from .data import infer_label_source

DEFAULT_MODEL = "smollm2-135m"
LABEL_SOURCES = ("icm", "gold", "human", "random", "other")

# RewardConfig fields icm-rm sets itself, and the top-level field to use instead.
OWNED_TRAINER_KEYS = {
    "output_dir": "output_dir", "seed": "seed", "max_length": "max_length",
    "center_rewards_coefficient": "center_rewards_coefficient", "resume_from_checkpoint": "resume",
    "overwrite_output_dir": "overwrite",
}


@dataclass
class RewardModelConfig:
    """Train a reward model on preference pairs (prompt/chosen/rejected) with TRL's RewardTrainer."""

    model: str = cfg_field(DEFAULT_MODEL, help="base model: a default-model name (`icm-rm models`) or a local "
                                               "causal-LM / sequence-classification checkpoint dir")
    train_data: str = cfg_field("runs/label/preferences.jsonl",
                                help="training pairs: FILE[:format] (trl, icm_alpaca, icm_truthfulqa_preference, "
                                     "hh_rlhf, fgrlhf; auto-detected when omitted) — ICM, gold or human labels")
    train_limit: int | None = cfg_field(None, help="use at most this many training pairs (null = all)", ge=1)
    eval_data: str | None = cfg_field(None, help="held-out pairs FILE[:format]; null = hold out `eval_split` of "
                                                 "train_data")
    eval_split: float = cfg_field(0.1, help="fraction of train_data held out when eval_data is null (whole prompts, "
                                            "by a seeded hash, so ICM/gold/random files of the same pairs split "
                                            "alike)", ge=0, lt=1)
    eval_limit: int | None = cfg_field(None, help="use at most this many held-out pairs (null = all)", ge=1)
    label_source: str | None = cfg_field(None, help="where the training labels came from, for the model card; null "
                                                    "= inferred from the file", choices=LABEL_SOURCES)
    output_dir: str | None = cfg_field(None, help="run dir (checkpoints, TensorBoard runs/, config.yaml, run.json; "
                                                  "the RM goes to <output_dir>/model); null = runs/rm/<label_source>",
                                                  resume_safe=True)
    seed: int = cfg_field(42, help="seed for the held-out split, the new reward head and training", ge=0)
    split_seed: int | None = cfg_field(None, help="seed of the held-out split alone (null = seed): RMs trained with "
                                                  "different seeds on the same held-out pairs", ge=0)
    max_length: int = cfg_field(1024, help="pairs whose chosen or rejected text exceeds this many tokens are "
                                           "dropped (and counted)", ge=1)
    use_margin: bool = cfg_field(False, help="use each pair's `margin` (ICM confidence) in the Bradley-Terry loss: "
                                             "-log σ(r_c − r_r − margin_scale·margin)")
    margin_scale: float = cfg_field(1.0, help="multiplier on the margin column when use_margin is true", ge=0)
    drop_least_confident: float = cfg_field(0.0, help="before training, drop this fraction of the training pairs "
                                                      "with the smallest `margin` (the labeler's confidence); a file "
                                                      "without margins (gold, human) keeps every pair", ge=0, lt=1)
    center_rewards_coefficient: float | None = cfg_field(None, help="weight of the mean-zero reward penalty "
                                                                    "(TRL; 0.01 is typical); null = off", ge=0)
    use_lora: bool = cfg_field(False, help="train a LoRA adapter (peft, task SEQ_CLS, the score head fully "
                                           "trained) and merge it into the exported model")
    lora_r: int = cfg_field(16, help="LoRA rank", ge=1)
    lora_alpha: int = cfg_field(32, help="LoRA alpha (scale = alpha / r)", ge=1)
    lora_dropout: float = cfg_field(0.05, help="LoRA dropout", ge=0, lt=1)
    lora_target_modules: list[str] | str = cfg_field("all-linear", help="modules LoRA adapts: a list of names or "
                                                                        "'all-linear'")
    score_batch_size: int = cfg_field(16, help="batch size for scoring held-out pairs at export", ge=1)
    trainer: dict[str, Any] = cfg_field(default_factory=dict, help="TRL RewardConfig / TrainingArguments fields "
                                                                   "passed through (learning_rate, "
                                                                   "num_train_epochs, per_device_train_batch_size…)")
    resume: bool | Literal["force"] = cfg_field(
        False, help="continue from the last good checkpoint-* in output_dir (starts fresh when there is none); a "
                    "changed config or data is refused, 'force' continues anyway", resume_safe=True)
    overwrite: bool = cfg_field(False, help="allow writing into an output_dir that already holds a finished RM",
                                resume_safe=True)
    expect_world_size: int | None = cfg_field(None, help="fail unless the run has exactly this many processes "
                                                         "(catches a launcher that silently ran one)",
                                                         ge=1, resume_safe=True)

    def __post_init__(self) -> None:
        if not 0.0 <= self.eval_split < 1.0:
            raise ConfigError("eval_split", f"must be in [0, 1), got {self.eval_split}; 0.1 holds out 10%")
        if self.eval_data is None and self.eval_split == 0.0:
            raise ConfigError("eval_split", "no held-out data: reward_mean/std and the model card's accuracy are "
                                            "measured on held-out pairs; set eval_data or eval_split > 0")
        for key in ("train_limit", "eval_limit"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(key, f"must be ≥ 1 or null, got {getattr(self, key)}")
        for key in ("max_length", "lora_r", "lora_alpha", "score_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be ≥ 1, got {getattr(self, key)}")
        if isinstance(self.lora_target_modules, list) and not self.lora_target_modules:
            raise ConfigError("lora_target_modules", "empty list; give module names (e.g. [q_proj, v_proj]) or "
                                                     "'all-linear'")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError("lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        if self.label_source is not None and self.label_source not in LABEL_SOURCES:
            raise ConfigError("label_source", f"expected one of {list(LABEL_SOURCES)} or null, got "
                                              f"{self.label_source!r}")
        if self.expect_world_size is not None and self.expect_world_size < 1:
            raise ConfigError("expect_world_size", f"must be ≥ 1 or null, got {self.expect_world_size}")
        if self.resume and self.overwrite:
            raise ConfigError("overwrite", "resume continues a run and overwrite replaces one; set only one of them")
        check_trainer_keys(self.trainer)
        self.trainer = coerce_trainer_values(self.trainer)
        check_pass_through("trainer", self.trainer)  # lr ≤ 0, epochs < 1, batch size 0 … refused now, not in TRL
        # Resolved here so config.yaml records them: switching train_data (ICM → gold) switches the run dir too.
        if self.label_source is None:
            self.label_source = infer_label_source(self.train_data)
        if self.output_dir is None:
            self.output_dir = f"runs/rm/{self.label_source}"


def _reward_config_fields() -> dict[str, dataclasses.Field]:
    from trl import RewardConfig

    return {f.name: f for f in dataclasses.fields(RewardConfig) if f.init}


def trainer_field_names() -> set[str]:
    return set(_reward_config_fields())


def coerce_trainer_values(trainer: dict[str, Any]) -> dict[str, Any]:
    """Read `trainer.*` values by RewardConfig's field types (`coerce_pass_through`)."""
    return coerce_pass_through("trainer", trainer, _reward_config_fields())


def check_trainer_keys(trainer: dict[str, Any]) -> None:
    """Every `trainer.*` key must be a RewardConfig field that icm-rm does not set itself."""
    names = trainer_field_names()
    for key in trainer:
        if key in OWNED_TRAINER_KEYS:
            raise ConfigError(f"trainer.{key}", f"set by icm-rm; use the top-level `{OWNED_TRAINER_KEYS[key]}` "
                                                "field instead")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean 'trainer.{close[0]}'?)" if close else ""
            raise ConfigError(f"trainer.{key}", f"not a TRL RewardConfig field{hint}")
