"""Run directories that never lose a finished run and never silently continue a different one:

- `fingerprint.json`: the config (every field but the `resume_safe` ones) and the content hashes of the input files,
  written when a run starts; `check_resume` refuses a resume whose config or data differ, naming what changed
  (`--resume force` continues anyway, logged on stderr and in the fingerprint's `forced` list).
- `--overwrite`: the new run is written aside (`.NAME.overwrite/`) and swapped in only once complete
  (`finish_overwrite`); until then the old run stays where it was, whole.
- `set_aside`: a corrupt checkpoint is renamed (`corrupt-NAME`), never deleted, so no picker sees it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import save_config
from .errors import UserError
from .io import atomic_write_json, is_complete
from .model_dir import check_weight_file

FINGERPRINT = "fingerprint.json"


# ----------------------------------------------------------------------------------------------- fingerprints

def config_fingerprint(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Flat {dotted key: value} of every config field that must match on resume (not the `resume_safe` ones)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if f.metadata.get("resume_safe"):
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(config_fingerprint(value, f"{prefix}{f.name}."))
        else:
            out.update(_flat(prefix + f.name, json.loads(json.dumps(value, default=str))))
    return out


def _flat(key: str, value: Any) -> dict[str, Any]:
    """A mapping value as dotted keys (trainer.learning_rate), so a change is named by its own key."""
    if isinstance(value, dict) and value:
        return {k: v for kk, vv in value.items() for k, v in _flat(f"{key}.{kk}", vv).items()}
    return {key: value}


def file_digest(path: str | Path) -> str | None:
    """sha256 of a file's bytes (a directory: of its files' relative paths and bytes); None when it does not exist."""
    p = Path(path)
    if not (p.is_file() or p.is_dir()):
        return None  # absent, or a FIFO/device the reader will refuse: never opened here (it could block)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file() and not q.is_symlink()) if p.is_dir() else [p]
    for q in files:
        if p.is_dir():
            h.update(str(q.relative_to(p)).encode("utf-8") + b"\0")
        with q.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def fingerprint(cfg: Any, inputs: Mapping[str, str | None]) -> dict[str, Any]:
    """What a resume must match: the config and the content of each input file (by config key). Where a config value
    starts with its input's path, the path is matched by content, not by name: a run folder moved or copied with its
    inputs still resumes (the `:format` after a data path stays part of the config)."""
    config = config_fingerprint(cfg)
    for key, p in inputs.items():
        if p and isinstance(config.get(key), str) and config[key].startswith(str(p)):
            config[key] = "<content>" + config[key][len(str(p)):]
    return {"config": config,
            "data": {key: {"path": str(p), "sha256": file_digest(p)} for key, p in inputs.items() if p}}


def check_resume(run_dir: str | Path, cfg: Any, inputs: Mapping[str, str | None], *, force: bool = False,
                 resuming: bool = True, write: bool = True) -> None:
    """Refuse to continue `run_dir` when its fingerprint differs from this config/data (unless `force`); write the
    fingerprint when the run has none yet (a fresh run, or one started before fingerprints existed) or when this is
    not a resume (`resuming` False: a fresh start replaces whatever the dir held). `write` False only compares (a
    check before the inputs were validated must not record them)."""
    path = Path(run_dir) / FINGERPRINT
    new = fingerprint(cfg, inputs)
    old = stored_fingerprint(run_dir) if resuming else None  # unreadable: nothing to compare; rewritten below
    changes = _differences(old, new) if old else []
    if changes and not force:
        raise UserError(f"{run_dir}: refusing to resume — {'; '.join(changes[:4])}"
                        f"{f' (and {len(changes) - 4} more)' if len(changes) > 4 else ''} since this run started; "
                        "rerun with the original config and data, choose a new --output_dir, or pass --resume force "
                        "to continue anyway")
    if changes:
        print(f"icm-rm: warning: --resume force: continuing {run_dir} although {'; '.join(changes)}",
              file=sys.stderr)
        new["forced"] = [*(old or {}).get("forced", []), {"at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                          "changes": changes}]
    elif old:
        new["forced"] = old.get("forced", [])
    if write and old != new and int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(path, new)


def stored_fingerprint(run_dir: str | Path) -> dict[str, Any] | None:
    """The fingerprint `run_dir` holds; None when it has none or it cannot be read."""
    try:
        old = json.loads((Path(run_dir) / FINGERPRINT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) else None


def fingerprint_matches(run_dir: str | Path, fp: Mapping[str, Any]) -> bool:
    """Whether `run_dir` holds a fingerprint with the same config and data as `fp` (from `fingerprint`)."""
    old = stored_fingerprint(run_dir)
    return old is not None and not _differences(old, fp)


def write_fingerprint(run_dir: str | Path, fp: Mapping[str, Any]) -> None:
    """Record what a finished derived run (an evaluation) was computed from."""
    atomic_write_json(Path(run_dir) / FINGERPRINT, dict(fp))


def _differences(old: Mapping, new: Mapping) -> list[str]:
    out = []
    oc, nc = old.get("config", {}), new.get("config", {})
    for key in sorted(set(oc) | set(nc)):
        if key not in oc and nc[key] is None:
            continue  # a field added after the run started, left at null: the behaviour the run had
        if oc.get(key, "<unset>") != nc.get(key, "<unset>"):
            out.append(f"config key '{key}' changed ({_short(oc.get(key, '<unset>'))} → "
                       f"{_short(nc.get(key, '<unset>'))})")
    od, nd = old.get("data", {}), new.get("data", {})
    for key in sorted(set(od) | set(nd)):
        a, b = od.get(key, {}), nd.get(key, {})
        if a.get("sha256") != b.get("sha256"):
            out.append(f"the data of '{key}' ({b.get('path') or a.get('path')}) changed")
    return out


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 40 else s[:37] + "…"


def resume_forced(cfg: Any) -> bool:
    return getattr(cfg, "resume", None) == "force"


# ----------------------------------------------------------------------------------------------- overwrite aside

def aside_dir(out: str | Path) -> Path:
    """Where `--overwrite` writes the new run until it is complete."""
    out = Path(out)
    return out.with_name(f".{out.name}.overwrite")


def start_overwrite(out: str | Path) -> Path:
    """A fresh aside dir for an `--overwrite` run of `out` (what an earlier, unfinished overwrite left is ours to
    clear); the run in `out` is not touched."""
    recover_swap(out)
    aside = aside_dir(out)
    if int(os.environ.get("RANK", "0")) == 0:
        shutil.rmtree(aside, ignore_errors=True)
    return aside


def finish_overwrite(aside: str | Path, out: str | Path, cfg: Any = None,
                     patch: Iterable[str] = ("run.json", ".complete")) -> None:
    """Swap the completed aside run in for `out`: config.yaml is rewritten from `cfg` (the config as given, naming
    `out`), the JSON files in `patch` get the aside path replaced by `out`'s, then `out` → `.NAME.old`, aside →
    `out`, and the old run is removed last."""
    aside, out = Path(aside), Path(out)
    if cfg is not None:
        save_config(cfg, aside / "config.yaml")
    for name in patch:
        f = aside / name
        if f.is_file():
            doc = json.loads(f.read_text(encoding="utf-8"))
            atomic_write_json(f, _replace_prefix(doc, str(aside), str(out)))
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    aside.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def recover_swap(out: str | Path) -> None:
    """Finish (or undo) a swap a kill cut between its two renames."""
    out = Path(out)
    old, aside = out.with_name(f".{out.name}.old"), aside_dir(out)
    if not old.exists() or int(os.environ.get("RANK", "0")) != 0:
        return
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)      # the swap was done; only the old run's removal was left
    elif is_complete(aside):
        aside.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.rename(out)                              # the new run was not complete: put the old one back


def _replace_prefix(doc: Any, old: str, new: str) -> Any:
    if isinstance(doc, str):
        return new + doc[len(old):] if doc == old or doc.startswith(old + os.sep) else doc
    if isinstance(doc, list):
        return [_replace_prefix(v, old, new) for v in doc]
    if isinstance(doc, dict):
        return {k: _replace_prefix(v, old, new) for k, v in doc.items()}
    return doc


# ----------------------------------------------------------------------------------------------- corrupt checkpoints

def set_aside(path: str | Path, why: str, then: str = "resuming from the previous checkpoint") -> Path:
    """Rename a corrupt checkpoint to `corrupt-NAME[-k]` (kept for inspection, invisible to every checkpoint
    picker and to the trainers' rotation) and say so on stderr; returns the new path."""
    path = Path(path)
    target = path.with_name(f"corrupt-{path.name}")
    k = 1
    while target.exists():
        k += 1
        target = path.with_name(f"corrupt-{path.name}-{k}")
    path.rename(target)
    print(f"icm-rm: warning: {path} is incomplete or corrupt ({why}); kept as {target.name}, {then}",
          file=sys.stderr)
    return target


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest Hugging Face Trainer `checkpoint-N` in `output_dir` that was saved whole: its `trainer_state.json`
    (the Trainer writes it last) parses and its safetensors files are whole. Newer ones a kill cut short, or that
    were damaged since, are renamed `corrupt-checkpoint-N` by the main process (kept, never deleted), so neither a
    resume nor the Trainer's rotation picks them up; the run falls back to the previous good one.
    `get_last_checkpoint` takes the highest number, whole or not — and a resume from a half-written one silently
    restarts at step 0 on its weights."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in root.iterdir()
                   if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name)))
    for _, ckpt in reversed(found):
        try:
            state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
            if not isinstance(state, dict) or "global_step" not in state:
                raise ValueError("trainer_state.json has no global_step")
            for f in ckpt.rglob("*.safetensors"):
                check_weight_file(f)
            return str(ckpt)
        except (OSError, ValueError, UserError) as e:
            if int(os.environ.get("RANK", "0")) == 0:
                set_aside(ckpt, str(e).splitlines()[0][:160])
    return None
