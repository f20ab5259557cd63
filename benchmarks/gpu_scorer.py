"""The in-context scorer on a GPU at n = 256: naive vs prefix-sharing (`HFScorer`), before and after the uncapped
leaf blocks on accelerators (issue #20 item 6: ≥ 5× naive for the SmolLM2-360M and -1.7B shapes, equal in fp32).

Per shape, in one process: a 32-claim warm-up of both scorers, the naive scorer once, then each variant of the
fast scorer `--reps` times interleaved (before, after, before, …; the first round includes the allocator growing to
n = 256); the scores' largest difference from naive; which attention kernel PyTorch picks for a masked call of the
scorer's shape; a profile (top ops by GPU and by CPU time) of one default call. Same pool as `scoring_cost.py`
(n claims of ~30 tokens). Random weights (none travel to a lent GPU); the tiny fp32 model checks equality on CUDA.

    python benchmarks/gpu_scorer.py --tokenizer DIR --out-dir DIR    # on a CUDA machine, ~3 minutes
    python benchmarks/gpu_scorer.py --tokenizer DIR --shapes tiny --n 32 --reps 1   # CPU smoke run
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scoring_cost  # noqa: E402
from common import RESULTS, machine  # noqa: E402
from gpu import SHAPES, random_model  # noqa: E402

from icm_rm.infra.io import atomic_write_json  # noqa: E402

VARIANTS = {  # name → HFScorer kwargs; "after" is the shipped default, "before" the block cap it had on every device
    "before": {"block_items": 32},
    "after": {},
}


def kernel_choice(model, device) -> dict:
    """The SDPA backend PyTorch picks for a leaf-level call of this model's shape (16 rows, 116 queries over 7,700
    slots) with an additive mask, a boolean mask, and no mask."""
    import torch

    cfg = model.config
    h, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    dt = next(model.parameters()).dtype
    q = torch.randn(16, h, 116, d, device=device, dtype=dt)
    k = torch.randn(16, h, 7700, d, device=device, dtype=dt)  # after repeat_kv, as transformers passes it
    ok = torch.rand(16, 1, 116, 7700, device=device) < 0.9
    add = torch.zeros(ok.shape, device=device, dtype=dt).masked_fill_(~ok, torch.finfo(dt).min)
    names = {int(v): name for name, v in torch.nn.attention.SDPBackend.__members__.items()}
    out = {}
    for name, mask in (("additive", add), ("bool", ok), ("none", None)):
        try:
            out[name] = names.get(int(torch._fused_sdp_choice(q, k, k, mask, 0.0, False)), "?")
        except Exception as e:  # noqa: BLE001 - a diagnostic; record whatever it says
            out[name] = f"error: {str(e)[:200]}"
    return out


def timed_variant(model, tok, claims, labels, kwargs: dict) -> dict:
    """One fast scoring call under a variant (a fresh scorer: nothing cached)."""
    from icm_rm.scoring.hf import HFScorer

    gc.collect()
    if model.device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
    try:
        return scoring_cost.timed(HFScorer(model, tok, **kwargs), claims, labels)
    except Exception as e:  # noqa: BLE001 - a variant the kernel refuses is a finding, not a crash
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}


def time_variants(model, tok, claims, labels, naive: dict, a) -> dict:
    """Each variant `a.reps` times, interleaved so that drift hits all alike; the best call, every wall time, the
    largest score difference from naive over all calls."""
    import numpy as np

    runs: dict[str, list[dict]] = {v: [] for v in a.variants}
    for _ in range(a.reps):
        for vname in a.variants:
            runs[vname].append(timed_variant(model, tok, claims, labels, VARIANTS[vname]))
    out = {}
    for vname, rows in runs.items():
        ok = [r for r in rows if "scores" in r]
        if not ok:
            out[vname] = rows[0]
            continue
        row = min(ok, key=lambda r: r["wall_s"])
        row["max_abs_diff"] = float(max(np.abs(r.pop("scores") - naive["scores"]).max() for r in ok))
        row["walls_s"] = [r["wall_s"] for r in ok]
        row["speedup_vs_naive"] = naive["wall_s"] / row["wall_s"]
        out[vname] = row
    return out


def table(doc: dict) -> str:
    """One line per shape: naive, each variant's best call and its speed-up, forwards, largest |Δ|."""
    lines = ["| model | dtype | naive s | " + " | ".join(f"{v} s (× naive, forwards)" for v in VARIANTS) +
             " | max abs diff |", "|---|---|---|" + "---|" * len(VARIANTS) + "---|"]
    for e in doc["shapes"]:
        cells = [f"{e['variants'][v]['wall_s']:.2f} ({e['variants'][v]['speedup_vs_naive']:.2f}×, "
                 f"{e['variants'][v]['forward_calls']})" if "wall_s" in e["variants"].get(v, {}) else "—"
                 for v in VARIANTS]
        diff = max((r.get("max_abs_diff", 0.0) for r in e["variants"].values()), default=0.0)
        lines.append(f"| {e['model']} | {e['dtype']} | {e['naive']['wall_s']:.2f} | " + " | ".join(cells) +
                     f" | {diff:.1e} |")
    return "\n".join(lines)


