"""The one `main()` of the policy trainers: `icm-rm ppo|grpo`, `python -m rl.ppo|rl.grpo` and
`accelerate launch -m …` all parse the config, train, and say where the policy is (or how to resume)."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from icm_rm.infra.config import parse_config
from icm_rm.infra.errors import UserError
from icm_rm.infra.io import check_writable
from icm_rm.infra.runs import check_resume, finish_overwrite, recover_swap, resume_forced, start_overwrite

from .config import PolicyTrainingConfig


def bare_resume(argv: list[str]) -> list[str]:
    """Accept `--resume` without a value (as `--resume true`)."""
    out = []
    for i, tok in enumerate(argv):
        out.append(tok)
        if tok == "--resume" and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            out.append("true")
    return out


def trainer_main(cls: type[PolicyTrainingConfig], train: Callable[[PolicyTrainingConfig], Path | None], prog: str,
                 argv: Sequence[str] | None) -> int:
    """Parse `cls` from the flags, run `train`, print the exported policy dir or the resume hint."""
    argv = bare_resume(list(sys.argv[1:] if argv is None else argv))
    cfg, _ = parse_config(cls, argv, prog=prog)
    out = train(cfg)
    print(f"policy: {out}" if out else f"stopped early; resume with --resume (output_dir {cfg.output_dir})")
    return 0


def policy_inputs(cfg: PolicyTrainingConfig) -> dict[str, str | None]:
    """The inputs whose content a resume must match: the prompts file, and the reward model's directory or a Python
    reward function's file."""
    reward = cfg.reward_model if cfg.reward is None else None
    source = None
    if isinstance(reward, str) and ":" in reward and reward.rsplit(":", 1)[0].endswith(".py"):
        source = reward.rsplit(":", 1)[0]
    elif isinstance(reward, str) and Path(reward).is_dir():
        source = reward
    return {"prompts": None if cfg.prompts.startswith("builtin:") else cfg.prompts, "reward_model": source}


def prepare_policy_run(cfg: PolicyTrainingConfig, has_checkpoints: Callable[[str], bool]) -> PolicyTrainingConfig:
    """The config a PPO/GRPO run writes with, after the run-dir rules: `overwrite` → a fresh aside dir (the old run
    stays whole until the new one is complete, `finish_policy_run`); `resume` → the fingerprint must match (config
    and data); neither → refuse a dir that already has checkpoints."""
    out = Path(cfg.output_dir)
    recover_swap(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: output_dir is a file, not a directory; choose another --output_dir")
    if cfg.overwrite:
        work = dataclasses.replace(cfg, output_dir=str(start_overwrite(out)))
        check_writable(work.output_dir)
        check_resume(work.output_dir, cfg, policy_inputs(cfg), resuming=False)
        return work
    if not cfg.resume and has_checkpoints(cfg.output_dir):
        raise UserError(f"{cfg.output_dir} already has checkpoints; pass --resume to continue it, --overwrite true to "
                        "replace it, or choose another --output_dir")
    check_writable(cfg.output_dir)
    check_resume(cfg.output_dir, cfg, policy_inputs(cfg), force=resume_forced(cfg), resuming=bool(cfg.resume))
    return cfg


def finish_policy_run(cfg: PolicyTrainingConfig, work: PolicyTrainingConfig, policy: Path | None) -> Path | None:
    """Swap an overwrite's aside run in once it is complete (main process); the policy's final path."""
    if policy is None or work.output_dir == cfg.output_dir:
        return policy
    if int(os.environ.get("RANK", "0")) == 0:
        finish_overwrite(work.output_dir, cfg.output_dir, cfg)
    return Path(cfg.output_dir) / policy.name
