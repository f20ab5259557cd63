"""The one-line summaries of a label report that `icm-rm label`, the pipeline summary and report.md print: ICM next
to the strongest gold-free baseline, and the gold-free diagnostics."""

from __future__ import annotations

from ..infra.fmt import pct


def accuracy_line(report: dict) -> str | None:
    """'ICM 98.3% vs strongest baseline zero_shot_likelihood 100.0% (others: …)'; None without gold."""
    acc = report.get("accuracy")
    if not acc:
        return None
    strong = report.get("strongest_baseline")
    parts = [f"ICM {pct(acc.get('pair', acc.get('claim')))}"]
    if searched := report.get("accuracy_searched"):
        parts[0] += f" (likelihood fallback; the searched labels: {pct(searched.get('pair', searched.get('claim')))})"
    if strong:
        parts.append(f"vs strongest baseline {strong['name']} {pct(strong['accuracy'])}")
    others = [f"{n} {pct(b.get('pair', b.get('claim')))}" for n, b in (report.get("baselines") or {}).items()
              if not strong or n != strong["name"]]
    return " ".join(parts) + (f" (others: {', '.join(others)})" if others else "")


def diagnostics_line(report: dict) -> str | None:
    """The gold-free diagnostics in one line; None when the report has none."""
    d = report.get("diagnostics")
    if not d:
        return None
    parts = []
    if "seed_agreement" in d:
        parts.append(f"replicas agree {pct(d['seed_agreement']['min'])}")
    if d.get("chains_agreeing") is not None:
        parts.append(f"chains agreeing {pct(d['chains_agreeing'])}")
    parts += [f"agrees with {kind} verdict {pct(v)}" for kind, v in (d.get("verdict_agreement") or {}).items()]
    parts.append(f"orientation margin U − U(mirror) = {d['orientation_margin']:.2f} "
                 f"(relative {d['orientation_margin_rel']:.2f})")
    bal = d.get("balance") or {}
    if bal.get("a_preferred_share") is not None:
        parts.append(f"first response preferred {pct(bal['a_preferred_share'])}")
    elif bal.get("true_share") is not None:
        parts.append(f"True {pct(bal['true_share'])}")
    parts.append(f"groups breaking a rule {d['groups_broken']}")
    return "; ".join(parts)


def review_line(report: dict, where: str = "") -> str | None:
    """Which pairs to read by eye before training on the labels (`least_confident` of report.json); None without."""
    r = report.get("least_confident")
    if not r:
        return None
    gold = f" (gold: {r['wrong']} of these are wrong, {r['wrong_total']} of all {r['of']})" if "wrong" in r else ""
    return (f"check by eye: the {r['n']} of {r['of']} pairs the labeler was least sure of (margin ≤ "
            f"{r['max_margin']:.3g}) are in {where}{r['file']}{gold}; on the benchmark tasks such pairs were wrong "
            f"0.9–4.5× as often as the average pair: worth reading, but no filter")


def spot_check_line(report: dict, where: str = "") -> str | None:
    """The random spot check (`spot_check` of report.json) and how to read it; None without."""
    r = report.get("spot_check")
    if not r:
        return None
    gold = f" (gold: {r['wrong']} of these are wrong)" if "wrong" in r else ""
    return (f"spot check: {r['n']} of {r['of']} {r.get('unit', 'pairs')} drawn at random are in {where}{r['file']}"
            f"{gold}; if {r['flag_at']} or more of them are wrong, do not train on these labels — labels 90% right "
            f"show that {pct(r['p_flag_if_90'])} of the time, labels at chance {pct(r['p_flag_if_50'])} (a labeling "
            f"can be consistent, agree with the model's own verdicts and still be inverted)")
