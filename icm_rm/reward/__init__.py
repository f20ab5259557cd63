"""Reward models: `RewardModelConfig` + TRL RewardTrainer training (`trainer.py`), export (`export.py`), scoring
(`scoring.RewardModel`), the shared text format (`format.format_for_rm`) and evaluation (`evaluate.py`, `stats.py`)."""
