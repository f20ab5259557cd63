"""`LabelConfig`: every field of `icm-rm label` — the data, the scorer (`ScorerSettings`, checked against the scorer
registry), the search, batching, iterative labeling, sharding and the run directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..infra.config import cfg_field
from ..infra.errors import ConfigError
from ..scoring.registry import SCORERS, scorer_class
from ..scoring.settings import ScorerSettings
from .fallback import FALLBACK_MODES
from .iterative import IterativeConfig
from .search import SearchConfig


@dataclass
class LabelConfig(ScorerSettings):
    """ICM labeling of unlabeled claims or preference pairs (`icm-rm label`)."""

    data_format: str = cfg_field("builtin", "where claims come from: builtin, claims, pairs, trl, icm_truthfulqa, "
                                            "icm_alpaca, icm_gsm8k, truthfulqa_csv, gsm8k_solutions, hh_rlhf, …")
    data_path: str | None = cfg_field(None, "input file (not needed for builtin)")
    task: str | None = cfg_field(None, "task name: a built-in task, or the template/rules for a file "
                                       "(null = the format's own default)")
    form: str = cfg_field("pairs", "built-in tasks only: pairs (preference pairs) or claims",
                          choices=("pairs", "claims"))
    split: str = cfg_field("train", "built-in tasks only: train or test subjects", choices=("train", "test"))
    limit_groups: int | None = cfg_field(None, "label only this many groups (whole groups, chosen by data_seed)", ge=1)
    data_seed: int = cfg_field(0, "seed for choosing groups under limit_groups (pair A/B order is a hash of the id)",
                               ge=0)
    fields: dict = cfg_field(default_factory=dict, help="column mapping for claims/pairs files: {our_field: "
                                                        "their_column}, e.g. {text: sentence}")

    search: SearchConfig = field(default_factory=SearchConfig, metadata={"help": "annealing settings (Algorithm 1)"})
    batch_size: int = cfg_field(256, "claims per labeling batch (whole groups; each batch is searched on its own)",
                                ge=2)
    iterative: IterativeConfig = field(default_factory=IterativeConfig,
                                       metadata={"help": "LoRA-fine-tune the labeler between batches (icl scorer)"})
    carry_labels: bool = cfg_field(False, "fit each batch's scorer with the labels of the batches before it too "
                                          "(probe: one feature space for the pool; sequential, so num_shards 1)")
    fallback: str = cfg_field("uncertain", "pairs: return the model's own preference (likelihood verdict, after "
                                           "ConsistencyFix) instead of the searched labels when they depart from it "
                                           "on > 15% of pairs or replicas/chains disagree (uncertain), on the "
                                           "departure only (departs), or never (off)", choices=FALLBACK_MODES)
    baselines: bool = cfg_field(True, "also score zero-shot, random-label and golden-label baselines (needs gold)",
                                resume_safe=True)

    num_shards: int = cfg_field(1, "parallel workers sharing output_dir; each labels batches j ≡ shard_index "
                                   "(mod num_shards) and the last to finish merges (under accelerate launch: one "
                                   "per process)", ge=1, resume_safe=True)
    shard_index: int = cfg_field(0, "this worker's shard, 0 ≤ shard_index < num_shards (e.g. $RANK)",
                                 ge=0, resume_safe=True)
    output_dir: str = cfg_field("runs/label", "run directory for labels, preferences and reports", resume_safe=True)
    resume: bool | Literal["force"] = cfg_field(False, "continue an interrupted run in output_dir (same config ⇒ same "
                                                       "labels; a changed config or data is refused, 'force' "
                                                       "continues anyway)",
                             resume_safe=True)
    overwrite: bool = cfg_field(False, "delete an existing output_dir first", resume_safe=True)
    report_to: str = cfg_field("tensorboard", "tensorboard or none", choices=("tensorboard", "none"), resume_safe=True)

    def __post_init__(self):
        if self.batch_size < 2:
            raise ConfigError("batch_size", f"must be ≥ 2, got {self.batch_size}")
        super().__post_init__()
        scorer = scorer_class(self.scorer)  # an unknown name fails here, naming the registered ones
        if self.resume and self.overwrite:
            raise ConfigError("resume", "resume and overwrite contradict each other; pick one")
        if self.iterative.enabled and not scorer.finetunable:
            able = " or ".join(name for name, cls in SCORERS.items() if cls.finetunable)
            raise ConfigError("iterative.enabled", f"iterative fine-tuning needs scorer {able}, got '{self.scorer}'")
        if self.data_format != "builtin" and not self.data_path:
            raise ConfigError("data_path", f"data_format '{self.data_format}' needs data_path")
        if self.data_format == "builtin" and self.data_path:  # else the file is silently ignored for a built-in task
            raise ConfigError("data_format", f"is 'builtin' (the default), which reads no file, but data_path is set "
                                             f"({self.data_path}); give --data_format auto (or pairs, claims, …)")
        if not 0 <= self.shard_index < max(self.num_shards, 1) or self.num_shards < 1:
            raise ConfigError("shard_index", f"need 0 ≤ shard_index < num_shards, got {self.shard_index} of "
                                             f"{self.num_shards}")
        if self.carry_labels and not scorer.carries_labels:
            able = " or ".join(name for name, cls in SCORERS.items() if cls.carries_labels)
            raise ConfigError("carry_labels", f"carrying labels between batches needs scorer {able}, got "
                                              f"'{self.scorer}'")
        if self.num_shards > 1 and self.carry_labels:
            raise ConfigError("num_shards", "carry_labels is sequential (batch j+1 is fitted with batches ≤ j); "
                                            "use num_shards 1 with carry_labels")
        if self.num_shards > 1 and self.iterative.enabled:
            raise ConfigError("num_shards", "iterative labeling is sequential (batch j+1 uses batches ≤ j); "
                                            "use num_shards 1 with iterative.enabled")
        if self.fallback not in FALLBACK_MODES:
            raise ConfigError("fallback", f"must be one of {', '.join(FALLBACK_MODES)}, got '{self.fallback}'")
        if self.report_to not in ("tensorboard", "none"):
            raise ConfigError("report_to", f"must be tensorboard or none, got '{self.report_to}'")
