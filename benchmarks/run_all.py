"""Run every benchmark (`--quick`: small sizes, ≤ 20 min on 2 cores) and regenerate the results tables.

    python benchmarks/run_all.py --quick            # each script also runs alone; see BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = [  # (script, quick args, full args)
    ("scoring_cost.py", ["--quick"], []),
    ("elicitation.py", ["--quick"], []),
    ("alpha_sensitivity.py", ["--quick"], []),
    ("rl_throughput.py", ["--quick"], []),
    ("serve_load.py", ["--rms", "tiny"], []),
    ("pipeline_e2e.py", ["--quick"], []),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="run only these scripts")
    args = ap.parse_args(argv)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    failed = []
    t0 = time.time()
    for script, quick, full in QUICK:
        if args.only and script not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n=== {script} {' '.join(cmd[2:])}", flush=True)
        t = time.time()
        rc = subprocess.call(cmd, env=env, cwd=HERE.parent)
        print(f"=== {script}: exit {rc} in {time.time() - t:.0f} s", flush=True)
        if rc:
            failed.append(script)
    print(f"\nall benchmarks: {time.time() - t0:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
