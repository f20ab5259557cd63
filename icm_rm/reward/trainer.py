"""`train-rm`: preference pairs → TRL `RewardTrainer` (Bradley–Terry, optional margin and centring, LoRA or full
fine-tuning, single process or `accelerate launch` with DeepSpeed) → exported RM dir with held-out reward stats.

    load data → split held-out → tokenise (format_for_rm) → RewardTrainer.train (resumable) → export → .complete
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..infra.config import save_config
from ..infra.errors import ConfigError, UserError
from ..infra.io import (COMPLETE_MARKER, check_writable, is_complete, mark_complete,
                        write_run_json)
from ..infra.model_dir import loading
from ..infra.models import resolve_model
from ..infra.quiet import bar_only_progress
from ..infra.runs import (aside_dir, check_resume, finish_overwrite, last_complete_checkpoint, recover_swap,
                          resume_forced, start_overwrite)
from .config import RewardModelConfig
from .data import (Tokenized, drop_least_confident, holdout_split, load_pairs, split_spec, to_dataset,
                   tokenize_pairs)
from .export import finalize_export, merge_lora
from .seen_pairs import write_train_pairs

logger = logging.getLogger(__name__)


@dataclass
class RMData:
    """Training and held-out pairs (PreferenceExample lists) and where they came from."""

    train: list
    eval: list
    eval_source: str
    skipped: dict  # ties / invalid rows skipped by the reader


@dataclass
class TrainResult:
    output_dir: Path
    model_dir: Path
    metrics: dict  # train metrics + held-out stats
    trainer: object  # the RewardTrainer (in-process callers and tests)


# ------------------------------------------------------------------------------------------------ building blocks

def resolve_base(name: str) -> str:
    """A local checkpoint dir (checked whole) or a default-model name through the registry (`icm_rm.infra.models`)."""
    return str(resolve_model(name))


def load_tokenizer(base: str):
    """The base's tokenizer with a pad token (its own, else EOS — as TRL does)."""
    from transformers import AutoTokenizer

    with loading(base, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(f"{base}: tokenizer has neither a pad nor an EOS token; add a pad token to it")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_data(cfg: RewardModelConfig) -> RMData:
    """Training pairs and held-out pairs (eval_data, or a seeded split of train_data)."""
    train_set = load_pairs(cfg.train_data, limit=None if cfg.eval_data is None else cfg.train_limit)
    skipped = {"train_ties": train_set.skipped_ties, "train_invalid": train_set.skipped_invalid}
    if cfg.eval_data is not None:
        eval_set = load_pairs(cfg.eval_data, limit=cfg.eval_limit)
        skipped.update(eval_ties=eval_set.skipped_ties, eval_invalid=eval_set.skipped_invalid)
        train, held, source = list(train_set.examples), list(eval_set.examples), cfg.eval_data
    else:
        split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
        train, held = holdout_split(train_set.examples, cfg.eval_split, split_seed)
        train = train[:cfg.train_limit] if cfg.train_limit else train
        held = held[:cfg.eval_limit] if cfg.eval_limit else held
        source = f"{cfg.train_data} (held-out {cfg.eval_split:g} split, seed {split_seed})"
    train, skipped["train_least_confident"] = drop_least_confident(train, cfg.drop_least_confident, cfg.train_data)
    if not train or not held:
        raise UserError(f"{cfg.train_data}: {len(train)} training and {len(held)} held-out pairs; need at least one "
                        "of each (add data, or change eval_split / eval_data)")
    return RMData(train, held, source, skipped)


def lora_config(cfg: RewardModelConfig):
    """peft LoRA for sequence classification; the new `score` head is trained in full (modules_to_save)."""
    if not cfg.use_lora:
        return None
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=cfg.lora_target_modules,
                      modules_to_save=["score"])


def check_lora_targets(cfg: RewardModelConfig, base: str) -> None:
    """A list of `lora_target_modules` must name a module of the base (peft's rule: the module's name or its last
    dotted parts), else peft fails deep in the trainer; checked on an empty (meta) copy before output_dir is touched."""
    if not cfg.use_lora or isinstance(cfg.lora_target_modules, str):
        return
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(base, num_labels=1))
    except Exception:  # noqa: BLE001 — an architecture this check cannot build: peft's own check stays
        return
    names = [n for n, _ in model.named_modules()]
    if not any(n == t or n.endswith("." + t) for t in cfg.lora_target_modules for n in names):
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigError("lora_target_modules", f"no module of {base} is named {cfg.lora_target_modules}; its "
                                                 f"linear layers: {', '.join(linear)} (or 'all-linear')")


