"""`python -m icm_rm.pipeline` = `icm-rm pipeline`."""

import sys

from ..infra.quiet import quiet_third_party
from ..infra.runner import run_main
from .stages import main

quiet_third_party()
sys.exit(run_main(main, None))
