"""`icm-rm best-of-n`: which reward model would move the policy, before any RL.

The reference policy samples `n` answers per held-out prompt; every RM scores them and a judge that no RM was trained
on (a built-in task's gold checker, or a held-out judge RM) grades them. Per RM:

- best-of-n gain: the judged score of each prompt's top-reward answer minus the mean judged score of its answers
  (a paired bootstrap CI over prompts), and the expected best-of-k score for k = 1, 2, 4 … n (unbiased estimate);
- on-policy pair accuracy: of the answer pairs of one prompt that the judge grades differently, the share the RM
  orders right (RM ties count half).

Held-out preference accuracy scores pairs written like the training pairs; RL only ever compares the policy's own
answers, and there RMs with equal held-out accuracy can differ a lot (BENCHMARKS §5: the best-of-n gain ranked five
test RMs in the order of their PPO gains). Writes best_of_n.{json,md}, best_of_n_samples.jsonl and best_of_k.png.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from math import comb
from pathlib import Path

import numpy as np

from icm_rm.infra.config import cfg_field, parse_config, save_config
from icm_rm.infra.device import resolve_device
from icm_rm.infra.errors import ConfigError
from icm_rm.infra.io import (atomic_write_json, atomic_write_jsonl, atomic_write_text, check_writable, mark_complete,
                             save_figure, write_run_json)
from icm_rm.infra.runner import run_main
from icm_rm.reward.scoring import RewardModel, check_rm_dir

from .eval_stats import format_diff, paired_difference
from .evaluate import generate, load_policy, parse_named, score_distinct
from .judges import make_judge
from .ppo.data import load_prompts


@dataclass
class BestOfNConfig:
    """Best-of-n and on-policy pair accuracy of reward models on a reference policy's own samples, judged."""

    rms: list[str] = cfg_field(default_factory=list, help="reward models as NAME=DIR (train-rm's <output_dir>/model)")
    policy: str = cfg_field("smollm2-135m", "the policy whose samples are ranked (RL's starting policy)")
    prompts: str = cfg_field("builtin:capitals", "held-out prompts: a JSONL/JSON file with `prompt`, or builtin:NAME")
    prompt_split: str = cfg_field("test", "split for builtin:NAME prompts (held out from RL training)")
    prompt_format: str = cfg_field("auto", "auto | raw | chat, as in RL and eval-policy")
    max_prompts: int | None = cfg_field(None, "use the first N distinct prompts (null = all)", ge=1)
    n: int = cfg_field(8, "answers sampled per prompt", ge=2)
    temperature: float = cfg_field(0.7, "sampling temperature (RL's rollouts sample too)", gt=0)
    max_new_tokens: int = cfg_field(48, "answer length cap", ge=1)
    batch_size: int = cfg_field(64, "prompts per generation batch", ge=1)
    score_batch_size: int = cfg_field(32, "answers per RM forward pass", ge=1)
    judge: str | None = cfg_field(None, "gold:<builtin task> or a judge RM dir that none of `rms` is (null = gold "
                                        "checker of builtin prompts)")
    seed: int = cfg_field(0, "sampling seed (sample round i uses seed + i) and bootstrap seed", ge=0)
    device: str = cfg_field("auto", "cpu, cuda or auto")
    output_dir: str = cfg_field("runs/best_of_n", "where best_of_n.{json,md}, the samples and best_of_k.png go")

    def __post_init__(self):
        resolve_device(self.device)
        if self.prompt_format not in ("auto", "raw", "chat"):
            raise ConfigError("prompt_format", f"must be auto, raw or chat, got '{self.prompt_format}'")
        if self.n < 2:
            raise ConfigError("n", f"must be ≥ 2 (best of one is a random answer), got {self.n}")
        if not self.temperature > 0:
            raise ConfigError("temperature", f"must be > 0 (greedy answers are all alike), got {self.temperature}")


# ----------------------------------------------------------------------------------------------- pure metrics

