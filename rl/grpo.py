"""GRPO: a thin wrapper over TRL's `GRPOTrainer` that takes the same reward sources, data and run layout as our PPO.

`python -m rl.grpo --config configs/grpo/default.yaml`, `icm-rm grpo ...` and
`accelerate launch --config_file accelerate_config.yaml -m rl.grpo --config ...` all run `main()`.
Anything of TRL's `GRPOConfig` that is not a field here goes in the `trl:` mapping (checked against TRL's fields).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from icm_rm.infra.config import cfg_field
from icm_rm.infra.errors import ConfigError, UserError
from icm_rm.infra.io import mark_complete, write_run_json
from icm_rm.infra.model_dir import loading, lora_targets
from icm_rm.infra.quiet import bar_only_progress
from icm_rm.infra.runner import run_main
from icm_rm.infra.runs import last_complete_checkpoint
from icm_rm.infra.values import check_pass_through, coerce_pass_through
from rl.config import PolicyTrainingConfig
from rl.degenerate import degenerate_stats, rollout_metrics
from rl.launch import finish_policy_run, prepare_policy_run, trainer_main
from rl.logging import RunLogger, say
from rl.ppo.data import load_prompts
from rl.ppo.rollout import check_prompt_format, eos_ids_of, policy_prompt, tokenize_prompts
from rl.rewards import build_reward_source, postprocess_scores, source_metrics

# Our fields that map onto TRL's GRPOConfig under another (or the same) name: ours → TRL's.
_TRL_NAMES = {
    "output_dir": "output_dir", "seed": "seed", "num_steps": "max_steps", "per_device_batch_size": "per_device_train_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps", "num_generations": "num_generations",
    "max_new_tokens": "max_completion_length", "temperature": "temperature", "learning_rate": "learning_rate",
    "lr_scheduler": "lr_scheduler_type", "warmup_steps": "warmup_steps", "max_grad_norm": "max_grad_norm", "beta": "beta",
    "save_steps": "save_steps", "save_total_limit": "save_total_limit", "logging_steps": "logging_steps",
    "gradient_checkpointing": "gradient_checkpointing",
}


@dataclass
class GRPOConfig(PolicyTrainingConfig):
    """Train a causal-LM policy with GRPO (TRL's GRPOTrainer) against a reward source."""

    # shared fields with GRPO's own defaults or help
    model: str = cfg_field("", "Policy to start from: an HF causal-LM directory (also the reference when beta > 0).")
    num_steps: int = cfg_field(200, "Optimizer steps (TRL: max_steps).", ge=1)
    max_new_tokens: int = cfg_field(64, "Completion tokens (TRL: max_completion_length).", ge=1)
    lr_scheduler: str = cfg_field("linear", "Learning-rate schedule (TRL/transformers lr_scheduler_type).")
    output_dir: str = cfg_field("runs/grpo", "Run directory: policy/, checkpoint-N/ (TRL), metrics.jsonl, training.png.",
                                resume_safe=True)
    save_steps: int = cfg_field(50, "Checkpoint every N optimizer steps (TRL checkpoints).", ge=1)
    resume: bool | Literal["force"] = cfg_field(False, "Continue from the newest good checkpoint-N in output_dir (TRL "
                                                       "resume); 'force' even when the config or data changed.",
                                                resume_safe=True)
    # GRPO
    per_device_batch_size: int = cfg_field(8, "Completions per process per micro-step (TRL: per_device_train_batch_size).",
                                           ge=1)
    gradient_accumulation_steps: int = cfg_field(1, "Micro-steps per optimizer step.", ge=1)
    num_generations: int = cfg_field(8, "Completions per prompt (the group); the global batch must be divisible by it.",
                                     ge=2)
    gradient_checkpointing: bool = cfg_field(False, "Recompute activations in the backward pass (less memory, slower).")
    beta: float = cfg_field(0.04, "KL coefficient against the reference. > 0 by default (TRL's default is 0), so runs "
                                  "under two reward models stay anchored to the same reference and comparable.", ge=0)
    logging_steps: int = cfg_field(1, "Log every N optimizer steps.", ge=1, resume_safe=True)
    trl: dict = cfg_field(default_factory=dict, help="Extra TRL GRPOConfig fields passed through as they are (e.g. "
                                                     "loss_type, scale_rewards, epsilon, num_iterations).")

    def __post_init__(self):
        super().__post_init__()
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be ≥ 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise ConfigError("num_generations", "GRPO needs at least 2 completions per prompt to form a group")
        if self.beta < 0:
            raise ConfigError("beta", f"must be ≥ 0, got {self.beta}")
        fields = _trl_fields()
        known = set(fields)
        ours = {v: k for k, v in _TRL_NAMES.items()}
        for key in self.trl:
            if key in ours:
                raise ConfigError(f"trl.{key}", f"set `{ours[key]}` instead (it is a field of this config)")
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                raise ConfigError(f"trl.{key}", "not a field of TRL's GRPOConfig" + (f" (did you mean '{close[0]}'?)" if close else ""))
        self.trl = coerce_pass_through("trl", self.trl, fields)
        check_pass_through("trl", self.trl)


def _trl_fields() -> dict[str, dataclasses.Field]:
    from trl import GRPOConfig as TRLGRPOConfig

    return {f.name: f for f in dataclasses.fields(TRLGRPOConfig)}


def _trl_field_names() -> set[str]:
    return set(_trl_fields())


def _distributed_cpu() -> bool:
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def to_trl_args(cfg: GRPOConfig):
    """TRL's GRPOConfig from ours (+ the `trl:` pass-through)."""
    from trl import GRPOConfig as TRLGRPOConfig

    kw = {trl_name: getattr(cfg, ours) for ours, trl_name in _TRL_NAMES.items()}
    if "activation_checkpointing" in _trl_field_names():  # transformers 5's name; the old one prints a FutureWarning
        kw["activation_checkpointing"] = kw.pop("gradient_checkpointing")
    kw.update(report_to="none", bf16=cfg.mixed_precision == "bf16", fp16=cfg.mixed_precision == "fp16",
              save_strategy="steps", logging_strategy="steps", disable_tqdm=False)
    if _distributed_cpu():
        kw["ddp_backend"] = "gloo"
    kw.update(cfg.trl)
    try:
        return TRLGRPOConfig(**kw)
    except ValueError as e:        # TRL's own cross-field checks (batch divisible by num_generations, ...)
        raise ConfigError(None, f"TRL GRPOConfig: {e}") from None


class TRLRewardFunction:
    """A RewardSource as a TRL reward function: same scores, plus clipping, the missing-EOS penalty (from the
    completion ids) and per-source metrics of a mix."""

    def __init__(self, source, eos_ids: list[int], reward_clip: float | None, missing_eos_penalty: float | None):
        self.source, self.eos_ids = source, set(eos_ids)
        self.reward_clip, self.missing_eos_penalty = reward_clip, missing_eos_penalty
        self.__name__ = source.name.replace("/", "_")
        self.flags: list[str] = []  # the latest batch's degenerate-completion flags

    def __call__(self, prompts, completions, completion_ids=None, log_metric=None, **_):
        texts = [c if isinstance(c, str) else "".join(m.get("content", "") for m in c) for c in completions]
        raw = self.source(list(prompts), texts)
        has_eos = [bool(ids) and ids[-1] in self.eos_ids for ids in completion_ids] if completion_ids is not None \
            else [True] * len(texts)
        cut = [not e for e in has_eos]
        flags = degenerate_stats(texts, cut)["flags"]
        if flags != self.flags:  # a line when the completions turn degenerate (or change how)
            say(f"grpo: degenerate completions: {', '.join(flags)}" if flags else "grpo: completions no longer degenerate")
            self.flags = flags
        if log_metric is not None:
            for k, v in {**source_metrics(self.source), **rollout_metrics(texts, cut)}.items():
                log_metric(k, v)
        return postprocess_scores(raw, has_eos, reward_clip=self.reward_clip,
                                  missing_eos_penalty=self.missing_eos_penalty).tolist()


def _metrics_callback(cfg: GRPOConfig, start_step: int):
    """Routes TRL's logs through our one `log()` (TensorBoard, metrics.jsonl, training.png) and honours
    `max_steps_this_run`."""
    from transformers import TrainerCallback

    rename = {"reward": "rollout/reward_mean", "reward_std": "rollout/reward_std", "kl": "kl/ref_k3",
              "completions/mean_length": "rollout/response_length", "loss": "grpo/loss", "entropy": "grpo/entropy",
              "learning_rate": "optim/lr", "grad_norm": "optim/grad_norm"}

    class Callback(TrainerCallback):
        def __init__(self):
            self.logger = None

        def on_train_begin(self, args, state, control, **kw):
            self.logger = RunLogger(cfg.output_dir, total_steps=cfg.num_steps, enabled=state.is_world_process_zero,
                                    tensorboard=cfg.tensorboard, start_step=state.global_step, desc="grpo",
                                    plot_keys=(("rollout/reward_mean", "reward"), ("kl/ref_k3", "KL(π‖π_ref) per token")),
                                    progress=False)

        def on_log(self, args, state, control, logs=None, **kw):
            if self.logger is None or not logs:
                return
            if "train_runtime" in logs and state.global_step <= start_step:
                return  # resumed with nothing left to train (killed in the export): the summary row is there already
            metrics = {}
            for k, v in logs.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    metrics[rename.get(k, k if "/" in k else f"grpo/{k}")] = v
            self.logger.log(metrics, state.global_step)

        def on_step_end(self, args, state, control, **kw):
            if cfg.max_steps_this_run is not None and state.global_step >= start_step + cfg.max_steps_this_run:
                control.should_save = True
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kw):
            if self.logger is not None:
                self.logger.plot()
                self.logger.close()

    return Callback()


