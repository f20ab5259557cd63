"""Atomic, resumable checkpoints: `output_dir/checkpoints/step-NNNNNN/` holds what `accelerator.save_state` writes
(policy + value weights or DeepSpeed shards, optimizer, RNG states of python/numpy/torch/cuda per process — all read
back by accelerate with `weights_only=True`) plus `train_state.json`, our `TrainState` (step, optimizer-step count,
data position, KL coefficient) as JSON. Nothing in a checkpoint is unpickled: the TrainState is not registered with
accelerate (whose custom-object files are pickles loaded with `weights_only=False`), and a checkpoint holding such a
file is refused rather than loaded.

Without DeepSpeed only the trainable parameters (and buffers) are written: with LoRA that is the adapters and the
value head, ~40 MB instead of ~1.1 GB of frozen base weights at 135M; resume loads them non-strictly over the same
frozen base and refuses a checkpoint that lacks a trainable parameter.

Resume takes the newest checkpoint that is whole (`train_state.json` parses, safetensors files whole); a damaged newer
one is renamed `corrupt-step-N` (kept, never deleted) and the previous good one is used.

Every process writes into `step-N.tmp/`; after a barrier the main process of each node renames it to `step-N/` and
rewrites `latest`, so a checkpoint directory that exists is complete. (Across nodes the checkpoint dir must be on a
shared filesystem for `resume` to find every process's shard.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from icm_rm.infra.errors import UserError
from icm_rm.infra.io import atomic_write_json, atomic_write_text
from icm_rm.infra.model_dir import check_weight_file
from icm_rm.infra.runs import set_aside

CHECKPOINTS = "checkpoints"
TRAIN_STATE = "train_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class TrainState:
    """The trainer's own counters, saved and restored with the checkpoint as `train_state.json`."""

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


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (None when it is whole)."""
    if any(path.glob("custom_checkpoint_*.pkl")):
        return "holds a pickled custom_checkpoint_*.pkl, which icm-rm never writes nor loads"
    try:
        state = json.loads((path / TRAIN_STATE).read_text(encoding="utf-8"))
        if not isinstance(state, dict) or not {"step", "update", "data", "kl"} <= set(state):
            return f"{TRAIN_STATE} lacks step/update/data/kl"
        for f in path.rglob("*.safetensors"):
            check_weight_file(f)
    except (OSError, ValueError, UserError) as e:
        return str(e).splitlines()[0][:160]
    return None


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest whole checkpoint; newer damaged ones are set aside by the main process (renamed, never deleted)."""
    for _, path in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if int(os.environ.get("RANK", "0")) == 0:
            set_aside(path, problem)
    return None


def save_checkpoint(accelerator, output_dir: str | Path, step: int, keep: int | None, state: TrainState) -> Path:
    """Collective: every process must call it."""
    root = checkpoint_root(output_dir)
    final = root / f"step-{step:06d}"
    tmp = root / f"step-{step:06d}.tmp"
    if accelerator.is_local_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_local_main_process:
        atomic_write_json(tmp / TRAIN_STATE, state.state_dict())
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


def save_trainable_only(accelerator) -> None:
    """Make `accelerator.save_state` drop frozen parameters from the model weights it writes (not under DeepSpeed,
    which writes its own shards): they are the pretrained weights the run loads anyway."""
    def hook(models, weights, output_dir):
        for i, model in enumerate(models):
            frozen = {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}  # + tied
            weights[i] = {k: v for k, v in weights[i].items() if k not in frozen}

    accelerator.register_save_state_pre_hook(hook)


def _check_trainable_saved(accelerator, path: Path) -> None:
    from safetensors import safe_open

    saved: set[str] = set()
    for f in path.glob("model*.safetensors"):
        with safe_open(str(f), framework="pt") as fh:
            saved |= set(fh.keys())
    for model in accelerator._models:
        missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in saved]
        if missing:
            raise UserError(f"{path}: the checkpoint lacks {len(missing)} trainable weight(s) of this run (first: "
                            f"{missing[0]}); it was written by a run with other trainable parameters (LoRA/value "
                            "settings)")


def load_checkpoint(accelerator, path: str | Path, state: TrainState) -> None:
    """Weights, optimizer and RNG through accelerate (weights_only loads), then the TrainState from JSON."""
    if accelerator.state.deepspeed_plugin is None:
        _check_trainable_saved(accelerator, Path(path))
        accelerator.load_state(str(path), strict=False)      # frozen weights are not in the file: see save_trainable_only
    else:
        accelerator.load_state(str(path))
    state.load_state_dict(json.loads((Path(path) / TRAIN_STATE).read_text(encoding="utf-8")))
