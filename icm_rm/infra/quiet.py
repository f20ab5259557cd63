"""The terminal shows progress and results: third-party warnings, info logs and weight-loading bars are turned off
unless ICM_RM_DEBUG=1 (the same switch that brings back tracebacks)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import MutableMapping

THIRD_PARTY = r"(torch|transformers|trl|peft|accelerate|datasets|deepspeed|huggingface_hub|tokenizers|tensorboard)(\.|$)"
QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "DATASETS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def quiet_third_party(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Silence the libraries (call before they are imported: some read their verbosity from the environment once);
    returns False, changing nothing, when ICM_RM_DEBUG is set."""
    if environ.get("ICM_RM_DEBUG"):
        return False
    for key, value in QUIET_ENV.items():
        environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=FutureWarning)       # deprecations are the libraries' business
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=THIRD_PARTY)   # e.g. pin_memory without a GPU
    deepspeed_log = logging.getLogger("DeepSpeed")  # "Setting accelerator to CPU ..." on every CPU run
    if _errors_only not in deepspeed_log.filters:
        deepspeed_log.addFilter(_errors_only)
    return True
