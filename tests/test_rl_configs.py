"""configs/ppo, configs/grpo and configs/accelerate: keys match their dataclasses, values type-check, and each file
opens with its launch command and expected wall time."""

from pathlib import Path

import pytest
import yaml

from icm_rm.infra.config import load_config, load_yaml
from rl.grpo import GRPOConfig
from rl.ppo.config import PPOConfig

ROOT = Path(__file__).resolve().parents[1]
CASES = [(p, PPOConfig) for p in sorted((ROOT / "configs/ppo").glob("*.yaml"))] + \
        [(p, GRPOConfig) for p in sorted((ROOT / "configs/grpo").glob("*.yaml"))]


def test_there_are_configs():
    names = {(p.parent.name, p.name) for p, _ in CASES}
    assert {("ppo", "default.yaml"), ("ppo", "tiny.yaml"), ("grpo", "default.yaml"), ("grpo", "tiny.yaml")} <= names


@pytest.mark.parametrize("path,cls", CASES, ids=lambda x: getattr(x, "name", getattr(x, "__name__", str(x))))
def test_yaml_keys_match_dataclass(path, cls):
    import dataclasses

    data = load_yaml(path)
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(data) <= fields, f"{path.name}: unknown keys {sorted(set(data) - fields)}"
    cfg = load_config(cls, path)                   # type-checks values and runs __post_init__ (incl. trl: keys)
    assert cfg.output_dir.startswith("runs/")
    head = path.read_text().splitlines()[:6]
    assert all(line.startswith("#") for line in head[:3])
    assert any("-m rl." in line or "icm-rm " in line or "python -m" in line for line in head)
    assert any("wall time" in line.lower() for line in head)


def test_multi_node_template():
    path = ROOT / "configs/accelerate/multi_node.yaml"
    data = yaml.safe_load(path.read_text())
    for key in ("num_machines", "machine_rank", "main_process_ip", "main_process_port"):
        assert key in data
    assert data["distributed_type"] == "DEEPSPEED"
    assert (ROOT / data["deepspeed_config"]["deepspeed_config_file"]).exists()
    assert (ROOT / "docs/multi_node.md").exists()
