"""`python -m icm_rm.label --config …` runs `icm-rm label`."""

import sys

from ..infra.runner import run_main
from .stage import main

if __name__ == "__main__":
    sys.exit(run_main(main, None))
