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
sys.path.insert(0, str(HERE))
from common import write_result  # noqa: E402

QUICK = [  # (script, quick args, full args)
    ("scoring_cost.py", ["--quick"], []),
    ("elicitation.py", ["--quick", "--fresh"], ["--fresh"]),
    ("alpha_sensitivity.py", ["--quick"], []),
    ("rl_throughput.py", ["--quick"], []),
    ("serve_load.py", ["--rms", "tiny", "--out", str(HERE / "results" / "serve_load_quick.json")], []),
    ("pipeline_e2e.py", ["--quick"], []),
    # RM quality on the label stage the pipeline run above wrote (the full run reads runs/bench_pipeline/ppo)
    ("rm_quality.py", ["--label_run", "runs/bench_pipeline_quick/ppo/label", "--output_dir", "runs/bench/rm_quality_quick",
                       "--eval_limit", "20", "--max_length", "512", "--trainer.num_train_epochs", "1",
                       "--shared_sets", "icm_unsupervised_elicitation/test_alpaca.json",
                       "--shared_sets", "hh_rlhf/helpful-base/test.jsonl.gz",
                       "--results", str(HERE / "results" / "rm_quality_quick.json")],
     ["--label_run", "runs/bench_pipeline/ppo/label"]),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="run only these scripts")
    args = ap.parse_args(argv)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    failed, seconds = [], {}
    t0 = time.time()
    for script, quick, full in QUICK:
        if args.only and script not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n=== {script} {' '.join(cmd[2:])}", flush=True)
        t = time.time()
        rc = subprocess.call(cmd, env=env, cwd=HERE.parent)
        seconds[script] = round(time.time() - t, 1)
        print(f"=== {script}: exit {rc} in {seconds[script]:.0f} s", flush=True)
        if rc:
            failed.append(script)
    total = time.time() - t0
    print(f"\nall benchmarks: {total:.0f} s; failed: {failed or 'none'}")
    if not args.only:
        write_result("run_all" + ("_quick" if args.quick else ""),
                     {"seconds": seconds, "total_s": round(total, 1), "failed": failed})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
