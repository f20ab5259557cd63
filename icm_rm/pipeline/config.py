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
    best_of_n: dict = cfg_field(default_factory=dict, help="BestOfNConfig fields (icm-rm best-of-n --help), e.g. "
                                                           "{n: 8}: the eval_rm stage also ranks the starting "
                                                           "policy's own answers to the eval prompts with every RM, "
                                                           "judged (a predictor of the RL gain); empty = skip")
    compare_human: bool = cfg_field(True, "also run the RM and RL stages on gold/human labels and compare (trained "
                                          "once, as the ICM route, where the labels are the same)")
    human_labels: str | None = cfg_field(None, "preference file with human labels (null = the label stage's "
                                               "preferences_gold.jsonl)")
    controls: list[str] = cfg_field(default_factory=list, help="control routes: random_labels = an RM on the same "
                                                               "pairs with seeded random labels, and a policy trained "
                                                               "against it (it should not improve)")
    control_seed: int = cfg_field(0, "seed of the random labels", ge=0)
    rl_seeds: list[int] = cfg_field(default_factory=lambda: [0],
                                    help="RL seeds: every route trains one policy per seed and the report gives the "
                                         "seed mean (overrides the ppo:/grpo: seed, which may only repeat the first)",
                                    ge=0)
    rm_seeds: list[int] | None = cfg_field(None, help="RM training seeds: every route trains one RM per seed (all on "
                                                      "one held-out split: rm.split_seed, else the first seed's) and "
                                                      "policies against each; "
                                                      "the report gives the mean over them (null = one RM per route, "
                                                      "the rm: section's seed)", ge=0)
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
        _check_seeds("rl_seeds", self.rl_seeds, {s: getattr(self, s).get("seed") for s in ("ppo", "grpo")})
        if self.rm_seeds is not None:
            _check_seeds("rm_seeds", self.rm_seeds, {"rm": self.rm.get("seed")})


def _check_seeds(key: str, seeds: list, sections: dict[str, int | None]) -> None:
    """Non-empty, unique, ≥ 0; a `seed` in a stage section must equal the first seed (the one whose run keeps the
    unsuffixed folder), so no config says two different things about the seed."""
    if not seeds:
        raise ConfigError(key, "give at least one seed, e.g. [0]")
    if bad := [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]:
        raise ConfigError(key, f"seeds must be integers ≥ 0, got {bad}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(key, f"seeds must be unique, got {seeds}")
    for section, seed in sections.items():
        if seed is not None and seed != seeds[0]:
            raise ConfigError(key, f"{section}.seed {seed} disagrees with {key} {seeds}; set the seeds with {key} "
                                   f"only ({key}: [{seed}] for that one seed)")
