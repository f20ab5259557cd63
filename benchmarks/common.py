"""Shared helpers for the benchmark scripts: machine info, result JSON, markdown tables."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from icm_rm.infra.io import atomic_write_json, package_versions

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
            "load_avg_1m": os.getloadavg()[0], "versions": package_versions()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def write_result(name: str, doc: dict) -> Path:
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, {"machine": machine(), **doc})
    return path


def report_accuracy(block: dict | None) -> float | None:
    """A label report's accuracy block as one number: pair accuracy on pair pools, claim accuracy on claim pools."""
    return None if not block else block.get("pair", block.get("claim"))


def md_table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def finished_tasks(name: str, settings: dict, same: tuple, old_defaults: dict | None = None) -> dict:
    """model → task → result of an earlier results/<name>.json whose settings agree on the keys `same` (settings an
    older file lacks take `old_defaults`); what is missing runs again."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    old = {**(old_defaults or {}), **doc.get("settings", {})}
    if any(old.get(k) != settings[k] for k in same):
        return {}
    done = {m: dict(per) for m, per in doc.get("results", {}).items() if m in settings["models"]}
    n = sum(len(v) for v in done.values())
    if n:
        print(f"[{name}] keeping {n} finished task(s) from {path} (--fresh reruns them)", file=sys.stderr)
    return done
