"""The pipeline's up-front checks: what a run would otherwise fail on later — a judge that is a training target, a
stage without its producer's finished folders, a gold route without gold, evaluations without data, eval prompts that
are RL prompts — refused before any stage runs or anything is written."""

from __future__ import annotations

import json
from pathlib import Path

from rl.evaluate import EvalPolicyConfig
from rl.judges import judge_spec
from rl.ppo.data import load_prompts

from ..infra.errors import ConfigError, UserError
from ..infra.io import is_complete
from ..label.stage import load_pool
from ..reward.data import load_pairs


class PipelineChecks:
    """Mixed into `Pipeline` (whose paths and stage configs the checks read)."""

    def check_before_running(self) -> None:
        """Every check below, in the order a user would fix them."""
        self.check_judge()
        self.check_prerequisites()
        self.check_human_labels()
        eval_cfg = self.eval_policy_cfg()
        self.check_evaluations(eval_cfg)
        self.check_heldout(eval_cfg)

    def check_judge(self) -> None:
        """A judge RM that a compared policy is trained against would grade its own optimisation target."""
        judge = self.cfg.eval_policy.get("judge")
        if not judge or str(judge).startswith("gold:"):
            return
        for name, model in self.rm_models(["icm", "human", "random"]):
            if Path(judge).resolve() == model.resolve():
                raise ConfigError("eval_policy.judge", f"{judge} is the RM {name}, which a policy is trained "
                                                       "against; judge with gold:<task> or a held-out RM")

    def check_human_labels(self) -> None:
        """The gold-label route has labels to train on: a `human_labels` file that exists, or a label pool that
        carries gold (built-in tasks and labeled files do; an unlabeled pairs file does not) — checked before the
        label stage, not after it and the first RM."""
        if not (self.cfg.compare_human and "rm" in self.cfg.stages):
            return
        if self.cfg.human_labels:
            if not Path(self.cfg.human_labels).is_file():
                raise ConfigError("human_labels", f"{self.cfg.human_labels}: no such preference file")
            return
        label = self.label_cfg()
        if label.data_format != "builtin" and not load_pool(label).has_gold:
            raise ConfigError("compare_human", f"{label.data_path} has no gold labels, so there is no gold-label "
                                               "route to compare: set human_labels: FILE (prompt/chosen/rejected) "
                                               "or compare_human: false")

    def check_evaluations(self, eval_cfg: EvalPolicyConfig) -> None:
        """Both evaluation stages have what they read, checked before any stage runs: held-out preference pairs
        (built-in labels bring their test split; a data file does not) and a judge for the eval prompts."""
        if "eval_rm" in self.cfg.stages and not self.heldout_prefs():
            raise ConfigError("eval_rm_data", f"the labels come from {self.cfg.label.get('data_path')}, which has no "
                                              "held-out split: give held-out preference sets (eval_rm_data: "
                                              "[FILE[:format]]) or leave eval_rm out of stages")
        for spec in self.cfg.eval_rm_data if "eval_rm" in self.cfg.stages else []:
            load_pairs(spec, limit=self.cfg.eval_rm_limit)  # a missing or malformed file: its own one-line error
        if "eval_policy" in self.cfg.stages:
            judge_spec(eval_cfg.judge, eval_cfg.prompts, key="eval_policy.judge")

    def check_prerequisites(self) -> None:
        """A stage run without the stage before it reads that stage's finished folders: refused up front, naming the
        first one missing, not after the stages before it have run."""
        stages = self.cfg.stages
        outputs = {"label": lambda: [self.dir("label")],
                   "rm": lambda: [d.parent for _, d in self.rm_models()],
                   "rl": lambda: [self.rl_dir(r, s, rs) for r in self.routes() for rs, s in self.runs()]}
        reads = {"rm": ["label"], "rl": ["rm"], "eval_rm": ["rm"], "eval_policy": ["rm", "rl"]}  # policies' RM rewards
        checked: set[str] = set()
        for stage in stages:
            for producer in reads.get(stage, []):
                if producer in stages or producer in checked:
                    continue
                checked.add(producer)
                missing = next((d for d in outputs[producer]() if not is_complete(d)), None)
                if missing is not None:
                    raise ConfigError("stages", f"stage '{stage}' reads {missing}, which the '{producer}' stage has "
                                                f"not finished: add '{producer}' to stages (or run it first)")

    def check_heldout(self, eval_cfg: EvalPolicyConfig) -> int:
        """The eval prompts share none with the RL prompts of any route; returns how many there are."""
        evaluated = load_prompts(eval_cfg.prompts, eval_cfg.prompt_split, eval_cfg.max_prompts)

        def key(p) -> str:
            return json.dumps(p, sort_keys=True, ensure_ascii=False)

        evaluated_keys, read = {key(p) for p in evaluated}, {}
        for route in self.routes():
            rl_cfg = self.rl_cfg(route)
            source = (rl_cfg.prompts, rl_cfg.prompt_split, rl_cfg.max_prompts)  # the routes share one prompt set
            if source not in read:
                read[source] = {key(p) for p in load_prompts(*source)}
            shared = read[source] & evaluated_keys
            if shared:
                raise UserError(f"eval_policy: {len(shared)} of the {len(evaluated)} eval prompts are RL prompts of "
                                f"the {route} route (e.g. {sorted(shared)[0][:80]}); evaluate on held-out prompts "
                                "(eval_policy.prompt_split: test, RL prompt_split: train)")
        return len(evaluated)
