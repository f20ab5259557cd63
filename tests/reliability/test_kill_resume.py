"""`kill -9` every resumable stage at seeded random points, through the real CLI, then `--resume true`: the result
equals an uninterrupted run, and no kill leaves a partial or corrupt file where a later stage would read it.

Kill points are drawn from `random.Random(SEED)`: for `label`, a target on the search's own progress counter (read from
the saved state, so the point is the same on a fast or a loaded machine), a wall-clock time after start (may land in
model loading), or a delay after the last batch finished (lands in output writing); for `train-rm`, `ppo` and `grpo`,
a delay after a randomly chosen checkpoint appeared (may land mid-save of the next one, or in the export).
The fast suite keeps two label points and one PPO point; the rest are `slow`.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from testkit.pair_files import write_pairs

from .conftest import ROOT, assert_nothing_half_written, kill_when, record, run_cli, start_cli

SEED = 20261127
RNG = random.Random(SEED)

# ----------------------------------------------------------------------------------------------- label

PAIRS, BATCH, ITERS, RESTARTS, REPLICAS = 8, 8, 150, 2, 2  # 16 claims → 2 batches of 8
VERDICTS = 2  # a chain from each zero-shot verdict of a pair pool (response likelihood, T/F log-odds) per replica
CHAINS = REPLICAS * (RESTARTS + VERDICTS)  # 8 chains × 150 iterations per batch
TOTAL = 2 * CHAINS * ITERS


def search_size(scorer: str) -> tuple[int, int, int]:
    """(iterations, random chains per replica, replicas): the in-context scorer runs a smaller search."""
    return (ITERS, RESTARTS, REPLICAS) if scorer == "probe" else (30, 1, 1)


def _label_points() -> list[tuple[str, float]]:
    points = [("progress", RNG.randrange(1, TOTAL)) for _ in range(6)]
    points += [("wall", round(RNG.uniform(1.0, 6.0), 2)), ("finish", round(RNG.uniform(0.0, 0.3), 3)),
               ("progress", RNG.randrange(TOTAL // 2, TOTAL))]
    return points


LABEL_POINTS = _label_points()  # 9 probe points; the icl scorer gets a 10th below
ICL_POINT = ("progress", RNG.randrange(3, 20))
FAST_LABEL = {0, 1}


def label_args(data: Path, model: Path, features: Path, scorer: str = "probe") -> list[str]:
    iters, restarts, replicas = search_size(scorer)
    return ["label", "--data_format", "pairs", "--data_path", data, "--model", model, "--scorer", scorer,
            "--batch_size", BATCH, "--search.iterations", iters, "--search.restarts", restarts,
            "--search.replicas", replicas,
            "--search.checkpoint_every", 3, "--search.patience", 0, "--report_to", "none", "--baselines", "false",
            "--feature_cache", features]


def label_progress(run: Path, iters: int, chains: int, n_batches: int) -> int:
    """Search iterations finished so far, from the files the run saved (finished batches + the saved state)."""
    done = 0
    for j in range(n_batches):
        if (run / "batches" / f"batch_{j:03d}.json").exists():
            done += iters * chains
            continue
        state = run / "state" / f"batch_{j:03d}.json"
        if state.exists():
            s = json.loads(state.read_text())
            done += iters * len(s["chains"]) + (s["current"] or {}).get("iteration", 0)
        break
    return done


def contract_bytes(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in ("labels.jsonl", "preferences.jsonl",
                                                       "preferences_gold.jsonl") if (run / name).exists()}


@pytest.fixture(scope="module")
def label_ref(tmp_path_factory, tiny_model_dir, env):
    """One uninterrupted run per scorer, the reference every resumed run must equal."""
    d = tmp_path_factory.mktemp("label_ref")
    data = write_pairs(d / "pairs.jsonl", PAIRS)
    refs = {}
    for scorer in ("probe", "icl"):
        r = run_cli([*label_args(data, tiny_model_dir, d / "features", scorer), "--output_dir", d / scorer], env=env)
        assert r.rc == 0, r.err
        refs[scorer] = contract_bytes(d / scorer)
    return data, d / "features", refs


def _kill_and_resume_label(tmp_path, tiny_model_dir, env, label_ref, scorer: str, point: tuple[str, float]):
    data, features, refs = label_ref
    args = label_args(data, tiny_model_dir, features, scorer)
    iters, restarts, replicas = search_size(scorer)
    chains = replicas * (restarts + VERDICTS)
    n_batches = -(-2 * PAIRS // BATCH)
    run = tmp_path / "run"
    kind, value = point
    t0 = time.time()
    proc = start_cli([*args, "--output_dir", run], env=env)
    if kind == "progress":
        killed = kill_when(proc, lambda: label_progress(run, iters, chains, n_batches) >= value)
    elif kind == "wall":
        killed = kill_when(proc, lambda: time.time() - t0 >= value)
    else:  # finish: the last batch's result exists; the outputs are being written
        killed = kill_when(proc, lambda: (run / "batches" / f"batch_{n_batches - 1:03d}.json").exists(), delay=value)
    at = label_progress(run, iters, chains, n_batches)
    assert killed, f"the run finished before kill point {point}"
    assert not (run / ".complete").exists()
    assert_nothing_half_written(run, final=refs[scorer])
    r = run_cli([*args, "--output_dir", run, "--resume", "true"], env=env)
    assert r.rc == 0, r.err
    resumed = contract_bytes(run)
    same = resumed.keys() == refs[scorer].keys() and all(_same_rows(resumed[n], refs[scorer][n]) for n in resumed)
    record("kill", stage="label", scorer=scorer, point=f"{kind}={value}", progress_at_kill=at, matched=same,
           identical_bytes=resumed == refs[scorer])
    assert same, f"labels/preferences differ from the uninterrupted run after a kill at {point}"


def _same_rows(got: bytes, want: bytes) -> bool:
    """Same rows, labels, ids and order; scores and margins equal to 1e-5 (the icl scorer's KV-cache batches differ
    after a restart, which moves its float32 log-odds in the 7th digit — never a label)."""
    a = [json.loads(x) for x in got.decode().splitlines()]
    b = [json.loads(x) for x in want.decode().splitlines()]
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if ra.keys() != rb.keys():
            return False
        for k in ra:
            x, y = ra[k], rb[k]
            if isinstance(x, float) and isinstance(y, float):
                if x != pytest.approx(y, rel=1e-5, abs=1e-5):
                    return False
            elif x != y:
                return False
    return True


@pytest.mark.parametrize("i", [pytest.param(i, id=f"{k}={v}", marks=() if i in FAST_LABEL else pytest.mark.slow)
                               for i, (k, v) in enumerate(LABEL_POINTS)])
def test_label_probe_kill_9_and_resume(tmp_path, tiny_model_dir, env, label_ref, i):
    _kill_and_resume_label(tmp_path, tiny_model_dir, env, label_ref, "probe", LABEL_POINTS[i])


@pytest.mark.slow
def test_label_icl_kill_9_and_resume(tmp_path, tiny_model_dir, env, label_ref):
    _kill_and_resume_label(tmp_path, tiny_model_dir, env, label_ref, "icl", ICL_POINT)


# ----------------------------------------------------------------------------------------------- trainers

RM_STEPS, RM_SAVE = 120, 10
RL_STEPS, RL_SAVE = 24, 2
RM_POINTS = [(RNG.randrange(RM_SAVE, RM_STEPS, RM_SAVE), round(RNG.uniform(0.0, 0.4), 3)) for _ in range(3)]
PPO_POINTS = [(RNG.randrange(RL_SAVE, RL_STEPS - 2, RL_SAVE), round(RNG.uniform(0.0, 0.4), 3)) for _ in range(3)]
GRPO_POINTS = [(RNG.randrange(RL_SAVE, RL_STEPS - 2, RL_SAVE), round(RNG.uniform(0.0, 0.4), 3)) for _ in range(3)]


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("rl_data")
    prefs, words = [], "the quick brown fox jumps over lazy dog capital france paris spain rome".split()
    rng = random.Random(1)
    for i in range(48):
        stem = " ".join(rng.choice(words) for _ in range(3))
        prefs.append({"prompt": f"Question {i}: {stem}?", "chosen": f"{stem} yes", "rejected": f"{stem} no"})
    (d / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prefs))
    (d / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"Question {i}: what is {i} plus {i + 1}?"}) + "\n"
                                             for i in range(24)))
    return {"prefs": d / "prefs.jsonl", "prompts": d / "prompts.jsonl"}


def rm_args(model: Path, data: dict) -> list:
    return ["train-rm", "--model", model, "--train_data", data["prefs"], "--eval_split", 0.25,
            "--trainer.per_device_train_batch_size", 4, "--trainer.max_steps", RM_STEPS,
            "--trainer.save_steps", RM_SAVE, "--trainer.learning_rate", 5e-3,
            "--trainer.activation_checkpointing", "false", "--trainer.disable_tqdm", "true",
            "--trainer.report_to", "none", "--trainer.logging_steps", RM_SAVE]


def ppo_args(model: Path, data: dict) -> list:
    return ["ppo", "--config", str(ROOT / "configs/ppo/tiny.yaml"), "--model", model, "--prompts", data["prompts"],
            "--num_steps", RL_STEPS, "--save_steps", RL_SAVE, "--plot_steps", 100, "--reward.kwargs.text", "e"]


def grpo_args(model: Path, data: dict) -> list:
    return ["grpo", "--config", str(ROOT / "configs/grpo/tiny.yaml"), "--model", model, "--prompts", data["prompts"],
            "--num_steps", RL_STEPS, "--save_steps", RL_SAVE, "--reward.kwargs.text", "e"]


STAGES = {
    "train-rm": (rm_args, lambda run, k: (run / f"checkpoint-{k}" / "trainer_state.json").exists()),
    "ppo": (ppo_args, lambda run, k: (run / "checkpoints" / f"step-{k:06d}").is_dir()),
    "grpo": (grpo_args, lambda run, k: (run / f"checkpoint-{k}" / "trainer_state.json").exists()),
}


@pytest.fixture(scope="module")
def trainer_refs(tmp_path_factory):
    """Uninterrupted runs, made on first use (a fast run needs only PPO's)."""
    cache: dict[str, Path] = {}

    def get(stage: str, model: Path, data: dict, env: dict) -> Path:
        if stage not in cache:
            out = tmp_path_factory.mktemp(f"{stage}_ref") / "run"
            r = run_cli([*STAGES[stage][0](model, data), "--output_dir", out], env=env)
            assert r.rc == 0, r.err
            cache[stage] = out
        return cache[stage]

    return get


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-5) for k in wa)


