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
    if "ACCELERATE_LOG_LEVEL" not in environ:  # "Removed shared tensor … while saving" on every tied-weights save
        logging.getLogger("accelerate").setLevel(logging.ERROR)
    return True


def bar_only_progress(trainer, environ: MutableMapping[str, str] = os.environ) -> None:
    """Keep the Trainer's progress bar but not its `{'loss': …}` dict per logging step on the terminal: those numbers
    go to `report_to` (TensorBoard) and run.json, and the terminal shows progress and results. With tqdm disabled
    (transformers' logging at error level, as the quiet pipeline sets it) the Trainer prints the dicts through
    PrinterCallback instead: that one is replaced by the bar too. ICM_RM_DEBUG=1 keeps the dicts."""
    if environ.get("ICM_RM_DEBUG"):
        return
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarOnlyProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            pass

    printers = [c for c in trainer.callback_handler.callbacks if type(c) in (ProgressCallback, PrinterCallback)]
    for c in printers:
        trainer.remove_callback(c)
    if printers:
        trainer.add_callback(BarOnlyProgress())
