"""`icm-rm label` across processes and batches: two CPU processes under `accelerate launch` (world size 2 asserted,
both workers labeled batches, the last one merged) give the bytes of one process, a merge resumes after a lost
batch, and labels carried between batches resume exactly."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from icm_rm.infra.errors import ConfigError
from icm_rm.label.config import LabelConfig
from icm_rm.label.stage import launcher_shards
from testkit.pair_files import write_pairs

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ("labels.jsonl", "preferences.jsonl", "preferences_gold.jsonl")


def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") and not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false",
               PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT))
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def label_args(data: Path, model: Path, features: Path, out: Path, *extra) -> list[str]:
    return ["-m", "icm_rm.label", "--data_format", "pairs", "--data_path", str(data), "--model", str(model),
            "--batch_size", "8", "--search.iterations", "60", "--search.patience", "0", "--report_to", "none",
            "--baselines", "false", "--feature_cache", str(features), "--output_dir", str(out), *extra]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stderr[-4000:]}"
    return out


def contract(run: Path) -> dict[str, bytes]:
    return {n: (run / n).read_bytes() for n in CONTRACT if (run / n).exists()}


@pytest.mark.multiproc
def test_two_processes_under_accelerate_launch_give_one_process_labels(tiny_model_dir, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", 12)  # 24 claims → 3 batches of 8
    feats = tmp_path / "features"
    _run([sys.executable, *label_args(data, tiny_model_dir, feats, tmp_path / "one")])
    cfg = tmp_path / "cpu_2proc.yaml"  # `--multi_gpu` + use_cpu: two CPU processes (`--cpu` would start one)
    cfg.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_machines: 1\n"
                   "num_processes: 2\nmachine_rank: 0\nmain_training_function: main\nrdzv_backend: static\n"
                   "same_network: true\nuse_cpu: true\n")
    multi = tmp_path / "multi"
    _run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg), "--main_process_port",
          str(_free_port()), *label_args(data, tiny_model_dir, feats, multi)])
    run = json.loads((multi / "run.json").read_text())
    assert run["world_size"] == 2 and run["num_shards"] == 2
    assert run["batches_by_shard"] == {"0": [0, 2], "1": [1]}  # both processes labeled their batches
    ref = contract(tmp_path / "one")
    assert ref and contract(multi) == ref

    # the merge resumes: a lost batch and lost outputs are redone by one process, to the same bytes
    for name in ("batches/batch_001.json", ".complete", *CONTRACT):
        (multi / name).unlink(missing_ok=True)
    _run([sys.executable, *label_args(data, tiny_model_dir, feats, multi, "--resume", "true")])
    assert contract(multi) == ref


def test_carried_labels_resume_to_the_same_bytes(tiny_model_dir, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    feats = tmp_path / "features"
    run = tmp_path / "carry"
    _run([sys.executable, *label_args(data, tiny_model_dir, feats, run, "--carry_labels", "true")])
    ref = contract(run)
    for name in ("batches/batch_002.json", "state/batch_002.json", ".complete", *CONTRACT):
        (run / name).unlink(missing_ok=True)
    _run([sys.executable, *label_args(data, tiny_model_dir, feats, run, "--carry_labels", "true", "--resume",
                                      "true")])
    assert ref and contract(run) == ref
    plain = tmp_path / "plain"
    _run([sys.executable, *label_args(data, tiny_model_dir, feats, plain)])
    fp = lambda r, j: json.loads((r / "state" / f"batch_{j:03d}.json").read_text())["fingerprint"]  # noqa: E731
    assert fp(run, 0) == fp(plain, 0) and fp(run, 1) != fp(plain, 1)  # batch 1's search was given batch 0's labels


def test_launcher_world_size_sets_the_shards(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert launcher_shards(LabelConfig()) == (2, 1, 2)
    assert launcher_shards(LabelConfig(num_shards=2, shard_index=0)) == (2, 1, 2)
    with pytest.raises(ConfigError, match="num_shards"):
        launcher_shards(LabelConfig(num_shards=3))
    with pytest.raises(ConfigError, match="carry_labels"):
        launcher_shards(LabelConfig(carry_labels=True))
    monkeypatch.delenv("WORLD_SIZE")
    assert launcher_shards(LabelConfig(num_shards=3, shard_index=2)) == (3, 2, 1)
    with pytest.raises(ConfigError, match="carry_labels"):
        LabelConfig(carry_labels=True, num_shards=2)
