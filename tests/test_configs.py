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
