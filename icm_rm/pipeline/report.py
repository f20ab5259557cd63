"""report.md, summary.json and the terminal summary: labels, reward models, and the policies side by side (ICM-RM,
gold-RM, random-RM control) with paired statistics against the reference and between each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from ..infra.fmt import pct
from ..infra.io import atomic_write_json, atomic_write_text
from ..label.summary import accuracy_line, diagnostics_line, review_line, spot_check_line
from .config import PipelineConfig
from .routes import agreement, display_name, policy_name
from .seed_means import read_scores, seed_means


class Pipeline(Protocol):
    """What the report reads of a pipeline run (`stages.Pipeline`)."""

    cfg: PipelineConfig
    out: Path
    timings: dict[str, float]
    peak_rss_mib: dict[str, float]

    def dir(self, stage: str, route: str | None = None) -> Path: ...
    def routes(self) -> list[str]: ...
    def policies(self, route: str) -> list[tuple[int | str, str]]: ...
    def rm_seeds(self) -> list[int | None]: ...
    def eval_policy_cfg(self) -> Any: ...
    def human_is_icm(self) -> bool: ...
    def train_prefs(self, route: str) -> str: ...


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _diff(d: dict) -> str:
    return f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"


def _label_section(p: Pipeline, lab: dict, summary: dict) -> list[str]:
    """ICM and every baseline vs gold (the strongest gold-free one marked), the gold-free diagnostics, the warnings
    and the routes' relation to the ICM labels."""
    acc = lab.get("accuracy") or {}
    summary["label"] = {k: lab.get(k) for k in ("accuracy", "baselines", "n_pairs", "strongest_baseline",
                                                "diagnostics", "warnings", "least_confident", "spot_check")}
    lines = ["## 1. Labels", "", f"{lab['n_claims']} claims ({lab['n_pairs']} pairs), scorer `{lab['scorer']}`, "
             f"model `{lab['model']}`, {lab['time_s']:.0f} s.", ""]
    if acc:
        strong = (lab.get("strongest_baseline") or {}).get("name")
        lines += ["| labels | pair accuracy vs gold | claim accuracy |", "|---|---|---|",
                  f"| **ICM** | {pct(acc.get('pair'))} | {pct(acc.get('claim'))} |"]
        lines += [f"| {f'**{name}** (strongest baseline)' if name == strong else name} | {pct(b.get('pair'))} | "
                  f"{pct(b.get('claim'))} |" for name, b in (lab.get("baselines") or {}).items()]
        lines += ["", "![progress](label/progress.png)", ""]
    if diag := diagnostics_line(lab):
        lines += [f"Without gold: {diag}.", ""]
    lines += [f"> **Warning:** {w['message']}" for w in lab.get("warnings", [])] + ([""] if lab.get("warnings") else [])
    for line in (review_line(lab, "label/"), spot_check_line(lab, "label/")):
        if line:
            lines += [line[0].upper() + line[1:] + ".", ""]
    if p.human_is_icm():
        lines += ["The gold labels equal the ICM labels on every pair, so the gold-RM route *is* the ICM-RM route: "
                  "it is trained once and reported once.", ""]
    if "random" in p.routes():
        gold = agreement(p.train_prefs("random"), p.train_prefs("human"))
        summary["label"]["random_agrees_with_gold"] = gold
        lines += [f"Control: the same pairs with random labels (seed {p.cfg.control_seed}); they agree with the gold "
                  f"labels on {pct(gold)} of the pairs.", ""]
    return lines


def _dropped_line(p: Pipeline) -> str | None:
    """Which RM left out its least-confident training pairs (`rm.drop_least_confident`), from the RM runs."""
    parts = []
    for route in p.routes():
        run = _read(p.dir("rm", route) / "run.json") or {}
        m = run.get("metrics", {})
        if k := m.get("skipped", {}).get("train_least_confident"):
            parts.append(f"the {display_name(f'rm_{route}')} trained on {m['n_train']} of {m['n_train'] + k} pairs "
                         f"(rm.drop_least_confident {run['config']['drop_least_confident']:g} left out the {k} "
                         "pairs with the smallest ICM margin)")
    return ("RM training data: " + "; ".join(parts)) if parts else None


