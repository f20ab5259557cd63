"""Several RL seeds per reward model (`rl_seeds`): one seed keeps today's folders and names; several train one policy
per route and seed, each a resumable stage; the report compares seed means (exact values from a hand-made eval
result); a bad `rl_seeds` is one line naming the key, exit 2, before anything is written."""

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from test_pipeline import _prefs, tiny_pipeline

from icm_rm.infra.config import save_config
from icm_rm.infra.io import atomic_write_json, atomic_write_jsonl
from icm_rm.infra.runner import run_main
from icm_rm.pipeline import Pipeline, main
from icm_rm.pipeline.report import write_report

ROUTES = ("icm", "human", "random")


def test_one_rl_seed_keeps_todays_folders_and_names(tmp_path, tiny_model_dir):
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, rl_seeds=[0]))
    out = tmp_path / "run"
    assert [p.rl_dir(r) for r in ROUTES] == [out / f"ppo_{r}" for r in ROUTES]
    assert p.policies("icm") == [(0, "icm_rm_policy")] and p.rl_cfg("icm").seed == 0
    assert p.eval_policy_cfg().policies == [f"icm_rm_policy={out / 'ppo_icm' / 'policy'}",
                                            f"human_rm_policy={out / 'ppo_human' / 'policy'}"]
    assert p.eval_policy_cfg().head_to_head
    # a section seed equal to the one RL seed: the same folder, that seed
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, algo="grpo", rl_seeds=[3]))
    p.cfg.grpo["seed"] = 3
    assert p.rl_dir("icm") == out / "grpo_icm" and p.rl_cfg("icm").seed == 3
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, rl_seeds=[2, 0, 5]))
    assert [p.rl_dir("human", s).name for s in (2, 0, 5)] == ["ppo_human", "ppo_human_s0", "ppo_human_s5"]
    assert [p.rl_cfg("human", s).seed for s in (2, 0, 5)] == [2, 0, 5]
    assert p.policies("random") == [(2, "random_rm_policy"), (0, "random_rm_policy_s0"), (5, "random_rm_policy_s5")]
    assert not p.eval_policy_cfg().head_to_head  # the report compares routes on seed means instead


def _digest(d) -> str:
    return hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()


def test_two_seeds_train_two_policies_per_route_and_resume(tmp_path, tiny_model_dir, capsys):
    cfg = tiny_pipeline(tmp_path, tiny_model_dir, controls=["random_labels"], rl_seeds=[0, 1])
    out = Pipeline(cfg).run()
    for route in ROUTES:
        dirs = [out / f"ppo_{route}", out / f"ppo_{route}_s1"]
        assert [json.loads((d / "run.json").read_text())["seed"] for d in dirs] == [0, 1]
        assert all((d / ".complete").exists() for d in dirs)
        assert _digest(dirs[0] / "policy") != _digest(dirs[1] / "policy")  # the seed changed the run
    epol = json.loads((out / "eval_policy" / "eval_policy.json").read_text())
    names = [f"{r}_rm_policy{s}" for r in ROUTES for s in ("", "_s1")]
    assert list(epol["policies"]) == ["reference", *names]  # the reference generated and judged once
    assert {(r["policy"], r["versus"]) for r in epol["win_rates"]} == {(n, "reference") for n in names}
    summary = json.loads((out / "summary.json").read_text())
    stats = summary["policy"]["seed_mean"]
    rows = [json.loads(x) for x in (out / "eval_policy" / "samples.jsonl").read_text().splitlines()]
    for route in ROUTES:  # seed mean = mean over prompts of (seed-averaged score − reference score)
        r = stats["routes"][route]
        by_hand = sum((row[f"{route}_rm_policy_score"] + row[f"{route}_rm_policy_s1_score"]) / 2
                      - row["reference_score"] for row in rows) / len(rows)
        assert r["vs_reference"]["score_diff"]["diff"] == pytest.approx(by_hand, abs=1e-12)
        own = {w["policy"]: w["score_diff"]["diff"] for w in epol["win_rates"]}
        assert r["seed_diffs"] == pytest.approx([own[f"{route}_rm_policy"], own[f"{route}_rm_policy_s1"]], abs=1e-12)
    assert [(x["route"], x["versus"]) for x in stats["pairs"]] == [("icm", "human"), ("icm", "random"),
                                                                    ("human", "random")]
    assert "ppo (icm, seed 1)" in summary["timings_s"] and "ppo (icm)" in summary["timings_s"]
    head = summary["headline"]
    assert sum("; seeds: " in line for line in head) == 3
    assert sum(line.startswith("control") and " (seed mean " in line for line in head) == 1
    assert sum(line.startswith("ICM-RM vs gold-RM policy: the seed-mean gap") for line in head) == 1
    assert "per-seed diffs (sd)" in (out / "report.md").read_text()
    capsys.readouterr()

    kept = _digest(out / "ppo_icm_s1" / "policy"), _digest(out / "ppo_random_s1" / "policy")
    shutil.rmtree(out / "ppo_random_s1")  # a run stopped before its last seed: only that seed trains again
    Pipeline(cfg).run()
    err = capsys.readouterr().err
    for stage in ("ppo (icm)", "ppo (icm, seed 1)", "ppo (human)", "ppo (human, seed 1)", "ppo (random)"):
        assert f"pipeline: {stage}: complete, skipped" in err
    assert "pipeline: ppo (random, seed 1) …" in err
    assert (_digest(out / "ppo_icm_s1" / "policy"), _digest(out / "ppo_random_s1" / "policy")) == kept  # seeded
    assert "pipeline: eval-policy: complete, skipped" in err  # the same policies by content: nothing to re-judge


