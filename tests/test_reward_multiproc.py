"""train-rm under `accelerate launch` with DeepSpeed on CPU (gloo, 2 processes): ZeRO-2 and ZeRO-3 complete with
world size 2 and export a plain, loadable RM. The first run on a machine JIT-builds DeepSpeed's shm comm op (~70 s,
cached in ~/.cache/torch_extensions)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.multiproc

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_yaml(tmp_path: Path, ds_config: str) -> Path:
    """DeepSpeed on CPU: 2 processes, use_cpu. (Adding --multi_gpu would start 2 processes *without* DeepSpeed.)"""
    path = tmp_path / f"accelerate_{Path(ds_config).stem}.yaml"
    path.write_text(f"""compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
deepspeed_config:
  deepspeed_config_file: {REPO / 'configs' / 'deepspeed' / ds_config}
  zero3_init_flag: false
machine_rank: 0
num_machines: 1
num_processes: 2
main_process_port: {free_port()}
rdzv_backend: static
same_network: true
use_cpu: true
""")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from test_reward_trainer import toy_pairs

    from icm_rm.data.preferences import write_preferences_jsonl

    path = tmp_path_factory.mktemp("mp_data") / "pairs.jsonl"
    write_preferences_jsonl(path, toy_pairs(40, 1))
    return path


def launch(tmp_path: Path, ds_config: str, model_dir: Path, data: Path, *extra: str) -> Path:
    out = tmp_path / Path(ds_config).stem
    launcher = [sys.executable, "-m", "accelerate.commands.launch"]
    cmd = [*launcher, "--config_file", str(accelerate_yaml(tmp_path, ds_config)),
           "-m", "icm_rm.reward.cli", "--model", str(model_dir), "--train_data", str(data), "--eval_split", "0.2",
           "--output_dir", str(out), "--expect_world_size", "2", "--seed", "42",
           "--trainer.per_device_train_batch_size", "8", "--trainer.learning_rate", "5e-3",
           "--trainer.num_train_epochs", "2", "--trainer.activation_checkpointing", "false",
           "--trainer.report_to", "[]", "--trainer.disable_tqdm", "true", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out


def check_run(out: Path, stage: int) -> dict:
    from transformers import AutoModelForSequenceClassification

    run = json.loads((out / "run.json").read_text())
    assert (run["world_size"], run["zero_stage"], run["backend"]) == (2, stage, "gloo")
    assert "DEEPSPEED" in run["distributed_type"]
    assert (out / ".complete").exists()
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.num_labels == 1 and model.config.reward_std > 0
    return run


def exported_rewards(model_dir: Path, data: Path) -> tuple[np.ndarray, np.ndarray]:
    from icm_rm.reward.data import load_pairs
    from icm_rm.reward.scoring import RewardModel

    return RewardModel.from_pretrained(model_dir).score_pairs(load_pairs(str(data)).examples)


@pytest.fixture(scope="module")
def zero2_run(tiny_model_dir, data, tmp_path_factory) -> Path:
    return launch(tmp_path_factory.mktemp("z2"), "zero2.json", tiny_model_dir, data)


def test_zero2_two_processes_complete_with_world_size_2(zero2_run):
    run = check_run(zero2_run, 2)
    assert run["metrics"]["n_train"] == 32 and run["metrics"]["held_out"]["accuracy"] >= 0.75


def test_zero3_saves_the_trained_16bit_gathered_model(zero2_run, tiny_model_dir, data, tmp_path):
    out = launch(tmp_path, "zero3.json", tiny_model_dir, data)
    run = check_run(out, 3)
    conf = json.loads((out / "model" / "config.json").read_text())
    assert conf["reward_mean"] == pytest.approx(run["metrics"]["held_out"]["reward_mean"])
    # Same seed, data and optimizer: ZeRO-3's gathered weights score like ZeRO-2's (not like an untrained model).
    z3, z2 = exported_rewards(out / "model", data), exported_rewards(zero2_run / "model", data)
    np.testing.assert_allclose(z3[0], z2[0], atol=1e-4)
    np.testing.assert_allclose(z3[1], z2[1], atol=1e-4)


@pytest.mark.slow  # a third 2-process launch (~30 s); ZeRO-3 export is covered above
def test_zero3_lora_merges_on_export(tiny_model_dir, data, tmp_path):
    out = launch(tmp_path, "zero3.json", tiny_model_dir, data, "--use_lora", "true", "--lora_r", "4",
                 "--trainer.learning_rate", "2e-2")
    check_run(out, 3)
    assert (out / "adapter" / "adapter_config.json").exists()
    c, r = exported_rewards(out / "model", data)
    assert float(np.mean(c > r)) >= 0.75