def build_reward_config(cfg: RewardModelConfig):
    """TRL RewardConfig from `cfg.trainer`, plus icm-rm's defaults: TensorBoard, gloo on CPU, bf16 only where the GPU
    supports it, and the fields icm-rm owns (output_dir, seed, centring; length filtering is done at tokenisation)."""
    import torch
    from trl import RewardConfig

    cuda = torch.cuda.is_available()
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1  # gloo only under a launcher: alone it breaks PartialState
    kw = {"report_to": ["tensorboard"], "bf16": cuda and torch.cuda.is_bf16_supported(),
          "ddp_backend": "gloo" if launched and not cuda else None, "save_total_limit": 2,
          "activation_checkpointing": True}  # TRL's default, under transformers 5's name
    kw.update(_renamed_checkpointing_keys(cfg.trainer))
    kw.update(output_dir=cfg.output_dir, seed=cfg.seed, max_length=None,
              center_rewards_coefficient=cfg.center_rewards_coefficient)
    try:
        args = RewardConfig(**kw)
    except (ValueError, TypeError) as e:
        raise ConfigError("trainer", str(e).strip().splitlines()[0]) from e
    _check_deepspeed(args)
    return args


def _renamed_checkpointing_keys(trainer: dict) -> dict:
    """transformers 5 renamed gradient_checkpointing* to activation_checkpointing*; accept the old names."""
    out = dict(trainer)
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out


def _check_deepspeed(args) -> None:
    plugin = args.deepspeed_plugin
    if plugin is not None and plugin.zero_stage == 3 and not plugin.zero3_save_16bit_model:
        raise ConfigError("deepspeed", "ZeRO-3 without `stage3_gather_16bit_weights_on_model_save: true` saves no "
                                       "loadable model; set it in the DeepSpeed config (configs/deepspeed/zero3.json)")


def check_world_size(cfg: RewardModelConfig, world_size: int) -> None:
    if cfg.expect_world_size is not None and world_size != cfg.expect_world_size:
        raise UserError(f"running with world size {world_size}, expected {cfg.expect_world_size} "
                        "(expect_world_size); check the accelerate launch flags / config (on CPU: gloo backend, "
                        "--multi_gpu with use_cpu: true)")


def distributed_info(args) -> dict:
    """World size, backend and DeepSpeed stage as this process sees them (logged and written to run.json)."""
    state, plugin = args.distributed_state, args.deepspeed_plugin
    return {"world_size": args.world_size, "distributed_type": str(getattr(state, "distributed_type", "NO")),
            "backend": getattr(state, "backend", None), "zero_stage": plugin.zero_stage if plugin else None}


def last_checkpoint(cfg: RewardModelConfig) -> str | None:
    if not cfg.resume or not Path(cfg.output_dir).is_dir():
        return None
    ckpt = last_complete_checkpoint(cfg.output_dir)  # not get_last_checkpoint: it may pick a half-saved one
    if ckpt is None:
        logger.warning("resume: no checkpoint-* in %s; starting from scratch", cfg.output_dir)
    return ckpt


def work_config(cfg: RewardModelConfig) -> RewardModelConfig:
    """The config the run writes with: `overwrite` runs in the aside dir (swapped in when complete) — the same on
    every rank, so every process of a launch writes to one place."""
    return dataclasses.replace(cfg, output_dir=str(aside_dir(cfg.output_dir))) if cfg.overwrite else cfg