def _last_checkpoint_step(output_dir: str) -> int:
    last = last_complete_checkpoint(output_dir)  # a checkpoint a kill cut short mid-save is not one
    return int(Path(last).name.split("-")[-1]) if last else 0


def refuse_overlong_prompts(prompts: list, tokenizer, cfg: GRPOConfig) -> None:
    """TRL's GRPO passes prompts whole (no prompt truncation), so one that cannot fit the policy's positions with
    max_new_tokens after it is refused up front, by its number among the distinct prompts."""
    from transformers import AutoConfig

    positions = getattr(AutoConfig.from_pretrained(cfg.model).get_text_config(), "max_position_embeddings", None)
    if not positions:
        return
    for i, ids in enumerate(tokenize_prompts(tokenizer, prompts, cfg.prompt_format, 10**9), 1):
        if len(ids) + cfg.max_new_tokens > positions:
            raise UserError(f"{cfg.prompts}: prompt {i} (of the distinct prompts, in file order) is {len(ids)} tokens; "
                            f"with max_new_tokens {cfg.max_new_tokens} it exceeds the policy's {positions} "
                            "positions; shorten it or lower max_new_tokens")


def _epoch_seeded(trainer_cls):
    """TRL's trainer with its prompt sampler reseeded per epoch (`set_epoch`, which the Trainer calls), so a run
    resumed in a later epoch draws the prompts an uninterrupted one would: TRL's `RepeatSampler` takes every epoch's
    order from one generator, which a restart resets to epoch 0's."""
    from trl.trainer.utils import RepeatSampler

    class EpochSeededSampler(RepeatSampler):
        def set_epoch(self, epoch: int) -> None:
            if self.shuffle:
                self.generator.manual_seed((self.seed or 0) + 1_000_003 * epoch)

    class Trainer(trainer_cls):
        def _get_train_sampler(self, dataset=None):
            s = super()._get_train_sampler(dataset)
            return EpochSeededSampler(data_source=s.data_source, mini_repeat_count=s.mini_repeat_count,
                                      batch_size=s.batch_size, repeat_count=s.repeat_count, shuffle=s.shuffle,
                                      seed=s.seed)

    return Trainer


