"""`icm-rm pipeline`: unlabeled pairs in; an ICM reward model, a policy trained against it, and an honest comparison
with the human-label route out.

    label (ICM) ─► train-rm ─► ppo | grpo ─► eval-rm ─► eval-policy ─► report.md
         └─ compare_human: the same RM and RL stages on the gold/human labels, side by side

Every stage writes into its own folder under output_dir, is resumable, and is skipped when its completion marker
exists. Stage configs are the stages' own dataclasses; the pipeline YAML holds their fields under `label:`, `rm:`,
`ppo:`/`grpo:` and `eval_policy:` (any `--label.search.iterations 100`-style flag overrides them).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl.evaluate import EvalPolicyConfig, run_eval_policy
from rl.grpo import GRPOConfig, train_grpo
from rl.ppo import PPOConfig, train_ppo

from .data.builtin import DEFAULT_TASK, builtin_claimset
from .data.preferences import PreferenceExample, write_preferences_jsonl
from .infra.config import cfg_field, from_dict, parse_config, save_config
from .infra.errors import ConfigError, UserError
from .infra.fmt import pct
from .infra.io import (atomic_write_json, atomic_write_text, check_writable, is_complete, mark_complete, peak_rss_mib,
                       release_memory, reset_peak_rss, write_run_json)
from .infra.runner import run_main
from .label import LabelConfig, run_label
from .label.summary import accuracy_line, diagnostics_line
from .reward import evaluate as eval_rm
from .reward.config import RewardModelConfig
from .reward.trainer import train_reward_model


@dataclass
class PipelineConfig:
    """label → train-rm → ppo/grpo → eval-rm → eval-policy, each stage resumable."""

    output_dir: str = cfg_field("runs/pipeline", "run directory; each stage gets a subfolder")
    label: dict = cfg_field(default_factory=dict, help="LabelConfig fields (icm-rm label --help)")
    rm: dict = cfg_field(default_factory=dict, help="RewardModelConfig fields (icm-rm train-rm --help)")
    rl_algo: str = cfg_field("ppo", "policy optimiser: ppo (ours) or grpo (TRL)", choices=("ppo", "grpo"))
    ppo: dict = cfg_field(default_factory=dict, help="PPOConfig fields (icm-rm ppo --help)")
    grpo: dict = cfg_field(default_factory=dict, help="GRPOConfig fields (icm-rm grpo --help)")
    eval_policy: dict = cfg_field(default_factory=dict, help="EvalPolicyConfig fields (icm-rm eval-policy --help)")
    eval_rm_data: list[str] = cfg_field(default_factory=list, help="extra held-out preference sets FILE[:format] "
                                                                   "for eval-rm (the built-in test split is added)")
    eval_rm_limit: int | None = cfg_field(200, "pairs per extra eval-rm set (null = all)")
    compare_human: bool = cfg_field(True, "also run the RM and RL stages on gold/human labels and compare")
    human_labels: str | None = cfg_field(None, "preference file with human labels (null = the label stage's "
                                               "preferences_gold.jsonl)")
    stages: list[str] = cfg_field(default_factory=lambda: ["label", "rm", "rl", "eval_rm", "eval_policy"],
                                  help="stages to run, in order (later stages need earlier outputs)")

    def __post_init__(self):
        if self.rl_algo not in ("ppo", "grpo"):
            raise ConfigError("rl_algo", f"must be ppo or grpo, got '{self.rl_algo}'")
        bad = [s for s in self.stages if s not in STAGES]
        if bad:
            raise ConfigError("stages", f"unknown stage(s) {bad}; known: {', '.join(STAGES)}")


STAGES = ("label", "rm", "rl", "eval_rm", "eval_policy")


def _stage_cfg(cls, data: dict, prefix: str, **fixed: Any):
    """Build a stage's config from the pipeline's mapping, naming keys with the stage prefix in errors."""
    try:
        return from_dict(cls, {**data, **fixed})
    except ConfigError as e:
        raise ConfigError(f"{prefix}.{e.key}" if e.key else prefix, e.message) from None


def _routes(cfg: PipelineConfig) -> list[str]:
    return ["icm", "human"] if cfg.compare_human else ["icm"]


class Pipeline:
    """Holds the resolved paths of every stage; `run()` executes the configured stages in order."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.timings: dict[str, float] = {}
        self.peak_rss_mib: dict[str, float] = {}

    # ------------------------------------------------------------------ paths

    def dir(self, stage: str, route: str | None = None) -> Path:
        return self.out / (f"{stage}_{route}" if route else stage)

    def label_cfg(self):
        return _stage_cfg(LabelConfig, self.cfg.label, "label", output_dir=str(self.dir("label")), resume=True)

    def train_prefs(self, route: str) -> str:
        if route == "icm":
            return str(self.dir("label") / "preferences.jsonl")
        return self.cfg.human_labels or str(self.dir("label") / "preferences_gold.jsonl")

    def rm_cfg(self, route: str):
        d = self.dir("rm", route)
        resume = d.exists() and any(d.glob("checkpoint-*"))
        return _stage_cfg(RewardModelConfig, self.cfg.rm, "rm", train_data=self.train_prefs(route),
                          output_dir=str(d), resume=resume, label_source=route)

    def rl_cfg(self, route: str):
        d = self.dir(self.cfg.rl_algo, route)
        rm_dir = str(self.dir("rm", route) / "model")
        if self.cfg.rl_algo == "ppo":
            resume = (d / "checkpoints").is_dir() and any((d / "checkpoints").iterdir())
            return _stage_cfg(PPOConfig, self.cfg.ppo, "ppo", reward_model=rm_dir, reward=None, output_dir=str(d),
                              resume=resume)

        resume = d.is_dir() and any(d.glob("checkpoint-*"))
        return _stage_cfg(GRPOConfig, self.cfg.grpo, "grpo", reward_model=rm_dir, reward=None, output_dir=str(d),
                          resume=resume)

    def heldout_prefs(self) -> list[str]:
        """The built-in task's test split as a gold preference file (if the labels came from a built-in task)."""
        sets = []
        lab = self.cfg.label
        if lab.get("data_format", "builtin") == "builtin":
            path = self.out / "data" / "heldout_test_prefs.jsonl"
            if not path.exists():
                pool = builtin_claimset(lab.get("task") or DEFAULT_TASK, form="pairs", split="test")
                ex = []
                for pid, pair in pool.pairs.items():
                    a_better = bool(pool.gold[f"{pid}:A>B"])
                    chosen, rejected = ((pair.response_a, pair.response_b) if a_better
                                        else (pair.response_b, pair.response_a))
                    ex.append(PreferenceExample(id=pid, prompt=pair.prompt, chosen=chosen, rejected=rejected))
                write_preferences_jsonl(path, ex)
            sets.append(f"{path}:trl")
        return sets + list(self.cfg.eval_rm_data)

    # ------------------------------------------------------------------ stages

    def _timed(self, name: str, done: bool, fn) -> None:
        if done:
            print(f"pipeline: {name}: complete, skipped", file=sys.stderr)
            return
        print(f"pipeline: {name} …", file=sys.stderr)
        t = time.time()
        reset_peak_rss()
        fn()
        self.timings[name] = time.time() - t
        self.peak_rss_mib[name] = peak_rss_mib()
        release_memory()  # the next stage loads its own models; hand this one's back first

    def stage_label(self) -> None:
        cfg = self.label_cfg()
        self._timed("label", is_complete(cfg.output_dir), lambda: run_label(cfg))

    def stage_rm(self) -> None:
        for route in _routes(self.cfg):
            cfg = self.rm_cfg(route)
            if "label" in self.cfg.stages and not Path(self.train_prefs(route)).exists():
                raise UserError(f"{cfg.train_data}: no {route} preference labels (the label stage writes "
                                "preferences_gold.jsonl only where the data has gold; set human_labels or "
                                "compare_human: false)")
            self._timed(f"train-rm ({route})", is_complete(cfg.output_dir), lambda c=cfg: train_reward_model(c))

    def stage_rl(self) -> None:
        for route in _routes(self.cfg):
            cfg = self.rl_cfg(route)
            train = train_ppo if self.cfg.rl_algo == "ppo" else train_grpo
            self._timed(f"{self.cfg.rl_algo} ({route})", is_complete(cfg.output_dir), lambda c=cfg: train(c))

    def stage_eval_rm(self) -> None:
        d = self.dir("eval_rm")
        models = [str(self.dir("rm", r) / "model") for r in _routes(self.cfg)]
        cfg = eval_rm.EvalRMConfig(model=models, data=self.heldout_prefs(), output_dir=str(d),
                                   limit=self.cfg.eval_rm_limit)

        def run():
            doc = eval_rm.run_eval(cfg, progress=True)
            eval_rm.write_report(doc, d)
            mark_complete(d, stage="eval_rm")

        self._timed("eval-rm", is_complete(d), run)

    def stage_eval_policy(self) -> None:
        d = self.dir("eval_policy")
        algo = self.cfg.rl_algo
        rl_cfg = self.rl_cfg("icm")
        policies = [f"{r}_rm_policy={self.dir(algo, r) / 'policy'}" for r in _routes(self.cfg)]
        rms = [f"{r}_rm={self.dir('rm', r) / 'model'}" for r in _routes(self.cfg)]
        base = {"reference": rl_cfg.model, "prompt_format": rl_cfg.prompt_format,
                "pref_data": self.heldout_prefs()[:1], "prompts": rl_cfg.prompts}
        cfg = _stage_cfg(EvalPolicyConfig, {**base, **self.cfg.eval_policy}, "eval_policy", policies=policies,
                         rms=rms, output_dir=str(d))

        def run():
            run_eval_policy(cfg)
            mark_complete(d, stage="eval_policy")

        self._timed("eval-policy", is_complete(d), run)

    def run(self) -> Path:
        self.label_cfg(), self.rm_cfg("icm"), self.rl_cfg("icm")  # validate every stage's config up front
        check_writable(self.out)
        save_config(self.cfg, self.out / "config.yaml")
        t0 = time.time()
        stage_fns = {"label": self.stage_label, "rm": self.stage_rm, "rl": self.stage_rl,
                     "eval_rm": self.stage_eval_rm, "eval_policy": self.stage_eval_policy}
        for s in self.cfg.stages:
            stage_fns[s]()
        summary = write_report(self)
        write_run_json(self.out, self.cfg, timings={**self.timings, "total_s": time.time() - t0})
        if list(self.cfg.stages) == list(STAGES):
            mark_complete(self.out, stage="pipeline")
        print(summary, file=sys.stderr)
        return self.out


