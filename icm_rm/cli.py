"""`icm-rm <command>`: thin dispatch to each stage's `main(argv)`. Stages parse their own config dataclass."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from .infra.errors import EXIT_USER_ERROR
from .infra.quiet import quiet_third_party
from .infra.runner import run_main

# command → (module, one-line help). Each module has `main(argv: list[str] | None) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "label": ("icm_rm.label.stage", "ICM-label unlabeled claims or preference pairs"),
    "train-rm": ("icm_rm.reward.cli", "train a reward model on preference labels (TRL RewardTrainer)"),
    "eval-rm": ("icm_rm.reward.evaluate", "held-out accuracy ± CI of one or more reward models"),
    "ppo": ("rl.ppo.run", "train a policy with PPO against a reward source"),
    "grpo": ("rl.grpo", "train a policy with GRPO (TRL) against a reward source"),
    "eval-policy": ("rl.evaluate", "win rate and preference accuracy of trained policies"),
    "best-of-n": ("rl.best_of_n", "which RM would move the policy: best-of-n on its own answers, judged, before RL"),
    "pipeline": ("icm_rm.pipeline", "label → train-rm → ppo/grpo → eval, resumable"),
    "serve-rm": ("rl.serve", "serve a reward model over HTTP"),
    "models": ("icm_rm.infra.models", "fetch / list the offline default models"),
    "doctor": ("icm_rm.infra.doctor", "versions, devices, caches and what each backend is missing"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: icm-rm <command> [--config FILE.yaml] [--field value ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`icm-rm <command> --help` lists every field of that command's config."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"icm-rm: error: unknown command '{cmd}'\n\n{_usage()}", file=sys.stderr)
        return EXIT_USER_ERROR
    quiet_third_party()  # before the stage imports torch/transformers/trl
    module = importlib.import_module(COMMANDS[cmd][0])
    return run_main(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
