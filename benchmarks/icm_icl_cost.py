"""How long would one ICM-ICL search (the paper's in-context scorer) take with a given model on this machine?

Two measurements, multiplied:
  work   forward tokens of complete ICM searches (default SearchConfig: K = 8 seeds, ≤ 3000 iterations, patience 300)
         over TruthfulQA pools of n claims, run for real with HFScorer on a tiny random model that shares the target
         model's tokenizer: token accounting (prefix sharing, score cache, memo) is exact for those search dynamics,
         but the dynamics (how many flips are proposed) are a random model's, not the target's: an order of magnitude;
  speed  seconds per forward token of HFScorer on the target model, measured on one full leave-one-out scoring of
         an n_speed-claim pool (all labeled), same context mode.
Both for full contexts (every labeled claim in context, the paper's method) and capped ones (`--max-demos`).

    python benchmarks/icm_icl_cost.py --model qwen2.5-coder-1.5b-instruct --dtype bfloat16 --sizes 16 32 64
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # testkit: the tests' tiny random models
from common import SHARED, md_table, write_result  # noqa: E402
from testkit.tiny_models import tiny_llama  # noqa: E402

from icm_rm.data.spec import load_claimset  # noqa: E402
from icm_rm.data.task_registry import get_task  # noqa: E402
from icm_rm.infra.lm import load_causal_lm  # noqa: E402
from icm_rm.label.search import ICMSearch, SearchConfig  # noqa: E402
from icm_rm.scoring.hf import HFScorer  # noqa: E402

TRUTHFULQA = SHARED / "icm_unsupervised_elicitation" / "train_truthfulqa.json"


def pool(n: int, path: Path = TRUTHFULQA):
    """The first n claims of the first (n + 3) // 4 TruthfulQA groups (seed 0)."""
    cs = load_claimset("icm_truthfulqa", str(path), limit_groups=(n + 3) // 4, seed=0)
    return cs.claims[:n]


def search_work(tok, claims, max_demos: int | None, seed: int) -> dict:
    """One complete default search with a tiny random model on the target tokenizer: its forward tokens."""
    model = tiny_llama(tok, hidden_size=32, max_position_embeddings=32768)
    scorer = HFScorer(model, tok, max_demos=max_demos)
    search = ICMSearch(claims, scorer, get_task("truthfulqa").rules, SearchConfig(seed=seed))
    t = time.perf_counter()
    r = search.run()
    st = r.chains[0]
    return {"forward_tokens": scorer.stats.forward_tokens, "iterations": st.iteration, "proposals": st.proposals,
            "accepted": st.accepted, "evaluations": search.evaluations, "tiny_s": time.perf_counter() - t}


@torch.inference_mode()
def speed(model, tok, claims, max_demos: int | None) -> dict:
    """Seconds per forward token of one all-labeled LOO scoring on the real model (and, on CUDA, its peak memory)."""
    labels = [bool(x) for x in np.random.default_rng(0).random(len(claims)) < 0.5]
    scorer = HFScorer(model, tok, max_demos=max_demos)
    cuda = scorer.runner.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    wall, cpu = time.perf_counter(), time.process_time()
    scorer.loo_scores(claims, labels, list(range(len(claims))))  # returns host numbers: the GPU work is done
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tokens = scorer.stats.forward_tokens
    return {"n": len(claims), "forward_tokens": tokens, "forward_calls": scorer.stats.forward_calls, "wall_s": wall,
            "cpu_s": cpu, "s_per_token": wall / tokens, "cpu_s_per_token": cpu / tokens, "tokens_per_s": tokens / wall,
            "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64], help="pool sizes (claims)")
    ap.add_argument("--seeds", type=int, default=2, help="tiny-model searches per size and mode")
    ap.add_argument("--max-demos", type=int, default=8, help="the capped mode's demonstrations per query")
    ap.add_argument("--speed-n", type=int, default=16, help="pool size of the real-model speed measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="icm_icl_cost")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    modes = {"full": None, f"max_demos={args.max_demos}": args.max_demos}
    model, tok = load_causal_lm(args.model, args.dtype, "cpu", attn_implementation="sdpa")
    speeds = {m: speed(model, tok, pool(args.speed_n), md) for m, md in modes.items()}
    for m, s in speeds.items():
        print(f"[speed] {m}: {s['forward_tokens']} tokens in {s['wall_s']:.0f} s wall ({s['cpu_s']:.0f} s CPU)",
              flush=True)
    del model
    rows, out_rows = [], []
    for n in args.sizes:
        claims = pool(n)
        for m, md in modes.items():
            runs = [search_work(tok, claims, md, seed) for seed in range(args.seeds)]
            tokens = float(np.mean([r["forward_tokens"] for r in runs]))
            est_h = tokens * speeds[m]["s_per_token"] / 3600
            est_cpu_h = tokens * speeds[m]["cpu_s_per_token"] / 3600
            out_rows.append({"n": n, "mode": m, "runs": runs, "mean_forward_tokens": tokens,
                             "estimated_wall_h": est_h, "estimated_cpu_h": est_cpu_h})
            rows.append([n, m, f"{tokens:,.0f}", f"{np.mean([r['iterations'] for r in runs]):.0f}",
                         f"{np.mean([r['proposals'] for r in runs]):.0f}", f"{est_h:.1f}", f"{est_cpu_h:.1f}"])
            print(md_table(["n", "context", "forward tokens", "iterations", "proposals", "est. wall h",
                            "est. CPU h"], [rows[-1]]).splitlines()[-1], flush=True)
    table = md_table(["n", "context", "forward tokens / search", "iterations", "proposals",
                      "est. wall h (this load)", "est. CPU h (1 thread)"], rows)
    print("\n" + table)
    path = write_result(args.name, {"benchmark": "icm_icl_cost", "settings": vars(args), "speed": speeds,
                                    "rows": out_rows, "table_md": table,
                                    "load_avg_1m_at_end": os.getloadavg()[0]})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