# ----------------------------------------------------------------------------------------------- the report

def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def write_report(p: Pipeline) -> str:
    """report.md (+ summary.json): ICM label accuracy, RM held-out accuracy ± CI, policy win rates ± SE."""
    out = p.out
    lab = _read(p.dir("label") / "report.json")
    erm = _read(p.dir("eval_rm") / "eval_rm.json")
    epol = _read(p.dir("eval_policy") / "eval_policy.json")
    lines = ["# icm-rm pipeline report", ""]
    summary: dict[str, Any] = {"timings_s": p.timings, "peak_rss_mib": p.peak_rss_mib}
    if lab:
        summary["label"] = {k: lab.get(k) for k in ("accuracy", "baselines", "n_pairs", "strongest_baseline",
                                                    "diagnostics", "warnings")}
        lines += _label_section(lab)
    if erm:
        lines += ["## 2. Reward models on held-out pairs", "", "| RM | data | accuracy [95% CI] | n |", "|---|---|---|---|"]
        summary["rm"] = []
        for r in erm["results"]:
            lines.append(f"| {r['model_name']} | {r['data_name']} | {pct(r['accuracy'])} "
                         f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}] | {r['n']} |")
            summary["rm"].append({k: r[k] for k in ("model", "data_name", "accuracy", "ci_low", "ci_high", "n")})
        lines.append("")
    if epol:
        lines += ["## 3. Policies", "", f"Judge: {epol['judge']} ({epol['n_prompts']} held-out prompts).", "",
                  "| policy | vs | win rate ± SE | W/T/L | length-controlled |", "|---|---|---|---|---|"]
        for r in epol["win_rates"]:
            lines.append(f"| {r['policy']} | {r['versus']} | {pct(r['win_rate'], r['se'])} | "
                         f"{r['wins']}/{r['ties']}/{r['losses']} | {pct(r['lc_win_rate'])} |")
        lines += ["", "| policy | judge score (mean) |", "|---|---|"]
        lines += [f"| {n} | {s:.3f} |" for n, s in epol["judge_score_mean"].items()]
        lines += ["", "![win rates](eval_policy/win_rates.png)", "",
                  "Full tables (preference accuracy, reward under each RM): `eval_policy/eval_policy.md`.", ""]
        summary["policy"] = {"win_rates": epol["win_rates"], "judge_score_mean": epol["judge_score_mean"]}
    if p.timings:
        lines += ["## Timings", "", "| stage | seconds | peak RSS MiB |", "|---|---|---|"]
        lines += [f"| {k} | {v:.0f} | {p.peak_rss_mib.get(k, float('nan')):.0f} |" for k, v in p.timings.items()]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "report.md", text)
    atomic_write_json(out / "summary.json", summary)
    return _short_summary(lab, erm, epol, out)


