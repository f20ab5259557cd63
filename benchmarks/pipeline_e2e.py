"""End-to-end wall time, peak RSS and results of the embedded default pipeline (`make demo`), per RL route.

    python benchmarks/pipeline_e2e.py                       # PPO then GRPO routes of configs/pipeline/default.yaml
    python benchmarks/pipeline_e2e.py --rl_algo ppo         # one route
    python benchmarks/pipeline_e2e.py --quick               # the same stages, shortened (smoke run, not a measurement)
    python benchmarks/pipeline_e2e.py --config OLD.yaml --tag baseline   # another config, e.g. a side-by-side baseline

Each route runs the pipeline in its own process (every stage inside it); peak RSS is that process's largest resident
set (wait4 rusage). Results go to benchmarks/results/pipeline_e2e[_quick|_TAG].json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--label.search.iterations", "300", "--rm.trainer.num_train_epochs", "1", "--ppo.num_steps", "2",
         "--grpo.num_steps", "2", "--eval_policy.max_prompts", "8"]


def run_route(config: str, algo: str, out: Path, extra: list[str]) -> dict:
    """One pipeline process; its wall time, exit code, peak RSS and summary."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "icm_rm.cli", "pipeline", "--config", config, "--rl_algo", algo,
           "--output_dir", str(out), *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    t = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t
    rc = os.waitstatus_to_exitcode(status)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    return {"command": " ".join(cmd[1:]), "exit_code": rc, "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024,
            "summary": summary}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rl_algo", nargs="+", default=["ppo", "grpo"], choices=["ppo", "grpo"])
    ap.add_argument("--config", default="configs/pipeline/default.yaml")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tag", default=None, help="result name suffix (default: quick for --quick, else none)")
    ap.add_argument("--output_dir", default=None)
    args = ap.parse_args(argv)
    tag = args.tag or ("quick" if args.quick else None)
    base = Path(args.output_dir or REPO / "runs" / ("bench_pipeline" + (f"_{tag}" if tag else "")))
    routes = {}
    for algo in args.rl_algo:
        routes[algo] = r = run_route(args.config, algo, base / algo, QUICK if args.quick else [])
        print(f"pipeline --rl_algo {algo}: exit {r['exit_code']}, wall {r['wall_s']:.0f} s, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    rows = []
    for algo, r in routes.items():
        s = r["summary"]
        peaks = s.get("peak_rss_mib", {})
        rows += [[algo, k, f"{v:.0f}", f"{peaks.get(k, float('nan')):.0f}"] for k, v in s.get("timings_s", {}).items()]
        rows.append([algo, "**total**", f"{r['wall_s']:.0f}", f"{r['peak_rss_mib']:.0f}"])
    print(md_table(["route", "stage", "seconds", "peak RSS MiB"], rows))
    for algo, r in routes.items():
        for line in r["summary"].get("headline", []):
            print(f"[{algo}] {line}")
    write_result("pipeline_e2e" + (f"_{tag}" if tag else ""), {"config": args.config, "routes": routes})
    return max((r["exit_code"] for r in routes.values()), default=0)


if __name__ == "__main__":
    sys.exit(main())
