"""How sure the labeling is, without gold: agreement between chains, replicas (seeds) and the model's own zero-shot
verdicts, the orientation margin U(labels) − U(mirror), label balance and consistency left — and plain-language
warnings that say what to do. Reports print these next to (never instead of) the gold-based baselines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.records import Claim
from .candidates import Candidate, decode_labels, replica_winners
from .energy import GroupStructure, violating_pairs

AGREE = 0.95  # labelings that agree on fewer labels than this "disagree"
NEAR_TIE = 0.02  # a candidate whose U is within this fraction of the winner's |U| is a near tie
SMALL_MARGIN = 0.05  # orientation margin (U − U_mirror) / (|U| + |U_mirror|) below this is small
# pairs: labels that differ from the likelihood verdict on more than this share "depart" from it. Set on the dev
# fact tables (BENCHMARKS.md §2a): the default's labels departed on at most 10.2% there (36 runs, both models), the
# labels never more than 2 points below that verdict; 1.5 × that leaves every dev run unwarned.
DEPART = 0.15


@dataclass(frozen=True)
class LabelWarning:
    code: str
    message: str


def agreement(a: Sequence[bool | None], b: Sequence[bool | None]) -> float:
    """Share of claims labeled in both with the same label (1.0 when none are)."""
    both = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    return float(np.mean([x == y for x, y in both])) if both else 1.0


def verdict_agreement(labels: Sequence[bool | None], signal: np.ndarray) -> float | None:
    """Share of labeled claims whose label matches the verdict's sign (claims where it says nothing are skipped)."""
    s = np.asarray(signal, dtype=np.float64)
    idx = [k for k, y in enumerate(labels) if y is not None and np.isfinite(s[k]) and s[k] != 0]
    return float(np.mean([labels[k] == (s[k] > 0) for k in idx])) if idx else None


def balance(claims: Sequence[Claim], labels: Sequence[bool | None]) -> dict:
    """Share of True labels; for swapped pairs also the share where the response shown first (A) is preferred."""
    lab = [y for y in labels if y is not None]
    out = {"true_share": float(np.mean(lab)) if lab else None}
    a = [y for c, y in zip(claims, labels) if c.key == "A>B" and y is not None]
    if a:
        out["a_preferred_share"] = float(np.mean(a))
    return out


def broken_groups(structure: GroupStructure, labels: Sequence[bool | None]) -> int:
    """How many consistency groups still hold a rule-breaking pair of labels."""
    return len({structure.group_of[i] for i, _ in violating_pairs(structure, labels)})


def diagnose(claims: Sequence[Claim], labels: Sequence[bool | None], candidates: Sequence[Candidate],
             verdicts: Mapping[str, np.ndarray], u_mirror: float, violations: int, groups_broken: int) -> dict:
    """Gold-free diagnostics of one searched labeling (one batch)."""
    win = candidates[0]
    top = [c for c in candidates if not c.mirrored]
    chains = []
    for c in top:
        own = decode_labels(c.labels)
        chains.append({"chain": c.chain, "replica": c.replica, "source": c.source, "u": c.u,
                       "agreement": agreement(own, labels)})
    near = [c for c in candidates[1:] if win.u - c.u <= NEAR_TIE * max(abs(win.u), 1e-12)
            and agreement(decode_labels(c.labels), labels) < AGREE]
    d: dict = {
        "u": win.u, "u_mirror": u_mirror, "orientation_margin": win.u - u_mirror,
        "orientation_margin_rel": (win.u - u_mirror) / max(abs(win.u) + abs(u_mirror), 1e-12),
        "winner": win.origin, "chains": chains,
        "chains_agreeing": float(np.mean([c["agreement"] >= AGREE for c in chains])) if chains else None,
        "near_ties": [{"origin": c.origin, "u": c.u, "agreement": agreement(decode_labels(c.labels), labels)}
                      for c in near],
        "verdict_agreement": {k: verdict_agreement(labels, v) for k, v in verdicts.items()},
        "balance": balance(claims, labels), "violations": violations, "groups_broken": groups_broken,
    }
    winners = replica_winners(candidates)
    if len(winners) > 1:
        ws = [decode_labels(c.labels) for c in winners.values()]
        pairs = [agreement(ws[a], ws[b]) for a in range(len(ws)) for b in range(a + 1, len(ws))]
        d["seed_agreement"] = {"min": float(min(pairs)), "mean": float(np.mean(pairs)), "replicas": len(ws)}
    return d


