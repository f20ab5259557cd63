"""Resume and overwrite never lose a run and never continue a different one (issue #19, Deliver 2–4):

- a resume whose config or data changed is refused with the changed key/file named (exit 2); `--resume force`
  continues, logged on stderr and in `fingerprint.json`;
- `--overwrite` validates every input before touching the old run, writes the new run aside and swaps it in only when
  complete: a bad input or a crash mid-run leaves the old run byte-identical where it was;
- a corrupt checkpoint/state is set aside (renamed, never deleted) and the previous good one is used;
- nothing in a checkpoint is unpickled: a crafted `custom_checkpoint_0.pkl` is never loaded.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from .conftest import assert_user_error, record
from .test_bad_inputs import GOOD_PAIR, _in_process

LABEL = ["label", "--data_format", "pairs", "--batch_size", "6", "--search.iterations", "40", "--search.restarts",
         "1", "--search.patience", "0", "--report_to", "none", "--baselines", "false"]


@pytest.fixture
def pairs(tmp_path) -> Path:
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(GOOD_PAIR % (f"p{i}", i, i, 2 * i, 2 * i + 1) for i in range(6)))
    return p


def _label(env, capsys, monkeypatch, data: Path, out: Path, model: Path, *extra: str) -> tuple[int, str]:
    argv = [*LABEL, "--data_path", str(data), "--model", str(model), "--feature_cache", str(out.parent / "feat"),
            "--output_dir", str(out), *extra]
    return _in_process(argv, env, capsys, monkeypatch)


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _siblings(run: Path) -> list[str]:
    return sorted(p.name for p in run.parent.iterdir() if p.name.startswith(f".{run.name}."))


# ----------------------------------------------------------------------------------------------- label

def test_label_resume_refuses_a_changed_config_or_data_and_force_continues(pairs, tiny_model_dir, tmp_path, env,
                                                                         capsys, monkeypatch):
    out = tmp_path / "run"
    rc, err = _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--num_shards", "2", "--shard_index", "0")
    assert rc == 0, err
    assert not (out / ".complete").exists()  # a partial run: batch 0 of 2
    before = _snapshot(out)
    rc, err = _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--resume", "true", "--search.alpha", "7")
    line = assert_user_error(rc, err, "refusing to resume", "'search.alpha' changed (50.0 → 7.0)", "--resume force")
    record("bad_input", case="label-resume-changed-config", cls="resume", mode="in", rc=rc, traceback=False, line=line)
    assert _snapshot(out) == before  # config.yaml still records the run's own values
    changed = tmp_path / "changed.jsonl"
    changed.write_text(pairs.read_text().replace("What is 1 + 1?", "What is 1 + 2?"))
    shutil.copy(changed, pairs)
    rc, err = _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--resume", "true")
    line = assert_user_error(rc, err, "the data of 'data_path'", "pairs.jsonl", "changed")
    record("bad_input", case="label-resume-changed-data", cls="resume", mode="in", rc=rc, traceback=False, line=line)
    assert _snapshot(out) == before
    rc, err = _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--resume", "force")
    assert rc == 0 and "warning: --resume force" in err and (out / ".complete").exists()
    forced = json.loads((out / "fingerprint.json").read_text())["forced"]
    assert len(forced) == 1 and "data_path" in forced[0]["changes"][0]
    record("check", case="label-resume-force-logged", cls="silent")


def test_label_shard_with_another_config_is_refused_without_resume(pairs, tiny_model_dir, tmp_path, env, capsys,
                                                                   monkeypatch):
    """Shards share one run dir and start without --resume: a shard whose config differs from the first one's (here
    search.snapshot_every) is refused instead of mixing its batches into the run; the same config goes on."""
    out = tmp_path / "run"
    rc, err = _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--num_shards", "2", "--shard_index", "0")
    assert rc == 0, err
    before = _snapshot(out)
    rc, err = _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--num_shards", "2", "--shard_index", "1",
                     "--search.snapshot_every", "5")
    line = assert_user_error(rc, err, "refusing to resume", "'search.snapshot_every' changed (10 → 5)")
    record("bad_input", case="label-shard-changed-config", cls="resume", mode="in", rc=rc, traceback=False, line=line)
    assert _snapshot(out) == before
    rc, err = _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--num_shards", "2", "--shard_index", "1")
    assert rc == 0 and (out / ".complete").exists(), err  # the last shard to finish merges


def test_label_overwrite_keeps_the_old_run_until_the_new_one_is_complete(pairs, tiny_model_dir, tmp_path, env,
                                                                        capsys, monkeypatch):
    import icm_rm.label.stage as stage

    out = tmp_path / "run"
    assert _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir)[0] == 0
    old = _snapshot(out)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "p", "chosen": "c"}\n')
    rc, err = _label(env, capsys, monkeypatch, bad, out, tiny_model_dir, "--overwrite", "true")
    line = assert_user_error(rc, err, "bad.jsonl", "row 1", "'rejected'")
    record("bad_input", case="label-overwrite-bad-data", cls="overwrite", mode="in", rc=rc, traceback=False, line=line)
    assert _snapshot(out) == old and _siblings(out) == []

    def crash(*a, **kw):
        raise RuntimeError("crash while writing the new run's outputs")

    monkeypatch.setattr(stage, "write_outputs", crash)
    with pytest.raises(RuntimeError):
        stage.main([*LABEL[1:], "--data_path", str(pairs), "--model", str(tiny_model_dir), "--feature_cache",
                    str(tmp_path / "feat"), "--output_dir", str(out), "--overwrite", "true", "--search.alpha", "7"])
    assert _snapshot(out) == old  # the crash hit the aside run only
    monkeypatch.undo()
    rc, err = _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--overwrite", "true", "--search.alpha", "7")
    assert rc == 0, err
    assert _siblings(out) == [] and (out / ".complete").exists() and _snapshot(out) != old
    assert "alpha: 7.0" in (out / "config.yaml").read_text() and f"output_dir: {out}" in (out / "config.yaml").read_text()
    assert json.loads((out / "run.json").read_text())["config"]["output_dir"] == str(out)
    record("check", case="label-overwrite-crash-keeps-old-run", cls="data_loss")


def test_label_corrupt_saved_batch_is_set_aside_and_searched_again(pairs, tiny_model_dir, tmp_path, env, capsys,
                                                                  monkeypatch):
    ref = tmp_path / "ref"
    assert _label(env, capsys, monkeypatch, pairs, ref, tiny_model_dir)[0] == 0
    out = tmp_path / "run"
    assert _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--num_shards", "2", "--shard_index", "0")[0] == 0
    saved = out / "batches" / "batch_000.json"
    saved.write_bytes(saved.read_bytes()[:50])  # truncated
    state = out / "state" / "batch_000.json"
    state.write_bytes(state.read_bytes()[:30])
    rc, err = _label(env, capsys, monkeypatch, pairs, out, tiny_model_dir, "--resume", "true")
    assert rc == 0, err
    assert "corrupt" in err and (out / "batches" / "corrupt-batch_000.json").exists()
    assert (out / "state" / "corrupt-batch_000.json").exists()
    assert (out / "labels.jsonl").read_bytes() == (ref / "labels.jsonl").read_bytes()
    record("check", case="label-corrupt-batch-set-aside", cls="data_loss")


# ----------------------------------------------------------------------------------------------- checkpoint pickers

def _hf_checkpoint(root: Path, step: int, *, state_ok: bool = True) -> Path:
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    text = json.dumps({"global_step": step, "log_history": []})
    (d / "trainer_state.json").write_text(text if state_ok else text[:15])
    return d


def test_hf_checkpoints_fall_back_to_the_previous_good_one_and_never_delete(tmp_path):
    from icm_rm.infra.runs import last_complete_checkpoint

    _hf_checkpoint(tmp_path, 2)
    _hf_checkpoint(tmp_path, 4, state_ok=False)
    _hf_checkpoint(tmp_path, 6)
    (tmp_path / "checkpoint-6" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\"")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "corrupt-checkpoint-4",
                                                          "corrupt-checkpoint-6"]
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{")
    assert last_complete_checkpoint(tmp_path) is None
    assert len(list(tmp_path.iterdir())) == 3  # all kept
    record("check", case="hf-checkpoint-fallback-never-deletes", cls="data_loss")


def test_grpo_resume_with_every_checkpoint_truncated_keeps_both_and_refuses(tiny_model_dir, tmp_path, env, capsys,
                                                                           monkeypatch):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Q{i}?"}) + "\n" for i in range(4)))
    out = tmp_path / "run"
    for step in (2, 4):
        _hf_checkpoint(out, step, state_ok=False)
    argv = ["grpo", "--model", str(tiny_model_dir), "--reward_model", "rl.rewards:substring_reward", "--prompts",
            str(prompts), "--output_dir", str(out), "--resume", "true"]
    rc, err = _in_process(argv, env, capsys, monkeypatch)
    line = assert_user_error(rc, err.replace(err.split("icm-rm: error:")[0], ""), "no (whole) checkpoint")
    record("bad_input", case="grpo-resume-all-checkpoints-truncated", cls="resume", mode="in", rc=rc,
           traceback=False, line=line)
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["corrupt-checkpoint-2",
                                                                               "corrupt-checkpoint-4"]
    record("check", case="grpo-truncated-checkpoints-kept", cls="data_loss")


class _Boom:
    """Unpickling this writes a marker file: proof that a pickle was loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("unpickled",))


