"""Read-only output dirs, a nearly full disk, and a disk that fills up mid-run.

Read-only: tests usually run as root here, and root ignores permission bits, so an unwritable `--output_dir` is made
as a path *under a regular file* (mkdir fails with ENOTDIR for everyone); as non-root, a chmod-0500 parent is used as
well. Every stage must refuse with one line before its work starts.
Nearly full: `check_writable`'s free-space check, with `os.statvfs` faked in-process.
Filling up mid-run: the Nth atomic write fails inside its fsync with ENOSPC (the real temp-file-and-rename code path
runs, cleanup included). The run must stop with one line, every file it had finished must still hold what was last
written to it, and `--resume true` must end with the uninterrupted run's labels.
"""

from __future__ import annotations

import errno
import json
import os
import random
import stat
from pathlib import Path

import pytest

from .conftest import ROOT, assert_nothing_half_written, assert_user_error, record, run_cli
from testkit.pair_files import write_pairs

from .test_kill_resume import contract_bytes

SEED = 20261127


def unwritable_dirs(tmp_path: Path) -> list[Path]:
    """Output dirs nobody can create: under a regular file; and, when not root, under a chmod-0500 dir."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    dirs = [blocker / "out"]
    if os.geteuid() != 0:
        ro = tmp_path / "read_only"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        dirs.append(ro / "out")
    return dirs


def stage_argv(stage: str, tiny_model_dir: Path, rm_dir: Path, data: Path, prompts: Path) -> list[str]:
    m = str(tiny_model_dir)
    return {
        "label": ["label", "--data_format", "pairs", "--data_path", str(data), "--model", m, "--report_to", "none"],
        "train-rm": ["train-rm", "--model", m, "--train_data", str(data)],
        "eval-rm": ["eval-rm", "--model", str(rm_dir), "--data", str(data)],
        "ppo": ["ppo", "--config", str(ROOT / "configs/ppo/tiny.yaml"), "--model", m, "--prompts", str(prompts)],
        "grpo": ["grpo", "--config", str(ROOT / "configs/grpo/tiny.yaml"), "--model", m, "--prompts", str(prompts)],
        "eval-policy": ["eval-policy", "--reference", m, "--policies", f"p={m}", "--max_prompts", "2"],
        "pipeline": ["pipeline", "--label.model", m, "--rm.model", m, "--ppo.model", m, "--ppo.prompts", str(prompts),
                     "--eval_policy.judge", "gold:capitals"],  # file prompts have no gold checker of their own
    }[stage]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("disk_data")
    prompts = d / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Question {i}?"}) + "\n" for i in range(8)))
    return write_pairs(d / "pairs.jsonl", 8), prompts


@pytest.mark.parametrize("stage", ["label", "train-rm", "eval-rm", "ppo", "grpo", "eval-policy", "pipeline"])
def test_unwritable_output_dir_is_one_line_before_work(stage, tmp_path, tiny_model_dir, rm_dir, small_data, env,
                                                       capsys, monkeypatch):
    from icm_rm.cli import main

    monkeypatch.setenv("ICM_RM_HOME", env["ICM_RM_HOME"])
    for out in unwritable_dirs(tmp_path):
        argv = [*stage_argv(stage, tiny_model_dir, rm_dir, *small_data), "--output_dir", str(out)]
        if stage in ("label", "ppo"):  # through the real entry point too
            r = run_cli(argv, env=env)
            rc, err = r.rc, r.err
        else:
            capsys.readouterr()
            rc, err = main(argv), capsys.readouterr().err
        line = assert_user_error(rc, err, str(out), "not writable")
        assert not out.exists()
        record("bad_input", case=f"unwritable-output-dir-{stage}", mode="sub" if stage in ("label", "ppo") else "in",
               rc=rc, traceback="Traceback" in err, line=line)


def test_nearly_full_disk_is_refused_before_work(tmp_path, tiny_model_dir, small_data, capsys, monkeypatch, env):
    from icm_rm.cli import main

    monkeypatch.setenv("ICM_RM_HOME", env["ICM_RM_HOME"])
    real = os.statvfs

    class Full:
        def __init__(self, st):
            self.f_frsize, self.f_bavail = st.f_frsize, 10 * 2**20 // st.f_frsize  # 10 MiB left

    monkeypatch.setattr(os, "statvfs", lambda p: Full(real(p)))
    out = tmp_path / "out"
    rc = main([*stage_argv("label", tiny_model_dir, None, *small_data), "--output_dir", str(out),
               "--feature_cache", str(tmp_path / "f")])
    line = assert_user_error(rc, capsys.readouterr().err, str(out), "10 MiB free")
    assert not (out / "config.yaml").exists()
    record("bad_input", case="nearly-full-disk", mode="in", rc=rc, traceback=False, line=line)


def _label_argv(data: Path, model: Path, out: Path, features: Path) -> list[str]:
    return ["label", "--data_format", "pairs", "--data_path", str(data), "--model", str(model), "--batch_size", "8",
            "--search.iterations", "40", "--search.checkpoint_every", "4", "--search.patience", "0",
            "--report_to", "none", "--feature_cache", str(features), "--output_dir", str(out)]


class FailingDisk:
    """Wraps `icm_rm.infra.io.atomic_write_bytes`: counts calls, remembers what each path last received, and makes call
    `fail_at` fail in its fsync with ENOSPC (so the real temp-file cleanup runs)."""

    def __init__(self, real, fail_at: int | None = None):
        self.real, self.fail_at, self.calls, self.last = real, fail_at, 0, {}

    def __call__(self, path, data):
        self.calls += 1
        if self.calls != self.fail_at:
            self.real(path, data)
            self.last[Path(path)] = bytes(data)
            return
        import icm_rm.infra.io as io

        def no_space(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        real_fsync, io.os.fsync = io.os.fsync, no_space
        try:
            self.real(path, data)
        finally:
            io.os.fsync = real_fsync


def test_disk_full_mid_run_loses_no_finished_work(tmp_path, tiny_model_dir, small_data, capsys, monkeypatch, env):
    import icm_rm.infra.io as io
    from icm_rm.cli import main

    monkeypatch.setenv("ICM_RM_HOME", env["ICM_RM_HOME"])
    data, _ = small_data
    features = tmp_path / "features"
    counter = FailingDisk(io.atomic_write_bytes)
    monkeypatch.setattr(io, "atomic_write_bytes", counter)
    assert main(_label_argv(data, tiny_model_dir, tmp_path / "ref", features)) == 0
    ref = (tmp_path / "ref" / "labels.jsonl").read_text()
    final = contract_bytes(tmp_path / "ref")
    total = counter.calls
    rng = random.Random(SEED)
    points = sorted({rng.randrange(2, total // 2), rng.randrange(total // 2, total - 3), total - 1})
    for n in points:  # an early state save, a later one, and one of the final output files
        out = tmp_path / f"fail_at_{n}"
        disk = FailingDisk(counter.real, fail_at=n)
        monkeypatch.setattr(io, "atomic_write_bytes", disk)
        capsys.readouterr()
        rc = main(_label_argv(data, tiny_model_dir, out, features))
        assert_user_error(rc, capsys.readouterr().err, "No space left on device", "--resume true")
        assert not (out / ".complete").exists()
        assert_nothing_half_written(out, final=final)  # outputs written before the marker are the final ones
        for path, content in disk.last.items():  # everything finished before the failure is intact
            assert path.read_bytes() == content, path
        assert not list(out.rglob("*.tmp")), "a failed write left its temp file behind"
        monkeypatch.setattr(io, "atomic_write_bytes", counter.real)
        assert main([*_label_argv(data, tiny_model_dir, out, features), "--resume", "true"]) == 0
        same = (out / "labels.jsonl").read_text() == ref
        record("kill", stage="label", scorer="probe", point=f"ENOSPC at atomic write {n}/{total}", matched=same)
        assert same


def test_disk_full_inside_a_library_is_one_line(capsys):
    """safetensors reports a full disk as its own error type (the HF Trainer's and our policy saves go through it):
    the same one line as an OSError, naming the library's message; any other error still raises."""
    from safetensors import SafetensorError

    from icm_rm.infra.runner import run_main

    def save_fails(argv):
        try:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        except SafetensorError as e:
            raise RuntimeError("saving the policy failed") from e  # wrapped: the cause chain is read too

    assert run_main(save_fails, []) == 2
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and "No space left on device" in line and "--resume true" in line

    def other(argv):
        raise RuntimeError("a bug, not the disk")

    with pytest.raises(RuntimeError, match="a bug"):
        run_main(other, [])


def test_pipeline_refuses_a_run_whose_models_do_not_fit(tmp_path, tiny_model_dir, small_data, capsys, monkeypatch,
                                                        env):
    """Before any stage: the RMs and policies still to train (whole float32 copies of their base model, more without
    LoRA) are set against the free space; a run that cannot fit is one line naming what it trains, and nothing is
    written. Models a resumed run already finished cost nothing."""
    import icm_rm.pipeline.disk as disk
    from icm_rm.cli import main
    from icm_rm.infra.errors import UserError
    from icm_rm.pipeline.disk import PlannedModel, check_disk, float32_mb

    monkeypatch.setenv("ICM_RM_HOME", env["ICM_RM_HOME"])
    weights = sum(p.stat().st_size for p in Path(tiny_model_dir).glob("*.safetensors")) / 2**20
    assert float32_mb(str(tiny_model_dir)) == pytest.approx(weights) and float32_mb("smollm2-135m") == 540
    assert float32_mb("someone/hub-model") is None
    lora, full = (PlannedModel("policy", "smollm2-135m", lora, False) for lora in (True, False))
    monkeypatch.setattr(disk, "free_mb", lambda path: 2000)
    assert check_disk(tmp_path, [lora, lora]) == pytest.approx(2 * 540 * 1.2)
    with pytest.raises(UserError, match=r"trains 1 policy, about 2\.1 GiB .* only 2\.0 GiB is free"):
        check_disk(tmp_path, [full])
    assert check_disk(tmp_path, [PlannedModel("policy", "smollm2-135m", False, True)]) == 0  # finished: no cost

    monkeypatch.setattr(disk, "free_mb", lambda path: weights * 3)  # not for 4 models without LoRA (16 copies)
    out = tmp_path / "run"
    argv = [*stage_argv("pipeline", tiny_model_dir, None, *small_data), "--output_dir", str(out)]
    line = assert_user_error(main(argv), capsys.readouterr().err, str(out), "trains 2 reward models and 2 policies")
    assert "free space or choose another --output_dir" in line and not (out / "config.yaml").exists()
    record("bad_input", case="pipeline-models-do-not-fit", mode="in", rc=2, traceback=False, line=line)