def _seen_note(r: dict) -> str:
    """eval-rm's count of the set's pairs the RM was trained on: such a score is fit, not held-out accuracy."""
    k = r.get("seen_in_training")
    return f" — NOT held out: {k} of its {r['n']} pairs are RM training pairs" if k else ""


def _rm_section(erm: dict, summary: dict, dropped: str | None) -> list[str]:
    lines = ["## 2. Reward models on held-out pairs", "", "| RM | data | accuracy [95% CI] | n |", "|---|---|---|---|"]
    summary["rm"] = []
    for r in erm["results"]:
        lines.append(f"| {display_name(r['model_name'].split('/')[0])} | {r['data_name']} | {pct(r['accuracy'])} "
                     f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]{_seen_note(r)} | {r['n']} |")
        summary["rm"].append({k: r.get(k) for k in ("model", "data_name", "accuracy", "ci_low", "ci_high", "n",
                                                    "seen_in_training")})
    return lines + ([""] + [dropped[0].upper() + dropped[1:] + "."] if dropped else []) + [""]


def _best_of_n_section(bon: dict, summary: dict) -> list[str]:
    lines = [f"## 2b. Reward models on the reference policy's own answers (best-of-{bon['n']}, "
             f"{bon['n_prompts']} prompts, judge: {bon['judge']})", "",
             "RL only compares the policy's own answers: the RM that lifts best-of-n most is the one RL is likeliest "
             f"to move the policy with (BENCHMARKS §5). One answer at random scores {bon['mean_judged']:.3f}.", "",
             "| RM | best-of-n gain [95% CI] | on-policy pair accuracy [95% CI] | pairs |", "|---|---|---|---|"]
    for name, r in bon["results"].items():
        lo, hi = r["pair_accuracy_ci"]
        lines.append(f"| {display_name(name)} | {_diff(r['gain'])} | {pct(r['pair_accuracy'])} "
                     f"[{100 * lo:.1f}, {100 * hi:.1f}] | {r['pairs']} |")
    summary["best_of_n"] = {name: {k: r[k] for k in ("best_of_n", "gain", "pair_accuracy", "pair_accuracy_ci")}
                            for name, r in bon["results"].items()}
    return lines + [""]


def _best_of_n_line(bon: dict) -> str:
    parts = [f"{display_name(name)} {_diff(r['gain'])}, pair accuracy {pct(r['pair_accuracy'])}"
             for name, r in bon["results"].items()]
    return (f"RMs on the reference policy's own answers (best-of-{bon['n']} gain, {bon['n_prompts']} prompts): "
            + "; ".join(parts))


FEW_PROMPTS = 50  # fewer held-out prompts than this: the summary warns (issue 18 judges on >= 50)
STALE = "eval_policy/ judged other policies than this config trains: run the eval_policy stage again"


def _policy_stats(p: Pipeline) -> dict | None:
    """Every route's policies on seed means (one seed: that policy's own numbers, as eval-policy computed them);
    None when eval_policy/ judged other policies (a stage list that stopped before eval_policy after a change)."""
    cfg, scores = p.eval_policy_cfg(), read_scores(p.dir("eval_policy"))
    policies = {r: p.policies(r) for r in p.routes()}
    if any(name not in scores for pols in policies.values() for _, name in pols):
        return None
    return seed_means(scores, policies, tie_margin=cfg.tie_margin, seed=cfg.seed,
                      head_to_head=p.cfg.eval_policy.get("head_to_head", True))


def _route_name(route: str) -> str:
    return display_name(policy_name(route))


def _seed_diffs(r: dict) -> str:
    """`+0.160, +0.090 (sd 0.049)`: each seed's diff vs the reference and their spread."""
    return f"{', '.join(f'{d:+.3f}' for d in r['seed_diffs'])} (sd {r['seed_sd']:.3f})"