def test_ppo_checkpoints_with_a_pickle_are_set_aside_never_loaded(tmp_path):
    from rl.ppo.checkpoint import TRAIN_STATE, latest_checkpoint

    root = tmp_path / "checkpoints"
    good = root / "step-000002"
    good.mkdir(parents=True)
    (good / TRAIN_STATE).write_text(json.dumps({"step": 2, "update": 2, "data": {}, "kl": {}}))
    evil = shutil.copytree(good, root / "step-000004")
    marker = tmp_path / "marker"
    (evil / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(_Boom(str(marker))))
    truncated = shutil.copytree(good, root / "step-000006")
    (truncated / TRAIN_STATE).write_text('{"step": 6')
    assert latest_checkpoint(tmp_path) == good
    assert not marker.exists()
    assert sorted(p.name for p in root.iterdir()) == ["corrupt-step-000004", "corrupt-step-000006", "step-000002"]
    record("check", case="ppo-pickle-never-loaded", cls="security")


@pytest.mark.slow
def test_ppo_resume_skips_a_crafted_pickle_checkpoint_and_refuses_changes(tiny_model_dir, tmp_path, env, capsys,
                                                                         monkeypatch):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Question {i}?"}) + "\n" for i in range(8)))
    out = tmp_path / "run"
    base = ["ppo", "--model", str(tiny_model_dir), "--reward_model", "rl.rewards:substring_reward", "--prompts",
            str(prompts), "--output_dir", str(out), "--num_steps", "3", "--save_steps", "1", "--rollout_batch_size",
            "2", "--micro_batch_size", "1", "--ppo_epochs", "1", "--max_new_tokens", "2", "--tensorboard", "false"]
    rc, err = _in_process([*base, "--max_steps_this_run", "1"], env, capsys, monkeypatch)
    assert rc == 0, err
    evil = shutil.copytree(out / "checkpoints" / "step-000001", out / "checkpoints" / "step-000002")
    marker = tmp_path / "marker"
    (evil / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(_Boom(str(marker))))
    rc, err = _in_process([*base, "--resume", "true", "--learning_rate", "1e-5"], env, capsys, monkeypatch)
    assert_user_error(rc, err, "'learning_rate' changed")
    rc, err = _in_process([*base, "--resume", "true"], env, capsys, monkeypatch)
    assert rc == 0, err
    assert not marker.exists() and (out / ".complete").exists()
    assert (out / "checkpoints" / "corrupt-step-000002" / "custom_checkpoint_0.pkl").exists()
    record("check", case="ppo-crafted-pickle-resume", cls="security")


