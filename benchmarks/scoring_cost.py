"""What does exact leave-one-out scoring cost: naive (one forward per query) vs KV-cache prefix sharing (HFScorer)?

For each model and pool size n (claims of ~30 tokens in pairs, every claim labeled, every claim a query) it runs
NaiveScorer and HFScorer side by side on the same pool and reports forward tokens, forward calls, wall-clock,
process CPU time and peak memory (RSS growth polled every 5 ms on CPU; torch's peak allocation on CUDA), the
largest score difference, and "re-scoring after one flip" (score, flip one label, score again: the second call's
tokens, time and cache hits; then flip back, which the score cache serves for free).

Models: `tiny` (the 2-layer random Llama of `tests/testkit/tiny_models.py`: token counts and scorer overhead) and the real default
model (`--model`, default smollm2-135m when it is cached, else the converted dir in /tmp/wheels/smol_hf; skipped with
a message when neither exists).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scoring_cost.py --quick   # tiny n ≤ 128 + real n = 16, minutes
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scoring_cost.py           # tiny n ≤ 256 + real n = 32, 64; ~20 min

On a CPU shared with other jobs torch's one-OpenMP-thread-per-core default makes small ops wait at barriers for
descheduled threads, so the default here is `--threads 1`; the load average is recorded at start and end.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # testkit: the tests' tiny random models

from icm_rm.data.records import Claim  # noqa: E402
from icm_rm.infra.io import atomic_write_json, package_versions, peak_rss_mib, release_memory, reset_peak_rss  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FALLBACK_REAL = "/tmp/wheels/smol_hf"

COUNTRIES = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"),
             ("Peru", "Lima"), ("Chile", "Santiago"), ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Norway", "Oslo")]
PLACES = ["coast", "river", "mountains", "border", "lake", "desert"]


def make_pool(n: int, seed: int = 0) -> tuple[list[Claim], list[bool]]:
    """n claims of ~30 tokens ("Claim: The capital of X is Y, … .\\nI think this claim is"), in pairs, labeled."""
    rng = random.Random(seed)
    claims = []
    for i in range(n):
        country, city = rng.choice(COUNTRIES)
        named = city if rng.random() < 0.5 else rng.choice(COUNTRIES)[1]
        text = (f"Claim: The capital of {country} is {named}, a city of about {rng.randint(1, 20)} million people "
                f"near the {rng.choice(PLACES)}.\nI think this claim is")
        claims.append(Claim(id=f"c{i}", group=f"g{i // 2}", key="A>B" if i % 2 == 0 else "B>A", text=text))
    return claims, [rng.random() < 0.5 for _ in range(n)]


class PeakMemory:
    """Peak memory growth over a block, in MiB: torch's peak allocation on CUDA, else the kernel's peak RSS (VmHWM,
    reset on entry)."""

    def __init__(self, device):
        self.cuda = getattr(device, "type", "cpu") == "cuda"
        self.peak_mb = 0.0

    def __enter__(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated() / 2**20
            return self
        release_memory()
        reset_peak_rss()
        self._base = peak_rss_mib()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20 - self._base
        else:
            self.peak_mb = peak_rss_mib() - self._base


def timed(scorer, claims, labels) -> dict:
    """One loo_scores call over every claim: scores and the work it took."""
    before = scorer.stats.as_dict()
    with PeakMemory(getattr(scorer, "device", None) or scorer.runner.device) as mem:
        wall, cpu = time.perf_counter(), time.process_time()
        scores = scorer.loo_scores(claims, labels, list(range(len(claims))))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = scorer.stats.as_dict()
    return {"scores": scores, "wall_s": wall, "cpu_s": cpu, "peak_mb": mem.peak_mb,
            **{k: after[k] - before.get(k, 0) for k in ("forward_tokens", "forward_calls", "cache_hits")}}


def run_case(model_name: str, model, tok, n: int) -> dict:
    from icm_rm.scoring.hf import HFScorer
    from icm_rm.scoring.naive import NaiveScorer

    claims, labels = make_pool(n, seed=n)
    tokens_per_claim = float(np.mean([len(tok(c.text, add_special_tokens=False).input_ids) for c in claims]))
    fast_scorer = HFScorer(model, tok)
    fast = timed(fast_scorer, claims, labels)
    naive = timed(NaiveScorer(model, tok), claims, labels)
    flipped = list(labels)
    flipped[n // 3] = not flipped[n // 3]
    rescore = timed(fast_scorer, claims, flipped)
    back = timed(fast_scorer, claims, labels)
    row = {"model": model_name, "n": n, "tokens_per_claim": round(tokens_per_claim, 1),
           "bound_n_over_log2n": round(n / math.log2(n), 1),
           "fast": {k: v for k, v in fast.items() if k != "scores"},
           "rescore_after_flip": {k: v for k, v in rescore.items() if k != "scores"},
           "flip_back": {k: v for k, v in back.items() if k != "scores"}}
    assert np.array_equal(back["scores"], fast["scores"])
    row["naive"] = {k: v for k, v in naive.items() if k != "scores"}
    row["max_abs_diff"] = float(np.abs(naive["scores"] - fast["scores"]).max())
    row["token_ratio"] = naive["forward_tokens"] / fast["forward_tokens"]
    row["wall_ratio"] = naive["wall_s"] / fast["wall_s"]
    row["cpu_ratio"] = naive["cpu_s"] / fast["cpu_s"]
    return row


def real_model_dir(name: str) -> str | None:
    """A local dir for `name` without downloading anything: a cached registry model, a dir, or the fallback."""
    try:
        from icm_rm.infra.model_registry import REGISTRY, is_cached
        from icm_rm.infra.models import resolve_model

        if name in REGISTRY and is_cached(name):
            return resolve_model(name)
    except ImportError:
        pass
    for cand in (name, FALLBACK_REAL):
        if Path(cand).is_dir():
            return cand
    return None


def load(name: str):
    if name == "tiny":
        from testkit.tiny_models import tiny_llama, tiny_tokenizer

        tok = tiny_tokenizer()
        return tiny_llama(tok, max_position_embeddings=16384), tok  # n = 256 pools need ~8k positions
    from icm_rm.infra.lm import load_causal_lm

    return load_causal_lm(name, "float32", "cpu", set_pad_token=False, attn_implementation="sdpa")


def table(rows: list[dict]) -> str:
    head = ("| model | n | tok/claim | naive tokens | fast tokens | token ratio | bound n/log₂n | naive s | fast s "
            "| wall ratio | cpu ratio | naive peak MiB | fast peak MiB | max abs diff | after-flip tokens "
            "| after-flip s | after-flip hits | flip-back s |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        nv, f, fl, bk = r["naive"], r["fast"], r["rescore_after_flip"], r["flip_back"]
        lines.append(
            f"| {r['model']} | {r['n']} | {r['tokens_per_claim']} | {nv['forward_tokens']} | {f['forward_tokens']} "
            f"| {r['token_ratio']:.1f}× | {r['bound_n_over_log2n']}× | {nv['wall_s']:.2f} | {f['wall_s']:.2f} "
            f"| {r['wall_ratio']:.1f}× | {r['cpu_ratio']:.1f}× | {nv['peak_mb']:.0f} | {f['peak_mb']:.0f} "
            f"| {r['max_abs_diff']:.1e} | {fl['forward_tokens']} | {fl['wall_s']:.2f} | {fl['cache_hits']}/{r['n']} "
            f"| {bk['wall_s']:.3f} |")
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small run: tiny n ≤ 128, real model n = 16")
    p.add_argument("--model", default="smollm2-135m", help="real model: registry name or local HF dir")
    p.add_argument("--tiny-sizes", type=int, nargs="*", help="pool sizes for the tiny model")
    p.add_argument("--real-sizes", type=int, nargs="*", help="pool sizes for the real model")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/scoring_cost[_quick].json)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tiny_sizes = args.tiny_sizes if args.tiny_sizes is not None else (
        [16, 32, 64, 128] if args.quick else [16, 32, 64, 128, 256])
    real_sizes = args.real_sizes if args.real_sizes is not None else ([16] if args.quick else [32, 64])
    machine = {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "cuda": torch.cuda.is_available(), "load_avg_at_start": list(os.getloadavg()), **package_versions()}
    rows, notes = [], []
    plan = [("tiny", tiny_sizes)]
    real = real_model_dir(args.model) if real_sizes else None
    if real_sizes and real is None:
        notes.append(f"real model '{args.model}' not available (not cached, no local dir, no {FALLBACK_REAL}): "
                     "skipped; run `icm-rm models fetch` first")
        print(notes[-1])
    elif real_sizes:
        plan.append((real, real_sizes))
    for name, sizes in plan:
        model, tok = load(name)
        label = "tiny" if name == "tiny" else Path(name).name
        for n in sizes:
            row = run_case(label, model, tok, n)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
        del model
    machine["load_avg_at_end"] = list(os.getloadavg())
    print()
    print(table(rows))
    out = args.out or RESULTS / ("scoring_cost_quick.json" if args.quick else "scoring_cost.json")
    atomic_write_json(out, {"benchmark": "scoring_cost", "date": datetime.now(timezone.utc).isoformat(),
                            "settings": {"threads": args.threads, "quick": args.quick, "model": args.model,
                                         "tiny_sizes": tiny_sizes, "real_sizes": real_sizes},
                            "machine": machine, "rows": rows, "notes": notes, "table": table(rows)})
    print(f"\nwrote {out}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
