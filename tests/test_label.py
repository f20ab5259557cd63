"""The `label` stage end to end on a tiny random model: every output contract, resume, CLI errors."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from icm_rm.label import LabelConfig, run_label
from icm_rm.label.outputs import preview
from icm_rm.label.search import SearchConfig
from testkit.pair_files import write_pairs

ROOT = Path(__file__).resolve().parents[1]


def tiny_cfg(tmp_path, model_dir, **kw) -> LabelConfig:
    base = dict(data_format="pairs", data_path=str(write_pairs(tmp_path / "pairs.jsonl")), model=str(model_dir),
                scorer="probe", batch_size=16, output_dir=str(tmp_path / "run"),
                feature_cache=str(tmp_path / "features"), report_to="tensorboard",
                search=SearchConfig(iterations=25, checkpoint_every=5, patience=0, restarts=1, replicas=1))
    base.update(kw)
    return LabelConfig(**base)


def read_jsonl(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines()]


@pytest.mark.parametrize("scorer", ["probe", "icl"])
def test_label_writes_every_contract_file(tmp_path, tiny_model_dir, scorer, capsys):
    probe = scorer == "probe"  # the in-context scorer is slow on CPU: one random chain only
    search = SearchConfig(iterations=25, checkpoint_every=5, patience=0, restarts=1, replicas=2 if probe else 1,
                          verdict_chains=probe)
    out = run_label(tiny_cfg(tmp_path, tiny_model_dir, scorer=scorer, search=search))
    rows = read_jsonl(out / "labels.jsonl")
    assert len(rows) == 24
    assert set(rows[0]) >= {"id", "group", "key", "label", "score", "source"}
    assert {r["source"] for r in rows} <= {"seed", "search"}
    assert all(isinstance(r["label"], bool) for r in rows)

    from datasets import load_dataset

    prefs = load_dataset("json", data_files=str(out / "preferences.jsonl"), split="train")
    assert len(prefs) == 12 and {"prompt", "chosen", "rejected", "margin"} <= set(prefs.column_names)
    assert all(m >= 0 for m in prefs["margin"])
    gold = read_jsonl(out / "preferences_gold.jsonl")
    assert all("capital" in g["chosen"] for g in gold)
    assert sum(g["chosen"].split()[-1] in "Paris. Madrid. Rome. Tokyo. Cairo. Lima." for g in gold) == 12
    # the pairs to read by eye: ceil(10% of 12) = 2 of smallest margin, least sure first; gold counts in the report
    mine = read_jsonl(out / "preferences.jsonl")
    review = read_jsonl(out / "least_confident.jsonl")
    assert review == sorted(mine, key=lambda r: r["margin"])[:2]
    wrong = [m["chosen"] != g["chosen"] for m, g in zip(mine, gold)]
    lc = json.loads((out / "report.json").read_text())["least_confident"]
    assert lc == {"file": "least_confident.jsonl", "n": 2, "of": 12, "max_margin": review[-1]["margin"],
                  "wrong": sum(wrong[mine.index(r)] for r in review), "wrong_total": sum(wrong)}
    # the random spot check: 10 of the 12 pairs, in file order, the same draw whatever the labels; 3+ wrong flags
    spot = read_jsonl(out / "spot_check.jsonl")
    drawn = sorted(random.Random(0).sample(range(12), 10))
    assert spot == [mine[i] for i in drawn]
    sc = json.loads((out / "report.json").read_text())["spot_check"]
    assert sc == {"file": "spot_check.jsonl", "n": 10, "of": 12, "unit": "pairs", "flag_at": 3,
                  "p_flag_if_90": pytest.approx(0.0702, abs=1e-4), "p_flag_if_50": pytest.approx(0.9453, abs=1e-4),
                  "wrong": sum(wrong[i] for i in drawn)}
    printed = capsys.readouterr().err.splitlines()  # the first three drawn pairs are shown under the spot-check line
    at = next(k for k, line in enumerate(printed) if line.startswith("spot check: 10 of 12 pairs drawn at random"))
    assert printed[at + 1:at + 4] == [f"  {preview(r)}" for r in spot[:3]]

    report = json.loads((out / "report.json").read_text())
    assert report["n_claims"] == 24 and report["n_batches"] == 2
    for k in ("iterations", "accepted_flips", "final", "time_s", "forward_tokens", "accuracy", "baselines"):
        assert k in report
    assert set(report["baselines"]) == {"zero_shot", "zero_shot_likelihood", "random_label", "golden_label"}
    strong = max(("zero_shot", "zero_shot_likelihood", "random_label"), key=lambda k: report["baselines"][k]["pair"])
    assert report["strongest_baseline"] == {"name": strong, "accuracy": report["baselines"][strong]["pair"]}
    d = report["diagnostics"]
    assert 0.0 <= d["verdict_agreement"]["tf"] <= 1.0 and "a_preferred_share" in d["balance"]
    assert d["groups_broken"] == report["final"]["i"]  # pairs: one rule per group, so broken groups == violations
    assert ("inconsistent" in {w["code"] for w in report["warnings"]}) == (d["groups_broken"] > 0)
    assert ("seed_agreement" in d) == probe and all({"code", "message"} == set(w) for w in report["warnings"])
    chains = 2 * (1 + 2) if probe else 1  # per batch: replicas × (random + one per verdict: tf, likelihood)
    assert all(len(b["candidates"]) == 2 * chains for b in report["per_batch"])  # each best-seen state + mirror
    for b in report["per_batch"]:  # the winner is returned, unless the batch fell back to the likelihood verdict
        fb = b["diagnostics"].get("fallback")
        assert b["candidates"][0]["u"] == pytest.approx(fb["searched_u"] if fb else b["u"])
        assert not fb or b["u"] == fb["u"]
    assert 0.0 <= report["accuracy"]["pair"] <= 1.0
    assert (out / "progress.png").stat().st_size > 1000
    assert (out / ".complete").exists() and (out / "run.json").exists() and (out / "config.yaml").exists()
    assert any((out / "tb").iterdir())
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["scorer"] == scorer and "torch" in run["versions"]


def test_finished_run_is_reused_and_unfinished_needs_resume(tmp_path, tiny_model_dir):
    from icm_rm.infra.errors import UserError

    cfg = tiny_cfg(tmp_path, tiny_model_dir)
    out = run_label(cfg)
    before = (out / "labels.jsonl").read_text()
    with pytest.raises(UserError, match="already holds a finished label run"):
        run_label(cfg)
    cfg.resume = True
    assert run_label(cfg) == out and (out / "labels.jsonl").read_text() == before


def _cli(args, **kw):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "icm_rm.cli", "label", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_kill_9_then_resume_gives_the_uninterrupted_labels(tmp_path, tiny_model_dir):
    pairs = write_pairs(tmp_path / "pairs.jsonl", n=8)
    common = ["--data_format", "pairs", "--data_path", str(pairs), "--model", str(tiny_model_dir),
              "--scorer", "icl", "--batch_size", "16", "--search.iterations", "30", "--search.checkpoint_every", "3",
              "--search.patience", "0", "--search.restarts", "1", "--search.replicas", "1",
              "--search.verdict_chains", "false", "--report_to", "none",
              "--baselines", "false"]
    ref = _cli(common + ["--output_dir", str(tmp_path / "ref")])
    assert ref.wait(timeout=900) == 0, ref.stderr.read()
    run = tmp_path / "killed"
    p = _cli(common + ["--output_dir", str(run)])
    state = run / "state" / "batch_000.json"
    deadline = time.time() + 600
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text() or "{}").get("current", {}).get("iteration", 0) >= 6:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (run / "labels.jsonl").exists()  # nothing half-written where the next stage reads
    r = _cli(common + ["--output_dir", str(run), "--resume", "true"])
    assert r.wait(timeout=900) == 0, r.stderr.read()
    got, ref = read_jsonl(run / "labels.jsonl"), read_jsonl(tmp_path / "ref" / "labels.jsonl")
    assert [(r["id"], r["label"], r["source"]) for r in got] == [(r["id"], r["label"], r["source"]) for r in ref]
    # scores are recomputed after a restart: batch composition can move float32 results in the 7th digit
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in ref], abs=1e-5)


def test_bad_config_is_one_line_exit_2(tmp_path):
    p = _cli(["--search.alpha", "-1", "--output_dir", str(tmp_path / "x")])
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2
    assert err.strip().count("\n") == 0 and "search.alpha" in err and "Traceback" not in err
    p = _cli(["--no_such_key", "1"])
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "no_such_key" in err


def test_spot_check_threshold_and_line():
    """The flag count is the smallest that labels 90% right reach with probability ≤ 10% (binomial tails by hand),
    and the summary line says how to read it; a pool smaller than the sample is read whole."""
    from icm_rm.data.preferences import PreferenceExample
    from icm_rm.label.outputs import binom_tail, spot_check_pairs, spot_check_threshold
    from icm_rm.label.summary import spot_check_line

    assert binom_tail(10, 0.1, 3) == pytest.approx(1 - 0.9**10 - 10 * 0.1 * 0.9**9 - 45 * 0.01 * 0.9**8)
    assert binom_tail(10, 0.5, 3) == pytest.approx(1 - 56 / 1024)
    assert [spot_check_threshold(n) for n in (1, 2, 5, 10, 20)] == [1, 2, 2, 3, 5]
    prefs = [PreferenceExample(f"p{i}", f"q{i}", "a", "b", margin=1.0) for i in range(4)]
    gold = [PreferenceExample(f"p{i}", f"q{i}", "a" if i else "b", "b" if i else "a") for i in range(4)]
    sc = spot_check_pairs(prefs, gold)
    assert sc["indices"] == [0, 1, 2, 3] and sc["n"] == sc["of"] == 4 and sc["wrong"] == 1 and sc["flag_at"] == 2
    assert spot_check_pairs([], None) is None
    line = spot_check_line({"spot_check": {k: v for k, v in sc.items() if k != "indices"}}, "out/")
    assert line.startswith("spot check: 4 of 4 pairs drawn at random are in out/spot_check.jsonl (gold: 1 of these "
                           "are wrong); if 2 or more of them are wrong, do not train on these labels — labels 90% "
                           "right show that 5.2% of the time, labels at chance 68.8%")
    assert spot_check_line({}) is None
    row = {"prompt": [{"role": "user", "content": "Which word\nrhymes with cat?"}], "chosen": "dog " * 30,
           "rejected": "hat"}
    assert preview(row, width=20) == "User: Which word rh… → dog dog dog dog dog…  (over: hat)"
    claim = {"id": "c1", "claim": "Question: Is the sky green?\nClaim: The sky is green.\nI think this claim is",
             "label": False}
    assert preview(claim, width=20) == "…: The sky is green. → False"  # the end of the claim, its question line dropped


def test_a_claim_pool_gets_a_spot_check_of_claims(tmp_path, tiny_model_dir, capsys):
    """True/False claim pools are spot-checked too: 10 labeled claims drawn at random as {id, claim, label} rows,
    the wrong count vs gold in the report, three of them printed."""
    cfg = tiny_cfg(tmp_path, tiny_model_dir, data_format="builtin", data_path=None, task="capitals_claims",
                   form="claims", limit_groups=4)
    out = run_label(cfg)
    labels = {r["id"]: r["label"] for r in read_jsonl(out / "labels.jsonl")}
    spot = read_jsonl(out / "spot_check.jsonl")
    assert len(spot) == 10 and all(set(r) == {"id", "claim", "label"} and r["label"] == labels[r["id"]] for r in spot)
    assert [r["id"] for r in spot] == [list(labels)[i] for i in sorted(random.Random(0).sample(range(len(labels)), 10))]
    sc = json.loads((out / "report.json").read_text())["spot_check"]
    from icm_rm.data.builtin import builtin_claimset

    truth = builtin_claimset("capitals_claims", form="claims", n_groups=4, seed=0, split=cfg.split).gold
    assert sc["unit"] == "claims" and sc["of"] == len(labels)
    assert sc["wrong"] == sum(truth[r["id"]] != r["label"] for r in spot)
    printed = capsys.readouterr().err
    assert f"spot check: 10 of {len(labels)} claims drawn at random" in printed
    assert f"  {preview(spot[0])}" in printed.splitlines()
    assert not (out / "least_confident.jsonl").exists() and not (out / "preferences.jsonl").exists()