def warnings(d: Mapping, pairwise: bool) -> list[LabelWarning]:
    """Plain-language warnings (with what to do) from one or more batches' merged diagnostics."""
    out = []
    unit = "pairs" if pairwise else "labels"
    seed = d.get("seed_agreement")
    if seed and seed["min"] < AGREE:
        out.append(LabelWarning("seeds_disagree", f"Independent searches (replicas) agree on only "
                            f"{100 * seed['min']:.0f}% of the {unit}: which labeling comes out depends on chance. "
                            "Raise --search.restarts or --search.replicas and compare, and check a sample by hand "
                            "before training on these labels."))
    if d.get("near_ties"):
        worst = min(c["agreement"] for c in d["near_ties"])
        out.append(LabelWarning("chains_disagree", f"Another labeling scores almost as well by ICM's own objective but "
                            f"differs on {100 * (1 - worst):.0f}% of the {unit}: the model cannot tell them apart. "
                            "Treat the labels as uncertain; check a sample by hand, or add data the model knows."))
    lik = (d.get("verdict_agreement") or {}).get("likelihood")
    if pairwise and lik is not None and lik < 0.5:
        out.append(LabelWarning("against_likelihood", f"The labels disagree with the model's own preference (the "
                            f"response it finds more likely) on {100 * (1 - lik):.0f}% of pairs. Check 10 pairs by "
                            "hand: if the labels are reversed, do not train on them (rerun with a larger "
                            "--probe.zero_shot_weight, or use a stronger model)."))
    if pairwise and lik is not None and 0.5 <= lik < 1 - DEPART:
        out.append(LabelWarning("departs_from_likelihood", f"The labels differ from the model's own preference (the "
                            f"response it finds more likely) on {100 * (1 - lik):.0f}% of pairs, more than on any task "
                            "ICM's defaults were tuned on (10% at most there). ICM may "
                            "have found a better labeling or a coherent wrong one; nothing without gold can tell. "
                            "Check 20 of those pairs by hand, and compare with a rerun with "
                            "--probe.zero_shot_weight 5 (which follows the model's preference more closely)."))
    rel = d.get("orientation_margin_rel")
    if rel is not None and rel < SMALL_MARGIN:
        out.append(LabelWarning("small_margin", f"The labeling and its mirror image (every label reversed) score almost "
                            f"the same (U {d['u']:.2f} vs {d['u_mirror']:.2f}): the direction of the labels rests on "
                            "a weak signal. Check 10 labels by hand; if they are reversed, so is everything."))
    if d.get("groups_broken"):
        out.append(LabelWarning("inconsistent", f"{d['groups_broken']} group(s) still break a consistency rule (e.g. both "
                            "orderings of a pair preferred); their labels are the least reliable."))
    if fell := d.get("fallback"):
        reasons = sorted({r for f in fell for r in f["reasons"]})
        out = [LabelWarning("likelihood_fallback", f"ICM's searched labels were not returned in {len(fell)} "
                            f"batch(es) ({', '.join(reasons)}; the warnings below describe the searched labels): "
                            "those pairs carry the model's own preference instead (the response it finds more "
                            "likely, after ConsistencyFix), never worse than that preference and never better. "
                            "report.json keeps the searched labels (per_batch diagnostics, fallback); "
                            "--fallback off returns them.")] + out
    return out


def merge(per_batch: Sequence[tuple[int, Mapping]]) -> dict:
    """One run's diagnostics from its batches' (n_claims, diagnose()) — means weighted by size, worst cases kept."""
    items = [(n, d) for n, d in per_batch if d]
    if not items:
        return {}
    total = sum(n for n, _ in items)

    def wmean(get) -> float | None:
        vals = [(n, get(d)) for n, d in items if get(d) is not None]
        return float(sum(n * v for n, v in vals) / sum(n for n, _ in vals)) if vals else None

    worst = min(items, key=lambda it: it[1]["orientation_margin_rel"])[1]
    names = {k for _, d in items for k in d["verdict_agreement"]}
    out: dict = {
        # orientation: the batch with the smallest relative margin
        **{k: worst[k] for k in ("u", "u_mirror", "orientation_margin", "orientation_margin_rel")},
        "chains_agreeing": wmean(lambda d: d["chains_agreeing"]),
        "near_ties": [t | {"batch": b} for b, (_, d) in enumerate(items) for t in d["near_ties"]],
        "verdict_agreement": {k: wmean(lambda d, k=k: d["verdict_agreement"].get(k)) for k in sorted(names)},
        "balance": {k: wmean(lambda d, k=k: d["balance"].get(k)) for k in ("true_share", "a_preferred_share")
                    if any(k in d["balance"] for _, d in items)},
        "violations": int(sum(d["violations"] for _, d in items)),
        "groups_broken": int(sum(d["groups_broken"] for _, d in items)),
        "n_claims": total,
    }
    fell = [{k: v for k, v in d["fallback"].items() if k not in ("searched_labels", "searched_scores")} | {"batch": b}
            for b, (_, d) in enumerate(per_batch) if d and d.get("fallback")]
    if fell:
        out["fallback"] = fell
    seeds = [d["seed_agreement"] for _, d in items if "seed_agreement" in d]
    if seeds:
        out["seed_agreement"] = {"min": min(s["min"] for s in seeds), "mean": wmean(
            lambda d: d.get("seed_agreement", {}).get("mean")), "replicas": seeds[0]["replicas"]}
    return out