def _hand_made_eval(p: Pipeline, scores: dict[str, list[float]]) -> None:
    """eval_policy.json + samples.jsonl as eval-policy writes them (the report reads only these fields)."""
    d = p.dir("eval_policy")
    n = len(scores["reference"])
    rows = [{"prompt": f"Q{i}?", **{f"{k}_score": v[i] for k, v in scores.items()}} for i in range(n)]
    atomic_write_jsonl(d / "samples.jsonl", rows)
    atomic_write_json(d / "eval_policy.json", {
        "judge": "gold checker", "n_prompts": n, "judge_score_mean": {k: sum(v) / n for k, v in scores.items()},
        "degenerate": {"icm_rm_policy_s1": {"flags": ["empty answers"]}}, "win_rates": []})


def _three_routes(p: Pipeline) -> Path:
    """ICM, gold (one pair differs) and random label files as the label stage and the control write them; the label
    folder."""
    label = p.dir("label")
    label.mkdir(parents=True)
    _prefs(label / "preferences.jsonl")
    _prefs(label / "preferences_gold.jsonl", flip={2})
    _prefs(p.out / "data" / "preferences_random.jsonl", flip={0, 3})
    return label


def test_report_compares_seed_means_exactly(tmp_path, tiny_model_dir):
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, controls=["random_labels"], rl_seeds=[0, 1]))
    label = _three_routes(p)
    assert p.routes() == list(ROUTES)
    ref = [0, 0, 1, 0]
    _hand_made_eval(p, {"reference": ref,
                        "icm_rm_policy": [1, 0, 1, 1], "icm_rm_policy_s1": [1, 1, 0, 0],      # mean [1, .5, .5, .5]
                        "human_rm_policy": [0, 0, 0, 0], "human_rm_policy_s1": [1, 1, 1, 1],  # mean [.5] * 4
                        "random_rm_policy": ref, "random_rm_policy_s1": ref})
    headline = write_report(p)
    stats = json.loads((p.out / "summary.json").read_text())["policy"]["seed_mean"]
    icm, human, rnd = (stats["routes"][r] for r in ROUTES)
    # ICM: per-prompt seed means − reference = [1, .5, −.5, .5] → 0.375; 3 wins, 1 loss
    assert icm["vs_reference"]["score_diff"]["diff"] == 0.375
    assert (icm["vs_reference"]["wins"], icm["vs_reference"]["ties"], icm["vs_reference"]["losses"]) == (3, 0, 1)
    assert icm["vs_reference"]["win_rate"] == 0.75 and icm["score"] == 0.625
    assert icm["seed_diffs"] == [0.5, 0.25] and icm["seed_sd"] == pytest.approx(0.25 / math.sqrt(2), abs=1e-15)
    assert human["vs_reference"]["score_diff"]["diff"] == 0.25 and human["seed_diffs"] == [-0.25, 0.75]
    assert rnd["vs_reference"]["score_diff"]["diff"] == 0 and rnd["vs_reference"]["score_diff"]["ci"] == [0, 0]
    pair = next(x for x in stats["pairs"] if (x["route"], x["versus"]) == ("icm", "human"))
    assert pair["score_diff"]["diff"] == 0.125 and (pair["wins"], pair["ties"], pair["losses"]) == (1, 3, 0)
    # the ICM–gold gap 0.125 lies within gold-RM's per-seed sd 1/√2
    assert stats["gold_gap"] == {"diff": 0.125, "seed_sd": pytest.approx(1 / math.sqrt(2)), "within_seed_spread": True}
    report = (p.out / "report.md").read_text()
    assert "| ICM-RM policy | 0.625 | +0.375 [" in report
    assert "| +0.500, +0.250 (sd 0.177) | seed 1: empty answers |" in report
    assert "the seed-mean gap +0.125 is within the RL seed spread (per-seed diff sd up to 0.707)" in headline
    assert "control: the random-label RM's policy does not improve (seed mean +0.000 [+0.000, +0.000], CI" in headline
    assert "degenerate answers: ICM-RM policy seed 1: empty answers" in headline
    assert "  ICM-RM policy     0.625  diff +0.375 [" in headline and "; seeds: +0.500, +0.250 (sd 0.177)" in headline

    _prefs(label / "preferences_gold.jsonl")  # gold = ICM labels: one route, reported once, no ICM–gold gap
    headline = write_report(p)
    stats = json.loads((p.out / "summary.json").read_text())["policy"]["seed_mean"]
    assert list(stats["routes"]) == ["icm", "random"] and "gold_gap" not in stats
    assert "seed-mean gap" not in headline and "gold-RM" not in headline.replace("the gold-RM route is this route", "")
    assert stats["routes"]["icm"]["vs_reference"]["score_diff"]["diff"] == 0.375

    p.cfg.rl_seeds = [0, 2]  # seeds changed, eval-policy not rerun: said plainly, no stale numbers
    assert "policies: eval_policy/ judged other policies than this config trains" in write_report(p)
    assert "seed_mean" not in json.loads((p.out / "summary.json").read_text()).get("policy", {})


