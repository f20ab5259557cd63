"""GRPO's micro-batch split: the same 16 completions per optimizer step as per_device × accumulation = 8 × 2 or 4 × 4,
run side by side from one finished GRPO run's resolved config. TRL's default `dapo` loss divides by the tokens of the
whole generation batch, so the split should change peak memory and time only; the policies are compared weight by
weight. Prints a table and writes benchmarks/results/grpo_batch_split.json.

    python benchmarks/grpo_batch_split.py --run runs/demo/grpo_icm            # a pipeline's GRPO route (its RM kept)
    python benchmarks/grpo_batch_split.py --run DIR --splits 8x2 4x4 2x8 --sequential

Each split runs `icm-rm grpo` in its own process at one torch thread (peak RSS and CPU-s are that process's own).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402


def parse_split(text: str) -> tuple[int, int]:
    """'4x4' → (per_device_batch_size, gradient_accumulation_steps)."""
    try:
        per_device, accum = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--splits: '{text}' is not PERxACCUM (e.g. 4x4)") from None
    return per_device, accum


def start(cfg: dict, split: str, work: Path) -> tuple[subprocess.Popen, Path, float]:
    per_device, accum = parse_split(split)
    out = work / f"grpo_{split}"
    path = work / f"{split}.yaml"
    path.write_text(yaml.safe_dump({**cfg, "output_dir": str(out), "per_device_batch_size": per_device,
                                    "gradient_accumulation_steps": accum, "resume": False, "overwrite": True}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    cmd = [sys.executable, "-m", "icm_rm.cli", "grpo", "--config", str(path)]
    with open(work / f"{split}.log", "w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, out, time.perf_counter()


def finish(proc: subprocess.Popen, t0: float, split: str, work: Path) -> dict:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"split {split} failed (exit {proc.returncode}); see {work / (split + '.log')}")
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024}


def max_weight_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = load_file(a / "policy" / "model.safetensors"), load_file(b / "policy" / "model.safetensors")
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a finished GRPO run directory (its run.json holds the config)")
    ap.add_argument("--splits", nargs="+", default=["8x2", "4x4"], help="PERxACCUM; the first is the baseline")
    ap.add_argument("--sequential", action="store_true", help="one after the other instead of side by side")
    ap.add_argument("--name", default="grpo_batch_split")
    a = ap.parse_args()
    run_json = Path(a.run) / "run.json"
    if not run_json.is_file():
        raise SystemExit(f"--run: {run_json} not found (a finished `icm-rm grpo` or pipeline GRPO run has one)")
    cfg = json.loads(run_json.read_text())["config"]
    totals = {parse_split(s)[0] * parse_split(s)[1] for s in a.splits}
    if len(totals) != 1:
        raise SystemExit(f"--splits: every split must give the same completions per step, got {sorted(totals)}")
    with tempfile.TemporaryDirectory(prefix="grpo_split_") as tmp:
        work, rows, outs = Path(tmp), {}, {}
        if a.sequential:
            for s in a.splits:
                proc, outs[s], t0 = start(cfg, s, work)
                rows[s] = finish(proc, t0, s, work)
        else:
            started = {s: start(cfg, s, work) for s in a.splits}
            for s, (proc, outs[s], t0) in started.items():
                rows[s] = finish(proc, t0, s, work)
        base = a.splits[0]
        for s in a.splits:
            rows[s]["max_abs_weight_diff_vs_" + base] = max_weight_diff(outs[base], outs[s])
    table = [[s, f"{r['wall_s']:.0f}", f"{r['cpu_s']:.0f}", f"{r['peak_rss_mib']:.0f}",
              f"{r['max_abs_weight_diff_vs_' + base]:.1e}"] for s, r in rows.items()]
    print(md_table(["per_device × accum", "wall s", "CPU-s", "peak RSS MiB", f"max |Δw| vs {base}"], table))
    path = write_result(a.name, {"settings": {"run": str(Path(a.run).resolve()), "splits": a.splits,
                                              "side_by_side": not a.sequential, "config": cfg}, "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
