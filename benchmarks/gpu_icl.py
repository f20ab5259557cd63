"""How large a pool does ICM-ICL (the paper's in-context search) finish on one GPU with a 1.5B model? (issue 17)

No weights travel to a lent GPU machine, so the model is a random-weight Qwen2ForCausalLM of Qwen2.5-Coder-1.5B's
shape (its config.json and tokenizer, bf16): it times the same forwards, but its search dynamics (how many flips are
proposed and accepted) are a random model's, not the real one's, so the search rows are an order of magnitude.
Pools are TruthfulQA claims (the first n of the train file's groups, as `icm_icl_cost.py`).

    python benchmarks/gpu_icl.py --model-dir DIR --truthfulqa train_truthfulqa.json --sizes 16 32 64 128

Two measurements per pool size n:
  rescore  one leave-one-out scoring of all n claims, every other claim in context (what one accepted flip costs);
  search   one complete single-chain ICM-ICL search, the elicitation runs' settings (K = 8 seeds, ≤ 3000 iterations,
           patience 300, one chain, no verdict chains), stopped at `--search-cap` seconds if it has not finished.
Each row is written as soon as it is measured (results/gpu_icl.json), so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import md_table, write_result  # noqa: E402
from icm_icl_cost import pool, speed  # noqa: E402  (one re-score: the same measurement as on CPU)

from icm_rm.data.task_registry import get_task  # noqa: E402
from icm_rm.label.search import ICMSearch, SearchConfig  # noqa: E402
from icm_rm.scoring.hf import HFScorer  # noqa: E402


class _Deadline(Exception):
    pass


class CappedScorer(HFScorer):
    """HFScorer that stops the search once `deadline` (time.perf_counter) has passed."""

    deadline = float("inf")
    calls = 0

    def loo_scores(self, claims, labels, queries):
        if time.perf_counter() > self.deadline:
            raise _Deadline
        self.calls += 1
        return super().loo_scores(claims, labels, queries)


def random_model(model_dir: str, device: str):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    cfg = AutoConfig.from_pretrained(model_dir)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    return model.eval(), tok


def search(model, tok, claims, cap_s: float) -> dict:
    scorer = CappedScorer(model, tok)
    cfg = SearchConfig(seed=0, restarts=1, replicas=1, verdict_chains=False, iterations=3000, patience=300)
    s = ICMSearch(claims, scorer, get_task("truthfulqa").rules, cfg)
    t = time.perf_counter()
    scorer.deadline = t + cap_s
    out = {"n": len(claims), "cap_s": cap_s}
    try:
        r = s.run()
        st = r.chains[0]
        out.update(finished=True, iterations=st.iteration, proposals=st.proposals, accepted=st.accepted)
    except _Deadline:
        out.update(finished=False)
    wall = time.perf_counter() - t  # loo_scores returns host numbers: the GPU work is done
    out.update(wall_s=wall, forward_tokens=scorer.stats.forward_tokens, scorer_calls=scorer.calls,
               cache_hits=scorer.stats.cache_hits, tokens_per_s=scorer.stats.forward_tokens / wall)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True, help="a config.json + tokenizer of the target model (no weights)")
    ap.add_argument("--truthfulqa", required=True, help="the ICM paper's train_truthfulqa.json")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--search-sizes", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--search-cap", type=float, default=120.0, help="seconds per search before it is stopped")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--name", default="gpu_icl")
    args = ap.parse_args(argv)
    model, tok = random_model(args.model_dir, args.device)
    doc = {"benchmark": "gpu_icl", "settings": vars(args), "device": args.device,
           "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
           "params_b": sum(p.numel() for p in model.parameters()) / 1e9, "rescore": [], "search": []}
    speed(model, tok, pool(8, Path(args.truthfulqa)), None)  # CUDA / kernel warm-up, not reported
    for n in args.sizes:
        doc["rescore"].append(speed(model, tok, pool(n, Path(args.truthfulqa)), None))
        print("[rescore]", doc["rescore"][-1], flush=True)
        write_result(args.name, doc)
    for n in args.search_sizes:
        doc["search"].append(search(model, tok, pool(n, Path(args.truthfulqa)), args.search_cap))
        print("[search]", doc["search"][-1], flush=True)
        write_result(args.name, doc)
    print(md_table(["n", "forward tokens", "forwards", "wall s", "tokens/s", "peak MiB"],
                   [[r["n"], f"{r['forward_tokens']:,}", r["forward_calls"], f"{r['wall_s']:.2f}",
                     f"{r['tokens_per_s']:,.0f}", f"{r['peak_mib'] or 0:,.0f}"] for r in doc["rescore"]]))
    print(md_table(["n", "finished", "iterations", "wall s", "forward tokens", "scorer calls", "tokens/s"],
                   [[r["n"], r["finished"], r.get("iterations", "—"), f"{r['wall_s']:.1f}",
                     f"{r['forward_tokens']:,}", r["scorer_calls"], f"{r['tokens_per_s']:,.0f}"]
                    for r in doc["search"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