# ----------------------------------------------------------------------------------------------- train-rm

def test_train_rm_overwrite_with_bad_data_keeps_the_finished_rm(tiny_model_dir, tmp_path, env, capsys, monkeypatch):
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(GOOD_PAIR % (f"p{i}", i, i, 2 * i, 2 * i + 1) for i in range(12)))
    out = tmp_path / "rm"
    base = ["train-rm", "--model", str(tiny_model_dir), "--output_dir", str(out), "--eval_split", "0.25",
            "--trainer.max_steps", "1", "--trainer.report_to", "[]"]
    rc, err = _in_process([*base, "--train_data", str(data)], env, capsys, monkeypatch)
    assert rc == 0, err
    old = _snapshot(out)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "c", "rejected": "r", "margin": NaN}\n')
    rc, err = _in_process([*base, "--train_data", str(bad), "--overwrite", "true"], env, capsys, monkeypatch)
    line = assert_user_error(rc, err, "bad.jsonl", "'margin'")
    record("bad_input", case="rm-overwrite-bad-data", cls="overwrite", mode="in", rc=rc, traceback=False, line=line)
    assert _snapshot(out) == old and _siblings(out) == []
    data.write_text(data.read_text().replace("What is 3 + 3?", "What is 3 + 4?"))
    rc, err = _in_process([*base, "--train_data", str(data), "--resume", "true"], env, capsys, monkeypatch)
    line = assert_user_error(rc, err, "the data of 'train_data'", "prefs.jsonl")
    record("bad_input", case="rm-resume-changed-data", cls="resume", mode="in", rc=rc, traceback=False, line=line)
    rc, err = _in_process([*base, "--train_data", str(data), "--overwrite", "true"], env, capsys, monkeypatch)
    assert rc == 0, err
    assert _siblings(out) == [] and (out / ".complete").exists() and (out / "model" / "config.json").exists()
    done = json.loads((out / ".complete").read_text())
    assert done["model_dir"] == str(out / "model") and str(out) in (out / "config.yaml").read_text()
    record("check", case="rm-overwrite-keeps-finished-rm", cls="data_loss")


