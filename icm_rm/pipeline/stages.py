"""`Pipeline`: the resolved paths of every stage and route, and `run()`, which executes the configured stages."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rl.best_of_n import BestOfNConfig, run_best_of_n
from rl.evaluate import EvalPolicyConfig, run_eval_policy
from rl.grpo import GRPOConfig, train_grpo
from rl.launch import policy_inputs
from rl.ppo import PPOConfig, train_ppo

from ..data.builtin import DEFAULT_TASK, builtin_claimset
from ..data.preferences import PreferenceExample, write_preferences_jsonl
from ..infra.config import from_dict, parse_config, save_config
from ..infra.errors import ConfigError, UserError
from ..infra.io import (check_writable, is_complete, mark_complete, peak_rss_mib, release_memory, reset_peak_rss,
                        write_run_json)
from ..infra.runs import check_resume, fingerprint, fingerprint_matches, write_fingerprint
from ..label import LabelConfig, run_label
from ..reward import evaluate as eval_rm
from ..reward.config import RewardModelConfig
from ..reward.trainer import rm_inputs, train_reward_model
from .checks import PipelineChecks
from .config import STAGES, PipelineConfig
from .disk import PlannedModel, check_disk
from .report import write_report
from .routes import policy_name, same_labels, seed_suffix, write_random_labels


def _stage_cfg(cls, data: dict, prefix: str, **fixed: Any):
    """Build a stage's config from the pipeline's mapping, naming keys with the stage prefix in errors."""
    try:
        return from_dict(cls, {**data, **fixed})
    except ConfigError as e:
        raise ConfigError(f"{prefix}.{e.key}" if e.key else prefix, e.message) from None


def _unchanged(cfg, inputs: dict) -> bool:
    """Whether a stage is complete — and then with the config and data it ran with: a changed one is refused
    (`check_resume`), never silently skipped over."""
    done = is_complete(cfg.output_dir)
    if done:
        check_resume(cfg.output_dir, cfg, inputs)
    return done


def _named_dirs(specs: list[str], prefix: str) -> dict[str, str]:
    """`name=path` model specs → {prefix:name: path}: the evaluated models, fingerprinted by content."""
    return {f"{prefix}:{spec.split('=', 1)[0]}": spec.split("=", 1)[-1] for spec in specs}


class Pipeline(PipelineChecks):
    """Holds the resolved paths of every stage; `run()` executes the configured stages in order."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.timings: dict[str, float] = {}
        self.peak_rss_mib: dict[str, float] = {}

    # ------------------------------------------------------------------ routes and paths

    def dir(self, stage: str, route: str | None = None) -> Path:
        return self.out / (f"{stage}_{route}" if route else stage)

    def human_is_icm(self) -> bool:
        """The gold/human labels equal the ICM labels: that route would train the same seeded RM and policy."""
        return self.cfg.compare_human and same_labels(self.train_prefs("icm"), self.train_prefs("human"))

    def routes(self) -> list[str]:
        """The routes that train an RM and a policy (the human route only where its labels differ from ICM's)."""
        out = ["icm"]
        if self.cfg.compare_human and not self.human_is_icm():
            out.append("human")
        if "random_labels" in self.cfg.controls:
            out.append("random")
        return out

    def train_prefs(self, route: str) -> str:
        if route == "icm":
            return str(self.dir("label") / "preferences.jsonl")
        if route == "random":
            return str(self.out / "data" / "preferences_random.jsonl")
        return self.cfg.human_labels or str(self.dir("label") / "preferences_gold.jsonl")

    def label_cfg(self):
        return _stage_cfg(LabelConfig, self.cfg.label, "label", output_dir=str(self.dir("label")), resume=True)

    def rm_seeds(self) -> list[int | None]:
        """Each route's RM training seeds (None: one RM, with the rm: section's own seed)."""
        return list(self.cfg.rm_seeds or [None])

    def _rm_suffix(self, rm_seed: int | None) -> str:
        return seed_suffix(rm_seed, self.rm_seeds(), "r")

    def rm_dir(self, route: str, rm_seed: int | None = None) -> Path:
        """A route's RM folder for an RM seed (default: the first, which keeps the one-RM name `rm_icm`)."""
        return self.dir("rm", route + self._rm_suffix(rm_seed))

    def rm_models(self, routes: list[str] | None = None) -> list[tuple[str, Path]]:
        """(name, model dir) of every RM the routes train (eval-rm, eval-policy and best-of-n score with each)."""
        return [(f"{r}_rm{self._rm_suffix(rs)}", self.rm_dir(r, rs) / "model")
                for r in (self.routes() if routes is None else routes) for rs in self.rm_seeds()]

    def rm_specs(self) -> list[str]:
        """`name=dir` of every RM, as eval-policy's and best-of-n's `rms` take them."""
        return [f"{name}={d}" for name, d in self.rm_models()]

    def rm_cfg(self, route: str, rm_seed: int | None = None):
        d = self.rm_dir(route, rm_seed)
        resume = d.exists() and any(d.glob("checkpoint-*"))
        seeds = self.rm_seeds()
        seeded = {} if rm_seed is None else {"seed": rm_seed}
        if rm_seed is not None and rm_seed != seeds[0] and self.cfg.rm.get("split_seed") is None:
            seeded["split_seed"] = seeds[0]  # every RM of a route holds out the same pairs (an explicit one wins)
        return _stage_cfg(RewardModelConfig, self.cfg.rm, "rm", train_data=self.train_prefs(route),
                          output_dir=str(d), resume=resume, label_source=route, **seeded)

    def _run_suffix(self, seed: int, rm_seed: int | None) -> str:
        """`_r1_s2`: a policy's RM seed and RL seed suffix (none for the first of each)."""
        return self._rm_suffix(rm_seed) + seed_suffix(seed, self.cfg.rl_seeds)

    def rl_dir(self, route: str, seed: int | None = None, rm_seed: int | None = None) -> Path:
        """A route's policy folder for an RL seed against one of its RMs (default: the first of each, which keeps
        the one-seed name `ppo_icm`)."""
        seed = self.cfg.rl_seeds[0] if seed is None else seed
        return self.dir(self.cfg.rl_algo, route + self._run_suffix(seed, rm_seed))

    def runs(self) -> list[tuple[int | None, int]]:
        """(RM seed, RL seed) of each policy a route trains: one per RL seed against each of its RMs."""
        return [(rs, s) for rs in self.rm_seeds() for s in self.cfg.rl_seeds]

    def policies(self, route: str) -> list[tuple[int | str, str]]:
        """(seed label, eval-policy name) of each policy a route trains; the label is the RL seed, or with several
        RM seeds `RM seed 1, RL seed 0`."""
        several = len(self.rm_seeds()) > 1
        return [(f"RM seed {rs}, RL seed {s}" if several else s, policy_name(route, self._run_suffix(s, rs)))
                for rs, s in self.runs()]

    def rl_cfg(self, route: str, seed: int | None = None, rm_seed: int | None = None):
        seed = self.cfg.rl_seeds[0] if seed is None else seed
        d = self.rl_dir(route, seed, rm_seed)
        rm_dir = str(self.rm_dir(route, rm_seed) / "model")
        if self.cfg.rl_algo == "ppo":
            resume = (d / "checkpoints").is_dir() and any((d / "checkpoints").iterdir())
            return _stage_cfg(PPOConfig, self.cfg.ppo, "ppo", reward_model=rm_dir, reward=None, output_dir=str(d),
                              resume=resume, seed=seed)
        resume = d.is_dir() and any(d.glob("checkpoint-*"))
        return _stage_cfg(GRPOConfig, self.cfg.grpo, "grpo", reward_model=rm_dir, reward=None, output_dir=str(d),
                          resume=resume, seed=seed)

    def planned_models(self) -> list[PlannedModel]:
        """Every RM and policy the configured stages train, each marked done when its folder is already complete."""
        out = []
        for route in self.routes():
            for rs in self.rm_seeds():
                if "rm" in self.cfg.stages:
                    c = self.rm_cfg(route, rs)
                    out.append(PlannedModel("reward model", c.model, c.use_lora, is_complete(c.output_dir)))
                for seed in self.cfg.rl_seeds if "rl" in self.cfg.stages else []:
                    c = self.rl_cfg(route, seed, rs)
                    out.append(PlannedModel("policy", c.model, c.lora, is_complete(c.output_dir)))
        return out

    def eval_policy_cfg(self):
        rl_cfg = self.rl_cfg("icm")
        base = {"reference": rl_cfg.model, "prompt_format": rl_cfg.prompt_format,
                "pref_data": self.heldout_prefs()[:1], "prompts": rl_cfg.prompts}
        if len(self.runs()) > 1:
            base["head_to_head"] = False  # one seed's policy vs another route's: the report compares seed means
        return _stage_cfg(EvalPolicyConfig, {**base, **self.cfg.eval_policy}, "eval_policy",
                          policies=[f"{policy_name(r, self._run_suffix(s, rs))}={self.rl_dir(r, s, rs) / 'policy'}"
                                    for r in self.routes() for rs, s in self.runs()],
                          rms=self.rm_specs(), output_dir=str(self.dir("eval_policy")))

    def best_of_n_cfg(self) -> BestOfNConfig | None:
        """Every route's RM ranking the starting policy's own answers to the eval prompts, judged as the policies
        are (the `best_of_n:` section; None when it is empty)."""
        if not self.cfg.best_of_n:
            return None
        rl_cfg, ev = self.rl_cfg("icm"), self.eval_policy_cfg()
        base = {"policy": rl_cfg.model, "prompts": ev.prompts, "prompt_split": ev.prompt_split, "judge": ev.judge,
                "prompt_format": ev.prompt_format, "max_prompts": ev.max_prompts,
                "max_new_tokens": rl_cfg.max_new_tokens, "temperature": rl_cfg.temperature}
        return _stage_cfg(BestOfNConfig, {**base, **self.cfg.best_of_n}, "best_of_n",
                          rms=self.rm_specs(), output_dir=str(self.dir("best_of_n")))

    def heldout_prefs(self) -> list[str]:
        """Held-out preference sets for eval-rm and eval-policy: the built-in task's test split (written by
        `write_heldout_prefs`, if the labels came from a built-in task) and `eval_rm_data`."""
        builtin = self.cfg.label.get("data_format", "builtin") == "builtin"
        return ([f"{self.out / 'data' / 'heldout_test_prefs.jsonl'}:trl"] if builtin else []) + list(self.cfg.eval_rm_data)

    def write_heldout_prefs(self) -> None:
        path = self.out / "data" / "heldout_test_prefs.jsonl"
        if self.cfg.label.get("data_format", "builtin") != "builtin" or path.exists():
            return
        pool = builtin_claimset(self.cfg.label.get("task") or DEFAULT_TASK, form="pairs", split="test")
        ex = []
        for pid, pair in pool.pairs.items():
            a_better = bool(pool.gold[f"{pid}:A>B"])
            chosen, rejected = (pair.response_a, pair.response_b) if a_better else (pair.response_b, pair.response_a)
            ex.append(PreferenceExample(id=pid, prompt=pair.prompt, chosen=chosen, rejected=rejected))
        write_preferences_jsonl(path, ex)

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
        if self.human_is_icm():
            print("pipeline: the gold labels equal the ICM labels: the gold-RM route is the ICM-RM route "
                  "(trained once)", file=sys.stderr)
        for route in self.routes():
            if route == "random" and not Path(self.train_prefs("random")).exists():
                write_random_labels(self.train_prefs("icm"), Path(self.train_prefs("random")), self.cfg.control_seed)
            if not Path(self.train_prefs(route)).exists():
                raise UserError(f"{self.train_prefs(route)}: no {route} preference labels (the label stage writes "
                                "preferences_gold.jsonl only where the data has gold; set human_labels or "
                                "compare_human: false)")
            for rs in self.rm_seeds():
                cfg = self.rm_cfg(route, rs)
                name = route if rs == self.rm_seeds()[0] else f"{route}, seed {rs}"
                self._timed(f"train-rm ({name})", _unchanged(cfg, rm_inputs(cfg)),
                            lambda c=cfg: train_reward_model(c))

    def stage_rl(self) -> None:
        train = train_ppo if self.cfg.rl_algo == "ppo" else train_grpo
        for route in self.routes():
            for rs, seed in self.runs():
                cfg = self.rl_cfg(route, seed, rs)
                name = route + ("" if rs == self.rm_seeds()[0] else f", RM seed {rs}") + \
                    ("" if seed == self.cfg.rl_seeds[0] else f", seed {seed}")
                self._timed(f"{self.cfg.rl_algo} ({name})", _unchanged(cfg, policy_inputs(cfg)), lambda c=cfg: train(c))

    def stage_eval_rm(self) -> None:
        self.write_heldout_prefs()
        d = self.dir("eval_rm")
        models = [str(model) for _, model in self.rm_models()]
        cfg = eval_rm.EvalRMConfig(model=models, data=self.heldout_prefs(), output_dir=str(d),
                                   limit=self.cfg.eval_rm_limit)

        def run():
            eval_rm.write_report(eval_rm.run_eval(cfg, progress=True), d)

        self._evaluation("eval_rm", cfg, {f"rm:{k}": m for k, m in enumerate(models)}, run)
        if (bon := self.best_of_n_cfg()) is not None:
            self._evaluation("best_of_n", bon, _named_dirs(bon.rms, "rm"), lambda: run_best_of_n(bon))

    def stage_eval_policy(self) -> None:
        self.write_heldout_prefs()
        cfg = self.eval_policy_cfg()
        inputs = {**_named_dirs(cfg.policies, "policy"), **_named_dirs(cfg.rms, "rm")}
        self._evaluation("eval_policy", cfg, inputs, lambda: run_eval_policy(cfg))

    def _evaluation(self, stage: str, cfg, inputs: dict, work: Callable[[], None]) -> None:
        """Run an evaluation stage unless it is complete with this config and these models (hashed once: compared,
        then recorded). Evaluations are derived, so a changed one (another RL algorithm's policies, retrained RMs)
        runs again instead of being refused or reused."""
        fp = fingerprint(cfg, inputs)

        def run():
            work()
            write_fingerprint(cfg.output_dir, fp)
            mark_complete(cfg.output_dir, stage=stage)

        done = is_complete(cfg.output_dir) and fingerprint_matches(cfg.output_dir, fp)
        self._timed(stage.replace("_", "-"), done, run)

    def run(self) -> Path:
        self.label_cfg(), self.best_of_n_cfg()  # validate every stage up front
        for rs in self.rm_seeds():
            self.rm_cfg("icm", rs), self.rl_cfg("icm", rm_seed=rs)
        self.check_before_running()
        check_writable(self.out)
        check_disk(self.out, self.planned_models())
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flag = "--compare-human" in argv  # the documented spelling of --compare_human true
    argv = [a for a in argv if a != "--compare-human"]
    cfg, _ = parse_config(PipelineConfig, argv, prog="icm-rm pipeline")
    if flag:
        cfg.compare_human = True
    Pipeline(cfg).run()
    return 0