def _same_metrics(ref: list[dict], got: list[dict], keys: tuple[str, ...]) -> bool:
    if [m["step"] for m in ref] != [m["step"] for m in got]:
        return False
    for a, b in zip(ref, got):
        for k in keys:
            if (k in a) != (k in b) or (k in a and a[k] != pytest.approx(b[k], rel=1e-4, abs=1e-6)):
                return False
    return True


def _kill_and_resume_trainer(stage: str, point: tuple[int, float], tmp_path, tiny_model_dir, rl_data, env,
                             trainer_refs):
    ref = trainer_refs(stage, tiny_model_dir, rl_data, env)
    make_args, ready = STAGES[stage]
    args = make_args(tiny_model_dir, rl_data)
    run = tmp_path / "run"
    k, delay = point
    proc = start_cli([*args, "--output_dir", run], env=env)
    killed = kill_when(proc, lambda: ready(run, k), delay=delay)
    assert killed, f"{stage} finished before kill point {point}"
    assert not (run / ".complete").exists()
    assert_nothing_half_written(run)
    r = run_cli([*args, "--output_dir", run, "--resume", "true"], env=env)
    assert r.rc == 0, r.err
    assert (run / ".complete").exists()
    if stage == "train-rm":
        a = json.loads((ref / "run.json").read_text())["metrics"]["held_out"]
        b = json.loads((run / "run.json").read_text())["metrics"]["held_out"]
        same_metrics = all(a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6)
                           for key in ("reward_mean", "reward_std", "accuracy"))
        same = same_metrics and _same_weights(ref / "model", run / "model")
    else:
        keys = (("ppo/loss", "value/loss", "rollout/reward_mean", "kl/ref_k1") if stage == "ppo"
                else ("rollout/reward_mean", "grpo/loss", "kl/ref_k3"))
        same = _same_metrics(_metrics(ref), _metrics(run), keys) and _same_weights(ref / "policy", run / "policy")
    record("kill", stage=stage, point=f"after checkpoint {k} + {delay}s", matched=same)
    assert same, f"{stage}: resumed run differs from the uninterrupted one (kill at {point})"


