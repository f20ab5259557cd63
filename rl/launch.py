"""The one `main()` of the policy trainers: `icm-rm ppo|grpo`, `python -m rl.ppo|rl.grpo` and
`accelerate launch -m …` all parse the config, train, and say where the policy is (or how to resume)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from icm_rm.infra.config import parse_config

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
