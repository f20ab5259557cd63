"""How fast is `icm-rm serve-rm` under concurrent load, with and without micro-batching?

For each RM and each batching mode, starts the real server (`python -m icm_rm.cli serve-rm`, its own process so the
load generator does not share its GIL) on a loopback port the OS picks, then fires `--requests` POST /score requests
of `--samples` (prompt, completion) pairs each from `--concurrency` client threads (one connection per request, as
`rl.rewards.HTTPRewardModel` does), bounded by `--max-seconds` per run. Reports per-request latency p50/p99,
requests/s, samples/s, errors and how many forwards the server ran, as a table and as JSON with machine info.

RMs: `tiny` (a 2-layer random Llama RM: measures the server's own overhead) and `smollm2` (SmolLM2-135M with a
random score head: a realistic forward cost; needs the cached default model), or `--model DIR` for your own RM.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve_load.py                 # tiny + smollm2, ~2 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve_load.py --rms tiny --requests 500

On a CPU shared with other jobs, torch's default of one OpenMP thread per core makes every op wait at a barrier for a
descheduled thread (measured 20–70× slower per forward at load average 7 on 2 cores), so the server runs with
`--torch_threads 1` here unless `--torch-threads 0`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # testkit: the tests' tiny random models

from icm_rm.infra.io import atomic_write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "serve_load.json"


# ----------------------------------------------------------------------------------------------- reward models

def make_rm(kind: str, out: Path) -> Path:
    """A reward-model dir of the given kind (random score head; reward_mean/std in config.json)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    if kind == "tiny":
        from testkit.tiny_models import tiny_llama, tiny_tokenizer

        tok = tiny_tokenizer()
        cfg = tiny_llama(tok).config
        cfg.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(cfg)
    elif kind == "smollm2":
        from icm_rm.infra.models import resolve_model

        base = resolve_model("smollm2-135m")
        tok = AutoTokenizer.from_pretrained(base)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model.config.pad_token_id = tok.pad_token_id
    else:
        raise SystemExit(f"unknown RM kind {kind!r}")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(reward_mean=0.0, reward_std=1.0)
    cfg_path.write_text(json.dumps(cfg))
    return out


def workload(n: int, samples: int) -> list[dict]:
    from icm_rm.data.builtin import builtin_prompts

    prompts = builtin_prompts("capitals", "test")
    out = []
    for i in range(n):
        idx = [(i * samples + j) % len(prompts) for j in range(samples)]
        out.append({"prompts": [prompts[k] for k in idx],
                    "completions": [f"I believe the answer is number {k}, and here is why it is right." for k in idx]})
    return out


# ----------------------------------------------------------------------------------------------- one run

class Server:
    """`icm-rm serve-rm` in a child process on a free loopback port."""

    def __init__(self, model: Path, micro_batch: bool, max_micro_batch: int, torch_threads: int | None,
                 timeout_s: float):
        # request_timeout_s = the run's bound: a request queued behind the model is measured, not turned into a 503
        cmd = [sys.executable, "-m", "icm_rm.cli", "serve-rm", "--model", str(model), "--port", "0", "--device", "cpu",
               "--micro_batch", str(micro_batch).lower(), "--max_micro_batch", str(max_micro_batch),
               "--request_timeout_s", str(timeout_s)]
        if torch_threads:
            cmd += ["--torch_threads", str(torch_threads)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        if " on http" not in line:
            self.proc.kill()
            raise SystemExit(f"server did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split(" on ", 1)[1].split(" ", 1)[0]

    def stop(self) -> str:
        self.proc.terminate()  # graceful: the server finishes requests still queued after a bounded run
        try:
            out, _ = self.proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.strip().splitlines()[-1] if out.strip() else ""


def post(url: str, payload: dict, timeout: float) -> tuple[bool, float]:
    body = json.dumps(payload).encode()
    t0 = time.perf_counter()
    req = urllib.request.Request(url + "/score", data=body, headers={"Content-Type": "application/json"},
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            ok = resp.status == 200 and len(json.loads(resp.read())["rewards"]) == len(payload["completions"])
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        ok = False
    return ok, time.perf_counter() - t0


def run_load(url: str, requests: list[dict], concurrency: int, max_seconds: float) -> dict:
    post(url, requests[0], max_seconds)  # warm-up: first forward, allocator
    latencies, errors = [], 0
    lock = threading.Lock()

    def one(payload):
        nonlocal errors
        ok, dt = post(url, payload, max_seconds)
        with lock:
            if ok:
                latencies.append(dt)
            else:
                errors += 1

    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=concurrency)
    futures = [pool.submit(one, p) for p in requests]
    done, not_done = wait(futures, timeout=max_seconds)
    wall = time.perf_counter() - t0
    for f in not_done:
        f.cancel()
    pool.shutdown(wait=True, cancel_futures=True)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    n_ok = len(latencies)
    samples = sum(len(p["completions"]) for p in requests) * n_ok / len(requests)
    return {"requests": len(requests), "ok": n_ok, "errors": errors + len(not_done), "wall_s": round(wall, 3),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 1),
            "requests_per_s": round(n_ok / wall, 1), "samples_per_s": round(samples / wall, 1)}


# ----------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rms", nargs="+", default=["tiny", "smollm2"], help="RM kinds: tiny, smollm2")
    p.add_argument("--model", default=None, help="an RM dir to benchmark instead of --rms")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--samples", type=int, default=2, help="(prompt, completion) pairs per request")
    p.add_argument("--max-micro-batch", type=int, default=64)
    p.add_argument("--max-seconds", type=float, default=300, help="bound on each run's wall time")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="server's CPU threads per forward (0 = torch's default); 1 is steady on a shared CPU")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    machine_doc = machine()
    requests = workload(args.requests, args.samples)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rms = {"custom": Path(args.model)} if args.model else {k: make_rm(k, Path(tmp) / k) for k in args.rms}
        for name, path in rms.items():
            for micro in (True, False):
                server = Server(path, micro, args.max_micro_batch, args.torch_threads, args.max_seconds)
                try:
                    res = run_load(server.url, requests, args.concurrency, args.max_seconds)
                finally:
                    res_line = server.stop()
                batches = res_line.rsplit(" in ", 1)[-1].split()[0] if " model batches" in res_line else None
                rows.append({"rm": name, "micro_batch": micro, **res,
                             "model_batches": int(batches) if batches and batches.isdigit() else None,
                             "server": res_line})
                print(f"{name:8s} micro_batch={str(micro):5s} {json.dumps(res)}", flush=True)

    header = f"{'rm':8s} {'batching':9s} {'ok/req':>9s} {'err':>4s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>7s} " \
             f"{'samples/s':>9s} {'batches':>7s}"
    print("\n" + header)
    for r in rows:
        print(f"{r['rm']:8s} {'micro' if r['micro_batch'] else 'off':9s} {r['ok']:>4d}/{r['requests']:<4d} "
              f"{r['errors']:>4d} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['requests_per_s']:>7.1f} "
              f"{r['samples_per_s']:>9.1f} {r['model_batches'] or '-':>7}")
    result = {"benchmark": "serve_load", "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "machine": {**machine_doc, "load_avg_at_end": list(os.getloadavg())}, "rows": rows,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
