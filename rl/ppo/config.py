"""`PPOConfig`: every PPO field with its help (the YAML files in configs/ppo/ mirror it; the fields GRPO shares live in
`rl/config.py`), and `BatchPlan`, the batch sizes derived from the config and the world size (logged once, never
written back into the config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from icm_rm.infra.config import cfg_field
from icm_rm.infra.errors import ConfigError

from ..config import PolicyTrainingConfig

SHARED = "shared"   # value_model: the critic is a head on the policy's own hidden states


@dataclass
class PPOConfig(PolicyTrainingConfig):
    """Train a causal-LM policy with PPO against a reward source (RM dir, HTTP RM, Python function or a mix)."""

    MODEL_FIELDS: ClassVar[tuple[str, ...]] = ("model", "tokenizer", "ref_model", "value_model")

    # ---------------------------------------------------------------- shared fields with PPO's own defaults or help
    model: str = cfg_field("", "Policy to start from: an HF causal-LM directory (also the reference and, by default, "
                               "the value backbone).")
    num_steps: int = cfg_field(200, "PPO steps (each: rollout → score → advantages → ppo_epochs of updates).", ge=1)
    temperature: float = cfg_field(0.7, "Sampling temperature; log-probabilities are computed at the same temperature.",
                                   gt=0)
    learning_rate: float = cfg_field(3e-6, "AdamW learning rate of the policy.", gt=0)
    lr_scheduler: Literal["constant", "linear", "cosine"] = cfg_field(
        "linear", "Learning-rate schedule over all optimizer steps, after warmup.", choices=("constant", "linear", "cosine"))
    max_grad_norm: float = cfg_field(1.0, "Gradient-norm clip (policy and value together).", gt=0)
    lora: bool = cfg_field(False, "Train LoRA adapters (peft) on the policy and value models; the reference is the policy "
                                  "with its adapter disabled. The exported policy is merged.")
    output_dir: str = cfg_field("runs/ppo", "Run directory: policy/, checkpoints/, tensorboard/, metrics.jsonl, "
                                            "training.png, run.json.", resume_safe=True)
    save_steps: int = cfg_field(50, "Checkpoint every N PPO steps (0 = only at the end).", ge=0)
    resume: bool | Literal["force"] = cfg_field(False, "Continue from the newest good checkpoint in output_dir/checkpoints; "
                                                       "'force' even when the config or data changed.",
                                                resume_safe=True)
    # ---------------------------------------------------------------- models
    ref_model: str | None = cfg_field(None, "Reference policy for the KL penalty; default: a frozen copy of `model` "
                                            "(with lora: the policy with its adapter disabled).")
    value_model: str | None = cfg_field(None, "Critic: 'shared' = a zero-initialised scalar head on the policy's last "
                                              "hidden states (one forward/backward for both; the value loss × vf_coef "
                                              "also trains the policy's backbone or adapters); otherwise a separate "
                                              "value model: null = a copy of the policy backbone + a new scalar head, a "
                                              "seq-cls directory (e.g. the RM dir; ./shared for a directory of that "
                                              "name) or 'reward_model' to start from the RM (its tokenizer must match "
                                              "the policy's).")
    # ---------------------------------------------------------------- data and generation
    max_prompt_length: int = cfg_field(256, "Prompt tokens kept (the end is kept when longer).", ge=1)
    generation_batch_size: int | None = cfg_field(None, "Prompts per generate() call on each process; default: all of "
                                                        "the process's rollout batch at once.", ge=1)
    # ---------------------------------------------------------------- PPO
    rollout_batch_size: int = cfg_field(64, "Prompts per PPO step, summed over all processes.", ge=1)
    num_mini_batches: int = cfg_field(1, "Optimizer steps per PPO epoch (the rollout batch is split into this many).",
                                      ge=1)
    micro_batch_size: int = cfg_field(4, "Sequences per forward/backward on one process; gradients accumulate up to a "
                                         "mini-batch, whose loss is a token mean: memory only, not the update.", ge=1)
    ppo_epochs: int = cfg_field(4, "Passes over each rollout batch (TRL: num_ppo_epochs).", ge=1)
    value_learning_rate: float | None = cfg_field(None, "AdamW learning rate of the value model (with value_model: "
                                                        "shared, of the value head); default: learning_rate.", gt=0)
    weight_decay: float = cfg_field(0.0, "AdamW weight decay.", ge=0)
    gamma: float = cfg_field(1.0, "Discount γ.", ge=0, le=1)
    gae_lambda: float = cfg_field(0.95, "GAE λ (TRL: lam, OpenRLHF: lambd).", ge=0, le=1)
    cliprange: float = cfg_field(0.2, "Policy ratio clip ε.", gt=0)
    cliprange_value: float = cfg_field(0.2, "Value clip ε_v around the rollout values.", gt=0)
    vf_coef: float = cfg_field(0.1, "Weight of the value loss in the joint loss.", ge=0)
    entropy_coef: float = cfg_field(0.0, "Entropy bonus weight (0 = none).", ge=0)
    whiten_advantages: bool = cfg_field(True, "Whiten advantages over the rollout batch (all processes).")
    whiten_rewards: bool = cfg_field(False, "Scale per-token rewards to unit variance before GAE.")
    # ---------------------------------------------------------------- KL
    kl_coef: float = cfg_field(0.05, "β of the per-token −β·KL(π‖π_ref) reward (the initial β when adaptive_kl).", ge=0)
    kl_estimator: Literal["k1", "k2", "k3"] = cfg_field("k1", "Per-token KL estimator in the reward: k1 = log-ratio, "
                                                              "k3 = exp(−r) − 1 + r (≥ 0).", choices=("k1", "k2", "k3"))
    adaptive_kl: bool = cfg_field(False, "Adapt β toward kl_target (Ziegler et al. 2019).")
    kl_target: float = cfg_field(6.0, "Target KL per sequence for adaptive_kl.", gt=0)
    kl_horizon: int = cfg_field(10000, "Horizon (in rollouts) of the adaptive KL controller.", ge=1)
    # ---------------------------------------------------------------- run
    plot_steps: int = cfg_field(10, "Redraw training.png every N steps (and at the end).", ge=1, resume_safe=True)

    def __post_init__(self):
        super().__post_init__()
        positive = ("rollout_batch_size", "num_mini_batches", "micro_batch_size", "ppo_epochs", "max_prompt_length",
                    "reward_batch_size", "plot_steps", "kl_horizon")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be ≥ 1, got {getattr(self, name)}")
        for name in ("save_steps", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be ≥ 0, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ConfigError("temperature", f"must be > 0 (PPO needs sampling), got {self.temperature}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError("gamma" if not 0 <= self.gamma <= 1 else "gae_lambda", "must lie in [0, 1]")
        if self.kl_coef < 0:
            raise ConfigError("kl_coef", f"must be ≥ 0, got {self.kl_coef}")
        if self.adaptive_kl and self.kl_target <= 0:
            raise ConfigError("kl_target", "must be > 0 when adaptive_kl is true")
        if self.rollout_batch_size % self.num_mini_batches:
            raise ConfigError("num_mini_batches", f"rollout_batch_size ({self.rollout_batch_size}) must be divisible by "
                                                  f"num_mini_batches ({self.num_mini_batches})")
        if self.generation_batch_size is not None and self.generation_batch_size < 1:
            raise ConfigError("generation_batch_size", "must be ≥ 1 or null")


@dataclass(frozen=True)
class BatchPlan:
    """Per-process sizes for one PPO step, from the config and the world size."""

    world_size: int
    rollout_per_process: int      # prompts each process generates for per step
    mini_per_process: int         # sequences per optimizer step on each process
    micro: int                    # sequences per forward/backward
    grad_accum: int               # micro-batches per optimizer step
    generation_batch: int         # prompts per generate() call
    updates_per_step: int         # optimizer steps per PPO step (ppo_epochs × num_mini_batches)
    total_updates: int            # optimizer steps in the whole run (for the LR schedule)

    def describe(self) -> str:
        """One line for the terminal: what a PPO step does on each process."""
        procs = f"{self.world_size} processes × " if self.world_size > 1 else ""
        return (f"ppo: {procs}{self.rollout_per_process} rollouts per step, {self.updates_per_step} optimizer steps "
                f"per step on {self.mini_per_process} sequences ({self.grad_accum} × {self.micro}), "
                f"{self.total_updates} in all")

    @classmethod
    def from_config(cls, cfg: PPOConfig, world_size: int) -> BatchPlan:
        if cfg.rollout_batch_size % world_size:
            raise ConfigError("rollout_batch_size", f"rollout_batch_size ({cfg.rollout_batch_size}) must be divisible by "
                                                    f"the number of processes ({world_size}); raise it to a multiple of "
                                                    f"{world_size}")
        per_proc = cfg.rollout_batch_size // world_size
        if per_proc % cfg.num_mini_batches:
            raise ConfigError("num_mini_batches", f"each process's rollout batch ({per_proc} = rollout_batch_size / "
                                                  f"{world_size} processes) must be divisible by num_mini_batches "
                                                  f"({cfg.num_mini_batches}); lower num_mini_batches")
        mini = per_proc // cfg.num_mini_batches
        if mini % cfg.micro_batch_size:
            raise ConfigError("micro_batch_size", f"each process's mini-batch ({mini} = rollout_batch_size / processes / "
                                                  f"num_mini_batches) must be divisible by micro_batch_size "
                                                  f"({cfg.micro_batch_size}); lower micro_batch_size to a divisor of {mini}")
        updates = cfg.ppo_epochs * cfg.num_mini_batches
        return cls(world_size=world_size, rollout_per_process=per_proc, mini_per_process=mini, micro=cfg.micro_batch_size,
                   grad_accum=mini // cfg.micro_batch_size, generation_batch=min(cfg.generation_batch_size or per_proc, per_proc),
                   updates_per_step=updates, total_updates=updates * cfg.num_steps)