def _label_section(lab: dict) -> list[str]:
    """report.md's label section: ICM and every baseline vs gold (the strongest gold-free one marked), the gold-free
    diagnostics and the warnings."""
    lines = ["## 1. ICM labels", "", f"{lab['n_claims']} claims ({lab['n_pairs']} pairs), scorer `{lab['scorer']}`, "
             f"model `{lab['model']}`, {lab['time_s']:.0f} s.", ""]
    acc = lab.get("accuracy") or {}
    if acc:
        lines += ["| labels | pair accuracy vs gold | claim accuracy |", "|---|---|---|",
                  f"| **ICM** | {pct(acc.get('pair'))} | {pct(acc.get('claim'))} |"]
        strong = (lab.get("strongest_baseline") or {}).get("name")
        for name, b in (lab.get("baselines") or {}).items():
            shown = f"**{name}** (strongest baseline)" if name == strong else name
            lines.append(f"| {shown} | {pct(b.get('pair'))} | {pct(b.get('claim'))} |")
        lines += ["", "![progress](label/progress.png)", ""]
    if diagnostics_line(lab):
        lines += [f"Without gold: {diagnostics_line(lab)}.", ""]
    lines += [f"> **Warning:** {w['message']}" for w in lab.get("warnings", [])]
    return lines + ([""] if lab.get("warnings") else [])


