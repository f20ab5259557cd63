"""The reliability suite's shared pieces: the real CLI in a subprocess (or in-process), the one-line-error check, and
the "nothing half-written where a later stage reads" check that runs after every injected fault."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BAD_INPUTS = Path(__file__).resolve().parent / "bad_inputs"

# Files and dirs a later stage (or a user) reads from a run dir; they must never be partial, and only a finished
# run (`.complete`) may hold them — see `assert_nothing_half_written`.
CONTRACT_FILES = ("labels.jsonl", "preferences.jsonl", "preferences_gold.jsonl", "eval_rm.json", "eval_policy.json",
                  "samples.jsonl")
CONTRACT_DIRS = ("model", "policy")
# Names readers open (exactly, or by these patterns): a temp file must never match them.
READER_NAMES = re.compile(r"(labels|preferences|preferences_gold|samples)\.jsonl|(batch_\d{3}|config|run|report|"
                          r"eval_rm|eval_policy|trainer_state)\.json|checkpoint-\d+|step-\d+|model|policy|latest")

_BAR = re.compile(r"(\d+%\|)|(\d+/\d+ \[)|(it/s\]|s/it\])")  # a tqdm redraw


def cli_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment every CLI subprocess runs in: offline, one torch thread (a loaded 2-core box), no debug."""
    env = {k: v for k, v in os.environ.items() if k not in ("ICM_RM_DEBUG", "ICM_RM_SERVE_TOKEN")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    if home is not None:
        env["ICM_RM_HOME"] = str(home)
    env.update(extra)
    return env


@dataclass
class Result:
    rc: int
    out: str
    err: str


def run_cli(args: Sequence[str], *, env: dict | None = None, timeout: float = 600) -> Result:
    """`python -m icm_rm.cli ARGS` to completion."""
    p = subprocess.run([sys.executable, "-m", "icm_rm.cli", *map(str, args)], cwd=ROOT, env=env or cli_env(),
                       capture_output=True, text=True, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)


def start_cli(args: Sequence[str], *, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "icm_rm.cli", *map(str, args)], cwd=ROOT, env=env or cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], *, delay: float = 0.0, timeout: float = 600,
              poll: float = 0.005) -> bool:
    """SIGKILL `proc` `delay` seconds after `ready()` first holds. Returns False when the process ended first (the
    chosen point lay past the end of the run) — the caller decides whether that is a failure."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            hit = ready()
        except (OSError, ValueError):  # a file mid-rename or not there yet
            hit = False
        if hit:
            break
        time.sleep(poll)
    else:
        proc.kill()
        raise AssertionError(f"kill point not reached in {timeout}s")
    if delay:
        time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def error_line(err: str) -> str:
    """The one message line of stderr, after dropping tqdm redraws. Fails when there is a traceback, a warning, more
    than one message line, or a message glued onto a progress bar."""
    assert "Traceback" not in err, err
    segments = [s.strip() for s in re.split(r"[\r\n]", err) if s.strip()]
    messages = [s for s in segments if not _BAR.search(s) or "icm-rm: error:" in s]
    assert len(messages) == 1, f"expected exactly one message line on stderr, got {len(messages)}:\n{err}"
    assert messages[0].startswith("icm-rm: error: "), messages[0]
    return messages[0]


def assert_user_error(rc: int, err: str, *names: str, output_dir: str | Path | None = None) -> str:
    """Exit 2, one line naming every one of `names`, nothing half-written in `output_dir`."""
    line = error_line(err)
    assert rc == 2, (rc, err)
    for name in names:
        assert name in line, f"{name!r} not named in: {line}"
    if output_dir is not None:
        assert_nothing_half_written(output_dir)
    return line


def assert_nothing_half_written(run_dir: str | Path, final: dict[str, bytes] | None = None) -> None:
    """After a fault: a run dir is absent, or every JSON/JSONL a reader opens parses, and a contract file/dir exists
    only in a finished run (`.complete`) — or, in the milliseconds between the last rename and the marker, holds
    exactly the finished run's bytes (`final`). Temp files (`*.tmp`) never carry a name a reader opens.
    Trainer checkpoints are checked by the resume that follows (it must pick a whole one)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    complete = (run_dir / ".complete").exists()
    for path in run_dir.rglob("*"):
        rel = path.relative_to(run_dir).parts
        if ".tmp" in path.name:
            assert not READER_NAMES.fullmatch(path.name), path
            continue
        if (not path.is_file() or path.suffix not in (".json", ".jsonl")
                or any(p.startswith(("checkpoint", "step-")) or ".tmp" in p for p in rel[:-1])):
            continue
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix == ".jsonl":
                [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                json.loads(text)
        except json.JSONDecodeError as e:
            raise AssertionError(f"{path}: not valid JSON after a kill ({e})") from None
    for name in CONTRACT_FILES:
        f = run_dir / name
        if f.exists() and not complete:
            assert final is not None and f.read_bytes() == final.get(name), \
                f"{f} exists without {run_dir}/.complete and is not the finished run's file"
    for name in CONTRACT_DIRS:
        d = run_dir / name
        assert complete or not d.exists(), f"{d}/ exists without {run_dir}/.complete"


# ----------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def icm_home(tmp_path_factory) -> Path:
    """An empty ICM_RM_HOME, so no test touches (or relies on) the user's model cache."""
    return tmp_path_factory.mktemp("icm_rm_home")


@pytest.fixture(scope="session")
def env(icm_home) -> dict[str, str]:
    return cli_env(icm_home)


@pytest.fixture(scope="session")
def rm_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A tiny sequence-classification RM (the policy's tokenizer) with reward_mean/std, as train-rm exports it."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    path = tmp_path_factory.mktemp("rm") / "model"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id, num_labels=1)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(cfg)
    model.config.reward_mean, model.config.reward_std = 0.0, 1.0
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# ----------------------------------------------------------------------------------------------- measurements

def record(kind: str, **info) -> None:
    """Append one measured outcome to $ICM_RM_RELIABILITY_LOG (JSONL) when set; docs/reliability.md is filled from
    such a log (see scripts in that document)."""
    path = os.environ.get("ICM_RM_RELIABILITY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}) + "\n")
