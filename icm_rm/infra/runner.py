"""Run a stage's `main(argv)` the way every command does: a UserError becomes one line and exit code 2."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence

from .errors import EXIT_USER_ERROR, UserError

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_DISK_FULL_MESSAGES = tuple(os.strerror(n) for n in sorted(_DISK_FULL)) + ("os error 28",)


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
    except Exception as e:  # noqa: BLE001 - the disk filled up (or went read-only) mid-run: finished work is on disk
        full = _disk_full(e)
        if full is None or os.environ.get("ICM_RM_DEBUG"):
            raise
        _end_progress_bars()
        where = f"{full.filename}: " if getattr(full, "filename", None) else ""
        what = full.strerror if isinstance(full, OSError) and full.strerror else f"{type(full).__name__}: {full}"
        print(f"icm-rm: error: {where}{what}; free space and run the same command again (label, train-rm, ppo and "
              "grpo continue where they stopped with --resume true)", file=sys.stderr)
        return EXIT_USER_ERROR


def _disk_full(e: BaseException | None) -> BaseException | None:
    """`e`, or the exception it was raised from, that says the disk is full or read-only (None if none does):
    safetensors reports one as its own error type, the OS message inside ("No space left on device (os error 28)")."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if (isinstance(e, OSError) and e.errno in _DISK_FULL) or any(m in str(e) for m in _DISK_FULL_MESSAGES):
            return e
        e = e.__cause__ or e.__context__
    return None


def _end_progress_bars() -> None:
    """Close every open tqdm bar (ours, the Trainer's, TRL's) so the error starts on its own line, not glued onto
    a bar that an exception left half-drawn."""
    tqdm = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):  # tqdm keeps its live bars there
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the error
            pass