def train_grpo(cfg: GRPOConfig, reward_source=None) -> Path | None:
    """Train with TRL's GRPOTrainer and export `output_dir/policy` (plain HF causal-LM dir, LoRA merged); returns it,
    or None when `max_steps_this_run` stopped the run early. Inputs (models, tokenizer, prompts, reward source) are
    all checked before the run dir is touched; `overwrite` trains aside and swaps the run in when complete."""
    import torch
    from transformers import AutoTokenizer

    given, cfg = cfg, cfg.with_resolved_models()
    with loading(cfg.tokenizer or cfg.model, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    check_prompt_format(tokenizer, cfg.prompt_format, cfg.tokenizer or cfg.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = _prompt_dataset(cfg, tokenizer)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    spec = cfg.reward if cfg.reward is not None else cfg.reward_model
    source = reward_source or build_reward_source(spec, normalize=cfg.normalize_reward, device=device,
                                                  batch_size=cfg.reward_batch_size)
    work = prepare_policy_run(given, lambda d: _last_checkpoint_step(d) > 0)
    cfg = dataclasses.replace(cfg, output_dir=work.output_dir)
    start = _last_checkpoint_step(cfg.output_dir) if cfg.resume else 0
    if cfg.resume and start == 0:
        raise UserError(f"{cfg.output_dir}: resume is true but there is no (whole) checkpoint-N directory")
    trainer, reward_fn = _grpo_trainer(cfg, to_trl_args(cfg), tokenizer, dataset, source, start)
    reward_fn.eos_ids = set(eos_ids_of(trainer.model, tokenizer))  # every generation-config end token (as PPO)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(Path(cfg.output_dir) / f"checkpoint-{start}") if cfg.resume else None)
    if trainer.state.global_step < cfg.num_steps:
        return None
    return finish_policy_run(given, work, _export_policy(trainer, cfg, tokenizer, source.name, t0))


def _grpo_trainer(cfg: GRPOConfig, args, tokenizer, dataset, source, start: int):
    """TRL's GRPOTrainer (epoch-seeded sampler) with our reward function, LoRA and metrics callback."""
    from trl import GRPOTrainer

    reward_fn = TRLRewardFunction(source, [], cfg.reward_clip, cfg.missing_eos_penalty)
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 task_type="CAUSAL_LM", target_modules=cfg.lora_target_modules or "all-linear")
    with loading(cfg.model, "policy"), lora_targets(cfg.lora_target_modules) if cfg.lora else contextlib.nullcontext():
        trainer = _epoch_seeded(GRPOTrainer)(model=cfg.model, reward_funcs=[reward_fn], args=args,
                                             train_dataset=dataset, processing_class=tokenizer,
                                             peft_config=peft_config, callbacks=[_metrics_callback(cfg, start)])
    bar_only_progress(trainer)  # the metrics go to metrics.jsonl / TensorBoard, not the terminal
    return trainer, reward_fn


def _prompt_dataset(cfg: GRPOConfig, tokenizer):
    """The prompts as TRL's dataset under the one prompt-format rule (chat: messages; raw: flat text), checked to
    fit."""
    import datasets

    prompts = [policy_prompt(tokenizer, p, cfg.prompt_format)
               for p in load_prompts(cfg.prompts, cfg.prompt_split, cfg.max_prompts)]
    refuse_overlong_prompts(prompts, tokenizer, cfg)
    return datasets.Dataset.from_list([{"prompt": p} for p in prompts])


def _export_policy(trainer, cfg: GRPOConfig, tokenizer, source_name: str, t0: float) -> Path:
    """`output_dir/policy` (LoRA merged), written whole and then renamed, plus run.json and the completion marker."""
    out = Path(cfg.output_dir) / "policy"
    tmp = out.with_name("policy.tmp")  # written whole, then renamed: a kill never leaves a half-written policy/
    if trainer.accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    if cfg.lora:
        model = trainer.accelerator.unwrap_model(trainer.model)
        if trainer.accelerator.is_main_process:
            model.merge_and_unload().save_pretrained(tmp)
    else:
        trainer.save_model(str(tmp))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        write_run_json(cfg.output_dir, cfg, seed=cfg.seed, timings={"train_s": time.perf_counter() - t0},
                       extra={"world_size": trainer.accelerator.num_processes, "reward_source": source_name})
        mark_complete(cfg.output_dir, policy=str(out), steps=trainer.state.global_step)
    trainer.accelerator.wait_for_everyone()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    return trainer_main(GRPOConfig, train_grpo, "icm-rm grpo", argv)


if __name__ == "__main__":
    sys.exit(run_main(main, None))