def _seed_label(seed: int | str) -> str:
    """`seed 1` for an RL seed; `RM seed 1, RL seed 0` as it is."""
    return f"seed {seed}" if isinstance(seed, int) else seed


def _flagged(epol: dict, r: dict) -> list[tuple[str | None, str]]:
    """(seed label, its degenerate-answer flags) of a route's flagged policies (label None: the only one)."""
    deg, several = epol.get("degenerate", {}), len(r["seeds"]) > 1
    return [(_seed_label(s) if several else None, ", ".join(f)) for s, n in zip(r["seeds"], r["policies"])
            if (f := deg.get(n, {}).get("flags", []))]


def _spread(p: Pipeline) -> str:
    """What the per-policy spread of a route measures: RL seeds alone, or RM training and RL together."""
    return "RL seed" if len(p.rm_seeds()) == 1 else "RM and RL seed"


def _gap_line(stats: dict, spread: str = "RL seed") -> str | None:
    """How the ICM-vs-gold policy gap compares with run-to-run variance (one run: that it cannot be told apart);
    `spread` names what the policies of a route vary in (`_spread`)."""
    routes = stats["routes"]
    if {"icm", "human"} <= set(routes) and len(routes["icm"]["seeds"]) == 1:
        return ("ICM-RM vs gold-RM policy: one RM and one RL run per route, and a run's outcome varies between RL "
                "seeds and between RM training seeds, so this gap mixes the label effect with run-to-run variance; "
                "`--rl_seeds [0,1,2]` (and `--rm_seeds [42,1,2]`) compares seed means")
    g = stats.get("gold_gap")
    if g is None:
        return None
    n = len(routes["icm"]["seeds"])
    noise = (f"two standard errors of run-to-run variance (±{2 * g['seed_se']:.3f} over {n} runs per route, "
             f"{spread}s; per-run diff sd up to {g['seed_sd']:.3f})")
    if g["within_seed_spread"]:
        return (f"ICM-RM vs gold-RM policy: the seed-mean gap {g['diff']:+.3f} is within {noise}: these runs cannot "
                "tell the label effect from it")
    return f"ICM-RM vs gold-RM policy: the seed-mean gap {g['diff']:+.3f} exceeds {noise}"


def _seeds_said(p: Pipeline) -> str:
    """`RL seeds 0, 1, 2` or `RM seeds 42, 1 × RL seed 0`: the seeds a route's seed mean averages over."""
    rl = f"RL seed{'s' if len(p.cfg.rl_seeds) > 1 else ''} {', '.join(map(str, p.cfg.rl_seeds))}"
    rm = p.rm_seeds()
    return rl if len(rm) == 1 else f"RM seeds {', '.join(map(str, rm))} × {rl}"


