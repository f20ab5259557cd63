"""Will the run's models fit on the disk? Estimated before any stage starts, so a long pipeline is refused up front
instead of stopping hours in with a full disk (each RM and policy is saved whole, in float32)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..infra.errors import UserError
from ..infra.io import free_mb
from ..infra.model_registry import REGISTRY

# What one trained model leaves on disk, in float32 copies of its base model: with LoRA the merged model plus the
# adapter and a checkpoint (measured on the demo: 1.04-1.16); without, the model, a checkpoint of it and Adam's moments.
COPIES = {True: 1.2, False: 4.0}


@dataclass(frozen=True)
class PlannedModel:
    """One RM or policy the run will train (done: already complete in the output dir, so it writes nothing new)."""

    kind: str  # "reward model" | "policy"
    model: str  # the base model: registry name or local dir
    lora: bool
    done: bool


def float32_mb(model: str) -> float | None:
    """MiB of `model`'s weights as float32 (registry name: from the registry; local dir: its weight files, scaled from
    the dtype its config.json names); None when unknown (a hub id)."""
    if model in REGISTRY:
        return float(REGISTRY[model].model_mb)
    path = Path(model).expanduser()
    if not path.is_dir():
        return None
    size = sum(p.stat().st_size for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = None
    dtype = config.get("torch_dtype") if isinstance(config, dict) else None
    return size / 2**20 * (2 if dtype in ("bfloat16", "float16") else 1) or None


def check_disk(out: Path, planned: list[PlannedModel]) -> float:
    """Refuse (UserError) when the models still to train need more than the free space under `out`; returns the
    estimate in MiB (0 when nothing is left to train or a size is unknown)."""
    todo = [p for p in planned if not p.done]
    sizes = [float32_mb(p.model) for p in todo]
    if not todo or any(s is None for s in sizes):
        return 0.0
    need = sum(s * COPIES[p.lora] for s, p in zip(sizes, todo))
    free = free_mb(out)
    if free is not None and free < need:
        plural = {"reward model": "reward models", "policy": "policies"}
        what = " and ".join(f"{n} {k if n == 1 else plural[k]}" for k in plural
                            if (n := sum(p.kind == k for p in todo)))
        raise UserError(f"{out}: this run still trains {what}, about {_size(need)} saved (each model whole, float32), "
                        f"but only {_size(free)} is free; free space or choose another --output_dir (finished stages "
                        "are kept: the same command continues where it stopped)")
    return need


def _size(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"
