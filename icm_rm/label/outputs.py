"""What the label stage leaves behind: labels.jsonl, preferences.jsonl (+ _gold), report.json with baselines,
progress.png, TensorBoard scalars and the terminal summary. Gold is read here, after the search, and only for
reports."""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..data.preferences import PreferenceExample, least_confident, write_preferences_jsonl
from ..data.records import Claim, ClaimSet, render_messages
from ..infra.io import atomic_write_json, atomic_write_jsonl, save_figure
from ..scoring.base import Scorer
from .metrics import claim_accuracy, consistency_rate, pair_accuracy, pair_decisions, sign_labels
from .search_state import decode_labels
from .diagnostics import merge as merge_diagnostics
from .diagnostics import warnings
from .summary import accuracy_line, diagnostics_line, review_line, spot_check_line


REVIEW_FILE = "least_confident.jsonl"  # the pairs a person should read before training on the labels
REVIEW_SHARE = 0.1  # of the pairs; wrong 4.5x as often as the average pair on dev, 0.9-3.1x on test (BENCHMARKS §2c)
SPOT_FILE = "spot_check.jsonl"  # pairs drawn at random: how many are wrong estimates the whole labeling's accuracy
SPOT_SIZE = 10  # 3+ wrong of 10: 7% likely for labels 90% right, 95% likely for labels at chance (BENCHMARKS §2a)
SPOT_PREVIEW = 3  # of them printed in the terminal summary, so an inverted labeling shows without opening a file


def label_rows(pool: ClaimSet, outcomes) -> list[dict]:
    """labels.jsonl rows in pool order: id, group, key, label, score, source (seed | search)."""
    rows: dict[int, dict] = {}
    for o in outcomes:
        seeds = {o.indices[k] for k in o.seed_indices}
        for k, i in enumerate(o.indices):
            c = pool.claims[i]
            rows[i] = {"id": c.id, "group": c.group, "key": c.key, "label": o.labels[k], "score": o.scores[k],
                       "source": "seed" if i in seeds else "search", "batch": o.batch}
    return [rows[i] for i in sorted(rows)]


def searched_labels(outcomes) -> dict[int, tuple[bool | None, float]]:
    """Pool index → (label, score) of the searched labeling: where a batch fell back to the likelihood verdict, the
    labels its search returned (kept in the fallback record), elsewhere the batch's labels."""
    out = {}
    for o in outcomes:
        fb = (o.diagnostics or {}).get("fallback")
        labels = decode_labels(fb["searched_labels"]) if fb else o.labels
        scores = fb["searched_scores"] if fb else o.scores
        for k, i in enumerate(o.indices):
            out[i] = (labels[k], np.nan if scores[k] is None else scores[k])
    return out


def preference_examples(pool: ClaimSet, rows: list[dict], gold: bool = False) -> list:
    """One TRL prompt/chosen/rejected row per pair; margin = ICM confidence (half the score gap, ≥ 0)."""
    by_pair: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_pair.setdefault(r["group"], {})[r["key"]] = r
    out = []
    for pid, pair in pool.pairs.items():
        rs = by_pair.get(pid, {})
        if "A>B" not in rs or "B>A" not in rs:
            continue
        a, b = rs["A>B"], rs["B>A"]
        if gold:
            a_better = bool(pool.gold[a["id"]])
            margin = None
        else:
            sa, sb = a["score"] or 0.0, b["score"] or 0.0
            a_better = bool(a["label"]) if a["label"] != b["label"] and a["label"] is not None and \
                b["label"] is not None else sa > sb
            margin = max(0.0, (sa - sb) if a_better else (sb - sa)) / 2
        chosen, rejected = (pair.response_a, pair.response_b) if a_better else (pair.response_b, pair.response_a)
        out.append(PreferenceExample(id=pid, prompt=pair.prompt, chosen=chosen, rejected=rejected, margin=margin))
    return out