@pytest.mark.parametrize("flag, says", [(["--rl_seeds", "[]"], "at least one RL seed"),
                                        (["--rl_seeds", "[0, 1, 0]"], "must be unique, got [0, 1, 0]"),
                                        (["--rl_seeds", "-1"], "integers ≥ 0, got [-1]"),
                                        (["--rl_seeds", "[1, 2]", "--ppo.seed", "2"], "ppo.seed 2 disagrees")])
def test_a_bad_rl_seeds_is_one_line_exit_2(tmp_path, tiny_model_dir, capsys, flag, says):
    save_config(tiny_pipeline(tmp_path, tiny_model_dir), tmp_path / "pipeline.yaml")
    capsys.readouterr()
    assert run_main(main, ["--config", str(tmp_path / "pipeline.yaml"), *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("icm-rm: error: ")
    assert "key 'rl_seeds': " in err and says in err
    assert not (tmp_path / "run").exists()


def test_one_seed_report_says_the_icm_gold_gap_mixes_in_rl_variance(tmp_path, tiny_model_dir):
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, controls=["random_labels"]))
    label = _three_routes(p)
    _hand_made_eval(p, {"reference": [0, 0, 1, 0], "icm_rm_policy": [1, 0, 1, 1], "human_rm_policy": [0, 0, 0, 0],
                        "random_rm_policy": [0, 0, 1, 0]})
    headline = write_report(p)
    assert "ICM-RM vs gold-RM policy: one RL run per route" in headline and "--rl_seeds [0,1,2]" in headline
    assert "ICM-RM vs gold-RM policy: one RL run per route" in (p.out / "report.md").read_text()
    _prefs(label / "preferences_gold.jsonl")  # gold = ICM labels: no gap to speak of
    assert "one RL run per route" not in write_report(p)