def _short_summary(lab, erm, epol, out: Path) -> str:
    s = ["", "── icm-rm pipeline summary ──"]
    if lab and lab.get("accuracy"):
        acc = lab["accuracy"].get("pair", lab["accuracy"].get("claim"))
        s.append(f"ICM labels vs gold: {accuracy_line(lab)}")
        if acc == 1.0 and len({r["model"] for r in (erm or {}).get("results", [])}) > 1:
            s.append("  (ICM labels equal the gold labels here, so both routes train the same seeded RM and policy)")
    if lab and diagnostics_line(lab):
        s.append(f"ICM labels without gold: {diagnostics_line(lab)}")
    s += [f"WARNING: {w['message']}" for w in (lab or {}).get("warnings", [])]
    for r in (erm or {}).get("results", []):
        s.append(f"RM {r['model_name']} on {r['data_name']}: {pct(r['accuracy'])} "
                 f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]")
    for r in (epol or {}).get("win_rates", []):
        s.append(f"policy {r['policy']} vs {r['versus']}: win rate {pct(r['win_rate'], r['se'])}")
    s.append(f"report: {out / 'report.md'}")
    return "\n".join(s)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flag = "--compare-human" in argv  # the documented spelling of --compare_human true
    argv = [a for a in argv if a != "--compare-human"]
    cfg, _ = parse_config(PipelineConfig, argv, prog="icm-rm pipeline")
    if flag:
        cfg.compare_human = True
    Pipeline(cfg).run()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, None))