def _batch_metrics(claims: Sequence[Claim], labels, scores, gold, rules) -> dict:
    d = {"claim": claim_accuracy(claims, labels, gold)}
    decisions = pair_decisions(claims, labels, scores)
    if decisions:
        d["pair"] = pair_accuracy(claims, decisions, gold)
    d["consistency"] = consistency_rate(claims, labels, rules)
    return d


def baselines(pool: ClaimSet, outcomes, scorer: Scorer, rules, seed: int = 0) -> dict[str, dict]:
    """The scorer's zero-shot verdicts (`zero_shot` = True/False log-odds; `zero_shot_likelihood` on pairs = the
    LM's response likelihood), random-label many-shot and golden many-shot (same context as ICM: the batch; the
    probe trains its plain variant on random / gold labels, i.e. the supervised probe), weighted over batches."""
    per: dict[str, list[tuple[int, dict]]] = {"zero_shot": [], "random_label": [], "golden_label": []}
    trained = scorer.baseline()
    for o in outcomes:
        claims = [pool.claims[i] for i in o.indices]
        gold_labels = [bool(pool.gold[c.id]) for c in claims]
        for kind, v in scorer.zero_shot_verdicts(claims).items():
            name = "zero_shot" if kind == "tf" else f"zero_shot_{kind}"
            per.setdefault(name, []).append((len(claims), _batch_metrics(claims, sign_labels(v), v, pool.gold, rules)))
        rng = np.random.default_rng([seed, o.batch])
        for name, labels in (("random_label", [bool(x) for x in rng.random(len(claims)) < 0.5]),
                             ("golden_label", gold_labels)):
            s = trained.loo_scores(claims, labels, list(range(len(claims))))
            per[name].append((len(claims), _batch_metrics(claims, sign_labels(s), s, pool.gold, rules)))
    return {name: _weighted(items) for name, items in per.items()}


GOLD_FREE = ("zero_shot", "zero_shot_likelihood", "random_label")  # baselines a user without gold could run


def strongest_baseline(baselines: dict[str, dict]) -> dict | None:
    """The gold-free baseline with the highest accuracy (pairs: pair accuracy) — what ICM must be compared with;
    golden-label (the supervised probe) is a ceiling that needs gold, not a baseline."""
    have = [(name, b.get("pair", b.get("claim"))) for name, b in baselines.items() if name in GOLD_FREE]
    have = [(name, acc) for name, acc in have if acc is not None]
    if not have:
        return None
    name, value = max(have, key=lambda t: t[1])
    return {"name": name, "accuracy": value}


def _weighted(items: list[tuple[int, dict]]) -> dict:
    total = sum(n for n, _ in items)
    keys = {k for _, d in items for k, v in d.items() if v is not None}
    return {k: float(sum(n * d[k] for n, d in items if d.get(k) is not None) / total) for k in sorted(keys)}


def accuracy_curve(pool: ClaimSet, o, gold) -> list[tuple[int, float, float]]:
    """(iteration, accuracy over labeled claims, coverage) from the winning chain's label snapshots."""
    claims = [pool.claims[i] for i in o.indices]
    out = []
    for it, snap in o.chains[o.best_chain]["snapshots"]:
        labels = decode_labels(snap)
        lab = [k for k, y in enumerate(labels) if y is not None]
        acc = float(np.mean([labels[k] == gold[claims[k].id] for k in lab])) if lab else float("nan")
        out.append((it, acc, len(lab) / len(claims)))
    return out