def profile_default(model, tok, claims, labels, path: Path) -> None:
    """Top ops of one default fast call, by self GPU time and by self CPU time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from icm_rm.scoring.hf import HFScorer

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if model.device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        HFScorer(model, tok).loo_scores(claims, labels, list(range(len(claims))))
        if model.device.type == "cuda":
            torch.cuda.synchronize()
    ka = prof.key_averages()
    text = ""
    for key in ("self_device_time_total", "self_cuda_time_total", "self_cpu_time_total"):
        try:
            text += f"# by {key}\n{ka.table(sort_by=key, row_limit=30, max_name_column_width=70)}\n"
        except Exception as e:  # noqa: BLE001 - sort keys differ across torch versions
            text += f"# by {key}: {e}\n"
    path.write_text(text)


def run_shape(name: str, tok, device, a, doc: dict) -> None:
    import numpy as np
    import torch

    from icm_rm.scoring.hf import HFScorer
    from icm_rm.scoring.naive import NaiveScorer

    dtype = torch.bfloat16 if device.type == "cuda" and name != "tiny" else torch.float32
    model = random_model(SHAPES[name], tok, device, dtype)
    warm_claims, warm_labels = scoring_cost.make_pool(32, seed=1)
    HFScorer(model, tok).loo_scores(warm_claims, warm_labels, list(range(32)))  # CUDA init, cuBLAS handles
    NaiveScorer(model, tok).loo_scores(warm_claims, warm_labels, list(range(32)))
    claims, labels = scoring_cost.make_pool(a.n, seed=a.n)
    entry = {"model": name, "dtype": str(dtype).removeprefix("torch."), "n": a.n,
             "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3)}
    if device.type == "cuda":
        try:
            entry["sdpa_choice"] = kernel_choice(model, device)
        except Exception as e:  # noqa: BLE001 - a diagnostic only
            entry["sdpa_choice"] = f"error: {e}"
    naive = None
    for _ in range(a.naive_reps):
        r = scoring_cost.timed(NaiveScorer(model, tok), claims, labels)
        naive = r if naive is None or r["wall_s"] < naive["wall_s"] else naive
    entry["naive"] = {k: v for k, v in naive.items() if k != "scores"}
    entry["variants"] = time_variants(model, tok, claims, labels, naive, a)
    for vname, row in entry["variants"].items():
        print(f"{name} n={a.n} {vname}: " + (row["error"] if "error" in row else
              f"best {row['wall_s']:.2f} s of {', '.join(f'{w:.2f}' for w in row['walls_s'])}; "
              f"{row['forward_calls']} forwards, {row['speedup_vs_naive']:.2f}× naive, "
              f"max |Δ| {row['max_abs_diff']:.1e}"), flush=True)
    print(f"{name} n={a.n} naive: {naive['wall_s']:.2f} s; sdpa choice {entry.get('sdpa_choice')}", flush=True)
    doc["shapes"].append(entry)
    atomic_write_json(a.out, doc)
    if name in a.profile:
        profile_default(model, tok, claims, labels, a.out_dir / f"gpu_scorer_profile_{name}_n{a.n}.txt")
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokenizer", required=True, help="a saved HF tokenizer dir (SmolLM2's)")
    p.add_argument("--shapes", nargs="*", default=["tiny", "smollm2-360m-shape", "smollm2-1.7b-shape"],
                   choices=sorted(SHAPES))
    p.add_argument("--n", type=int, default=256, help="pool size")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--reps", type=int, default=3, help="interleaved rounds of the fast variants (best kept)")
    p.add_argument("--naive-reps", type=int, default=1)
    p.add_argument("--profile", nargs="*", default=["smollm2-360m-shape"], help="shapes to profile")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    a = p.parse_args()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    a.out = a.out_dir / "gpu_scorer.json"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    doc = {"machine": machine(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "n": a.n, "shapes": []}
    if device.type == "cuda":
        doc["machine"]["gpu"] = torch.cuda.get_device_name(0)
    for name in a.shapes:
        run_shape(name, tok, device, a, doc)
    doc["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(a.out, doc)
    print(table(doc))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
