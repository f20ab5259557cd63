"""report.md, summary.json and the terminal summary: labels, reward models, and the policies side by side (ICM-RM,
gold-RM, random-RM control) with paired statistics against the reference and between each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from ..infra.fmt import pct
from ..infra.io import atomic_write_json, atomic_write_text
from ..label.summary import accuracy_line, diagnostics_line
from .config import PipelineConfig
from .routes import agreement, display_name, policy_name


class Pipeline(Protocol):
    """What the report reads of a pipeline run (`stages.Pipeline`)."""

    cfg: PipelineConfig
    out: Path
    timings: dict[str, float]
    peak_rss_mib: dict[str, float]

    def dir(self, stage: str, route: str | None = None) -> Path: ...
    def routes(self) -> list[str]: ...
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
                                                "diagnostics", "warnings")}
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
    if p.human_is_icm():
        lines += ["The gold labels equal the ICM labels on every pair, so the gold-RM route *is* the ICM-RM route: "
                  "it is trained once and reported once.", ""]
    if "random" in p.routes():
        gold = agreement(p.train_prefs("random"), p.train_prefs("human"))
        summary["label"]["random_agrees_with_gold"] = gold
        lines += [f"Control: the same pairs with random labels (seed {p.cfg.control_seed}); they agree with the gold "
                  f"labels on {pct(gold)} of the pairs.", ""]
    return lines


def _rm_section(erm: dict, summary: dict) -> list[str]:
    lines = ["## 2. Reward models on held-out pairs", "", "| RM | data | accuracy [95% CI] | n |", "|---|---|---|---|"]
    summary["rm"] = []
    for r in erm["results"]:
        lines.append(f"| {display_name(r['model_name'].split('/')[0])} | {r['data_name']} | {pct(r['accuracy'])} "
                     f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}] | {r['n']} |")
        summary["rm"].append({k: r[k] for k in ("model", "data_name", "accuracy", "ci_low", "ci_high", "n")})
    return lines + [""]


def _policy_section(epol: dict, summary: dict) -> list[str]:
    scores, deg = epol["judge_score_mean"], epol.get("degenerate", {})
    vs_ref = {r["policy"]: r for r in epol["win_rates"] if r["versus"] == "reference"}
    lines = ["## 3. Policies", "", f"Judge: {epol['judge']}, {epol['n_prompts']} held-out prompts (none of them an RL "
             "prompt). Score = mean judge score; diff = mean per-prompt score difference with its paired-bootstrap "
             "95% CI; p = two-sided sign test over prompts; ties count half in the win rate.", "",
             "| policy | score | diff vs reference [95% CI] | p | win rate ± SE | W/T/L | verdict | degenerate answers |",
             "|---|---|---|---|---|---|---|---|",
             f"| reference | {scores['reference']:.3f} | | | | | | {', '.join(deg.get('reference', {}).get('flags', [])) or 'none'} |"]
    for name, r in vs_ref.items():
        d = r["score_diff"]
        lines.append(f"| {display_name(name)} | {scores[name]:.3f} | {_diff(d)} | {d['sign_p']:.2g} | "
                     f"{pct(r['win_rate'], r['se'])} | {r['wins']}/{r['ties']}/{r['losses']} | {d['verdict']} | "
                     f"{', '.join(deg.get(name, {}).get('flags', [])) or 'none'} |")
    pairs = [r for r in epol["win_rates"] if r["versus"] != "reference"]
    if pairs:
        lines += ["", "| policy | vs policy | diff [95% CI] | p | win rate ± SE | W/T/L |", "|---|---|---|---|---|---|"]
        lines += [f"| {display_name(r['policy'])} | {display_name(r['versus'])} | {_diff(r['score_diff'])} | "
                  f"{r['score_diff']['sign_p']:.2g} | {pct(r['win_rate'], r['se'])} | "
                  f"{r['wins']}/{r['ties']}/{r['losses']} |" for r in pairs]
    lines += ["", "![win rates](eval_policy/win_rates.png)", "",
              "Samples: `eval_policy/samples.jsonl`; preference accuracy and reward under each RM: "
              "`eval_policy/eval_policy.md`.", ""]
    summary["policy"] = {"win_rates": epol["win_rates"], "judge_score_mean": scores, "degenerate": deg}
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
    lines += _rm_section(erm, summary) if erm else []
    lines += _policy_section(epol, summary) if epol else []
    if p.timings:
        lines += ["## Timings", "", "| stage | seconds | peak RSS MiB |", "|---|---|---|"]
        lines += [f"| {k} | {v:.0f} | {p.peak_rss_mib.get(k, float('nan')):.0f} |" for k, v in p.timings.items()]
    headline = short_summary(p, lab, erm, epol)
    summary["headline"] = headline
    atomic_write_text(p.out / "report.md", "\n".join(lines) + "\n")
    atomic_write_json(p.out / "summary.json", summary)
    return "\n".join(["", "── icm-rm pipeline summary ──", *headline, f"report: {p.out / 'report.md'}"])


def _control_line(epol: dict) -> str | None:
    r = next((r for r in epol["win_rates"] if r["policy"] == policy_name("random") and r["versus"] == "reference"),
             None)
    if r is None:
        return None
    d = r["score_diff"]
    if d["ci"][0] > 0:
        return (f"control FAILED: the random-label RM's policy improves too ({_diff(d)}), so the gain above is not "
                "(only) the reward model's labels")
    return f"control: the random-label RM's policy does not improve ({_diff(d)}, CI includes 0 or lies below)"


def short_summary(p: Pipeline, lab: dict | None, erm: dict | None, epol: dict | None) -> list[str]:
    s = []
    if lab and lab.get("accuracy"):
        same = " — the gold labels are the same, so the gold-RM route is this route" if p.human_is_icm() else ""
        s.append(f"ICM labels vs gold: {accuracy_line(lab)}{same}")
    if diag := lab and diagnostics_line(lab):
        s.append(f"ICM labels without gold: {diag}")
    s += [f"WARNING: {w['message']}" for w in (lab or {}).get("warnings", [])]
    for r in (erm or {}).get("results", []):
        s.append(f"RM {display_name(r['model_name'].split('/')[0])} on {r['data_name']}: {pct(r['accuracy'])} "
                 f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]")
    if epol:
        scores = epol["judge_score_mean"]
        s.append(f"policies on {epol['n_prompts']} held-out prompts, judge: {epol['judge']} (score = mean judge score)")
        s.append(f"  {'reference':<17} {scores['reference']:.3f}")
        for r in epol["win_rates"]:
            d = r["score_diff"]
            if r["versus"] == "reference":
                s.append(f"  {display_name(r['policy']):<17} {scores[r['policy']]:.3f}  diff {_diff(d)}, sign p "
                         f"{d['sign_p']:.2g}, win rate {pct(r['win_rate'], r['se'])} — {d['verdict']}")
        s += [f"  {display_name(r['policy'])} vs {display_name(r['versus'])}: diff {_diff(r['score_diff'])}, win rate "
              f"{pct(r['win_rate'], r['se'])}" for r in epol["win_rates"] if r["versus"] != "reference"]
        control = _control_line(epol)
        s += [control] if control else []
        flagged = [f"{display_name(n)}: {', '.join(v['flags'])}" for n, v in epol.get("degenerate", {}).items()
                   if v.get("flags")]
        s.append("degenerate answers: " + ("; ".join(flagged) if flagged else "none"))
    return s