def best_of_k(rewards: Sequence[float], judged: Sequence[float], k: int) -> float:
    """Expected judged score of the top-reward answer among k drawn without replacement from these n (exact: the
    answer at reward rank i, ascending, is the top of a random k-subset with probability C(i, k−1) / C(n, k)).
    Equal rewards share their judged scores' mean, so no tie is broken by the answers' order."""
    r, g = np.asarray(rewards, dtype=float), np.asarray(judged, dtype=float)
    n = len(r)
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, {n}], got {k}")
    order = np.argsort(r, kind="stable")
    r, g = r[order], g[order].copy()
    for v in np.unique(r):
        tie = r == v
        g[tie] = g[tie].mean()
    w = np.array([comb(i, k - 1) for i in range(n)], dtype=float) / comb(n, k)
    return float(w @ g)


def pair_counts(rewards: Sequence[float], judged: Sequence[float]) -> tuple[float, int]:
    """(pairs ordered right, pairs the judge grades differently) among one prompt's answers; RM ties count half."""
    r, g = np.asarray(rewards, dtype=float), np.asarray(judged, dtype=float)
    dr, dg = r[:, None] - r[None, :], g[:, None] - g[None, :]
    upper = np.triu(np.ones_like(dg, dtype=bool), 1) & (dg != 0)
    right = np.sign(dr[upper]) == np.sign(dg[upper])
    ties = dr[upper] == 0
    return float(right.sum() + 0.5 * ties.sum()), int(upper.sum())


def rm_metrics(rewards: np.ndarray, judged: np.ndarray, *, seed: int = 0, level: float = 0.95) -> dict:
    """One RM over prompts × n answers: best-of-n gain (paired CI), best-of-k curve, on-policy pair accuracy."""
    n = judged.shape[1]
    ks = sorted({*(2 ** i for i in range(n.bit_length()) if 2 ** i <= n), n})
    curve = {k: np.array([best_of_k(r, g, k) for r, g in zip(rewards, judged)]) for k in ks}
    right, total = map(np.array, zip(*(pair_counts(r, g) for r, g in zip(rewards, judged))))
    idx = np.random.default_rng(seed).integers(0, len(right), size=(2000, len(right)))
    with np.errstate(invalid="ignore"):
        boot = right[idx].sum(1) / total[idx].sum(1)
    acc = float(right.sum() / total.sum()) if total.sum() else float("nan")
    lo, hi = np.nanquantile(boot, [(1 - level) / 2, (1 + level) / 2]) if total.sum() else (float("nan"),) * 2
    return {"best_of_n": float(curve[n].mean()), "gain": paired_difference(curve[n], curve[1], level=level, seed=seed),
            "best_of_k": {str(k): float(v.mean()) for k, v in curve.items()},
            "pair_accuracy": acc, "pair_accuracy_ci": [float(lo), float(hi)], "pairs": int(total.sum()),
            "per_prompt_best_of_n": curve[n].tolist()}


# ----------------------------------------------------------------------------------------------- the command

