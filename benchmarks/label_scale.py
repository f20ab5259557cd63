"""Labeling at scale: search cost per iteration, peak memory and feature throughput for pools of 1k, 10k, 100k claims.

    python benchmarks/label_scale.py            # 1k, 10k, 100k claims; ~20 min on 2 loaded cores
    python benchmarks/label_scale.py --quick    # 1k, 10k

Pools are preference pairs (two claims each): texts from the built-in tables and the shared sets (TruthfulQA
preference pairs, then HH-RLHF, fine-grained RLHF, Alpaca), repeated with a fresh id where a size needs more. Features
are SmolLM2-135M's (layer 20, cached by the sharded feature cache) for pools up to `--real_up_to` claims, random
vectors of the same width (576) with a planted direction otherwise — the search cost does not depend on which.

Per pool size and strategy, each in its own process (so peak RSS is that run's):
  - `batches`: batches of whole groups (`--batch_size` claims) searched one after the other, each with the labels
    of the batches before it carried into the probe's fit (the paper's iterative mode, for the probe);
  - `global`: one search over the whole pool (`--global_iterations` iterations: enough to measure its cost per
    iteration, not to finish).
Reported: seconds per 1,000 iterations (search only), peak RSS, total wall (features read + pool transform +
search), iterations, accuracy against gold / the planted truth (reports only).

Feature throughput: extraction (tokenize, forward with hidden states, shard writes) against a plain batched forward
(`model.model`, no LM head, same batches), interleaved batch by batch in one process: tokens/s of each and the ratio.

Writes results/label_scale[_quick].json and label_scale[_quick].png (log-log). Timings on a shared, loaded machine:
compare ratios measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED, md_table, write_result  # noqa: E402

from icm_rm.data.builtin import BUILTIN_TASKS, builtin_claimset  # noqa: E402
from icm_rm.data.records import Claim  # noqa: E402
from icm_rm.data.spec import load_claimset  # noqa: E402
from icm_rm.data.tasks import ConsistencyRules  # noqa: E402
from icm_rm.infra.io import peak_rss_mib, reset_peak_rss, save_figure  # noqa: E402
from icm_rm.infra.lm import load_causal_lm, right_pad  # noqa: E402
from icm_rm.label.batches import make_batches  # noqa: E402
from icm_rm.label.search import ICMSearch, SearchConfig  # noqa: E402
from icm_rm.scoring.features import FeatureExtractor  # noqa: E402
from icm_rm.scoring.probe import ProbeScorer  # noqa: E402
from icm_rm.scoring.settings import ProbeConfig  # noqa: E402

D, LAYER, MODEL = 576, 20, "smollm2-135m"


# ----------------------------------------------------------------------------------------------- pools

def source_pairs() -> list:
    """(claims of one pair, gold per claim) from the built-in tables and the shared sets, shortest sources first."""
    sets = [builtin_claimset(t, form="pairs", split=sp) for t in BUILTIN_TASKS for sp in ("train", "test")]
    ice = SHARED / "icm_unsupervised_elicitation"
    for fmt, path in (("icm_truthfulqa_preference", ice / "train_truthfulqa_preference.json"),
                      ("icm_truthfulqa_preference", ice / "test_truthfulqa_preference.json"),
                      ("hh_rlhf", SHARED / "hh_rlhf"),
                      ("fgrlhf", SHARED / "fine_grained_rlhf_qa_feedback" / "dev_feedback.json"),
                      ("icm_alpaca", ice / "test_alpaca.json")):
        if path.exists():
            sets.append(load_claimset(fmt, str(path)))
    out = []
    for cs in sets:
        groups: dict[str, list] = {}
        for c in cs.claims:
            groups.setdefault(c.group, []).append(c)
        out += [(g, [bool(cs.gold[c.id]) for c in g]) for g in groups.values() if len(g) == 2]
    return out


def make_pool(n: int) -> tuple[list[Claim], list[bool]]:
    """n claims (n/2 pairs), cycling the source pairs with a fresh id per repeat."""
    pairs = source_pairs()
    claims, gold = [], []
    for k in range(n // 2):
        members, g = pairs[k % len(pairs)]
        rep = k // len(pairs)
        for c, y in zip(members, g):
            claims.append(Claim(id=f"{c.id}#{rep}", group=f"{c.group}#{rep}", key=c.key, text=c.text))
            gold.append(y)
    return claims, gold


def random_source(gold: list[bool], seed: int = 0):
    """A feature source for the whole pool (what `prepare` asks for): width-576 noise plus a planted truth direction;
    zero-shot log-odds weakly track the truth."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(D).astype(np.float32)
    sign = np.where(gold, 1.0, -1.0).astype(np.float32)
    feats = 0.6 * sign[:, None] * w[None, :] + rng.standard_normal((len(gold), D), dtype=np.float32)
    z = 0.3 * sign + rng.standard_normal(len(gold))

    def source(texts):
        assert len(texts) == len(gold), "the random source serves the whole pool at once"
        return feats, z

    return source


