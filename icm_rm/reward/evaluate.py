"""`icm-rm eval-rm --model RM_DIR [--model RM_DIR ...] --data FILE[:format] [--data ...] [--output_dir DIR]`

For each RM × dataset: pairwise accuracy (r_chosen > r_rejected) with a Wilson CI (optional bootstrap CI), per-subset
accuracy, mean reward margin, calibration (ECE + reliability diagram of P(chosen) = σ(r_c − r_r)), reward–length
correlation (a reward-hacking warning sign), the count of tied pairs the reader skipped, and how many pairs the RM
was trained on (train-rm records them; such a set is not held out). Writes `eval_rm.md`,
`eval_rm.json` and `reliability_<data>.png` to output_dir and prints the markdown.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..infra.config import cfg_field, parse_config
from ..infra.device import resolve_device
from ..infra.errors import ConfigError
from ..infra.io import atomic_write_json, atomic_write_text, check_writable, mark_complete, save_figure, write_run_json
from ..infra.runner import run_main
from .data import load_pairs, split_spec
from .format import response_text
from .scoring import RewardModel, check_rm_dir
from .seen_pairs import count_seen
from .stats import accuracy_from_rewards, bootstrap_ci, ece, pearson, reliability_bins, sigmoid, spearman, wilson_ci

__all__ = ["EvalRMConfig", "evaluate_rewards", "run_eval", "main", "wilson_ci", "bootstrap_ci",
           "accuracy_from_rewards", "ece"]

logger = logging.getLogger(__name__)

GENERIC_STEMS = {"test", "train", "dev", "valid", "validation", "eval", "data", "preferences", "dev_feedback"}


@dataclass
class EvalRMConfig:
    """Held-out pairwise accuracy ± CI, calibration and length bias of one or more reward models."""

    model: list[str] = cfg_field(default_factory=list, help="reward model dirs (train-rm's <output_dir>/model); "
                                                            "repeat --model for a side-by-side table")
    data: list[str] = cfg_field(default_factory=list, help="held-out preference files FILE[:format]; repeat --data")
    output_dir: str = cfg_field("runs/eval_rm", help="where eval_rm.md, eval_rm.json and the reliability PNGs go")
    limit: int | None = cfg_field(None, help="score at most this many pairs per dataset (quick runs)", ge=1)
    batch_size: int = cfg_field(16, help="texts per forward pass", ge=1)
    max_length: int | None = cfg_field(None, help="left-truncate scored texts to this many tokens (null = none)", ge=1)
    bootstrap: int = cfg_field(0, help="also report a percentile bootstrap CI with this many resamples (0 = off)", ge=0)
    ci_level: float = cfg_field(0.95, help="confidence level of the intervals", gt=0, lt=1)
    n_bins: int = cfg_field(10, help="confidence bins of the reliability diagram / ECE", ge=1)
    seed: int = cfg_field(0, help="seed of the bootstrap resampling", ge=0)
    device: str | None = cfg_field(None, help="torch device (null = cuda when available, else cpu)")

    def __post_init__(self) -> None:
        resolve_device(self.device)
        if not self.model:
            raise ConfigError("model", "no reward model given; pass --model RM_DIR (repeat for several)")
        if not self.data:
            raise ConfigError("data", "no held-out data given; pass --data FILE[:format] (repeat for several)")
        if not 0.0 < self.ci_level < 1.0:
            raise ConfigError("ci_level", f"must be in (0, 1), got {self.ci_level}")
        for key in ("batch_size", "n_bins"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be ≥ 1, got {getattr(self, key)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit", f"must be ≥ 1 or null, got {self.limit}")
        if self.bootstrap < 0:
            raise ConfigError("bootstrap", f"must be ≥ 0, got {self.bootstrap}")


# ------------------------------------------------------------------------------------------------ pure evaluation

def evaluate_rewards(chosen: Sequence[float], rejected: Sequence[float], examples: Sequence | None = None, *,
                     level: float = 0.95, n_bins: int = 10, bootstrap: int = 0, seed: int = 0) -> dict:
    """All metrics of one RM on one dataset from its rewards (examples give subsets and response lengths)."""
    c, r = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    out = accuracy_from_rewards(c, r, level)
    if bootstrap:
        out["bootstrap_ci"] = list(bootstrap_ci((c > r).astype(float), bootstrap, level, seed))
    p = sigmoid(c - r)
    out["ece"] = ece(p, n_bins)
    out["reliability"] = reliability_bins(p, n_bins)
    both = np.concatenate([c, r])
    out["reward_mean"], out["reward_std"] = float(both.mean()), float(both.std())
    if examples is not None:
        out["subsets"] = subset_accuracy(c, r, [ex.subset for ex in examples], level)
        out["length"] = length_bias(c, r, examples)
    return out


def subset_accuracy(chosen: np.ndarray, rejected: np.ndarray, subsets: Sequence[str | None],
                    level: float = 0.95) -> dict:
    """Accuracy ± Wilson CI per subset label (pairs without one are left out); {} when no pair has a subset."""
    names = sorted({s for s in subsets if s is not None})
    out = {}
    for name in names:
        m = np.asarray([s == name for s in subsets])
        a = accuracy_from_rewards(chosen[m], rejected[m], level)
        out[name] = {k: a[k] for k in ("n", "correct", "accuracy", "ci_low", "ci_high")}
    return out


def length_bias(chosen: np.ndarray, rejected: np.ndarray, examples: Sequence) -> dict:
    """Pearson / Spearman of reward vs response length in characters (chosen and rejected pooled), and how often the
    RM prefers the longer response of a pair (pairs of equal length left out)."""
    len_c = np.asarray([len(response_text(ex.chosen)) for ex in examples], dtype=float)
    len_r = np.asarray([len(response_text(ex.rejected)) for ex in examples], dtype=float)
    rewards, lengths = np.concatenate([chosen, rejected]), np.concatenate([len_c, len_r])
    differ = len_c != len_r
    longer_wins = ((chosen > rejected) == (len_c > len_r))[differ]
    return {"pearson": pearson(rewards, lengths), "spearman": spearman(rewards, lengths),
            "longer_preferred": float(longer_wins.mean()) if longer_wins.size else float("nan"),
            "chosen_longer": float((len_c > len_r)[differ].mean()) if differ.any() else float("nan")}


# ------------------------------------------------------------------------------------------------ running

def display_names(paths: Sequence[str], generic: set[str] = frozenset({"model"})) -> list[str]:
    """Short unique names: the file/dir stem, with parent dirs prefixed while the stem says nothing (model, test…)
    or while two paths would share a name."""
    parts = [Path(split_spec(p)[0]).parts for p in paths]
    stems = [(ps[-1].split(".")[0] or ps[-1]) if ps else str(p) for ps, p in zip(parts, paths)]
    depth = [2 if s in generic else 1 for s in stems]

    def name(i: int) -> str:
        return "/".join([*parts[i][-depth[i]:-1], stems[i]]) if depth[i] > 1 else stems[i]

    for _ in range(max((len(p) for p in parts), default=0)):
        names = [name(i) for i in range(len(paths))]
        dup = [i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(parts[i])]
        if not dup:
            break
        for i in dup:
            depth[i] += 1
    names = [name(i) for i in range(len(paths))]
    return [f"{n}#{names[:i + 1].count(n)}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def run_eval(cfg: EvalRMConfig, progress: bool = True) -> dict:
    """Score every dataset with every RM; returns the eval_rm.json document."""
    for path in cfg.model:  # fail before any scoring
        check_rm_dir(path)
    datasets = [load_pairs(spec, limit=cfg.limit) for spec in cfg.data]
    data_names = display_names(cfg.data, GENERIC_STEMS)
    model_names = display_names(cfg.model)
    results = []
    for model_path, model_name in zip(cfg.model, model_names):
        rm = RewardModel.from_pretrained(model_path, device=cfg.device, max_length=cfg.max_length)
        for spec, data_name, pairs in zip(cfg.data, data_names, datasets):
            chosen, rejected = rm.score_pairs(pairs.examples, cfg.batch_size, progress,
                                              desc=f"{model_name} × {data_name}")
            metrics = evaluate_rewards(chosen, rejected, pairs.examples, level=cfg.ci_level, n_bins=cfg.n_bins,
                                       bootstrap=cfg.bootstrap, seed=cfg.seed)
            results.append({"model": model_path, "model_name": model_name, "data": spec, "data_name": data_name,
                            "skipped_ties": pairs.skipped_ties, "skipped_invalid": pairs.skipped_invalid,
                            "seen_in_training": count_seen(model_path, pairs.examples), **metrics})
        del rm
    return {"config": asdict(cfg), "models": model_names, "datasets": data_names, "results": results}


# ------------------------------------------------------------------------------------------------ reporting

def _ci(row: dict) -> str:
    return f"{row['accuracy']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def markdown_report(doc: dict) -> str:
    """Side-by-side accuracy table (datasets × RMs), a detail table and per-subset accuracies."""
    level = doc["config"]["ci_level"]
    by = {(r["model_name"], r["data_name"]): r for r in doc["results"]}
    models, datasets = doc["models"], doc["datasets"]
    lines = [f"## Held-out preference accuracy ({level:.0%} Wilson CI)", "",
             "| data | n | " + " | ".join(models) + " |", "|---|---:|" + "---|" * len(models)]
    for d in datasets:
        n = by[(models[0], d)]["n"]
        lines.append(f"| {d} | {n} | " + " | ".join(_ci(by[(m, d)]) for m in models) + " |")
    lines += ["", "## Details", "",
              "| RM | data | n | accuracy | CI | boot CI | mean margin | ECE | reward~length r (ρ) | longer preferred "
              "| ties skipped |", "|---|---|---:|---:|---|---|---:|---:|---|---:|---:|"]
    for r in doc["results"]:
        boot = "[{:.3f}, {:.3f}]".format(*r["bootstrap_ci"]) if "bootstrap_ci" in r else "–"
        ln = r.get("length", {})
        lines.append(f"| {r['model_name']} | {r['data_name']} | {r['n']} | {r['accuracy']:.3f} | "
                     f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {boot} | {r['mean_margin']:.3f} | {r['ece']:.3f} | "
                     f"{ln.get('pearson', float('nan')):.2f} ({ln.get('spearman', float('nan')):.2f}) | "
                     f"{ln.get('longer_preferred', float('nan')):.2f} | {r['skipped_ties']} |")
    lines += [f"\n**Not held out:** {r['seen_in_training']} of the {r['n']} pairs of {r['data_name']} are pairs "
              f"{r['model_name']} was trained on: its accuracy there measures fit, not generalisation."
              for r in doc["results"] if r.get("seen_in_training")]
    subset_rows = [(r, s, v) for r in doc["results"] for s, v in r.get("subsets", {}).items()]
    if subset_rows:
        lines += ["", "## Per subset", "", "| RM | data | subset | n | accuracy [CI] |", "|---|---|---|---:|---|"]
        lines += [f"| {r['model_name']} | {r['data_name']} | {s} | {v['n']} | {_ci(v)} |" for r, s, v in subset_rows]
    return "\n".join(lines) + "\n"


def plot_reliability(doc: dict, data_name: str, path: str | Path) -> None:
    """Reliability diagram of one dataset: accuracy vs confidence per bin, one line per RM, the diagonal dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0.5, 1], [0.5, 1], "k--", lw=1, label="perfectly calibrated")
    for r in doc["results"]:
        if r["data_name"] != data_name:
            continue
        bins = [b for b in r["reliability"] if b["count"]]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-",
                label=f"{r['model_name']} (ECE {r['ece']:.3f})")
    ax.set(xlabel="confidence max(P, 1−P), P = σ(r_c − r_r)", ylabel="accuracy", xlim=(0.5, 1.0), ylim=(0, 1.02),
           title=f"Reliability: {data_name}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def write_report(doc: dict, output_dir: str | Path) -> str:
    out = Path(output_dir)
    md = markdown_report(doc)
    atomic_write_text(out / "eval_rm.md", md)
    atomic_write_json(out / "eval_rm.json", doc)
    for d in doc["datasets"]:
        plot_reliability(doc, d, out / f"reliability_{d.replace('/', '_').replace('#', '_')}.png")
    return md


# ------------------------------------------------------------------------------------------------ command line

def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, _ = parse_config(EvalRMConfig, argv, prog="icm-rm eval-rm")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_writable(cfg.output_dir)
    t0 = time.time()
    doc = run_eval(cfg)
    md = write_report(doc, cfg.output_dir)
    print(md)
    write_run_json(cfg.output_dir, cfg, seed=cfg.seed, timings={"eval_s": time.time() - t0})
    mark_complete(cfg.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, sys.argv[1:]))