def test_overwrite_swap_cut_between_its_renames_is_finished_or_undone(tmp_path):
    from icm_rm.infra.io import mark_complete
    from icm_rm.infra.runs import aside_dir, recover_swap

    out = tmp_path / "run"
    old = out.with_name(".run.old")
    old.mkdir()
    (old / "a").write_text("old")
    aside = aside_dir(out)
    aside.mkdir()
    (aside / "a").write_text("new")
    recover_swap(out)  # the new run is not complete: the old one goes back
    assert (out / "a").read_text() == "old" and not old.exists()
    out.rename(old)
    mark_complete(aside)
    recover_swap(out)  # complete: the swap is finished
    assert (out / "a").read_text() == "new" and not old.exists() and not aside.exists()
    assert os.listdir(tmp_path) == ["run"]
    record("check", case="overwrite-swap-cut-repaired", cls="data_loss")


# ----------------------------------------------------------------------------------------------- pipeline

def test_pipeline_never_skips_a_complete_stage_whose_config_or_data_changed(tmp_path):
    """The pipeline skips a stage whose output is complete; it first checks that stage's fingerprint, so a changed
    stage config or data is refused instead of silently reusing the old model."""
    import dataclasses

    from icm_rm.infra.errors import UserError
    from icm_rm.infra.io import mark_complete
    from icm_rm.infra.runs import check_resume
    from icm_rm.pipeline.stages import _unchanged
    from icm_rm.reward.config import RewardModelConfig
    from icm_rm.reward.trainer import rm_inputs

    data = tmp_path / "prefs.jsonl"
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    cfg = RewardModelConfig(train_data=str(data), output_dir=str(tmp_path / "rm"))
    assert not _unchanged(cfg, rm_inputs(cfg))  # not complete: the stage runs (and checks on its own)
    Path(cfg.output_dir).mkdir()
    check_resume(cfg.output_dir, cfg, rm_inputs(cfg), resuming=False)
    mark_complete(cfg.output_dir)
    assert _unchanged(cfg, rm_inputs(cfg))
    with pytest.raises(UserError, match="'seed' changed \\(42 → 7\\)"):
        _unchanged(dataclasses.replace(cfg, seed=7), rm_inputs(cfg))
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "c"}\n')
    with pytest.raises(UserError, match="train_data"):
        _unchanged(cfg, rm_inputs(cfg))
    record("check", case="pipeline-skip-checks-fingerprint", cls="silent")