# ----------------------------------------------------------------------------------------------- one run

def run_worker(args) -> dict:
    """One (size, strategy) run in this process; returns its row."""
    import torch

    torch.set_num_threads(1)
    reset_peak_rss()
    t_start = time.perf_counter()
    claims, gold = make_pool(args.n)
    if args.n <= args.real_up_to:
        model, tok = load_causal_lm(MODEL)
        ex = FeatureExtractor(model, tok, cache_dir=args.feature_cache, layers=[LAYER], show_progress=False)
        source = lambda texts: ex.layer(texts, LAYER)  # noqa: E731
        kind = "smollm2-135m"
    else:
        source, kind = random_source(gold), "random"
    scorer = ProbeScorer(source, ProbeConfig())
    rules = ConsistencyRules()
    t0 = time.perf_counter()
    scorer.prepare(claims)
    prep_s = time.perf_counter() - t0
    iterations, search_s, labels = 0, 0.0, [None] * len(claims)
    extra = {}
    if args.strategy == "global":
        cfg = SearchConfig(iterations=args.global_iterations, patience=0, checkpoint_every=10**9)
        t0 = time.perf_counter()
        res = ICMSearch(claims, scorer, rules, cfg).run()
        search_s = time.perf_counter() - t0
        iterations, labels = res.chains[0].iteration, res.labels
        extra = {"relabel_ms_half_labeled": relabel_cost(scorer, claims)}
    else:
        cfg = SearchConfig(iterations=args.batch_iterations, patience=300)
        carried, finished = None, []
        for idx in make_batches(claims, args.batch_size):
            batch = [claims[i] for i in idx]
            t0 = time.perf_counter()
            res = ICMSearch(batch, scorer, rules, cfg, carry=carried).run()
            carried = scorer.carry(batch, res.labels, onto=carried)
            search_s += time.perf_counter() - t0
            iterations += res.chains[0].iteration
            finished.append((batch, res.labels))
            for i, y in zip(idx, res.labels):
                labels[i] = y
        if args.n > args.batch_size:
            extra = {"side_by_side": side_by_side(finished, scorer, rules, cfg)}
    lab = [k for k, y in enumerate(labels) if y is not None]
    acc = float(np.mean([labels[k] == gold[k] for k in lab])) if lab else float("nan")
    return {"n": args.n, "strategy": args.strategy, "features": kind, "iterations": iterations,
            "search_s": search_s, "s_per_1k_iterations": 1000 * search_s / max(iterations, 1),
            "prepare_s": prep_s, "wall_s": time.perf_counter() - t_start, "peak_rss_mib": peak_rss_mib(),
            "labeled": len(lab), "accuracy": max(acc, 1 - acc), "batch_size": args.batch_size, **extra}


def side_by_side(finished: list, scorer, rules, cfg, repeats: int = 3) -> dict:
    """The last batch searched alone (a pool of one batch) and with every other batch's labels carried (the whole
    pool), alternately in this process: the per-iteration cost ratio without load drift between the two."""
    carry = None
    for claims, labels in finished[:-1]:
        carry = scorer.carry(claims, labels, onto=carry)
    batch = finished[-1][0]
    cost = {"alone": [], "carried": []}
    for _ in range(repeats):
        for name, kw in (("alone", {}), ("carried", {"carry": carry})):
            t0 = time.perf_counter()
            res = ICMSearch(batch, scorer, rules, cfg, **kw).run()
            cost[name].append(1000 * (time.perf_counter() - t0) / res.chains[0].iteration)
    alone, carried = float(np.median(cost["alone"])), float(np.median(cost["carried"]))
    return {"carried_claims": carry.n, "alone_s_per_1k": alone, "carried_s_per_1k": carried,
            "ratio": carried / alone}


