"""`icm-rm pipeline`: unlabeled pairs in; an ICM reward model, a policy trained against it, and an honest comparison
with the human-label route out.

    label (ICM) ─► train-rm ─► ppo | grpo ─► eval-rm ─► eval-policy ─► report.md
         ├─ compare_human: the same RM and RL stages on the gold/human labels, side by side (trained once, as the
         │  ICM route, where the labels are the same)
         └─ controls: [random_labels]: the same pairs with seeded random labels → an RM and a policy that should
            not improve: the evidence that the reward model, not RL by itself, moved the policy
         rl_seeds: [0, 1, 2]: one policy per RL seed and route; the report compares seed means, with each seed's
            diff and their spread, so the label effect shows apart from RL run-to-run variance

Every stage writes into its own folder under output_dir, is resumable, and is skipped when its completion marker
exists. Stage configs are the stages' own dataclasses; the pipeline YAML holds their fields under `label:`, `rm:`,
`ppo:`/`grpo:` and `eval_policy:` (any `--label.search.iterations 100`-style flag overrides them).
"""

from .config import CONTROLS, STAGES, PipelineConfig
from .stages import Pipeline, main

__all__ = ["CONTROLS", "STAGES", "Pipeline", "PipelineConfig", "main"]