@pytest.mark.parametrize("point", [pytest.param(p, marks=() if i == 0 else pytest.mark.slow, id=f"ckpt{p[0]}+{p[1]}s")
                                   for i, p in enumerate(PPO_POINTS)])
def test_ppo_kill_9_and_resume(point, tmp_path, tiny_model_dir, rl_data, env, trainer_refs):
    _kill_and_resume_trainer("ppo", point, tmp_path, tiny_model_dir, rl_data, env, trainer_refs)


@pytest.mark.slow
@pytest.mark.parametrize("point", RM_POINTS, ids=[f"ckpt{k}+{d}s" for k, d in RM_POINTS])
def test_train_rm_kill_9_and_resume(point, tmp_path, tiny_model_dir, rl_data, env, trainer_refs):
    _kill_and_resume_trainer("train-rm", point, tmp_path, tiny_model_dir, rl_data, env, trainer_refs)


@pytest.mark.slow
@pytest.mark.parametrize("point", GRPO_POINTS, ids=[f"ckpt{k}+{d}s" for k, d in GRPO_POINTS])
def test_grpo_kill_9_and_resume(point, tmp_path, tiny_model_dir, rl_data, env, trainer_refs):
    _kill_and_resume_trainer("grpo", point, tmp_path, tiny_model_dir, rl_data, env, trainer_refs)