def run_best_of_n(cfg: BestOfNConfig) -> dict:
    """Sample, judge, score with every RM; write the report; returns the best_of_n.json document."""
    named = parse_named(cfg.rms, "rms")
    if not named:
        raise ConfigError("rms", "give at least one reward model (NAME=DIR)")
    for _, path in named:
        check_rm_dir(path)
        if cfg.judge and Path(cfg.judge).resolve() == Path(path).resolve():
            raise ConfigError("judge", f"{cfg.judge} is one of the RMs judged; judge with gold:<task> or another RM")
    device = resolve_device(cfg.device)
    prompts = load_prompts(cfg.prompts, cfg.prompt_split, cfg.max_prompts)
    judge, judge_desc = make_judge(cfg.judge, cfg.prompts, device)
    out = Path(cfg.output_dir)
    check_writable(out)
    save_config(cfg, out / "config.yaml")

    model, tok = load_policy(cfg.policy, device)
    rounds = [generate(model, tok, prompts, replace(cfg, seed=cfg.seed + i), f"sample {i + 1}/{cfg.n}")[0]
              for i in range(cfg.n)]
    del model
    answers = [[rounds[i][j] for i in range(cfg.n)] for j in range(len(prompts))]
    keys = [(j, a) for j, ans in enumerate(answers) for a in ans]

    def per_sample(score) -> np.ndarray:
        by = score_distinct(score, prompts, keys)
        return np.array([[by[(j, a)] for a in ans] for j, ans in enumerate(answers)], dtype=float)

    judged = per_sample(judge)
    rewards: dict[str, np.ndarray] = {}
    for name, path in named:
        rm = RewardModel.from_pretrained(path, device=device)
        rewards[name] = per_sample(lambda p, a: rm.score(p, a, batch_size=cfg.score_batch_size, progress=True))
        del rm
    results = {name: rm_metrics(r, judged, seed=cfg.seed) for name, r in rewards.items()}
    names = list(results)
    versus = [{"rm": a, "versus": b, **paired_difference(results[a]["per_prompt_best_of_n"],
                                                        results[b]["per_prompt_best_of_n"], seed=cfg.seed)}
              for i, a in enumerate(names) for b in names[i + 1:]]
    doc = {"judge": judge_desc, "policy": cfg.policy, "prompts": cfg.prompts, "split": cfg.prompt_split,
           "n_prompts": len(prompts), "n": cfg.n, "distinct_answers": len(set(keys)),
           "mean_judged": float(judged.mean()), "rms": dict(named), "results": results, "versus": versus}
    atomic_write_jsonl(out / "best_of_n_samples.jsonl",
                       [{"prompt": p, "answers": answers[j], "judged": judged[j].tolist(),
                         **{f"{n}_reward": rewards[n][j].tolist() for n in names}} for j, p in enumerate(prompts)])
    atomic_write_json(out / "best_of_n.json", doc)
    atomic_write_text(out / "best_of_n.md", markdown(doc))
    plot_best_of_k(doc, out / "best_of_k.png")
    write_run_json(out, cfg, seed=cfg.seed)
    mark_complete(out, stage="best_of_n")
    return doc


def markdown(doc: dict) -> str:
    """Per-RM table (gain with CI, best-of-k, pair accuracy) and every RM pair's best-of-n difference."""
    ks = list(next(iter(doc["results"].values()))["best_of_k"])
    lines = [f"## Best-of-{doc['n']} on {doc['policy']}'s own answers ({doc['n_prompts']} prompts, judge: "
             f"{doc['judge']})", "",
             f"One answer at random scores {doc['mean_judged']:.3f}. The RM that lifts best-of-n most is the one RL "
             "is likeliest to move the policy with.", "",
             "| RM | best-of-n gain [95% CI] | " + " | ".join(f"best-of-{k}" for k in ks)
             + " | on-policy pair accuracy [95% CI] | pairs |",
             "|---|---|" + "---:|" * len(ks) + "---|---:|"]
    for name, r in doc["results"].items():
        lo, hi = r["pair_accuracy_ci"]
        lines.append(f"| {name} | {format_diff(r['gain'])} | " + " | ".join(f"{r['best_of_k'][k]:.3f}" for k in ks)
                     + f" | {r['pair_accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | {r['pairs']} |")
    if doc["versus"]:
        lines += ["", "| RM vs RM | best-of-n difference [95% CI] | verdict |", "|---|---|---|"]
        lines += [f"| {v['rm']} vs {v['versus']} | {format_diff(v)} | {v['verdict']} |" for v in doc["versus"]]
    return "\n".join(lines) + "\n"


def plot_best_of_k(doc: dict, path: str | Path) -> None:
    """Expected judged score of best-of-k vs k (log scale), one line per RM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, r in doc["results"].items():
        ks = [int(k) for k in r["best_of_k"]]
        ax.plot(ks, list(r["best_of_k"].values()), "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k (answers sampled, the top-reward one kept)", ylabel="judged score",
           title=f"Best-of-k on {doc['policy']}'s answers")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    cfg, _ = parse_config(BestOfNConfig, argv, prog="icm-rm best-of-n")
    print(markdown(run_best_of_n(cfg)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, None))
