"""PPO for causal-LM policies on accelerate + DeepSpeed (our own: TRL removed PPOTrainer)."""

from .config import BatchPlan, PPOConfig


def train_ppo(cfg, reward_source=None, accelerator=None):
    from .__main__ import train_ppo as _train

    return _train(cfg, reward_source=reward_source, accelerator=accelerator)


__all__ = ["BatchPlan", "PPOConfig", "train_ppo"]
