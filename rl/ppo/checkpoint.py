"""Atomic, resumable checkpoints: `output_dir/checkpoints/step-NNNNNN/` holds what `accelerator.save_state` writes
(policy + value weights or DeepSpeed shards, optimizer, RNG states of python/numpy/torch/cuda per process) plus the
registered `TrainState` (step, optimizer-step count, data position, KL coefficient).

Every process writes into `step-N.tmp/`; after a barrier the main process of each node renames it to `step-N/` and
rewrites `latest`, so a checkpoint directory that exists is complete. (Across nodes the checkpoint dir must be on a
shared filesystem for `resume` to find every process's shard.)
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from icm_rm.infra.io import atomic_write_text

CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class TrainState:
    """The trainer's own counters, saved and restored with the checkpoint (`register_for_checkpointing`)."""

    def __init__(self, stream, kl_ctl):
        self.step = 0          # PPO steps completed
        self.update = 0        # optimizer steps completed (drives the LR schedule)
        self.stream, self.kl_ctl = stream, kl_ctl

    def state_dict(self) -> dict:
        return {"step": self.step, "update": self.update, "data": self.stream.state_dict(), "kl": self.kl_ctl.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.update = int(state["step"]), int(state["update"])
        self.stream.load_state_dict(state["data"])
        self.kl_ctl.load_state_dict(state["kl"])


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / CHECKPOINTS


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def save_checkpoint(accelerator, output_dir: str | Path, step: int, keep: int | None) -> Path:
    """Collective: every process must call it."""
    root = checkpoint_root(output_dir)
    final = root / f"step-{step:06d}"
    tmp = root / f"step-{step:06d}.tmp"
    if accelerator.is_local_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_local_main_process:
        try:
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)          # nodes sharing the filesystem race here: the first rename wins
        except FileNotFoundError:
            pass
        atomic_write_text(root / "latest", final.name + "\n")
        if keep is not None:
            for _, old in list_checkpoints(output_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str | Path) -> None:
    accelerator.load_state(str(path))