def prepare_output_dir(cfg: RewardModelConfig, work: RewardModelConfig) -> None:
    """On the main process only (RANK 0, before any process group exists), after every input was read: refuse to
    clobber a finished RM, refuse a resume whose config or data changed, clear an overwrite's aside dir, check the
    dir is writable. The old run is never touched here. The other ranks wait at the barrier after setup."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    out = Path(cfg.output_dir)
    recover_swap(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: output_dir is a file, not a directory; choose another output_dir")
    if cfg.overwrite and out.exists() and any(out.iterdir()) and not (out / "run.json").exists():
        raise UserError(f"{out}: overwrite only replaces a previous train-rm run (this dir has no run.json); "
                        "choose another output_dir")
    if is_complete(out) and not cfg.resume and not cfg.overwrite:
        raise UserError(f"{out}: already holds a finished reward model; choose another output_dir, or set "
                        "overwrite: true (replaces it once the new one is complete) or resume: true")
    if cfg.overwrite:
        start_overwrite(out)
    check_writable(work.output_dir)
    check_resume(work.output_dir, cfg, rm_inputs(cfg), force=resume_forced(cfg), resuming=bool(cfg.resume))
    (Path(work.output_dir) / COMPLETE_MARKER).unlink(missing_ok=True)  # complete again only after its export


def rm_inputs(cfg: RewardModelConfig) -> dict[str, str | None]:
    """The input files whose content a resume must match (without their `:format`)."""
    return {"train_data": split_spec(cfg.train_data)[0],
            "eval_data": split_spec(cfg.eval_data)[0] if cfg.eval_data else None}


def whole_run_train_loss(trainer, resumed_at: int, run_loss: float) -> float:
    """The mean training loss over every step of the run. The Trainer's own `train_loss` covers only the steps of
    this invocation (after a resume: the tail; resumed with nothing left: 0.0). The logged losses up to the resumed
    checkpoint (a log is forced at every save, see `LogAtSave`) carry the steps before it."""
    total = trainer.state.global_step
    if resumed_at <= 0 or total <= 0:
        return run_loss
    before, prev = 0.0, 0
    for entry in trainer.state.log_history:
        if "loss" in entry and "step" in entry and entry["step"] <= resumed_at:
            before += entry["loss"] * (entry["step"] - prev)
            prev = entry["step"]
    return (before + run_loss * (total - resumed_at)) / total


def log_at_save():
    """A callback that logs whenever the Trainer saves, so each checkpoint's log history covers every step up to it
    (what `whole_run_train_loss` needs)."""
    from transformers import TrainerCallback

    class LogAtSave(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if control.should_save:
                control.should_log = True

    return LogAtSave()


# ------------------------------------------------------------------------------------------------ the stage

@dataclass
class Setup:
    """Everything train_reward_model builds before training."""

    data: RMData
    base: str  # resolved base checkpoint dir
    args: object  # trl.RewardConfig
    tokenizer: object
    train: Tokenized
    eval: Tokenized
    dist: dict  # distributed_info(args)


def setup(cfg: RewardModelConfig, work: RewardModelConfig) -> Setup:
    """Data, base model (both checked before an existing run is touched), output dir, RewardConfig (starts the
    process group), tokenised pairs."""
    data = load_data(cfg)
    base = resolve_base(cfg.model)
    check_lora_targets(cfg, base)
    prepare_output_dir(cfg, work)
    args = build_reward_config(work)
    check_world_size(cfg, args.world_size)
    args.distributed_state.wait_for_everyone()  # rank 0 has prepared output_dir
    tokenizer = load_tokenizer(base)
    margin_scale = cfg.margin_scale if cfg.use_margin else None
    train = tokenize_pairs(data.train, tokenizer, cfg.max_length, margin_scale, cfg.train_data, required=True)
    held = tokenize_pairs(data.eval, tokenizer, cfg.max_length, margin_scale, cfg.eval_data or cfg.train_data)
    return Setup(data, base, args, tokenizer, train, held, distributed_info(args))


def train_reward_model(cfg: RewardModelConfig, callbacks: list | None = None) -> TrainResult:
    """Train, export and mark complete; every process of a distributed launch runs this. `callbacks` are extra
    transformers TrainerCallbacks. With `overwrite`, the run happens aside and replaces `output_dir` at the end."""
    from trl import RewardTrainer

    t0 = time.time()
    work = work_config(cfg)
    s = setup(cfg, work)
    main = s.args.process_index == 0
    if main:
        logger.info("train-rm: %s, %d train / %d held-out pairs, base %s", s.dist, len(s.train.columns["chosen_ids"]),
                    len(s.data.eval), s.base)
        save_config(cfg, Path(work.output_dir) / "config.yaml")
        write_run_json(work.output_dir, cfg, seed=cfg.seed, extra={**s.dist, "base_model": s.base})
    trainer = RewardTrainer(model=s.base, args=s.args, train_dataset=to_dataset(s.train),
                            eval_dataset=to_dataset(s.eval) if s.eval.columns["chosen_ids"] else None,
                            processing_class=s.tokenizer, peft_config=lora_config(cfg),
                            callbacks=[log_at_save(), *(callbacks or [])])
    bar_only_progress(trainer)
    t_train = time.time()
    ckpt = last_checkpoint(work)
    train_out = trainer.train(resume_from_checkpoint=ckpt)
    t_export = time.time()
    staged = export(trainer, work, s.base, s.tokenizer)
    model_dir = Path(work.output_dir) / "model"
    train_metrics = dict(train_out.metrics)
    if "train_loss" in train_metrics:
        train_metrics["train_loss"] = whole_run_train_loss(trainer, int(Path(ckpt).name.split("-")[-1]) if ckpt
                                                           else 0, train_metrics["train_loss"])
    metrics = {"train": train_metrics, "world_size": s.args.world_size,
               "n_train": len(s.train.columns["chosen_ids"]), "n_eval": len(s.data.eval),
               "dropped_long": {"train": s.train.dropped, "eval": s.eval.dropped}, "skipped": s.data.skipped}
    if main:
        metrics["held_out"] = finish(cfg, s, staged, metrics, Path(cfg.output_dir) / "model")
        shutil.rmtree(model_dir, ignore_errors=True)
        staged.rename(model_dir)  # model/ appears whole, scored and carded, just before .complete
        timings = {"setup_s": t_train - t0, "train_s": t_export - t_train, "export_s": time.time() - t_export}
        write_run_json(work.output_dir, cfg, seed=cfg.seed, timings=timings,
                       extra={**s.dist, "base_model": s.base, "metrics": metrics})
        mark_complete(work.output_dir, model_dir=str(Path(cfg.output_dir) / "model"))
        if work.output_dir != cfg.output_dir:
            finish_overwrite(work.output_dir, cfg.output_dir, cfg)
    trainer.accelerator.wait_for_everyone()  # no rank exits (tearing down its comm threads) while rank 0 still writes
    return TrainResult(Path(cfg.output_dir), Path(cfg.output_dir) / "model", metrics, trainer)


def finish(cfg: RewardModelConfig, s: Setup, model_dir: Path, metrics: dict, final_dir: Path | None = None) -> dict:
    """Main process: score the held-out pairs with the exported RM → reward stats in config.json + model card (which
    names `final_dir`, where the RM will live)."""
    final_dir = final_dir or model_dir
    write_train_pairs(model_dir, s.data.train)
    stats = finalize_export(model_dir, s.data.eval, _card_info(cfg, s.base, s.data, metrics, final_dir),
                            batch_size=cfg.score_batch_size)
    acc = stats.accuracy
    logger.info("train-rm: held-out accuracy %.4f [%.4f, %.4f]; RM at %s", acc["accuracy"], acc["ci_low"],
                acc["ci_high"], final_dir)
    return {"reward_mean": stats.reward_mean, "reward_std": stats.reward_std, **acc}


def export(trainer, cfg: RewardModelConfig, base: str, tokenizer) -> Path:
    """Save the trained model as a plain seq-cls dir (all processes take part: ZeRO-3 gathers weights here) into
    `model.tmp/`, which becomes `model/` once scored: a kill never leaves a half-written `model/`."""
    out = Path(cfg.output_dir)
    model_dir = out / "model.tmp"
    if trainer.is_world_process_zero():
        shutil.rmtree(model_dir, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    if cfg.use_lora:
        trainer.save_model(str(out / "adapter"))
        if trainer.is_world_process_zero():
            dtype = (cfg.trainer.get("model_init_kwargs") or {}).get("dtype")
            merge_lora(base, out / "adapter", model_dir, tokenizer, dtype=_torch_dtype(dtype))
    else:
        trainer.save_model(str(model_dir))  # also saves the tokenizer (processing_class)
    trainer.accelerator.wait_for_everyone()
    return model_dir


def _torch_dtype(name):
    import torch

    return getattr(torch, name) if isinstance(name, str) and name != "auto" else name


def _card_info(cfg: RewardModelConfig, base: str, data: RMData, metrics: dict, model_dir: Path) -> dict:
    t = cfg.trainer
    hyper = ", ".join(f"{k}={t[k]}" for k in ("learning_rate", "num_train_epochs", "max_steps",
                                                "per_device_train_batch_size") if k in t) or "TRL defaults"
    method = f"LoRA r={cfg.lora_r} α={cfg.lora_alpha} (merged)" if cfg.use_lora else "full fine-tuning"
    if cfg.use_margin:
        method += f", margin × {cfg.margin_scale:g}"
    if data.skipped.get("train_least_confident"):
        method += f", {data.skipped['train_least_confident']} least-confident pairs dropped"
    if cfg.center_rewards_coefficient:
        method += f", centring {cfg.center_rewards_coefficient:g}"
    base_model = cfg.model if cfg.model == base else f"{cfg.model} ({base})"
    return {"name": f"{Path(cfg.model).name}-rm-{cfg.label_source}", "base_model": base_model,
            "train_data": cfg.train_data, "n_train": metrics["n_train"], "label_source": cfg.label_source,
            "eval_data": data.eval_source, "method": method, "hyperparameters": hyper, "model_dir": str(model_dir)}