def relabel_cost(scorer, claims: list[Claim], trials: int = 20) -> float:
    """ms for one candidate that labels a new claim when half the pool is labeled: what a global search pays for
    each of its ≥ n labelings (λ and M change, so every labeled block's B_G is recomputed)."""
    rng = np.random.default_rng(0)
    half = [bool(rng.random() < 0.5) if i < len(claims) // 2 else None for i in range(len(claims))]
    state = scorer.session(claims, half)
    t0 = time.perf_counter()
    for k in range(trials):
        state.trial({len(claims) // 2 + k: True})
    return 1000 * (time.perf_counter() - t0) / trials


# ----------------------------------------------------------------------------------------------- feature throughput

def feature_throughput(n_texts: int) -> dict:
    """Extraction vs a plain batched forward on the same texts and batches, interleaved batch by batch."""
    import torch

    torch.set_num_threads(1)
    claims, _ = make_pool(n_texts)
    texts = list(dict.fromkeys(c.text for c in claims))[:n_texts]
    model, tok = load_causal_lm(MODEL)
    with tempfile.TemporaryDirectory() as d:
        ex = FeatureExtractor(model, tok, cache_dir=d, layers=[LAYER], show_progress=False)
        order = sorted(texts, key=len)  # the extractor's own batches: sorted by length, batch_size rows
        bs = ex.batch_size
        plain_tokens, plain_s = 0, 0.0
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        for b in range(0, len(order), bs):
            chunk = order[b:b + bs]
            ex.ensure(chunk)  # extraction of this batch (tokenize, forward, shard write)
            t0 = time.perf_counter()  # the plain forward of the same batch
            ids = [ex._prefix + tok(t, add_special_tokens=False).input_ids for t in chunk]
            x, mask = right_pad(ids, pad)
            with torch.inference_mode():
                model.model(input_ids=x, attention_mask=mask)
            plain_s += time.perf_counter() - t0
            plain_tokens += int(mask.sum())
        ex_tps = ex.tokens_per_s
    plain_tps = plain_tokens / plain_s
    return {"texts": len(order), "tokens": plain_tokens, "extract_tokens_per_s": ex_tps,
            "plain_tokens_per_s": plain_tps, "ratio": ex_tps / plain_tps}


# ----------------------------------------------------------------------------------------------- driver

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="*")
    ap.add_argument("--strategies", nargs="*", default=["batches", "global"])
    ap.add_argument("--real_up_to", type=int, default=1000, help="SmolLM2 features up to this pool size")
    ap.add_argument("--batch_size", type=int, default=1000)
    ap.add_argument("--batch_iterations", type=int, default=3000)
    ap.add_argument("--global_iterations", type=int, default=3000)
    ap.add_argument("--feature_texts", type=int, default=512, help="texts for the throughput comparison (0 = skip)")
    ap.add_argument("--feature_cache", default=str(Path(tempfile.gettempdir()) / "icm_rm_label_scale_features"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--strategy", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    sizes = args.sizes or ([1000, 10000] if args.quick else [1000, 10000, 100000])
    t_all = time.perf_counter()
    rows = []
    for n in sizes:
        for strategy in args.strategies:
            cmd = [sys.executable, __file__, "--worker", "--n", str(n), "--strategy", strategy,
                   "--real_up_to", str(args.real_up_to), "--batch_size", str(args.batch_size),
                   "--batch_iterations", str(args.batch_iterations),
                   "--global_iterations", str(args.global_iterations), "--feature_cache", args.feature_cache]
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"n={n:>6} {strategy:7s}: {r['s_per_1k_iterations']:.2f} s/1k it, {r['iterations']} it, "
                  f"search {r['search_s']:.0f}s, wall {r['wall_s']:.0f}s, peak {r['peak_rss_mib']:.0f} MiB, "
                  f"acc {r['accuracy']:.3f}", flush=True)
    feats = feature_throughput(args.feature_texts) if args.feature_texts else None
    doc = {"rows": rows, "features": feats, "total_wall_s": time.perf_counter() - t_all, "args": vars(args)}
    name = "label_scale_quick" if args.quick else "label_scale"
    write_result(name, doc)
    plot(rows, RESULTS / f"{name}.png")
    print(md_table(["claims", "strategy", "features", "s / 1k it", "iterations", "search s", "peak RSS MiB",
                    "wall s", "accuracy"],
                   [[r["n"], r["strategy"], r["features"], f"{r['s_per_1k_iterations']:.2f}", r["iterations"],
                     f"{r['search_s']:.0f}", f"{r['peak_rss_mib']:.0f}", f"{r['wall_s']:.0f}",
                     f"{r['accuracy']:.3f}"] for r in rows]))
    for r in rows:
        if "side_by_side" in r:
            sb = r["side_by_side"]
            print(f"\nn={r['n']}: the last batch alone {sb['alone_s_per_1k']:.2f} vs with {sb['carried_claims']} "
                  f"carried labels {sb['carried_s_per_1k']:.2f} s / 1k it (same process, alternating): "
                  f"{sb['ratio']:.2f}×")
        if "relabel_ms_half_labeled" in r:
            print(f"n={r['n']} global: one relabel with half the pool labeled {r['relabel_ms_half_labeled']:.1f} ms")
    if feats:
        print(f"\nfeature extraction {feats['extract_tokens_per_s']:.0f} tok/s vs plain forward "
              f"{feats['plain_tokens_per_s']:.0f} tok/s on {feats['texts']} texts: {100 * feats['ratio']:.0f}%")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for strategy, marker in (("batches", "o"), ("global", "s")):
        rs = sorted((r for r in rows if r["strategy"] == strategy), key=lambda r: r["n"])
        if rs:
            axes[0].loglog([r["n"] for r in rs], [r["s_per_1k_iterations"] for r in rs], marker=marker,
                           label=strategy)
            axes[1].loglog([r["n"] for r in rs], [r["peak_rss_mib"] for r in rs], marker=marker, label=strategy)
    axes[0].set(xlabel="claims in the pool", ylabel="seconds per 1,000 iterations", title="search cost")
    axes[1].set(xlabel="claims in the pool", ylabel="peak RSS (MiB)", title="memory")
    axes[1].axhline(4096, color="grey", lw=0.6, ls="--")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
