"""Atomic file writes, completion markers and run metadata, so a crash or kill never leaves a half-written output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import UserError

COMPLETE_MARKER = ".complete"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path` (readers never see a partial file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a failed write/fsync (disk full) names no file: name the one we were writing
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in rows))


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def mark_complete(run_dir: str | Path, **info: Any) -> None:
    """Write the completion marker last: a stage is done only when this file exists."""
    atomic_write_json(Path(run_dir) / COMPLETE_MARKER, {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info})


def is_complete(run_dir: str | Path) -> bool:
    return (Path(run_dir) / COMPLETE_MARKER).exists()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("icm-rm", "torch", "transformers", "trl", "accelerate", "deepspeed", "peft", "datasets", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def write_run_json(run_dir: str | Path, config: Any, *, seed: int | None = None, timings: dict | None = None,
                   extra: dict | None = None) -> None:
    """`run.json`: resolved config, versions, seed, git commit, argv and timings, next to a stage's outputs."""
    from dataclasses import asdict, is_dataclass

    cfg = asdict(config) if is_dataclass(config) else config
    atomic_write_json(Path(run_dir) / "run.json", {
        "config": cfg, "seed": seed, "versions": package_versions(), "git_commit": git_commit(),
        "argv": sys.argv, "timings": timings or {}, **(extra or {}),
    })


def check_writable(path: str | Path, min_free_mb: int = 50) -> None:
    """Fail before work starts when the output dir cannot be created/written or the disk is nearly full."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: output_dir is a file, not a directory; choose another --output_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{path}: output directory is not writable ({e.strerror or e}); choose another --output_dir") from None
    free = free_mb(path)
    if free is not None and free < min_free_mb:
        raise UserError(f"{path}: only {free} MiB free on this disk (need ≥ {min_free_mb} MiB); free space or "
                        "choose another --output_dir")


def free_mb(path: Path) -> int | None:
    """MiB free to this user on the disk holding `path` (None when it cannot be read)."""
    try:
        st = os.statvfs(path)
        return int(st.f_bavail * st.f_frsize / 2**20)
    except OSError:
        return None


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Render a matplotlib figure to PNG and write it atomically; closes the figure."""
    import io as _io

    import matplotlib.pyplot as plt

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


# ----------------------------------------------------------------------------------------------- process memory

def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so the next stage starts lean."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> None:
    """Restart this process's peak-RSS counter (Linux: VmHWM) so `peak_rss_mib` measures what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mib() -> float:
    """Peak resident memory since the last `reset_peak_rss` (VmHWM; elsewhere the process lifetime's maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
