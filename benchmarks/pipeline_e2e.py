"""End-to-end wall time, peak RSS and results of the embedded default pipeline (`make demo`), per RL route.

    python benchmarks/pipeline_e2e.py                       # PPO then GRPO routes of configs/pipeline/default.yaml
    python benchmarks/pipeline_e2e.py --rl_algo ppo         # one route
    python benchmarks/pipeline_e2e.py --quick               # the same stages, shortened (smoke run, not a measurement)
    python benchmarks/pipeline_e2e.py --config OLD.yaml --tag baseline   # another config, e.g. a side-by-side baseline
    python benchmarks/pipeline_e2e.py --reuse_upstream      # later routes start from the first one's labels and RMs
    python benchmarks/pipeline_e2e.py --rl_algo grpo --upstream runs/bench_pipeline/ppo --tag grpo   # from a run's
    python benchmarks/pipeline_e2e.py --rl_algo ppo --rl_seeds 0 1 2   # three RL seeds per RM: seed means + spread
    python benchmarks/pipeline_e2e.py --rl_algo ppo --rm_seeds 42 1 2 --controls '[]'   # three RMs per route; any
                                                                        # other --key value goes to the pipeline

Each route runs the pipeline in its own process (every stage inside it); peak RSS is that process's largest resident
set and CPU time its user + system time (wait4 rusage): on a shared machine CPU s / cores estimates the wall time of an
idle one. With --reuse_upstream the later routes copy the first route's label, data and RM folders (the pipeline skips
complete stages), and their `upstream_s` is the first route's time for those stages; --upstream DIR does the same from
another run's folder (its summary.json, if any, gives `upstream_s`). --rl_seeds / --rm_seeds set the pipeline's
`rl_seeds` / `rm_seeds`; each route's `policies` records its per-seed and seed-mean diffs vs the reference. Results go to
benchmarks/results/pipeline_e2e[_quick|_TAG].json.
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


UPSTREAM = ("label", "data", "rm_")  # the stages before RL: the same for every RL route


def copy_upstream(src: Path, dst: Path) -> None:
    """The first route's label, data and RM folders → `dst`, which the pipeline then resumes past."""
    dst.mkdir(parents=True)
    for d in src.iterdir():
        if d.is_dir() and d.name.startswith(UPSTREAM):
            shutil.copytree(d, dst / d.name)


def run_route(config: str, algo: str, out: Path, extra: list[str], upstream: Path | None = None) -> dict:
    """One pipeline process; its wall time, CPU time, exit code, peak RSS and summary."""
    shutil.rmtree(out, ignore_errors=True)
    if upstream is not None:
        copy_upstream(upstream, out)
    cmd = [sys.executable, "-m", "icm_rm.cli", "pipeline", "--config", config, "--rl_algo", algo,
           "--output_dir", str(out), *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    t, load0 = time.time(), os.getloadavg()[0]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t
    rc = os.waitstatus_to_exitcode(status)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    return {"command": " ".join(cmd[1:]), "exit_code": rc, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024, "load_avg_1m": [load0, os.getloadavg()[0]],
            "upstream": str(upstream) if upstream else None, "summary": summary}


def seed_results(summary: dict) -> dict:
    """Per RL route: the seeds, each seed's diff vs the reference, their sd, and the seed mean's diff with its CI."""
    stats = summary.get("policy", {}).get("seed_mean", {})
    out = {}
    for route, r in stats.get("routes", {}).items():
        ref = r["vs_reference"]
        out[route] = {"seeds": r["seeds"], "seed_diffs": r["seed_diffs"], "seed_sd": r["seed_sd"],
                      "seed_mean_diff": ref["score_diff"]["diff"], "seed_mean_ci": ref["score_diff"]["ci"],
                      "seed_mean_win_rate": ref["win_rate"]}
    for x in stats.get("pairs", []):
        out[f"{x['route']}_vs_{x['versus']}"] = {"seed_mean_diff": x["score_diff"]["diff"],
                                                 "seed_mean_ci": x["score_diff"]["ci"]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rl_algo", nargs="+", default=["ppo", "grpo"], choices=["ppo", "grpo"])
    ap.add_argument("--config", default="configs/pipeline/default.yaml")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tag", default=None, help="result name suffix (default: quick for --quick, else none)")
    ap.add_argument("--output_dir", default=None)
    ap.add_argument("--reuse_upstream", action="store_true",
                    help="later routes reuse the first route's label and RM stages (copied)")
    ap.add_argument("--upstream", default=None, help="every route reuses the label and RM stages of this run folder")
    ap.add_argument("--rl_seeds", nargs="+", type=int, default=None,
                    help="RL seeds per reward model (the pipeline's rl_seeds; default: the config's)")
    ap.add_argument("--rm_seeds", nargs="+", type=int, default=None,
                    help="RM training seeds per route (the pipeline's rm_seeds; default: the config's)")
    args, passed = ap.parse_known_args(argv)
    extra = (QUICK if args.quick else []) + [x for s in args.rl_seeds or [] for x in ("--rl_seeds", str(s))]
    extra += [x for s in args.rm_seeds or [] for x in ("--rm_seeds", str(s))] + passed
    tag = args.tag or ("quick" if args.quick else None)
    base = Path(args.output_dir or REPO / "runs" / ("bench_pipeline" + (f"_{tag}" if tag else "")))
    routes, first = {}, None
    for algo in args.rl_algo:
        upstream = Path(args.upstream) if args.upstream else base / first if (args.reuse_upstream and first) else None
        routes[algo] = r = run_route(args.config, algo, base / algo, extra, upstream)
        r["policies"] = seed_results(r["summary"])
        if upstream is not None and (upstream / "summary.json").exists():
            r["upstream_s"] = sum(v for k, v in json.loads((upstream / "summary.json").read_text())["timings_s"].items()
                                  if k == "label" or k.startswith("train-rm"))
        first = first or algo
        print(f"pipeline --rl_algo {algo}: exit {r['exit_code']}, wall {r['wall_s']:.0f} s, CPU {r['cpu_s']:.0f} s, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    rows = []
    for algo, r in routes.items():
        s = r["summary"]
        peaks = s.get("peak_rss_mib", {})
        rows += [[algo, k, f"{v:.0f}", "", f"{peaks.get(k, float('nan')):.0f}"]
                 for k, v in s.get("timings_s", {}).items()]
        if "upstream_s" in r:
            rows.append([algo, f"label + RMs reused from {r['upstream']}", f"{r['upstream_s']:.0f}", "", ""])
        rows.append([algo, "**total**", f"{r['wall_s'] + r.get('upstream_s', 0):.0f}", f"{r['cpu_s']:.0f}",
                     f"{r['peak_rss_mib']:.0f}"])
    print(md_table(["route", "stage", "wall s", "CPU s", "peak RSS MiB"], rows))
    for algo, r in routes.items():
        for line in r["summary"].get("headline", []):
            print(f"[{algo}] {line}")
    write_result("pipeline_e2e" + (f"_{tag}" if tag else ""), {"config": args.config, "rl_seeds": args.rl_seeds,
                                                               "rm_seeds": args.rm_seeds, "pipeline_args": passed,
                                                               "routes": routes})
    return max((r["exit_code"] for r in routes.values()), default=0)


if __name__ == "__main__":
    sys.exit(main())