def plot_progress(path: Path, pool: ClaimSet, outcomes, has_gold: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if has_gold else 1, figsize=(11 if has_gold else 6, 4), squeeze=False)
    ax = axes[0][0]
    for o in outcomes[:8]:
        for c in o.chains:
            h = np.array(c["history"], dtype=float)
            if len(h):
                ax.plot(h[:, 0], h[:, 1], lw=1, alpha=1.0 if c["chain"] == o.best_chain else 0.35,
                        label=f"batch {o.batch} chain {c['chain']}")
    ax.set(xlabel="iteration", ylabel="U = α·P − I", title="ICM energy")
    if len(outcomes) * len(outcomes[0].chains) <= 8:
        ax.legend(fontsize=7)
    if has_gold:
        ax = axes[0][1]
        for o in outcomes[:8]:
            curve = np.array(accuracy_curve(pool, o, pool.gold), dtype=float)
            if len(curve):
                ax.plot(curve[:, 0], 100 * curve[:, 1], lw=1.2, label=f"batch {o.batch} accuracy (labeled)")
                ax.plot(curve[:, 0], 100 * curve[:, 2], lw=0.8, ls="--", label=f"batch {o.batch} coverage")
        ax.axhline(50, color="grey", lw=0.5)
        ax.set(xlabel="iteration", ylabel="%", ylim=(0, 101), title="accuracy vs gold (reports only)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def write_outputs(cfg, pool: ClaimSet, outcomes, scorer: Scorer, rules, out: Path, wall_s: float) -> dict[str, Any]:
    rows = label_rows(pool, outcomes)
    labels = [r["label"] for r in rows]
    scores = [np.nan if r["score"] is None else r["score"] for r in rows]
    claims = [pool.claims[i] for o in outcomes for i in o.indices]
    order = {c.id: k for k, c in enumerate(pool.claims)}
    claims.sort(key=lambda c: order[c.id])
    n = len(outcomes)
    report: dict[str, Any] = {
        "n_claims": len(rows), "n_groups": len({r["group"] for r in rows}), "n_pairs": len(pool.pairs),
        "n_batches": n, "scorer": cfg.scorer, "model": cfg.model,
        "iterations": sum(c["iterations"] for o in outcomes for c in o.chains),
        "accepted_flips": sum(c["accepted"] for o in outcomes for c in o.chains),
        "proposals": sum(c["proposals"] for o in outcomes for c in o.chains),
        "final": {"u": float(np.mean([o.u for o in outcomes])), "p": float(np.mean([o.p for o in outcomes])),
                  "i": int(sum(o.i for o in outcomes))},
        "per_batch": [{"batch": o.batch, "n": len(o.indices), "u": o.u, "p": o.p, "i": o.i,
                       "best_chain": o.best_chain, "chain_u": [c["u"] for c in o.chains],
                       "anchored_flip": o.anchored_flip, "time_s": o.time_s,
                       "candidates": [{k: c[k] for k in ("origin", "u", "p", "i", "source", "mirrored", "chain",
                                                         "replica")} for c in o.candidates],
                       "diagnostics": o.diagnostics} for o in outcomes],
        "time_s": float(sum(o.time_s for o in outcomes)), "wall_s_this_process": wall_s,
        "forward_tokens": int(max((o.scorer_stats.get("forward_tokens", 0) for o in outcomes), default=0)),
        "scorer_stats": outcomes[-1].scorer_stats if outcomes else {},
        "labeled": int(sum(y is not None for y in labels)),
    }
    diag = merge_diagnostics([(len(o.indices), o.diagnostics) for o in outcomes])
    report["diagnostics"] = diag
    report["warnings"] = [asdict(w) for w in warnings(diag, pool.is_pairwise)] if diag else []
    if pool.has_gold:
        report["accuracy"] = _batch_metrics(claims, labels, scores, pool.gold, rules)
        if diag.get("fallback"):  # what the searched labels would have scored (reports only)
            searched = searched_labels(outcomes)
            idx = sorted(searched)
            report["accuracy_searched"] = _batch_metrics(claims, [searched[i][0] for i in idx],
                                                         [searched[i][1] for i in idx], pool.gold, rules)
        if cfg.baselines:
            report["baselines"] = baselines(pool, outcomes, scorer, rules, seed=cfg.search.seed)
            report["strongest_baseline"] = strongest_baseline(report["baselines"])
    else:
        report["consistency"] = consistency_rate(claims, labels, rules)
    prefs = preference_examples(pool, rows) if pool.is_pairwise else []
    gold = preference_examples(pool, rows, gold=True) if pool.is_pairwise and pool.has_gold else None
    to_read = pairs_to_read(prefs, gold) if pool.is_pairwise else claims_to_read(pool, rows)
    report.update({key: {k: v for k, v in r.items() if k not in ("indices", "rows")} for key, r in to_read.items()})
    atomic_write_json(out / "report.json", report)
    plot_progress(out / "progress.png", pool, outcomes, pool.has_gold)
    # The files the next stage reads go last, so they appear only moments before the `.complete` marker.
    atomic_write_jsonl(out / "labels.jsonl", rows)
    for r in to_read.values():
        if pool.is_pairwise:
            write_preferences_jsonl(out / r["file"], [prefs[i] for i in r["indices"]])
        else:
            atomic_write_jsonl(out / r["file"], r["rows"])
    if pool.is_pairwise:
        write_preferences_jsonl(out / "preferences.jsonl", prefs)
        if gold is not None:
            write_preferences_jsonl(out / "preferences_gold.jsonl", gold)
    return report


def pairs_to_read(prefs: list[PreferenceExample], gold: list[PreferenceExample] | None) -> dict[str, dict]:
    """The pairs a person reads before training on the labels, by report key: the least-confident ones (where
    scattered errors sit) and a random spot check (what catches a whole labeling that is wrong)."""
    found = {"least_confident": review_pairs(prefs, gold), "spot_check": spot_check_pairs(prefs, gold)}
    return {key: r for key, r in found.items() if r}


def review_pairs(prefs: list[PreferenceExample], gold: list[PreferenceExample] | None) -> dict | None:
    """The ceil(REVIEW_SHARE · n) pairs of smallest margin, least sure first: a person reads these before training on
    the labels (BENCHMARKS §2c). With gold (reports only): how many of them, and of all pairs, are wrong."""
    if not prefs:
        return None
    idx = least_confident(prefs, math.ceil(REVIEW_SHARE * len(prefs)))
    out = {"file": REVIEW_FILE, "n": len(idx), "of": len(prefs), "max_margin": float(prefs[idx[-1]].margin),
           "indices": idx}
    if gold is not None:
        wrong = [p.chosen != g.chosen for p, g in zip(prefs, gold)]
        out.update(wrong=int(sum(wrong[i] for i in idx)), wrong_total=int(sum(wrong)))
    return out


def spot_check_pairs(prefs: list[PreferenceExample], gold: list[PreferenceExample] | None,
                     k: int = SPOT_SIZE) -> dict | None:
    """k pairs drawn at random (seed 0, in file order), whatever their labels: a person who reads them estimates the
    whole labeling's accuracy, which the least-confident pairs cannot do — an inverted labeling can be sure of itself.
    With gold (reports only): how many of them are wrong."""
    if not prefs:
        return None
    out = spot_draw(range(len(prefs)), k, "pairs")
    if gold is not None:
        out["wrong"] = int(sum(prefs[i].chosen != gold[i].chosen for i in out["indices"]))
    return out


def claims_to_read(pool: ClaimSet, rows: list[dict], k: int = SPOT_SIZE) -> dict[str, dict]:
    """A claim pool's spot check: k labeled claims drawn at random, as `{id, claim, label}` rows (the claim as the
    model read it), and with gold (reports only) how many of them are wrong."""
    labeled = [i for i, r in enumerate(rows) if r["label"] is not None]
    if not labeled:
        return {}
    out = spot_draw(labeled, k, "claims")
    text = {c.id: c.text for c in pool.claims}
    out["rows"] = [{"id": rows[i]["id"], "claim": text[rows[i]["id"]], "label": rows[i]["label"]}
                   for i in out["indices"]]
    if pool.has_gold:
        out["wrong"] = int(sum(pool.gold[r["id"]] != r["label"] for r in out["rows"]))
    return {"spot_check": out}


def spot_draw(candidates: Sequence[int], k: int, unit: str) -> dict:
    """min(k, n) of the candidate indices drawn at random (seed 0), sorted, with the wrong count from which labels
    are probably below 90% right (`flag_at`) and how likely labels 90% right / at chance reach it."""
    idx = sorted(random.Random(0).sample(list(candidates), min(k, len(candidates))))
    flag_at = spot_check_threshold(len(idx))
    return {"file": SPOT_FILE, "n": len(idx), "of": len(candidates), "unit": unit, "flag_at": flag_at,
            "p_flag_if_90": binom_tail(len(idx), 0.1, flag_at), "p_flag_if_50": binom_tail(len(idx), 0.5, flag_at),
            "indices": idx}


def binom_tail(n: int, p: float, t: int) -> float:
    """P(X ≥ t) for X ~ Binomial(n, p)."""
    return float(sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(t, n + 1)))


