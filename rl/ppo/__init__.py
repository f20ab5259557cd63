"""PPO for causal-LM policies on accelerate + DeepSpeed (our own: TRL removed PPOTrainer)."""

from .config import BatchPlan, PPOConfig
from .run import train_ppo

__all__ = ["BatchPlan", "PPOConfig", "train_ppo"]
