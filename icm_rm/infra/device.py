"""The one device resolver: every `device: auto` (and every caller that passes none) becomes a torch device string,
and every other value is checked against what this torch build can run (an unknown string, or `cuda` on a CPU-only
build, is a one-line ConfigError naming the `device` key, not a traceback at the first tensor move)."""

from __future__ import annotations

import re

import torch

from .errors import ConfigError

_DEVICE = re.compile(r"^(cpu|cuda|mps|xpu)(?::(\d+))?$")


def resolve_device(device: str | None = "auto", key: str = "device") -> str:
    """"auto" or None → "cuda" when a GPU is visible, else "cpu"; "cpu", "cuda", "cuda:N", "mps", "xpu[:N]" as given
    once checked available."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    m = _DEVICE.match(device) if isinstance(device, str) else None
    if m is None:
        raise ConfigError(key, f"unknown device {device!r}; use cpu, cuda, cuda:N or auto")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu":
        if index not in (None, "0"):
            raise ConfigError(key, f"'{device}': the CPU has no index; use cpu")
        return device
    backends = {"cuda": torch.cuda, "mps": getattr(torch.backends, "mps", None), "xpu": getattr(torch, "xpu", None)}
    backend = backends[kind]
    if backend is None or not backend.is_available():
        why = "this torch build has no CUDA support" if kind == "cuda" and torch.version.cuda is None else \
            f"no {kind} device is visible"
        raise ConfigError(key, f"'{device}' asked for, but {why}; use --{key} cpu or auto")
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if index is not None and int(index) >= count:
        raise ConfigError(key, f"'{device}': only {count} {kind} device(s) are visible "
                               f"({kind}:0 … {kind}:{count - 1})")
    return device
