"""Every YAML under configs/ loads into its dataclass (unknown or mistyped keys would fail here)."""

from pathlib import Path

import pytest

from icm_rm.infra.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def _classes():
    from icm_rm.label import LabelConfig
    from icm_rm.pipeline import Pipeline, PipelineConfig

    return {"icm": LabelConfig, "pipeline": PipelineConfig}, Pipeline


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "icm").glob("*.yaml")), ids=lambda p: p.name)
def test_label_configs_load(path):
    classes, _ = _classes()
    cfg = load_config(classes["icm"], path)
    assert cfg.output_dir.startswith("runs/")
    assert path.read_text().startswith("# ")  # each opens with what it is, its command and its wall time
    assert "icm-rm label --config" in path.read_text() and "wall time" in path.read_text()


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "pipeline").glob("*.yaml")), ids=lambda p: p.name)
def test_pipeline_configs_build_every_stage(path):
    classes, Pipeline = _classes()
    p = Pipeline(load_config(classes["pipeline"], path))
    p.label_cfg(), p.rm_cfg("icm"), p.rm_cfg("human"), p.rl_cfg("icm")  # each stage's dataclass validates


def test_every_config_default_satisfies_its_declared_range_and_every_number_field_is_checked():
    """The declared ranges and finiteness hold for every default (nested blocks too), and every float/int field of
    a stage config declares a range (seeds: ≥ 0, as numpy requires)."""
    import dataclasses
    import typing

    from icm_rm.infra.config import field_problems
    from icm_rm.label.config import LabelConfig
    from icm_rm.pipeline import PipelineConfig
    from icm_rm.reward.config import RewardModelConfig
    from icm_rm.reward.evaluate import EvalRMConfig
    from rl.evaluate import EvalPolicyConfig
    from rl.grpo import GRPOConfig
    from rl.ppo.config import PPOConfig
    from rl.serve_config import ServeConfig

    configs = [LabelConfig(), RewardModelConfig(), EvalRMConfig(model=["m"], data=["d"]), PipelineConfig(),
               PPOConfig(model="m", prompts="p", reward_model="r"), GRPOConfig(model="m", prompts="p", reward_model="r"),
               EvalPolicyConfig(), ServeConfig(model="m")]
    unranged = []
    for cfg in configs:
        assert field_problems(cfg) == [], type(cfg).__name__
        stack = [cfg]
        while stack:
            c = stack.pop()
            hints = typing.get_type_hints(type(c))
            for f in dataclasses.fields(c):
                if dataclasses.is_dataclass(getattr(c, f.name)):
                    stack.append(getattr(c, f.name))
                elif {int, float} & {hints[f.name], *typing.get_args(hints[f.name])} and "range" not in f.metadata:
                    unranged.append(f"{type(c).__name__}.{f.name}")
    assert unranged == []