def spot_check_threshold(n: int) -> int:
    """The smallest wrong count t that labels 90% right reach with probability ≤ 10% among n random pairs."""
    return next(t for t in range(1, n + 2) if binom_tail(n, 0.1, t) <= 0.1)


# ----------------------------------------------------------------------------------------------- progress

def tb_writer(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional: without it reports still land in the files
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(out / "tb"))


def log_batch(writer, o, j: int) -> None:
    """icm/* scalars per iteration of the winning chain, namespaced per batch."""
    hist = o.chains[o.best_chain]["history"]
    for it, u, p, i, t, acc, n_lab in hist:
        writer.add_scalar(f"icm/energy/batch_{j}", u, it)
        writer.add_scalar(f"icm/predictability/batch_{j}", p, it)
        writer.add_scalar(f"icm/inconsistency/batch_{j}", i, it)
        writer.add_scalar(f"icm/temperature/batch_{j}", t, it)
        writer.add_scalar(f"icm/accepted/batch_{j}", acc, it)
        writer.add_scalar(f"icm/labeled/batch_{j}", n_lab, it)
    writer.flush()


def print_summary(report: dict, out: Path) -> None:
    lines = [f"icm-rm label: {report['n_claims']} claims in {report['n_batches']} batch(es), "
             f"U={report['final']['u']:.3f} P={report['final']['p']:.3f} I={report['final']['i']}, "
             f"{report['time_s']:.0f}s"]
    if acc := accuracy_line(report):
        lines.append("accuracy vs gold: " + acc)
    if diag := diagnostics_line(report):
        lines.append("without gold: " + diag)
    lines += [f"WARNING: {w['message']}" for w in report.get("warnings", [])]
    if review := review_line(report, f"{out}/"):
        lines.append(review)
    if spot := spot_check_line(report, f"{out}/"):
        lines.append(spot)
        rows = (out / SPOT_FILE).read_text(encoding="utf-8").splitlines()[:SPOT_PREVIEW]  # written by this run
        lines += [f"  {preview(json.loads(row))}" for row in rows]
    lines.append(f"outputs in {out}/ (labels.jsonl, report.json, progress.png)")
    print("\n".join(lines), file=sys.stderr)


def preview(row: dict, width: int = 70) -> str:
    """One spot-check row on one line, each text flattened and cut to `width`: a pair as `prompt → chosen  (over:
    rejected)`, a claim as `… its end (the task's question line dropped) → True|False`."""
    def short(content: Any, tail: bool = False) -> str:
        text = render_messages(content) if isinstance(content, list) else str(content)
        text = " ".join(text.split())
        if len(text) <= width:
            return text
        return "…" + text[-(width - 1):] if tail else text[:width - 1] + "…"

    if "claim" in row:
        claim = row["claim"].rsplit("\n", 1)[0]  # its last line is the task's question
        return f"{short(claim, tail=True)} → {row['label']}"
    return f"{short(row['prompt'])} → {short(row['chosen'])}  (over: {short(row['rejected'])})"
