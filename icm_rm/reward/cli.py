"""`icm-rm train-rm --config configs/rm/default.yaml [--field value ...] [--trainer.key value ...]`.

The same code runs as `python -m icm_rm.reward.cli` and under
`accelerate launch --config_file accelerate_config.yaml -m icm_rm.reward.cli --config ...`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ..infra.config import parse_config
from ..infra.runner import run_main
from .config import RewardModelConfig
from .trainer import train_reward_model


def main(argv: Sequence[str] | None = None) -> int:
    cfg, _ = parse_config(RewardModelConfig, argv, prog="icm-rm train-rm")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    result = train_reward_model(cfg)
    # Every rank done with its collectives before the group goes: a gloo worker thread still live at exit aborts the
    # process after the RM is saved ("terminate called without an active exception", seen once on a loaded box).
    result.trainer.accelerator.wait_for_everyone()
    result.trainer.accelerator.state.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, sys.argv[1:]))
