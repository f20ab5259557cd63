"""What does the probe's feature extraction cost next to a plain batched forward, per dtype, on the same texts?

For each dtype (one model copy in memory at a time, in one process) it times, on the same n claim texts, batched and
sorted by length as FeatureExtractor does:
  plain     `model(ids, mask, logits_to_keep=last positions)`: the forward any zero-shot score needs;
  features  `FeatureExtractor.get` (no disk cache): the same forward with every layer's hidden states kept, the
            last-token state of each layer gathered, and the T/F log-odds read.
Reported: forward tokens/s, process CPU time, peak RSS of the whole process (VmHWM, model included: safetensors
weights of the file's dtype stay file-backed mmap pages, counted once touched) and its growth over the start of the
pass, the load time, and how far each dtype's zero-shot log-odds are from the first dtype's
(max |Δz|, sign agreement): what bfloat16 costs in accuracy for what it saves in time and memory.
Plain and features alternate `--reps` times so load swings on a shared machine hit both alike.

    python benchmarks/feature_cost.py --model qwen2.5-coder-1.5b-instruct --dtypes float32 bfloat16
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, md_table, write_result  # noqa: E402

from icm_rm.infra.io import peak_rss_mib, release_memory, reset_peak_rss  # noqa: E402
from icm_rm.infra.lm import load_causal_lm, right_pad  # noqa: E402
from icm_rm.scoring.features import FeatureExtractor  # noqa: E402
from icm_rm.scoring.tokens import prefix_ids  # noqa: E402

TRUTHFULQA = SHARED / "icm_unsupervised_elicitation" / "train_truthfulqa.json"


def claim_texts(n: int) -> tuple[str, list[str]]:
    """n claim prompts: TruthfulQA claims when the shared data is there, else the built-in capitals claims."""
    from icm_rm.data.spec import load_claimset

    if TRUTHFULQA.exists():
        cs = load_claimset("icm_truthfulqa", str(TRUTHFULQA))
        return "truthfulqa", [c.text for c in cs.claims[:n]]
    cs = load_claimset("builtin", None, task="capitals")
    return "capitals", [c.text for c in cs.claims[:n]]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@torch.inference_mode()
def plain_forward(model, tok, texts: list[str], batch_size: int) -> int:
    """The forward FeatureExtractor runs, without hidden states: same batches, padding and kept logits."""
    prefix, pad = prefix_ids(tok), tok.pad_token_id if tok.pad_token_id is not None else 0
    items = sorted(texts, key=len)
    tokens = 0
    for i in range(0, len(items), batch_size):
        ids = [prefix + tok(t, add_special_tokens=False).input_ids for t in items[i:i + batch_size]]
        input_ids, mask = right_pad(ids, pad)
        keep = sorted({len(s) - 1 for s in ids})
        model(input_ids=input_ids, attention_mask=mask, logits_to_keep=torch.tensor(keep))
        tokens += int(mask.sum())
    return tokens


def measure(fn) -> dict:
    release_memory()
    reset_peak_rss()
    base = rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    tokens = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = peak_rss_mib()
    return {"tokens": tokens, "wall_s": wall, "cpu_s": cpu, "tokens_per_s": tokens / wall,
            "tokens_per_cpu_s": tokens / cpu,
            "peak_rss_mib": peak, "peak_growth_mib": peak - base}


def run_dtype(model_name: str, dtype: str, texts: list[str], batch_size: int, reps: int) -> tuple[dict, np.ndarray]:
    release_memory()
    reset_peak_rss()
    t = time.perf_counter()
    model, tok = load_causal_lm(model_name, dtype, "cpu")
    load = {"load_s": time.perf_counter() - t, "rss_after_load_mib": rss_mib(), "peak_during_load_mib": peak_rss_mib()}
    plain_forward(model, tok, texts[:4], batch_size)  # warm-up (first-call allocations, oneDNN kernels)
    runs: dict[str, list[dict]] = {"plain": [], "features": []}
    z = None
    for _ in range(reps):
        runs["plain"].append(measure(lambda: plain_forward(model, tok, texts, batch_size)))
        ex = FeatureExtractor(model, tok, batch_size=batch_size, show_progress=False)

        def features():
            nonlocal z
            z = ex.get(texts)[1]
            return ex.forward_tokens
        runs["features"].append(measure(features))
    del model, tok
    release_memory()
    best = {k: max(v, key=lambda r: r["tokens_per_s"]) for k, v in runs.items()}
    row = {"dtype": dtype, **load, "runs": runs,
           "plain": best["plain"], "features": best["features"],
           "features_over_plain_time": best["features"]["wall_s"] / best["plain"]["wall_s"],
           "features_over_plain_cpu": best["features"]["cpu_s"] / best["plain"]["cpu_s"],
           "features_over_plain_peak_growth": (best["features"]["peak_growth_mib"]
                                               / max(best["plain"]["peak_growth_mib"], 1e-9))}
    return row, z


def table(rows: list[dict]) -> str:
    return md_table(
        ["dtype", "load s", "plain tok/s (per CPU-s)", "features tok/s (per CPU-s)",
         "features / plain (wall, CPU)",
         "plain peak RSS MiB (+growth)", "features peak RSS MiB (+growth)", "max |Δz| vs first", "sign agree"],
        [[r["dtype"], f"{r['load_s']:.0f}",
          f"{r['plain']['tokens_per_s']:.1f} ({r['plain']['tokens_per_cpu_s']:.1f})",
          f"{r['features']['tokens_per_s']:.1f} ({r['features']['tokens_per_cpu_s']:.1f})",
          f"{r['features_over_plain_time']:.2f}×, {r['features_over_plain_cpu']:.2f}×",
          f"{r['plain']['peak_rss_mib']:.0f} (+{r['plain']['peak_growth_mib']:.0f})",
          f"{r['features']['peak_rss_mib']:.0f} (+{r['features']['peak_growth_mib']:.0f})",
          f"{r['z_max_abs_diff']:.3f}", f"{100 * r['z_sign_agreement']:.1f}%"] for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct", help="registry name or local HF dir")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--n", type=int, default=32, help="claim texts")
    ap.add_argument("--batch-size", type=int, default=16, help="FeatureExtractor's default batch size")
    ap.add_argument("--reps", type=int, default=1, help="alternating plain/features repetitions (best kept)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1, as scoring_cost: fastest on a shared "
                                                               "2-core box; 0: torch's default)")
    ap.add_argument("--name", default="feature_cost", help="results/<name>.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    source, texts = claim_texts(args.n)
    rows, z0 = [], None
    load_avg = [os.getloadavg()[0]]
    for dtype in args.dtypes:
        row, z = run_dtype(args.model, dtype, texts, args.batch_size, args.reps)
        z0 = z if z0 is None else z0
        row["z_max_abs_diff"] = float(np.abs(z - z0).max())
        row["z_sign_agreement"] = float(np.mean(np.sign(z) == np.sign(z0)))
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
        load_avg.append(os.getloadavg()[0])
    print("\n" + table(rows))
    out = write_result(args.name, {
        "benchmark": "feature_cost", "settings": {**vars(args), "texts": source, "n_texts": len(texts),
                                                  "mean_tokens": rows[0]["plain"]["tokens"] / len(texts)},
        "load_avg_1m_per_stage": load_avg, "rows": rows, "table_md": table(rows)})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
