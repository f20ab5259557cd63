"""PPO critic: a separate value model vs a value head shared with the policy (`value_model: shared`), side by side in
one benchmark run on the same model, prompts and reward. Prints a table and writes benchmarks/results/ppo_critic.json.

    python benchmarks/ppo_critic.py               # tiny Llama (as rl_throughput.py) and SmolLM2-135M, demo PPO section
    python benchmarks/ppo_critic.py --quick       # fewer steps, 1 repeat
    python benchmarks/ppo_critic.py --real_repeats 1   # one SmolLM2 run per critic (~7 min on 2 cores)

Two setups: the tiny random Llama of rl_throughput.py (h 64, 2 layers, 32 prompts × 32 tokens, 4 epochs, micro 8), and
SmolLM2-135M (the cached registry model) with the `ppo:` section of configs/pipeline/default.yaml (the demo's: LoRA,
8 prompts × 16 tokens, 4 epochs, micro 2; each worker sets its own `value_model`) on the built-in animal_quiz prompts. The reward is the toy Python reward
(counts " the") in both: an RM forward would cost both critics the same. Each critic runs in its own subprocess (peak
RSS = its ru_maxrss; CPU-s = its user+sys), one torch thread, interleaved over `--repeats` (the machine is shared),
best run counts. samples/s = prompts per second of steady-state step time (steps after the first); update s = the mean
per-step `timing/update` (the PPO epochs: forward + backward of policy and critic) over those steps.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402
from rl_throughput import make_assets, worker_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # testkit: the tests' tiny random models
CRITICS = {"separate": None, "shared": "shared"}   # label → value_model
REWARD = {"type": "python", "function": "rl.rewards:substring_reward", "kwargs": {"text": " the", "scale": 0.25}}


def demo_section() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "configs" / "pipeline" / "default.yaml").read_text())["ppo"]


def worker(a: argparse.Namespace) -> dict:
    """One PPO run of `a.steps` steps (the body of train(), minus logging and checkpoints) with one critic."""
    from rl.ppo.config import PPOConfig
    from rl.ppo.trainer import PPOTrainer

    spec = json.loads(a.spec)
    cfg = PPOConfig(**{**spec, "reward": REWARD, "output_dir": a.out, "num_steps": a.steps, "save_steps": 0,
                       "tensorboard": False, "plot_steps": 10_000, "seed": 0, "value_model": CRITICS[a.worker]})
    trainer = PPOTrainer(cfg)
    steps, updates = [], []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        row = trainer.step()
        steps.append(time.perf_counter() - t0)
        updates.append(row["timing/update"])
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {"step_s": steps, "update_s": updates, "trainable_params": n_trainable}


def run_worker(critic: str, spec: dict, out: Path, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", critic, "--spec", json.dumps(spec), "--out", str(out), "--steps",
           str(steps)]
    return worker_result(cmd)


def setups(work: Path, quick: bool) -> dict[str, tuple[dict, int]]:
    """name → (PPOConfig fields, steps)."""
    tiny = make_assets(work, hidden=64, layers=2, n_prompts=64)
    out = {"tiny_llama": (dict(model=tiny["policy"], prompts=tiny["prompts"], max_new_tokens=32, max_prompt_length=64,
                               temperature=0.7, rollout_batch_size=32, num_mini_batches=1, micro_batch_size=8,
                               ppo_epochs=4, learning_rate=3e-6, kl_coef=0.05), 4 if quick else 8)}
    out["smollm2_135m_demo"] = (demo_section(), 3 if quick else 5)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps, 1 repeat")
    p.add_argument("--repeats", type=int, default=2, help="interleaved runs per critic (best counts)")
    p.add_argument("--real_repeats", type=int, default=None, help="the same for SmolLM2-135M (default: --repeats)")
    p.add_argument("--only", choices=("tiny_llama", "smollm2_135m_demo"), help="run one setup")
    p.add_argument("--worker", choices=sorted(CRITICS))
    p.add_argument("--spec")
    p.add_argument("--out")
    p.add_argument("--steps", type=int, default=4)
    a = p.parse_args()

    if a.worker:
        import torch

        torch.set_num_threads(1)
        res = worker(a)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        res["peak_rss_mb"] = usage.ru_maxrss / 1024
        res["cpu_s"] = usage.ru_utime + usage.ru_stime
        res["samples_per_s"] = (json.loads(a.spec)["rollout_batch_size"] * (len(res["step_s"]) - 1)
                                / sum(res["step_s"][1:]))
        res["update_s_mean"] = sum(res["update_s"][1:]) / (len(res["update_s"]) - 1)
        res["step_s_mean"] = sum(res["step_s"][1:]) / (len(res["step_s"]) - 1)
        print("RESULT " + json.dumps(res), flush=True)
        return 0

    repeats = 1 if a.quick else a.repeats
    results: dict[str, dict] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, (spec, steps) in setups(work, a.quick).items():
            if a.only and name != a.only:
                continue
            runs: dict[str, list[dict]] = {c: [] for c in CRITICS}
            n = (a.real_repeats or repeats) if name == "smollm2_135m_demo" else repeats
            for r in range(n):                    # interleaved, so a busy moment hits both critics alike
                for critic in CRITICS:
                    runs[critic].append(run_worker(critic, spec, work / f"{name}_{critic}_{r}", steps))
            best = {c: max((x for x in rs if "error" not in x), key=lambda x: x["samples_per_s"], default=None)
                    for c, rs in runs.items()}
            sep, sh = best["separate"], best["shared"]
            ratio = sh["samples_per_s"] / sep["samples_per_s"] if sep and sh else None
            upd = sep["update_s_mean"] / sh["update_s_mean"] if sep and sh else None
            results[name] = {"steps": steps, "spec": spec, "best": best, "all_runs": runs,
                             "samples_per_s_shared_over_separate": ratio, "update_time_separate_over_shared": upd}
            for c in CRITICS:
                b = best[c]
                rows.append([name, c] + ([f"{b['samples_per_s']:.2f}", f"{b['step_s_mean']:.2f}",
                                          f"{b['update_s_mean']:.2f}", f"{b['cpu_s']:.0f}", f"{b['peak_rss_mb']:.0f}",
                                          f"{b['trainable_params'] / 1e6:.2f}"] if b else
                                         ["n/a: " + next(x["error"] for x in runs[c] if "error" in x)[-200:]] + [""] * 5))
    table = md_table(["setup", "critic", "samples/s", "step s", "update s", "CPU-s (process)", "peak RSS MB",
                      "trainable M"], rows)
    print(table)
    for name, r in results.items():
        if r["samples_per_s_shared_over_separate"]:
            print(f"{name}: shared/separate samples/s {r['samples_per_s_shared_over_separate']:.2f}×, update time "
                  f"separate/shared {r['update_time_separate_over_shared']:.2f}×")
    path = write_result("ppo_critic_quick" if a.quick else "ppo_critic",
                        {"settings": {"repeats": repeats, "real_repeats": a.real_repeats, "quick": a.quick},
                         "results": results, "table": table,
                         "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
