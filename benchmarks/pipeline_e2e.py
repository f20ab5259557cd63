"""End-to-end wall time and peak RSS of the embedded default pipeline (`make demo`), with its summary.

    python benchmarks/pipeline_e2e.py            # the real default: configs/pipeline/default.yaml
    python benchmarks/pipeline_e2e.py --quick    # the same stages, shortened (fewer iterations/steps, no human route)

Peak RSS is the largest resident set of the pipeline process (it runs every stage in one process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--label.search.iterations", "300", "--rm.trainer.num_train_epochs", "1", "--ppo.num_steps", "2",
         "--compare_human", "false", "--eval_policy.max_prompts", "8"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--output_dir", default=None)
    args = ap.parse_args(argv)
    out = Path(args.output_dir or REPO / "runs" / ("bench_pipeline_quick" if args.quick else "bench_pipeline"))
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "icm_rm.cli", "pipeline", "--config", "configs/pipeline/default.yaml",
           "--output_dir", str(out), *(QUICK if args.quick else [])]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    t = time.time()
    rc = subprocess.call(cmd, cwd=REPO, env=env)
    wall = time.time() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    print(f"pipeline {'(quick) ' if args.quick else ''}exit {rc}: wall {wall:.0f} s, peak RSS {peak_mb:.0f} MiB")
    peaks = summary.get("peak_rss_mib", {})
    for k, v in summary.get("timings_s", {}).items():
        print(f"  {k:<18} {v:7.0f} s   peak RSS {peaks.get(k, float('nan')):6.0f} MiB")
    write_result("pipeline_e2e" + ("_quick" if args.quick else ""),
                 {"command": " ".join(cmd[1:]), "exit_code": rc, "wall_s": wall, "peak_rss_mib": peak_mb,
                  "summary": summary})
    return rc


if __name__ == "__main__":
    sys.exit(main())
