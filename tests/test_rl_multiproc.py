"""PPO and GRPO as real multi-process runs on CPU (gloo): DeepSpeed ZeRO-2 and ZeRO-3 with 2 processes, and a
2-"machine" launch (two `accelerate launch` calls of one process each). World size 2 is asserted from run.json.
The slow test kills a PPO run with SIGKILL after a checkpoint and checks the resumed curve equals a straight run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]


def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") and not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false",
               PYTHONWARNINGS="ignore")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_yaml(tmp_path: Path, zero: int, num_processes: int = 2, num_machines: int = 1) -> Path:
    """A CPU DeepSpeed launcher config (use_cpu + gloo), written per test."""
    path = tmp_path / f"accelerate_zero{zero}_{num_machines}m.yaml"
    path.write_text(
        "compute_environment: LOCAL_MACHINE\n"
        "distributed_type: DEEPSPEED\n"
        "deepspeed_config:\n"
        f"  deepspeed_config_file: {ROOT / 'configs/deepspeed' / f'zero{zero}.json'}\n"
        "  zero3_init_flag: false\n"
        + ("  deepspeed_multinode_launcher: standard\n" if num_machines > 1 else "")
        + f"machine_rank: 0\nnum_machines: {num_machines}\nnum_processes: {num_processes}\n"
        "main_training_function: main\nrdzv_backend: static\nsame_network: true\nuse_cpu: true\n")
    return path


def _run(cmd, timeout=600):
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stderr[-4000:]}"
    return out


def _world_size(out_dir: Path) -> int:
    return json.loads((out_dir / "run.json").read_text())["world_size"]


def ppo_args(model_dir, out, *extra):
    return ["-m", "rl.ppo", "--config", "configs/ppo/tiny.yaml", "--model", str(model_dir), "--output_dir", str(out),
            *extra]


@pytest.mark.multiproc
@pytest.mark.parametrize("zero", [2, 3])
def test_ppo_deepspeed_two_processes(zero, tiny_model_dir, tmp_path):
    cfg = accelerate_yaml(tmp_path, zero)
    out = tmp_path / "run"
    if zero == 3:       # also: a DeepSpeed checkpoint written by a stopped run resumes (sharded optimizer states)
        _run(LAUNCH + ["--config_file", str(cfg), "--main_process_port", str(_free_port())]
             + ppo_args(tiny_model_dir, out, "--num_steps", "3", "--max_steps_this_run", "2"))
        assert (out / "checkpoints" / "step-000002").is_dir() and not (out / "run.json").exists()
        extra = ["--num_steps", "3", "--resume"]
    else:
        extra = []
    _run(LAUNCH + ["--config_file", str(cfg), "--main_process_port", str(_free_port())]
         + ppo_args(tiny_model_dir, out, *extra))
    assert _world_size(out) == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) in (3, 4)
    assert (out / "policy" / "model.safetensors").exists()


@pytest.mark.multiproc
def test_ppo_deepspeed_shared_critic_lora(tiny_model_dir, tmp_path):
    """value_model: shared + LoRA under ZeRO-2 on 2 processes: the head trains in the one engine beside the adapters,
    a stopped run resumes from DeepSpeed's shards, and the export is a plain causal LM without the head."""
    from safetensors.torch import load_file

    cfg = accelerate_yaml(tmp_path, 2)
    out = tmp_path / "run"
    args = ["--value_model", "shared", "--lora", "true", "--lora_r", "4", "--num_steps", "3",
            "--missing_eos_penalty", "1.0"]
    _run(LAUNCH + ["--config_file", str(cfg), "--main_process_port", str(_free_port())]
         + ppo_args(tiny_model_dir, out, *args, "--max_steps_this_run", "2"))
    assert (out / "checkpoints" / "step-000002").is_dir() and not (out / "run.json").exists()
    _run(LAUNCH + ["--config_file", str(cfg), "--main_process_port", str(_free_port())]
         + ppo_args(tiny_model_dir, out, *args, "--resume"))
    assert _world_size(out) == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["value/loss"] > 0 for r in rows)
    keys = set(load_file(out / "policy" / "model.safetensors"))
    assert keys <= set(load_file(tiny_model_dir / "model.safetensors")) and not any("value" in k for k in keys)


@pytest.mark.multiproc
def test_ppo_two_machines(tiny_model_dir, tmp_path):
    """Two launches, --num_machines 2 --machine_rank 0/1 on 127.0.0.1, one process each: one world of size 2."""
    cfg = accelerate_yaml(tmp_path, 2, num_processes=2, num_machines=2)
    port = str(_free_port())
    out = tmp_path / "run"
    procs = []
    for rank in (0, 1):
        cmd = LAUNCH + ["--config_file", str(cfg), "--num_machines", "2", "--num_processes", "2", "--machine_rank",
                        str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", port] \
            + ppo_args(tiny_model_dir, out, "--num_steps", "2")
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    try:
        logs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
    assert _world_size(out) == 2
    assert (out / "policy" / "model.safetensors").exists()


@pytest.mark.multiproc
def test_grpo_deepspeed_two_processes(tiny_model_dir, tmp_path):
    cfg = accelerate_yaml(tmp_path, 2)
    out = tmp_path / "grpo"
    _run(LAUNCH + ["--config_file", str(cfg), "--main_process_port", str(_free_port()), "-m", "rl.grpo",
                   "--config", "configs/grpo/tiny.yaml", "--model", str(tiny_model_dir), "--output_dir", str(out),
                   "--num_steps", "2", "--per_device_batch_size", "4"])
    assert _world_size(out) == 2
    assert (out / "policy" / "model.safetensors").exists()


@pytest.mark.slow
def test_ppo_sigkill_and_resume(tiny_model_dir, tmp_path):
    """A real kill: SIGKILL the process once checkpoint 3 of 6 exists, resume, compare with an uninterrupted run."""
    args = ppo_args(tiny_model_dir, tmp_path / "killed", "--num_steps", "6", "--save_steps", "1",
                    "--save_total_limit", "null")
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoints" / "step-000003"
    deadline = time.time() + 300
    while not ckpt.is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.is_dir() and not (tmp_path / "killed" / ".complete").exists()
    _run([sys.executable, *args, "--resume"])
    _run([sys.executable, *ppo_args(tiny_model_dir, tmp_path / "straight", "--num_steps", "6", "--save_steps", "1")])
    a = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b):
        for key in ("ppo/loss", "value/loss", "rollout/reward_mean"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-7), (ra["step"], key)