def test_a_run_folder_moved_with_its_inputs_still_resumes_and_a_changed_rm_is_refused(tmp_path):
    """Input paths are matched by content: a pipeline folder copied elsewhere (labels, RMs, policies) resumes there,
    while a policy whose reward-model directory was retrained is refused, like changed data."""
    import dataclasses
    import shutil

    from icm_rm.infra.errors import UserError
    from icm_rm.infra.runs import check_resume
    from icm_rm.reward.config import RewardModelConfig
    from icm_rm.reward.trainer import rm_inputs
    from rl.launch import policy_inputs
    from rl.ppo.config import PPOConfig

    a, b = tmp_path / "a", tmp_path / "b"
    (a / "rm" / "model").mkdir(parents=True)
    (a / "rm" / "model" / "weights.bin").write_bytes(b"rm-1")
    (a / "prompts.jsonl").write_text('{"prompt": "p"}\n')
    (a / "prefs.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    ppo = PPOConfig(model="m", prompts=str(a / "prompts.jsonl"), reward_model=str(a / "rm" / "model"),
                    output_dir=str(a / "policy"))
    rm = RewardModelConfig(train_data=f"{a / 'prefs.jsonl'}:trl", output_dir=str(a / "rm"))
    for cfg, inputs in ((ppo, policy_inputs), (rm, rm_inputs)):
        Path(cfg.output_dir).mkdir(exist_ok=True)
        check_resume(cfg.output_dir, cfg, inputs(cfg), resuming=False)
    shutil.copytree(a, b)
    ppo_b = dataclasses.replace(ppo, prompts=str(b / "prompts.jsonl"), reward_model=str(b / "rm" / "model"),
                                output_dir=str(b / "policy"))
    rm_b = dataclasses.replace(rm, train_data=f"{b / 'prefs.jsonl'}:trl", output_dir=str(b / "rm"))
    check_resume(ppo_b.output_dir, ppo_b, policy_inputs(ppo_b))          # same content elsewhere: resumes
    check_resume(rm_b.output_dir, rm_b, rm_inputs(rm_b))
    other_format = dataclasses.replace(rm_b, train_data=f"{b / 'prefs.jsonl'}:pairs")
    with pytest.raises(UserError, match="config key 'train_data' changed"):  # the format after the path still counts
        check_resume(rm_b.output_dir, other_format, rm_inputs(other_format))
    (b / "rm" / "model" / "weights.bin").write_bytes(b"rm-2")
    with pytest.raises(UserError, match="the data of 'reward_model'"):
        check_resume(ppo_b.output_dir, ppo_b, policy_inputs(ppo_b))


def test_a_field_added_after_the_run_started_blocks_resume_only_when_set(tmp_path):
    """A config field a newer version added, left at null, is the behaviour the run had: resume goes on; set to a
    value, it is a change like any other."""
    from icm_rm.infra.errors import UserError
    from icm_rm.infra.runs import FINGERPRINT, check_resume
    from icm_rm.reward.config import RewardModelConfig

    cfg = RewardModelConfig(train_data="x.jsonl")
    check_resume(tmp_path, cfg, {})
    fp = json.loads((tmp_path / FINGERPRINT).read_text())
    del fp["config"]["split_seed"]  # as a run from before the field existed stored it
    (tmp_path / FINGERPRINT).write_text(json.dumps(fp))
    check_resume(tmp_path, cfg, {}, write=False)
    with pytest.raises(UserError, match=r"config key 'split_seed' changed \(\"<unset>\" → 42\)"):
        check_resume(tmp_path, RewardModelConfig(train_data="x.jsonl", split_seed=42), {}, write=False)
