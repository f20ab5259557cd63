"""Run a stage's `main(argv)` the way every command does: a UserError becomes one line and exit code 2."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence

from .errors import EXIT_USER_ERROR, UserError

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def run_main(fn: Callable[[list[str] | None], int | None], argv: Sequence[str] | None) -> int:
    """Run a stage's main; a UserError becomes one line on stderr and exit code 2 (set ICM_RM_DEBUG=1 for traces)."""
    try:
        rc = fn(list(argv) if argv is not None else None)
        return int(rc or 0)
    except UserError as e:
        if os.environ.get("ICM_RM_DEBUG"):
            raise
        _end_progress_bars()
        print(f"icm-rm: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("icm-rm: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the disk filled up (or went read-only) mid-run: finished work is on disk, say so
        if e.errno not in _DISK_FULL or os.environ.get("ICM_RM_DEBUG"):
            raise
        _end_progress_bars()
        where = f"{e.filename}: " if e.filename else ""
        print(f"icm-rm: error: {where}{e.strerror or e}; free space and run the same command again (label, "
              "train-rm, ppo and grpo continue where they stopped with --resume true)", file=sys.stderr)
        return EXIT_USER_ERROR


def _end_progress_bars() -> None:
    """Close every open tqdm bar (ours, the Trainer's, TRL's) so the error starts on its own line, not glued onto
    a bar that an exception left half-drawn."""
    tqdm = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):  # tqdm keeps its live bars there
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the error
            pass
