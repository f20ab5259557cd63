"""`train_ppo` (config → trained, exported policy) and the `main()` that `icm-rm ppo`, `python -m rl.ppo` and
`accelerate launch --config_file accelerate_config.yaml -m rl.ppo --config ...` run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..launch import finish_policy_run, prepare_policy_run, trainer_main
from .checkpoint import latest_checkpoint
from .config import PPOConfig
from .trainer import PPOTrainer


def train_ppo(cfg: PPOConfig, reward_source=None, accelerator=None) -> Path | None:
    """Train and export; returns `output_dir/policy` (a plain HF causal-LM dir), or None when `max_steps_this_run`
    stopped the run before `num_steps` (resume it with `resume: true`)."""
    work = prepare_policy_run(cfg, lambda d: latest_checkpoint(d) is not None)
    policy = PPOTrainer(work, reward_source=reward_source, accelerator=accelerator).train()
    return finish_policy_run(cfg, work, policy)


def main(argv: Sequence[str] | None = None) -> int:
    return trainer_main(PPOConfig, train_ppo, "icm-rm ppo", argv)
