"""icm-rm: reward models without human labels (Internal Coherence Maximization), RM training, PPO/GRPO."""

__version__ = "0.1.0"
