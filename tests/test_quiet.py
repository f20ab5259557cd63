"""The terminal shows progress and results, not third-party warnings; ICM_RM_DEBUG=1 brings them back."""

import os
import subprocess
import sys
from pathlib import Path

from icm_rm.infra.quiet import QUIET_ENV, quiet_third_party

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import logging, warnings
from icm_rm.infra.quiet import quiet_third_party
quiet_third_party()
warnings.warn_explicit("pin_memory without an accelerator", UserWarning, "dataloader.py", 1,
                       module="torch.utils.data.dataloader")
warnings.warn_explicit("is_gradient_checkpointing is deprecated", FutureWarning, "modeling_utils.py", 1,
                       module="transformers.modeling_utils")
warnings.warn_explicit("a warning of ours", UserWarning, "x.py", 1, module="rl.x")
log = logging.getLogger("DeepSpeed")
log.addHandler(logging.StreamHandler())
log.warning("Setting accelerator to CPU")
log.error("a deepspeed error")
logging.getLogger("accelerate.utils.other").warning("Removed shared tensor {'lm_head.weight'} while saving")
logging.getLogger("accelerate.utils.other").error("an accelerate error")
"""


def run(debug: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ICM_RM_DEBUG"} | ({"ICM_RM_DEBUG": "1"} if debug else {})
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True).stderr


def test_third_party_noise_is_off_and_debug_brings_it_back():
    quiet = run(debug=False)
    assert "a warning of ours" in quiet and "a deepspeed error" in quiet and "an accelerate error" in quiet
    for noise in ("pin_memory", "is_gradient_checkpointing", "Setting accelerator", "Removed shared tensor"):
        assert noise not in quiet
    loud = run(debug=True)
    for line in ("pin_memory", "is_gradient_checkpointing", "Setting accelerator", "Removed shared tensor",
                 "a warning of ours"):
        assert line in loud


def test_environment_switches():
    env = {"TRANSFORMERS_VERBOSITY": "info"}
    assert quiet_third_party(env)
    assert env == {**QUIET_ENV, "TRANSFORMERS_VERBOSITY": "info"}  # a user's own setting wins
    debug = {"ICM_RM_DEBUG": "1"}
    assert not quiet_third_party(debug) and debug == {"ICM_RM_DEBUG": "1"}
