"""The GPU section of BENCHMARKS.md: HF scorer cost (naive vs prefix-sharing LOO) and PPO/GRPO throughput on one GPU,
with random-weight models of real sizes (no weights travel to a lent GPU machine; random weights time the same).

    python benchmarks/gpu.py --tokenizer DIR                 # on a CUDA machine; ~6 min on one H100/H200
    python benchmarks/gpu.py --tokenizer DIR --shapes tiny   # CPU smoke run of the same code

Shapes are the tiny test Llama (fp32: fast == naive on CUDA) and LlamaConfigs of SmolLM2-360M and SmolLM2-1.7B (the default model's family), run in bf16 with the SmolLM2
tokenizer from `--tokenizer` (any saved HF tokenizer works). Scoring reuses benchmarks/scoring_cost.py's `run_case`
(same pool, same columns); RL reuses benchmarks/rl_throughput.py's workers, TRL 1.12's PPO from `--trl112-path` (a
`pip install --target` dir) when given. Each section is written as soon as it finishes, so a run cut short keeps what
it measured: benchmarks/results/gpu.json (or `--out`).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rl_throughput  # noqa: E402
import scoring_cost  # noqa: E402
from common import RESULTS, machine  # noqa: E402

from icm_rm.infra.io import atomic_write_json  # noqa: E402

SHAPES = {  # LlamaConfig kwargs
    "smollm2-360m-shape": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                               num_key_value_heads=5, max_position_embeddings=16384, tie_word_embeddings=True),
    "smollm2-1.7b-shape": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                               num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=16384,
                               tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=16384, tie_word_embeddings=False),
}


def random_model(shape: dict, tok, device, dtype):
    """A random-weight LlamaForCausalLM of `shape`, built directly on `device` in `dtype`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**shape, vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    return model.eval()


def scoring_section(a, tok, device, doc: dict) -> None:
    import torch

    from icm_rm.scoring.hf import HFScorer

    for name in a.shapes:
        # bf16 as users run real sizes on a GPU; the tiny shape in fp32 checks fast == naive on CUDA to rounding
        dtype = torch.bfloat16 if device.type == "cuda" and name != "tiny" else torch.float32
        model = random_model(SHAPES[name], tok, device, dtype)
        params = sum(p.numel() for p in model.parameters()) / 1e9
        for n in a.sizes:
            t0 = time.perf_counter()
            row = scoring_cost.run_case(name, model, tok, n)
            row.update(params_b=round(params, 3), dtype=str(dtype).removeprefix("torch."))
            # the same fast scorer under the CPU default KV budget: what the device-aware default buys
            small = scoring_cost.timed(HFScorer(model, tok, kv_budget_mb=1024), *scoring_cost.make_pool(n, seed=n))
            row["fast_kv_budget_1024mb"] = {k: v for k, v in small.items() if k != "scores"}
            row["kv_budget_mb"] = HFScorer(model, tok).kv_budget_mb
            doc["scoring"].append(row)
            atomic_write_json(a.out, doc)
            print(f"scoring {name} ({params:.2f}B) n={n}: token ratio {row['token_ratio']:.1f}×, "
                  f"wall ratio {row['wall_ratio']:.1f}× ({row['naive']['wall_s']:.2f} s vs {row['fast']['wall_s']:.2f} s)"
                  f", 1024 MiB budget {small['wall_s']:.2f} s, max |Δ| {row['max_abs_diff']:.2e} [{time.perf_counter() - t0:.0f} s]", flush=True)
        del model
        gc.collect()
        torch.cuda.empty_cache() if device.type == "cuda" else None


def rl_section(a, doc: dict) -> None:
    shape = SHAPES[a.rl_shape]
    ra = argparse.Namespace(batch=a.rl_batch, micro=a.rl_micro, epochs=4, length=a.rl_length,
                            precision="bf16" if a.cuda else "no")
    doc["rl_setup"] = {"shape": a.rl_shape, "steps": a.rl_steps, **vars(ra)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        assets = rl_throughput.make_assets(work, 0, 0, n_prompts=a.rl_batch * 2, shape=shape,
                                           tokenizer_dir=a.tokenizer)
        runs = [("ours_ppo", "ours", ""), ("trl_grpo", "grpo", "")]
        if a.trl112_path:
            runs.insert(1, ("trl112_ppo", "trl112", a.trl112_path))
        for key, worker, path in runs:
            t0 = time.perf_counter()
            res = rl_throughput.run_worker(sys.executable, worker, assets, work / key, ra, a.rl_steps, pythonpath=path)
            doc["rl"][key] = res
            atomic_write_json(a.out, doc)
            print(f"rl {key}: " + (f"{res['samples_per_s']:.2f} samples/s (first step {res['first_step_s']:.1f} s)"
                                    if "error" not in res else res["error"]) + f" [{time.perf_counter() - t0:.0f} s]",
                  flush=True)
    ours, trl = doc["rl"].get("ours_ppo", {}), doc["rl"].get("trl112_ppo", {})
    if "samples_per_s" in ours and "samples_per_s" in trl:
        doc["rl"]["ppo_speed_ratio_ours_over_trl112"] = ours["samples_per_s"] / trl["samples_per_s"]


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokenizer", required=True, help="a saved HF tokenizer dir (e.g. the converted SmolLM2's)")
    p.add_argument("--shapes", nargs="*", default=["tiny", "smollm2-360m-shape", "smollm2-1.7b-shape"],
                   choices=sorted(SHAPES))
    p.add_argument("--sizes", type=int, nargs="*", default=[16, 64, 128, 256], help="pool sizes n")
    p.add_argument("--rl-shape", default="smollm2-360m-shape", choices=sorted(SHAPES))
    p.add_argument("--rl-steps", type=int, default=5, help="steps per trainer (the first is excluded from the rate)")
    p.add_argument("--rl-batch", type=int, default=64, help="prompts per PPO step / completions per GRPO step")
    p.add_argument("--rl-micro", type=int, default=16)
    p.add_argument("--rl-length", type=int, default=64, help="response tokens")
    p.add_argument("--trl112-path", default="", help="dir holding trl==1.12.0 (pip install --target); empty: skip")
    p.add_argument("--skip-scoring", action="store_true")
    p.add_argument("--skip-rl", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS / "gpu.json")
    a = p.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    a.cuda = torch.cuda.is_available()
    device = torch.device("cuda" if a.cuda else "cpu")
    doc = {"machine": machine(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "shapes": {k: SHAPES[k] for k in
           set(a.shapes) | {a.rl_shape}}, "scoring": [], "rl": {}}
    if a.cuda:
        doc["machine"]["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    if not a.skip_rl:
        rl_section(a, doc)
    if not a.skip_scoring:
        scoring_section(a, tok, device, doc)
        print(scoring_cost.table(doc["scoring"]), flush=True)
    doc["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(a.out, doc)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