def _policy_section(p: Pipeline, epol: dict, stats: dict, summary: dict) -> list[str]:
    scores, deg = epol["judge_score_mean"], epol.get("degenerate", {})
    several = len(p.policies("icm")) > 1
    lines = ["## 3. Policies", "", f"Judge: {epol['judge']}, {epol['n_prompts']} held-out prompts (none of them an RL "
             "prompt). Score = mean judge score; diff = mean per-prompt score difference with its paired-bootstrap "
             "95% CI; p = two-sided sign test over prompts; ties count half in the win rate.", ""]
    if several and len(p.rm_seeds()) > 1:
        lines += [f"Every route trained one RM per RM seed and one policy per RL seed against each ({_seeds_said(p)});"
                  " its row compares the per-prompt score averaged over those policies (the seed mean). Per-seed "
                  "diffs: each policy alone vs the reference, RM seed by RM seed; sd: their standard deviation, the "
                  "run-to-run variance of RM training and RL together.", ""]
    elif several:
        lines += [f"Every route trained one policy per RL seed ({', '.join(map(str, p.cfg.rl_seeds))}); its row "
                  "compares the per-prompt score averaged over the seeds (the seed mean). Per-seed diffs: each seed's "
                  "policy alone vs the reference; sd: their standard deviation, the RL run-to-run variance.", ""]
    seed_col = (" per-seed diffs (sd) |", "---|") if several else ("", "")
    lines += [f"| policy | score | diff vs reference [95% CI] | p | win rate ± SE | W/T/L | verdict |{seed_col[0]} "
              "degenerate answers |", f"|---|---|---|---|---|---|---|{seed_col[1]}---|",
              f"| reference | {scores['reference']:.3f} | | | | | |{' |' if several else ''} "
              f"{', '.join(deg.get('reference', {}).get('flags', [])) or 'none'} |"]
    for route, r in stats["routes"].items():
        c, d = r["vs_reference"], r["vs_reference"]["score_diff"]
        lines.append(f"| {_route_name(route)} | {r['score']:.3f} | {_diff(d)} | {d['sign_p']:.2g} | "
                     f"{pct(c['win_rate'], c['se'])} | {c['wins']}/{c['ties']}/{c['losses']} | {d['verdict']} |"
                     f"{f' {_seed_diffs(r)} |' if several else ''} "
                     f"{'; '.join(f if s is None else f'{s}: {f}' for s, f in _flagged(epol, r)) or 'none'} |")
    if stats["pairs"]:
        lines += ["", "| policy | vs policy | diff [95% CI] | p | win rate ± SE | W/T/L |", "|---|---|---|---|---|---|"]
        lines += [f"| {_route_name(r['route'])} | {_route_name(r['versus'])} | {_diff(r['score_diff'])} | "
                  f"{r['score_diff']['sign_p']:.2g} | {pct(r['win_rate'], r['se'])} | "
                  f"{r['wins']}/{r['ties']}/{r['losses']} |" for r in stats["pairs"]]
    if gap := _gap_line(stats, _spread(p)):
        lines += ["", gap[0].upper() + gap[1:] + "."]
    lines += ["", "![win rates](eval_policy/win_rates.png)", "",
              "Samples: `eval_policy/samples.jsonl`; preference accuracy and reward under each RM: "
              "`eval_policy/eval_policy.md`.", ""]
    summary["policy"] = {"win_rates": epol["win_rates"], "judge_score_mean": scores, "degenerate": deg,
                         "rl_seeds": list(p.cfg.rl_seeds), "rm_seeds": p.cfg.rm_seeds, "seed_mean": stats}
    return lines


def write_report(p: Pipeline) -> str:
    """report.md + summary.json; returns the terminal summary (also summary.json's `headline`)."""
    lab = _read(p.dir("label") / "report.json")
    erm = _read(p.dir("eval_rm") / "eval_rm.json")
    epol = _read(p.dir("eval_policy") / "eval_policy.json")
    summary: dict[str, Any] = {"timings_s": p.timings, "peak_rss_mib": p.peak_rss_mib, "routes": p.routes(),
                               "gold_route_is_icm_route": p.human_is_icm()}
    lines = ["# icm-rm pipeline report", ""]
    lines += _label_section(p, lab, summary) if lab else []
    dropped = _dropped_line(p) if erm else None
    lines += _rm_section(erm, summary, dropped) if erm else []
    bon = _read(p.dir("best_of_n") / "best_of_n.json") if p.cfg.best_of_n else None
    lines += _best_of_n_section(bon, summary) if bon else []
    stats = _policy_stats(p) if epol else None
    if epol and not stats:
        lines += ["## 3. Policies", "", STALE[0].upper() + STALE[1:] + ".", ""]
    lines += _policy_section(p, epol, stats, summary) if stats else []
    if p.timings:
        lines += ["## Timings", "", "| stage | seconds | peak RSS MiB |", "|---|---|---|"]
        lines += [f"| {k} | {v:.0f} | {p.peak_rss_mib.get(k, float('nan')):.0f} |" for k, v in p.timings.items()]
    headline = short_summary(p, lab, erm, epol, stats, dropped, bon)
    summary["headline"] = headline
    atomic_write_text(p.out / "report.md", "\n".join(lines) + "\n")
    atomic_write_json(p.out / "summary.json", summary)
    return "\n".join(["", "── icm-rm pipeline summary ──", *headline, f"report: {p.out / 'report.md'}"])


