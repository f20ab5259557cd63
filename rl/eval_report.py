"""eval-policy's human-readable outputs: the markdown tables and the win-rate plot."""

from __future__ import annotations

from pathlib import Path

from icm_rm.infra.io import save_figure

from .eval_stats import format_diff


def markdown(doc: dict) -> str:
    lines = [f"# Policy evaluation ({doc['n_prompts']} held-out prompts, judge: {doc['judge']})", "",
             "| policy | vs | score diff [95% CI] | sign test p | win rate ± SE | W/T/L | LC win rate | "
             "mean len (policy/vs) |", "|---|---|---|---|---|---|---|---|"]
    for r in doc["win_rates"]:
        lines.append(f"| {r['policy']} | {r['versus']} | {format_diff(r['score_diff'])} | "
                     f"{r['score_diff']['sign_p']:.2g} | {100 * r['win_rate']:.1f} ± {100 * r['se']:.1f}% | "
                     f"{r['wins']}/{r['ties']}/{r['losses']} | {100 * r['lc_win_rate']:.1f}% | "
                     f"{r['len_mean'][0]:.1f} / {r['len_mean'][1]:.1f} |")
    lines += ["", "Score diff: mean per-prompt judge-score difference (policy − vs), paired bootstrap over prompts.", "",
              "| policy | judge score (mean) | degenerate answers |", "|---|---|---|"]
    deg = doc.get("degenerate", {})
    lines += [f"| {n} | {s:.3f} | {', '.join(deg.get(n, {}).get('flags', [])) or 'none'} |"
              for n, s in doc["judge_score_mean"].items()]
    if doc["preference_accuracy"]:
        lines += ["", "| policy | data | n | log-prob acc [95% CI] | implicit-reward acc [95% CI] |",
                  "|---|---|---|---|---|"]
        for pol, sets in doc["preference_accuracy"].items():
            for name, d in sets.items():
                imp = (f"{100 * d['implicit_accuracy']:.1f}% [{100 * d['implicit_ci'][0]:.1f}, "
                       f"{100 * d['implicit_ci'][1]:.1f}]") if "implicit_accuracy" in d else "—"
                lines.append(f"| {pol} | {name} | {d['n']} | {100 * d['logp_accuracy']:.1f}% "
                             f"[{100 * d['logp_ci'][0]:.1f}, {100 * d['logp_ci'][1]:.1f}] | {imp} |")
    if doc["rm_mean_reward"]:
        rms = sorted({r for d in doc["rm_mean_reward"].values() for r in d})
        lines += ["", "| policy | " + " | ".join(f"mean reward under {r}" for r in rms) + " |",
                  "|---|" + "---|" * len(rms)]
        for pol, d in doc["rm_mean_reward"].items():
            lines.append(f"| {pol} | " + " | ".join(f"{d[r]['mean']:.3f} ± {d[r]['se']:.3f}" for r in rms) + " |")
    return "\n".join(lines) + "\n"


def plot_win_rates(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = doc["win_rates"]
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(rs) + 2), 3.5))
    labels = [f"{r['policy']}\nvs {r['versus']}" for r in rs]
    ax.bar(range(len(rs)), [100 * r["win_rate"] for r in rs], yerr=[100 * r["se"] for r in rs], capsize=4,
           color="#4c72b0", label="win rate")
    ax.scatter(range(len(rs)), [100 * r["lc_win_rate"] for r in rs], color="#dd8452", zorder=3,
               label="length-controlled")
    ax.axhline(50, color="grey", lw=0.8)
    ax.set_xticks(range(len(rs)), labels, fontsize=8)
    ax.set(ylabel="% (ties = ½)", ylim=(0, 100), title=f"win rate — {doc['judge']}"[:80])
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
