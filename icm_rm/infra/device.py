"""The one device resolver: every `device: auto` (and every caller that passes none) becomes a torch device string."""

from __future__ import annotations

import torch


def resolve_device(device: str | None = "auto") -> str:
    """"auto" or None → "cuda" when a GPU is visible, else "cpu"; anything else ("cpu", "cuda:1") as given."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
