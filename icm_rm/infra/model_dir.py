"""The one check of a Hugging Face model directory before anything loads it: config.json present and valid, weights
present and whole (safetensors headers read, sizes compared — a truncated file is caught without loading it), a
tokenizer where one is needed. Every problem is one UserError naming the directory (or file) and what is wrong."""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError, UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


def check_model_dir(path: str | Path, *, weights: bool = True, tokenizer: bool = True) -> Path:
    """`path` when it holds a loadable model (weights: config.json + whole weight files; tokenizer: its files)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"'{path}' is a file, not a model directory; pass the directory that holds its config.json, "
                        "weights and tokenizer")
    if not path.is_dir():
        raise UserError(f"model directory '{path}' not found")
    if weights:
        _check_config(path)
        _check_weights(path)
    if tokenizer and not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"{path}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the tokenizer next to the "
                        "weights (tokenizer.save_pretrained) or point `tokenizer` at one")
    return path


def _check_config(path: Path) -> None:
    f = path / "config.json"
    if not f.is_file():
        raise UserError(f"{path}: not a Hugging Face model dir (no config.json); pass the directory save_pretrained "
                        "wrote, e.g. train-rm's <output_dir>/model")
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise UserError(f"{f}: not valid JSON ({str(e).splitlines()[0][:120]}); re-export or re-fetch the model") \
            from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_type"), str):
        raise UserError(f"{f}: no 'model_type' (not a transformers config); re-export or re-fetch the model")


def _check_weights(path: Path) -> None:
    for index in _INDEXES:
        if (path / index).is_file():
            shards = _index_shards(path / index)
            for shard in shards:
                check_weight_file(path / shard, named_by=path / index)
            return
    found = [path / w for w in _WEIGHTS if (path / w).is_file()]
    if not found:
        raise UserError(f"{path}: no model weights ({', '.join(_WEIGHTS + _INDEXES)}); the save was cut short or "
                        "this is not a model directory")
    for f in found:
        check_weight_file(f)


def _index_shards(index: Path) -> list[str]:
    try:
        doc = json.loads(index.read_text(encoding="utf-8"))
        shards = sorted(set(doc["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{index}: not a valid weight index (no weight_map); re-export the model") from None
    if not shards or any(not isinstance(s, str) or "/" in s or s.startswith(".") for s in shards):
        raise UserError(f"{index}: its weight_map names no shard or a path outside the directory")
    return shards


def check_weight_file(f: Path, named_by: Path | None = None) -> None:
    """A weight file is there and, for safetensors, whole: the header parses and describes exactly the file's size."""
    if not f.is_file():
        raise UserError(f"{f}: missing (named by {named_by.name})" if named_by else f"{f}: missing")
    if f.suffix != ".safetensors":
        return  # .bin: transformers loads it with weights_only=True; nothing cheap to check
    size = f.stat().st_size
    try:
        with f.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0] if size >= 8 else None
            if n is None or n > min(size - 8, _MAX_HEADER):
                raise ValueError("header cut short")
            header = json.loads(fh.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        raise UserError(f"{f}: truncated or corrupt safetensors file (its header cannot be read); re-export or "
                        "re-fetch the model") from None
    if 8 + n + end != size:
        raise UserError(f"{f}: truncated or corrupt safetensors file (its header describes {8 + n + end} bytes, the "
                        f"file has {size}); re-export or re-fetch the model")


@contextlib.contextmanager
def loading(path: str | Path, what: str = "model") -> Iterator[None]:
    """Turn what transformers raises on a directory it cannot load (after `check_model_dir` passed: an unknown
    architecture, mismatched shapes, a tokenizer it cannot build) into one line naming the directory."""
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as e:
        if isinstance(e, UserError):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{path}: cannot load the {what} ({first})") from None


@contextlib.contextmanager
def lora_targets(names: object, key: str = "lora_target_modules") -> Iterator[None]:
    """peft's "no module matched" (a typo in the LoRA target names) as one ConfigError naming the key."""
    from peft import NoMatchingPeftModuleError

    try:
        yield
    except NoMatchingPeftModuleError:
        raise ConfigError(key, f"no module of the model is named {names}; give names of its linear layers (e.g. "
                               "[q_proj, v_proj]) or 'all-linear'") from None
