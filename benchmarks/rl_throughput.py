"""RL throughput: our PPO vs TRL 1.12's PPOTrainer (the last TRL line that ships one) on the same tiny model, batch
and lengths; TRL GRPO (through rl.grpo) alongside. Prints a table and writes benchmarks/results/rl_throughput.json.

    python benchmarks/rl_throughput.py            # ~5-10 min on 2 CPU cores, first run also builds the TRL 1.12 venv
    python benchmarks/rl_throughput.py --quick    # fewer steps

TRL 1.12 needs its own environment (TRL 1.16 dropped PPO): the script creates a venv under
~/.cache/icm_rm/bench-venvs/trl112 with torch==2.13.0 first, then trl==1.12.0 and the same transformers/accelerate
versions as this project's venv (TRL 1.12 accepts transformers ≥ 4.56.2), so only the trainer differs. If that venv
cannot be built or TRL 1.12's PPO cannot run, the reason goes into the table and the JSON.

Each trainer runs in its own subprocess (peak RSS = that process's ru_maxrss), one torch thread each, and the best of
`--repeats` runs counts (the machine is shared). samples/s = prompts (PPO) or completions (GRPO) per second of
steady-state step time (every step after the first: rollout + scoring + advantages + all PPO epochs); the first step's
time and the rate including it are reported beside it. Model loading is excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # testkit: the tests' tiny random models
RESULTS = ROOT / "benchmarks" / "results" / "rl_throughput.json"
VENV = Path(os.environ.get("ICM_RM_BENCH_VENVS", Path.home() / ".cache" / "icm_rm" / "bench-venvs")) / "trl112"


# ------------------------------------------------------------------------------------------------ shared setup

def make_assets(work: Path, hidden: int, layers: int, n_prompts: int, shape: dict | None = None,
                tokenizer_dir: str | None = None) -> dict:
    """A random-weight policy and RM with the same tokenizer (TRL's PPO scores the policy's own token ids): the tiny
    Llama of tests/testkit/tiny_models.py, or a LlamaConfig of `shape` (real sizes, for the GPU benchmark) with a saved tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    from testkit.tiny_models import tiny_llama, tiny_tokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir) if tokenizer_dir else tiny_tokenizer()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if shape:
        torch.manual_seed(0)
        policy = LlamaForCausalLM(LlamaConfig(**shape, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                                              eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    else:
        policy = tiny_llama(tok, hidden_size=hidden, num_layers=layers, num_heads=4, num_kv_heads=2, seed=0)
    policy.save_pretrained(work / "policy")
    tok.save_pretrained(work / "policy")
    torch.manual_seed(1)
    cfg = {k: v for k, v in policy.config.to_dict().items() if k not in ("id2label", "label2id")}
    rm = LlamaForSequenceClassification(policy.config.__class__(**cfg, num_labels=1))
    rm.config.reward_mean, rm.config.reward_std = 0.0, 1.0
    rm.save_pretrained(work / "rm")
    tok.save_pretrained(work / "rm")
    prompts = [f"Question {i}: what is {i} plus {i + 1}? Answer briefly." for i in range(n_prompts)]
    (work / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return {"policy": str(work / "policy"), "rm": str(work / "rm"), "prompts": str(work / "prompts.jsonl")}


# ------------------------------------------------------------------------------------------------ workers

def worker_ours(a: argparse.Namespace) -> dict:
    from rl.ppo.config import PPOConfig
    from rl.ppo.trainer import PPOTrainer

    cfg = PPOConfig(model=a.policy, reward_model=a.rm, prompts=a.prompts, output_dir=a.out, max_new_tokens=a.length,
                    temperature=0.7, num_steps=a.steps, rollout_batch_size=a.batch, num_mini_batches=1,
                    micro_batch_size=a.micro, ppo_epochs=a.epochs, learning_rate=3e-6, kl_coef=0.05, save_steps=0,
                    tensorboard=False, plot_steps=10_000, max_prompt_length=64, seed=0,
                    mixed_precision=a.precision)
    trainer = PPOTrainer(cfg)
    times = []
    for _ in range(a.steps):               # the body of train(), minus logging and checkpoints
        t0 = time.perf_counter()
        trainer.step()
        times.append(time.perf_counter() - t0)
    return {"step_s": times}


def worker_trl112(a: argparse.Namespace) -> dict:
    import datasets
    import torch
    import trl
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tok = AutoTokenizer.from_pretrained(a.policy)
    prompts = [json.loads(line)["prompt"] for line in Path(a.prompts).read_text().splitlines()]
    ds = datasets.Dataset.from_dict({"input_ids": [tok(p)["input_ids"][-64:] for p in prompts]})
    args = PPOConfig(output_dir=a.out, per_device_train_batch_size=a.micro, gradient_accumulation_steps=a.batch // a.micro,
                     num_mini_batches=1, num_ppo_epochs=a.epochs, total_episodes=a.batch * a.steps,
                     response_length=a.length, temperature=0.7, local_rollout_forward_batch_size=a.batch,
                     learning_rate=3e-6, kl_coef=0.05, num_sample_generations=0, report_to="none",
                     save_strategy="no", seed=0, stop_token="eos", logging_steps=10_000, disable_tqdm=True,
                     bf16=a.precision == "bf16", fp16=False, use_cpu=not torch.cuda.is_available())
    trainer = PPOTrainer(args=args, processing_class=tok, model=AutoModelForCausalLM.from_pretrained(a.policy),
                         ref_model=AutoModelForCausalLM.from_pretrained(a.policy),
                         reward_model=AutoModelForSequenceClassification.from_pretrained(a.rm, num_labels=1),
                         value_model=AutoModelForSequenceClassification.from_pretrained(a.policy, num_labels=1),
                         train_dataset=ds)
    from transformers import TrainerCallback

    marks = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *args, **kw):
            marks.append(time.perf_counter())

        def on_step_end(self, *args, **kw):
            marks.append(time.perf_counter())

    trainer.add_callback(Clock())
    trainer.train()
    return {"step_s": [b - a for a, b in zip(marks, marks[1:])], "trl_version": trl.__version__}


def worker_grpo(a: argparse.Namespace) -> dict:
    from rl.grpo import GRPOConfig, train_grpo

    cfg = GRPOConfig(model=a.policy, reward_model=a.rm, prompts=a.prompts, output_dir=a.out, num_steps=a.steps,
                     per_device_batch_size=a.batch, num_generations=4, max_new_tokens=a.length, temperature=0.7,
                     learning_rate=3e-6, beta=0.04, save_steps=10_000, tensorboard=False, seed=0,
                     mixed_precision=a.precision)
    train_grpo(cfg)
    rows = [json.loads(line) for line in (Path(a.out) / "metrics.jsonl").read_text().splitlines()]
    return {"step_s": [r["grpo/step_time"] for r in rows if "grpo/step_time" in r]}   # TRL's own per-step clock


WORKERS = {"ours": worker_ours, "trl112": worker_trl112, "grpo": worker_grpo}


def run_worker(python: str, name: str, assets: dict, out: Path, a: argparse.Namespace, steps: int,
               pythonpath: str = "") -> dict:
    """Run one trainer in a fresh process; `pythonpath` goes before the repo (e.g. a TRL 1.12 install target)."""
    cmd = [python, __file__, "--worker", name, "--policy", assets["policy"], "--rm", assets["rm"], "--prompts",
           assets["prompts"], "--out", str(out), "--steps", str(steps), "--batch", str(a.batch), "--micro",
           str(a.micro), "--epochs", str(a.epochs), "--length", str(a.length),
           "--precision", getattr(a, "precision", "no")]
    return worker_result(cmd, pythonpath)


def worker_result(cmd: list[str], pythonpath: str = "") -> dict:
    """Run a worker command (one torch thread, offline) and return the JSON of its last `RESULT ` line, or
    {"error": ...} with the tail of its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join(x for x in (pythonpath, str(ROOT), os.environ.get("PYTHONPATH", "")) if x)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[-1500:]}
    return json.loads(lines[-1][len("RESULT "):])


# ------------------------------------------------------------------------------------------------ TRL 1.12 venv

def ensure_trl112_venv() -> tuple[str | None, str | None]:
    """(python of the TRL 1.12 venv, None) or (None, why it could not be built)."""
    from importlib.metadata import version

    python = VENV / "bin" / "python"
    want = {"trl": "1.12.0", "transformers": version("transformers"), "accelerate": version("accelerate")}
    check = "import torch, trl, transformers; print(torch.__version__, trl.__version__, transformers.__version__)"
    if python.exists():
        out = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
        if out.returncode == 0 and f" {want['trl']} {want['transformers']}" in out.stdout:
            return str(python), None
    steps = [[sys.executable, "-m", "venv", "--clear", str(VENV)],
             [str(python), "-m", "pip", "install", "-q", "torch==2.13.0"],
             [str(python), "-m", "pip", "install", "-q", f"trl=={want['trl']}", f"transformers=={want['transformers']}",
              f"accelerate=={want['accelerate']}"]]
    for cmd in steps:
        print("+", " ".join(cmd[-4:]), flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            return None, f"`{' '.join(cmd[2:])}` failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}"
    out = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if out.returncode != 0:
        return None, f"TRL 1.12 venv does not import: {out.stderr.strip().splitlines()[-1:]}"
    return str(python), None


# ------------------------------------------------------------------------------------------------ main

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4 steps per run, 1 repeat")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--batch", type=int, default=32, help="prompts per PPO step / completions per GRPO step")
    p.add_argument("--micro", type=int, default=8)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--length", type=int, default=32, help="response tokens")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--precision", default="no", choices=("no", "bf16"), help="mixed precision of every trainer")
    p.add_argument("--skip-trl112", action="store_true")
    p.add_argument("--output", default=None, help="JSON path (default results/rl_throughput[_quick].json)")
    # worker mode
    p.add_argument("--worker", choices=sorted(WORKERS))
    for name in ("--policy", "--rm", "--prompts", "--out"):
        p.add_argument(name)
    a = p.parse_args()

    if a.worker:
        import torch

        torch.set_num_threads(1)
        res = WORKERS[a.worker](a)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        steps = res["step_s"]
        res["first_step_s"] = steps[0]
        # steady state: steps after the first (one-time costs: lazy imports, allocator warm-up)
        res["samples_per_s"] = a.batch * (len(steps) - 1) / sum(steps[1:]) if len(steps) > 1 else a.batch / steps[0]
        res["samples_per_s_incl_first"] = a.batch * len(steps) / sum(steps)
        print("RESULT " + json.dumps(res), flush=True)
        return 0

    if a.quick:
        a.steps, a.repeats = 4, 1
    setup = {k: getattr(a, k) for k in ("steps", "repeats", "batch", "micro", "epochs", "length", "hidden", "layers")}
    trl_python, trl_why = (None, "skipped (--skip-trl112)") if a.skip_trl112 else ensure_trl112_venv()
    runs: dict[str, list[dict]] = {"ours_ppo": [], "trl112_ppo": [], "trl_grpo": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        assets = make_assets(work, a.hidden, a.layers, n_prompts=max(64, a.batch * 2))
        for r in range(a.repeats):            # interleaved, so a busy moment hits both sides alike
            runs["ours_ppo"].append(run_worker(sys.executable, "ours", assets, work / f"ours{r}", a, a.steps))
            if trl_python:
                runs["trl112_ppo"].append(run_worker(trl_python, "trl112", assets, work / f"trl{r}", a, a.steps))
            runs["trl_grpo"].append(run_worker(sys.executable, "grpo", assets, work / f"grpo{r}", a, a.steps))

    def best(name):
        ok = [x for x in runs[name] if "error" not in x]
        return max(ok, key=lambda x: x["samples_per_s"]) if ok else None

    ours, trl112, grpo = best("ours_ppo"), best("trl112_ppo"), best("trl_grpo")
    if trl112 is None and trl_why is None:
        trl_why = next((x["error"] for x in runs["trl112_ppo"] if "error" in x), "no run")
    ratio = ours["samples_per_s"] / trl112["samples_per_s"] if ours and trl112 else None
    result = {"setup": setup, "machine": machine(), "ours_ppo": ours, "trl112_ppo": trl112,
              "trl112_unavailable": trl_why, "trl_grpo": grpo, "ppo_speed_ratio_ours_over_trl112": ratio,
              "goal": "ours/trl112 samples/s ≥ 1.0", "all_runs": runs,
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}

    rows = [("ours PPO (rl.ppo)", ours), ("TRL 1.12 PPOTrainer", trl112), ("TRL GRPO (rl.grpo)", grpo)]
    print(f"\nRL throughput — tiny Llama h={a.hidden} L={a.layers}, batch {a.batch}, {a.length} new tokens, "
          f"{a.epochs} PPO epochs, micro {a.micro}, {a.steps} steps, best of {a.repeats}")
    print(f"{'trainer':<24}{'samples/s':>12}{'incl. 1st':>11}{'1st step s':>12}{'peak RSS MB':>14}")
    for name, r in rows:
        if r:
            print(f"{name:<24}{r['samples_per_s']:>12.2f}{r['samples_per_s_incl_first']:>11.2f}{r['first_step_s']:>12.2f}"
                  f"{r['peak_rss_mb']:>14.0f}")
        else:
            why = trl_why if "1.12" in name else next((x.get("error") for x in runs["trl_grpo"]), "")
            print(f"{name:<24}{'n/a':>12}   ({why})")
    if ratio is not None:
        print(f"ours / TRL 1.12 PPO samples/s: {ratio:.2f}× (goal ≥ 1.0×)")
    out = Path(a.output or (RESULTS.with_name("rl_throughput_quick.json") if a.quick else RESULTS))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
