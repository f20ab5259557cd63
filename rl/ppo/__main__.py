"""`python -m rl.ppo --config configs/ppo/default.yaml [--field value ...]`, `icm-rm ppo ...` and
`accelerate launch --config_file accelerate_config.yaml -m rl.ppo --config ...` all run `main()`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .config import PPOConfig


def train_ppo(cfg: PPOConfig, reward_source=None, accelerator=None) -> Path | None:
    """Train and export; returns `output_dir/policy` (a plain HF causal-LM dir), or None when `max_steps_this_run`
    stopped the run before `num_steps` (resume it with `resume: true`)."""
    from icm_rm.io import check_writable

    from .trainer import PPOTrainer

    check_writable(cfg.output_dir)
    return PPOTrainer(cfg, reward_source=reward_source, accelerator=accelerator).train()


def _bare_resume(argv: list[str]) -> list[str]:
    """Accept `--resume` without a value (as `--resume true`)."""
    out = []
    for i, tok in enumerate(argv):
        out.append(tok)
        if tok == "--resume" and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            out.append("true")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from icm_rm.config import parse_config

    argv = _bare_resume(list(sys.argv[1:] if argv is None else argv))
    cfg, _ = parse_config(PPOConfig, argv, prog="icm-rm ppo")
    out = train_ppo(cfg)
    print(f"policy: {out}" if out else f"stopped early; resume with --resume (output_dir {cfg.output_dir})")
    return 0


if __name__ == "__main__":
    from icm_rm.cli import run_main

    sys.exit(run_main(main, None))
