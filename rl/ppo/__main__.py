"""`python -m rl.ppo --config configs/ppo/default.yaml [--field value ...]` (also under `accelerate launch -m rl.ppo`)."""

import sys

from icm_rm.infra.runner import run_main

from .run import main

if __name__ == "__main__":
    sys.exit(run_main(main, None))
