"""`PipelineConfig`: the pipeline's own fields; each stage's fields live under its key as that stage's config."""

from __future__ import annotations

from dataclasses import dataclass

from ..infra.config import cfg_field
from ..infra.errors import ConfigError

STAGES = ("label", "rm", "rl", "eval_rm", "eval_policy")
CONTROLS = ("random_labels",)


@dataclass
class PipelineConfig:
    """label → train-rm → ppo/grpo → eval-rm → eval-policy, each stage resumable."""

    output_dir: str = cfg_field("runs/pipeline", "run directory; each stage gets a subfolder", resume_safe=True)
    label: dict = cfg_field(default_factory=dict, help="LabelConfig fields (icm-rm label --help)")
    rm: dict = cfg_field(default_factory=dict, help="RewardModelConfig fields (icm-rm train-rm --help)")
    rl_algo: str = cfg_field("ppo", "policy optimiser: ppo (ours) or grpo (TRL)", choices=("ppo", "grpo"))
    ppo: dict = cfg_field(default_factory=dict, help="PPOConfig fields (icm-rm ppo --help)")
    grpo: dict = cfg_field(default_factory=dict, help="GRPOConfig fields (icm-rm grpo --help)")
    eval_policy: dict = cfg_field(default_factory=dict, help="EvalPolicyConfig fields (icm-rm eval-policy --help)")
    eval_rm_data: list[str] = cfg_field(default_factory=list, help="extra held-out preference sets FILE[:format] "
                                                                   "for eval-rm (the built-in test split is added)")
    eval_rm_limit: int | None = cfg_field(200, "pairs per extra eval-rm set (null = all)", ge=1)
    compare_human: bool = cfg_field(True, "also run the RM and RL stages on gold/human labels and compare (trained "
                                          "once, as the ICM route, where the labels are the same)")
    human_labels: str | None = cfg_field(None, "preference file with human labels (null = the label stage's "
                                               "preferences_gold.jsonl)")
    controls: list[str] = cfg_field(default_factory=list, help="control routes: random_labels = an RM on the same "
                                                               "pairs with seeded random labels, and a policy trained "
                                                               "against it (it should not improve)")
    control_seed: int = cfg_field(0, "seed of the random labels", ge=0)
    stages: list[str] = cfg_field(default_factory=lambda: list(STAGES),
                                  help="stages to run, in order (later stages need earlier outputs)")

    def __post_init__(self):
        if self.rl_algo not in ("ppo", "grpo"):
            raise ConfigError("rl_algo", f"must be ppo or grpo, got '{self.rl_algo}'")
        bad = [s for s in self.stages if s not in STAGES]
        if bad:
            raise ConfigError("stages", f"unknown stage(s) {bad}; known: {', '.join(STAGES)}")
        bad = [c for c in self.controls if c not in CONTROLS]
        if bad:
            raise ConfigError("controls", f"unknown control(s) {bad}; known: {', '.join(CONTROLS)}")