def _control_line(stats: dict) -> str | None:
    r = stats["routes"].get("random")
    if r is None:
        return None
    d = r["vs_reference"]["score_diff"]
    diff = ("seed mean " if len(r["seeds"]) > 1 else "") + _diff(d)
    if d["ci"][0] > 0:
        return (f"control FAILED: the random-label RM's policy improves too ({diff}), so the gain above is not (only) "
                "the reward model's labels")
    return f"control: the random-label RM's policy does not improve ({diff}, CI includes 0 or lies below)"


def short_summary(p: Pipeline, lab: dict | None, erm: dict | None, epol: dict | None,
                  stats: dict | None = None, dropped: str | None = None, bon: dict | None = None) -> list[str]:
    """The terminal summary's lines; `dropped` is the RM training-data line write_report read once (`_dropped_line`),
    `bon` the best-of-n stage's document."""
    s = []
    if lab and lab.get("accuracy"):
        same = " — the gold labels are the same, so the gold-RM route is this route" if p.human_is_icm() else ""
        s.append(f"ICM labels vs gold: {accuracy_line(lab)}{same}")
    if diag := lab and diagnostics_line(lab):
        s.append(f"ICM labels without gold: {diag}")
    s += [f"WARNING: {w['message']}" for w in (lab or {}).get("warnings", [])]
    if lab and (lab.get("least_confident") or lab.get("spot_check")):
        where = f"{p.dir('label')}/"
        s += [line for line in (review_line(lab, where), spot_check_line(lab, where)) if line]
    if dropped:
        s.append(dropped)
    for r in (erm or {}).get("results", []):
        s.append(f"RM {display_name(r['model_name'].split('/')[0])} on {r['data_name']}: {pct(r['accuracy'])} "
                 f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]" + _seen_note(r))
    if bon:
        s.append(_best_of_n_line(bon))
    if epol and stats:
        several = len(p.policies("icm")) > 1
        means = f"; each policy line is the mean over {_seeds_said(p)}" if several else ""
        s.append(f"policies on {epol['n_prompts']} held-out prompts, judge: {epol['judge']} (score = mean judge "
                 f"score{means})")
        if epol["n_prompts"] < FEW_PROMPTS:
            s.append(f"WARNING: only {epol['n_prompts']} held-out prompts: the score differences below carry wide CIs; "
                     f"hold out {FEW_PROMPTS} or more (the demo judges 56)")
        s.append(f"  {'reference':<17} {epol['judge_score_mean']['reference']:.3f}")
        for route, r in stats["routes"].items():
            c, d = r["vs_reference"], r["vs_reference"]["score_diff"]
            per_seed = f"; seeds: {_seed_diffs(r)}" if several else ""
            s.append(f"  {_route_name(route):<17} {r['score']:.3f}  diff {_diff(d)}, sign p {d['sign_p']:.2g}, win "
                     f"rate {pct(c['win_rate'], c['se'])} — {d['verdict']}{per_seed}")
        s += [f"  {_route_name(r['route'])} vs {_route_name(r['versus'])}: diff {_diff(r['score_diff'])}, win rate "
              f"{pct(r['win_rate'], r['se'])}" for r in stats["pairs"]]
        s += [line for line in (_gap_line(stats, _spread(p)), _control_line(stats)) if line]
        ref = epol.get("degenerate", {}).get("reference", {}).get("flags")
        policies = [f"{_route_name(route)}{'' if seed is None else f' {seed}'}: {f}"
                    for route, r in stats["routes"].items() for seed, f in _flagged(epol, r)]
        flagged = ([f"reference: {', '.join(ref)}"] if ref else []) + policies
        s.append("degenerate answers: " + ("; ".join(flagged) if flagged else "none"))
        if any("cut at the token limit" in f for f in policies):
            s.append("  a policy that runs past max_new_tokens may have found an RM that pays for length: read its "
                     "answers in eval_policy/samples.jsonl before trusting its score")
    elif epol:
        s.append(f"policies: {STALE}")
    return s
