"""Several RL seeds per reward model (`rl_seeds`) and several RMs per route (`rm_seeds`): one seed keeps today's
folders and names; several train one RM per route and RM seed (one held-out split) and one policy per RM and RL seed,
each a resumable stage; the report compares seed means (exact values from a hand-made eval result); a bad seed list
is one line naming the key, exit 2, before anything is written."""

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
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


def _hand_made_eval(p: Pipeline, scores: dict[str, list[float]], flagged: str = "icm_rm_policy_s1",
                    flag: str = "empty answers") -> None:
    """eval_policy.json + samples.jsonl as eval-policy writes them (the report reads only these fields)."""
    d = p.dir("eval_policy")
    n = len(scores["reference"])
    rows = [{"prompt": f"Q{i}?", **{f"{k}_score": v[i] for k, v in scores.items()}} for i in range(n)]
    atomic_write_jsonl(d / "samples.jsonl", rows)
    atomic_write_json(d / "eval_policy.json", {
        "judge": "gold checker", "n_prompts": n, "judge_score_mean": {k: sum(v) / n for k, v in scores.items()},
        "degenerate": {flagged: {"flags": [flag]}}, "win_rates": []})


def _three_routes(p: Pipeline) -> Path:
    """ICM, gold (one pair differs) and random label files as the label stage and the control write them; the label
    folder."""
    label = p.dir("label")
    label.mkdir(parents=True)
    _prefs(label / "preferences.jsonl")
    _prefs(label / "preferences_gold.jsonl", flip={2})
    _prefs(p.out / "data" / "preferences_random.jsonl", flip={0, 3})
    return label


def test_a_policy_cut_at_the_token_limit_gets_a_plain_hint_and_the_reference_alone_does_not(tmp_path, tiny_model_dir):
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, controls=["random_labels"]))
    _three_routes(p)
    scores = {"reference": [0, 1], "icm_rm_policy": [1, 1], "human_rm_policy": [0, 1], "random_rm_policy": [0, 0]}
    hint = "a policy that runs past max_new_tokens may have found an RM that pays for length"
    _hand_made_eval(p, scores, flagged="random_rm_policy", flag="100% cut at the token limit")
    headline = write_report(p)
    assert "degenerate answers: random-RM policy: 100% cut at the token limit\n  " + hint in headline
    assert ("WARNING: only 2 held-out prompts: the score differences below carry wide CIs; hold out 50 or more"
            in headline)
    _hand_made_eval(p, scores, flagged="reference", flag="100% cut at the token limit")
    headline = write_report(p)
    assert "degenerate answers: reference: 100% cut at the token limit" in headline and hint not in headline


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
    # the ICM–gold gap 0.125 lies within two standard errors √((0.177² + 0.707²) / 2) = 0.515 of the seed means
    se = math.sqrt((0.25 ** 2 / 2 + 0.5) / 2)
    assert stats["gold_gap"] == {"diff": 0.125, "seed_sd": pytest.approx(1 / math.sqrt(2)),
                                 "seed_se": pytest.approx(se), "within_seed_spread": True}
    report = (p.out / "report.md").read_text()
    assert "| ICM-RM policy | 0.625 | +0.375 [" in report
    assert "| +0.500, +0.250 (sd 0.177) | seed 1: empty answers |" in report
    assert ("the seed-mean gap +0.125 is within two standard errors of run-to-run variance (±1.031 over 2 runs per "
            "route, RL seeds; per-run diff sd up to 0.707): these runs cannot tell the label effect from it") in headline
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


@pytest.mark.parametrize("flag, says", [(["--rl_seeds", "[]"], "at least one seed"),
                                        (["--rl_seeds", "[0, 1, 0]"], "must be unique, got [0, 1, 0]"),
                                        (["--rl_seeds", "-1"], "integers ≥ 0, got [-1]"),
                                        (["--rl_seeds", "[1, 2]", "--ppo.seed", "2"], "ppo.seed 2 disagrees"),
                                        (["--rm_seeds", "[]"], "at least one seed"),
                                        (["--rm_seeds", "[1, 1]"], "must be unique, got [1, 1]"),
                                        (["--rm_seeds", "[1, 2]", "--rm.seed", "2"], "rm.seed 2 disagrees")])
def test_a_bad_seed_list_is_one_line_exit_2(tmp_path, tiny_model_dir, capsys, flag, says):
    save_config(tiny_pipeline(tmp_path, tiny_model_dir), tmp_path / "pipeline.yaml")
    capsys.readouterr()
    assert run_main(main, ["--config", str(tmp_path / "pipeline.yaml"), *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("icm-rm: error: ")
    assert f"key '{flag[0][2:]}': " in err and says in err
    assert not (tmp_path / "run").exists()


def test_one_seed_report_says_the_icm_gold_gap_mixes_in_rl_variance(tmp_path, tiny_model_dir):
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, controls=["random_labels"]))
    label = _three_routes(p)
    _hand_made_eval(p, {"reference": [0, 0, 1, 0], "icm_rm_policy": [1, 0, 1, 1], "human_rm_policy": [0, 0, 0, 0],
                        "random_rm_policy": [0, 0, 1, 0]})
    headline = write_report(p)
    said = "ICM-RM vs gold-RM policy: one RM and one RL run per route"
    assert said in headline and "--rl_seeds [0,1,2]" in headline and "--rm_seeds [42,1,2]" in headline
    assert said in (p.out / "report.md").read_text()
    _prefs(label / "preferences_gold.jsonl")  # gold = ICM labels: no gap to speak of
    assert "one RL run per route" not in write_report(p)


def test_rm_seeds_name_one_rm_per_seed_on_one_split_and_policies_against_each(tmp_path, tiny_model_dir):
    from icm_rm.infra.errors import ConfigError
    from icm_rm.pipeline.routes import display_name

    out = tmp_path / "run"
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir))  # rm_seeds null: one RM per route, as before
    assert p.rm_seeds() == [None] and p.rm_dir("icm") == out / "rm_icm"
    assert (p.rm_cfg("icm").seed, p.rm_cfg("icm").split_seed) == (42, None)
    assert p.policies("icm") == [(0, "icm_rm_policy")]
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, rm_seeds=[42, 7], rl_seeds=[0, 1]))
    assert [p.rm_dir("icm", s) for s in (42, 7)] == [out / "rm_icm", out / "rm_icm_r7"]
    first, other = p.rm_cfg("human", 42), p.rm_cfg("human", 7)
    assert (first.seed, first.split_seed, other.seed, other.split_seed) == (42, None, 7, 42)  # one held-out split
    assert other.output_dir == str(out / "rm_human_r7") and other.train_data.endswith("preferences_gold.jsonl")
    cfg = tiny_pipeline(tmp_path, tiny_model_dir, rm_seeds=[3, 4])
    cfg.rm["split_seed"] = 42  # an explicit split wins over the first seed's
    pinned = Pipeline(cfg)
    assert [(c.seed, c.split_seed) for c in (pinned.rm_cfg("icm", 3), pinned.rm_cfg("icm", 4))] == [(3, 42), (4, 42)]
    assert p.runs() == [(42, 0), (42, 1), (7, 0), (7, 1)]
    assert p.policies("human") == [("RM seed 42, RL seed 0", "human_rm_policy"),
                                   ("RM seed 42, RL seed 1", "human_rm_policy_s1"),
                                   ("RM seed 7, RL seed 0", "human_rm_policy_r7"),
                                   ("RM seed 7, RL seed 1", "human_rm_policy_r7_s1")]
    rl = p.rl_cfg("icm", 1, 7)
    assert (rl.output_dir, rl.reward_model, rl.seed) == (str(out / "ppo_icm_r7_s1"), str(out / "rm_icm_r7" / "model"),
                                                         1)
    ev = p.eval_policy_cfg()
    assert ev.policies[-1] == f"human_rm_policy_r7_s1={out / 'ppo_human_r7_s1' / 'policy'}" and len(ev.policies) == 8
    assert ev.rms == [f"{r}_rm{s}={out / f'rm_{r}{s}' / 'model'}" for r in ("icm", "human") for s in ("", "_r7")]
    assert not ev.head_to_head
    assert [display_name(n) for n in ("rm_icm_r7", "human_rm_r7", "rm_random", "icm_rm_policy_r7")] == \
        ["ICM-RM (seed 7)", "gold-RM (seed 7)", "random-RM", "icm_rm_policy_r7"]
    judged = tiny_pipeline(tmp_path, tiny_model_dir, rm_seeds=[42, 7])
    judged.eval_policy["judge"] = str(out / "rm_human_r7" / "model")
    with pytest.raises(ConfigError, match="is the RM human_rm_r7, which a policy is trained against"):
        Pipeline(judged).check_judge()  # every seed's RM is a training target, not only the first


def test_two_rm_seeds_train_two_rms_and_policies_per_route_and_resume(tmp_path, tiny_model_dir, capsys):
    cfg = tiny_pipeline(tmp_path, tiny_model_dir, rm_seeds=[42, 7])
    out = Pipeline(cfg).run()
    routes = Pipeline(cfg).routes()
    assert routes[0] == "icm"
    for route in routes:
        rms = [out / f"rm_{route}", out / f"rm_{route}_r7"]
        runs = [json.loads((d / "run.json").read_text()) for d in rms]
        assert [r["seed"] for r in runs] == [42, 7] and runs[1]["config"]["split_seed"] == 42
        assert runs[0]["metrics"]["n_train"] == runs[1]["metrics"]["n_train"]
        assert _digest(rms[0] / "model") != _digest(rms[1] / "model")  # the seed changed the RM
        pol = json.loads((out / f"ppo_{route}_r7" / "run.json").read_text())["config"]
        assert pol["reward_model"] == str(rms[1] / "model") and pol["seed"] == 0
    erm = json.loads((out / "eval_rm" / "eval_rm.json").read_text())
    assert len({r["model"] for r in erm["results"]}) == 2 * len(routes)
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(x) for x in (out / "eval_policy" / "samples.jsonl").read_text().splitlines()]
    icm = summary["policy"]["seed_mean"]["routes"]["icm"]
    by_hand = sum((r["icm_rm_policy_score"] + r["icm_rm_policy_r7_score"]) / 2 - r["reference_score"]
                  for r in rows) / len(rows)
    assert icm["vs_reference"]["score_diff"]["diff"] == pytest.approx(by_hand, abs=1e-12)
    assert icm["seeds"] == ["RM seed 42, RL seed 0", "RM seed 7, RL seed 0"]
    assert summary["policy"]["rm_seeds"] == [42, 7]
    assert "train-rm (icm, seed 7)" in summary["timings_s"] and "ppo (icm, RM seed 7)" in summary["timings_s"]
    assert any("each policy line is the mean over RM seeds 42, 7 × RL seed 0" in x for x in summary["headline"])
    assert "| ICM-RM (seed 7) |" in (out / "report.md").read_text()
    capsys.readouterr()

    kept = _digest(out / "rm_icm_r7" / "model")
    shutil.rmtree(out / "rm_icm_r7")  # a run stopped before its last RM: only that RM trains again
    Pipeline(cfg).run()
    err = capsys.readouterr().err
    assert "pipeline: train-rm (icm, seed 7) …" in err and "pipeline: train-rm (icm): complete, skipped" in err
    assert _digest(out / "rm_icm_r7" / "model") == kept  # seeded: the same RM, so its policy stands
    assert "pipeline: ppo (icm, RM seed 7): complete, skipped" in err


def test_report_over_rm_seeds_says_what_the_seed_mean_averages(tmp_path, tiny_model_dir):
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, controls=["random_labels"], rm_seeds=[42, 7]))
    _three_routes(p)
    ref = [0, 0, 1, 0]
    _hand_made_eval(p, {"reference": ref, "icm_rm_policy": [1, 0, 1, 1], "icm_rm_policy_r7": [1, 1, 0, 0],
                        "human_rm_policy": [0, 0, 0, 0], "human_rm_policy_r7": [1, 1, 1, 1],
                        "random_rm_policy": ref, "random_rm_policy_r7": ref}, flagged="icm_rm_policy_r7")
    headline = write_report(p)
    icm = json.loads((p.out / "summary.json").read_text())["policy"]["seed_mean"]["routes"]["icm"]
    assert icm["vs_reference"]["score_diff"]["diff"] == 0.375 and icm["seed_diffs"] == [0.5, 0.25]
    assert ("the seed-mean gap +0.125 is within two standard errors of run-to-run variance (±1.031 over 2 runs per "
            "route, RM and RL seeds; per-run diff sd up to 0.707)") in headline
    assert "each policy line is the mean over RM seeds 42, 7 × RL seed 0" in headline
    assert "degenerate answers: ICM-RM policy RM seed 7, RL seed 0: empty answers" in headline
    report = (p.out / "report.md").read_text()
    assert "one RM per RM seed and one policy per RL seed against each (RM seeds 42, 7 × RL seed 0)" in report
    assert "| +0.500, +0.250 (sd 0.177) | RM seed 7, RL seed 0: empty answers |" in report


def test_rm_seeds_flags_repeat_or_take_a_list_and_null_means_one_rm():
    from icm_rm.infra.config import parse_config
    from icm_rm.pipeline import PipelineConfig

    def seeds(*flags: str):
        demo = Path(__file__).resolve().parents[1] / "configs" / "pipeline" / "default.yaml"
        return parse_config(PipelineConfig, ["--config", str(demo), *flags])[0].rm_seeds

    assert seeds("--rm_seeds", "42", "--rm_seeds", "1") == seeds("--rm_seeds", "[42, 1]") == [42, 1]
    assert seeds("--rm_seeds", "3") == [3] and seeds("--rm_seeds", "null") is None and seeds() is None


def test_gold_gap_is_judged_by_the_standard_error_of_the_seed_means():
    """16 runs per route, each ±0.1 around its route's mean (sd 0.103): a gap of 0.09 is below one run's sd, but the
    seed means are known to ±2·√(2 · 0.0107 / 16) = ±0.073, so it is resolved; 0.06 is not."""
    from icm_rm.pipeline.seed_means import seed_means

    def runs(mean: float) -> list[float]:
        return [mean + (0.1 if k % 2 else -0.1) for k in range(16)]

    for gap, within in ((0.09, False), (0.06, True)):
        scores = {"reference": np.zeros(2)}
        policies = {"icm": [], "human": []}
        for route, mean in (("icm", 0.5), ("human", 0.5 - gap)):
            for k, v in enumerate(runs(mean)):
                scores[f"{route}{k}"] = np.full(2, v)
                policies[route].append((k, f"{route}{k}"))
        g = seed_means(scores, policies, tie_margin=0.0, seed=0, head_to_head=False)["gold_gap"]
        sd = math.sqrt(16 * 0.01 / 15)
        assert g["diff"] == pytest.approx(gap) and g["seed_sd"] == pytest.approx(sd)
        assert g["seed_se"] == pytest.approx(math.sqrt(2 * sd ** 2 / 16))
        assert g["within_seed_spread"] is within and g["diff"] < g["seed_sd"]


def test_pooled_rm_seed_rounds_equal_one_seed_mean_report_over_all_their_runs(monkeypatch):
    """benchmarks/rm_seeds_pooled.py joins a stored round's per-policy diffs with a new run's: the result must be the
    pipeline's own seed-mean gap and standard error over all the runs at once."""
    from icm_rm.pipeline.seed_means import seed_means

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from rm_seeds_pooled import pooled

    stored = {"icm_s0": 0.2, "icm_s1": 0.0, "human_s0": 0.25, "goldr1_s0": 0.15}
    new = {"icm_rm_policy": 0.1, "icm_rm_policy_r4": 0.3, "human_rm_policy": 0.0}
    out = pooled(stored, new)
    runs = {**stored, **new}
    scores = {"reference": np.zeros(3), **{p: np.full(3, d) for p, d in runs.items()}}
    policies = {r: [(k, p) for k, p in enumerate(q for q in runs if (q[:3] == "icm") == (r == "icm"))]
                for r in ("icm", "human")}
    g = seed_means(scores, policies, tie_margin=0.0, seed=0, head_to_head=False)["gold_gap"]
    assert out["gap"] == pytest.approx(g["diff"]) == pytest.approx(0.15 - 0.4 / 3)
    assert out["gap_se"] == pytest.approx(g["seed_se"]) and out["routes"]["icm"]["n"] == 4
    assert out["routes"]["human"]["stored"] == [0.25, 0.15] and out["routes"]["human"]["new"] == [0.0]


def test_non_answer_comparison_keys_policies_by_route_rm_seed_and_rl_seed(monkeypatch):
    """benchmarks/non_answer_pairs.py pairs each new test policy with the stored class-only policy of the same RM and
    RL seeds: a run's first RM seed has no _rK in its policy names, and the stored rounds name gold RMs two ways."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from non_answer_pairs import class_only_round, run_key

    assert run_key("icm_rm_policy", 42) == "icm/rm42/s0" and run_key("icm_rm_policy", 3) == "icm/rm3/s0"
    assert run_key("human_rm_policy_r4_s1", 3) == "human/rm4/s1" and run_key("icm_rm_policy_s2", 1) == "icm/rm1/s2"
    old = class_only_round()
    assert len(old) == 30  # RM seeds 42/1/2/3/4 × RL seeds 0/1/2 × two routes
    assert old["human/rm1/s0"] == pytest.approx(-0.0714285714) and old["icm/rm3/s1"] == pytest.approx(-0.2678571429)
    assert old["human/rm42/s2"] == pytest.approx(0.25) and old["icm/rm4/s0"] == 0.0


def test_non_answer_comparison_against_earlier_runs(monkeypatch, tmp_path):
    """`--test_run NEW --against OLD`: each new policy is set against the policy of the same route, RM seed and RL
    seed in the earlier runs (not the stored class-only rounds); runs judged on other prompts are refused."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from non_answer_pairs import compare_test_runs

    def run(name: str, first_rm_seed: int, policies: dict[str, list[float]], ref=(0.0, 0.0, 1.0, 0.0)) -> Path:
        d = tmp_path / name
        (d / "eval_policy").mkdir(parents=True)
        (d / "config.yaml").write_text(f"rm_seeds: [{first_rm_seed}]\n")
        rows = [{"reference_score": r, **{f"{p}_score": s[i] for p, s in policies.items()}} for i, r in enumerate(ref)]
        (d / "eval_policy" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return d

    old = run("old", 3, {"icm_rm_policy": [1, 0, 1, 0], "human_rm_policy": [1, 1, 1, 1],
                         "icm_rm_policy_s1": [0, 0, 0, 0], "human_rm_policy_s1": [0, 0, 0, 0]})
    new = run("new", 3, {"icm_rm_policy": [1, 1, 1, 0], "human_rm_policy": [1, 1, 1, 0]})
    doc = compare_test_runs([new], [old])
    assert doc["routes"]["icm"]["new"] == {"icm/rm3/s0": 0.5} and doc["routes"]["icm"]["before"] == {"icm/rm3/s0": 0.25}
    assert doc["routes"]["human"]["before_mean"] == 0.75  # the old RL-seed-1 policies have no twin: left out
    assert doc["icm_vs_gold"]["score_diff"]["diff"] == 0.0 and doc["icm_vs_gold_seed_se"] is None  # one run each
    with pytest.raises(SystemExit, match="not the same prompts"):
        compare_test_runs([new], [run("other", 3, {"icm_rm_policy": [1, 1, 1, 1]}, ref=(1.0, 0.0, 1.0, 0.0))])


def test_hedge_variant_writes_a_third_of_hedge_pairs_and_counts_the_classes_an_answer_names(monkeypatch, tmp_path):
    """The dev harness's `hedges3` variant: the 97 RL pairs split into wrong-class, non-answer and hedge pairs (each
    counted once); an answer's classes are counted outside the subject's own name."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from non_answer_pairs import classes_named, write_data

    from icm_rm.data.fact_tables import ANIMAL_QUIZ

    q = ANIMAL_QUIZ.ask("swordfish")
    assert [classes_named(q, a) for a in ("A swordfish.", "A swordfish is a fish.", "A swordfish is a fish, but also "
                                           "a mammal.", "Swordfish are fishes and birds and insects.")] == [0, 1, 2, 3]
    counts = write_data("hedges3", tmp_path)
    assert counts["pairs"] == counts["rl_subjects"] == 97 and counts["dev_subjects"] == 34
    assert 25 <= counts["hedge_pairs"] <= 40 and 25 <= counts["non_answer_pairs"] <= 40
    assert write_data("frequency_distractors", tmp_path)["hedge_pairs"] == 0


def test_two_pairs_variant_keeps_the_task_pair_and_adds_a_new_wrong_class(monkeypatch, tmp_path):
    """The dev harness's `two_pairs` variant: every RL subject's own pair unchanged, then one more rejecting a wrong
    class that differs from the first pair's rejected answer (no pair twice)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from non_answer_pairs import write_data

    from icm_rm.data.fact_tables import ANIMAL_QUIZ

    one, two = write_data("frequency_distractors", tmp_path / "one"), write_data("two_pairs", tmp_path / "two")
    assert two["pairs"] == 2 * one["pairs"] == 194 and two["non_answer_pairs"] == one["non_answer_pairs"]
    rows = [json.loads(x) for x in (tmp_path / "two/rl_pairs.jsonl").read_text().splitlines()]
    assert (tmp_path / "one/rl_pairs.jsonl").read_text().splitlines() == \
        (tmp_path / "two/rl_pairs.jsonl").read_text().splitlines()[::2]
    wrong_classes = {ANIMAL_QUIZ.state(s, o) for s, right in ANIMAL_QUIZ.rows for o in ANIMAL_QUIZ.objects()
                     if o != right}
    for first, second in zip(rows[::2], rows[1::2]):
        assert first["prompt"] == second["prompt"] and first["chosen"] == second["chosen"]
        assert second["rejected"] in wrong_classes and second["rejected"] != first["rejected"]


def test_answer_forms_variant_restyles_both_sides_alike_and_keeps_the_labels(monkeypatch, tmp_path):
    """The dev harness's `answer_forms` variant: the task's pairs, both sides in the subject's one form (every form
    used), a non-answer still the form's non-answer of the same kind, and the chosen side still the right class."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from non_answer_pairs import ANSWER_FORMS, write_data

    from icm_rm.data.builtin import gold_check
    from icm_rm.data.fact_tables import ANIMAL_QUIZ, NON_ANSWERS

    write_data("frequency_distractors", tmp_path / "one")
    write_data("answer_forms", tmp_path / "forms")
    read = lambda d: [json.loads(x) for x in (tmp_path / d / "rl_pairs.jsonl").read_text().splitlines()]  # noqa: E731
    used = set()
    for old, new in zip(read("one"), read("forms"), strict=True):
        assert new["prompt"] == old["prompt"] and gold_check("animal_quiz", new["prompt"], new["chosen"])
        subject = next(s for s, _ in ANIMAL_QUIZ.rows if ANIMAL_QUIZ.ask(s) == new["prompt"])
        forms = [f for f in ANSWER_FORMS for o in ANIMAL_QUIZ.objects() if ANIMAL_QUIZ.fill(f, subject, o) ==
                 new["chosen"]]
        assert len(forms) == 1
        old_evasions = [ANIMAL_QUIZ.fill(e, subject) for e in NON_ANSWERS]
        if old["rejected"] in old_evasions:
            kind = old_evasions.index(old["rejected"])
            assert new["rejected"] == ANIMAL_QUIZ.fill(ANSWER_FORMS[forms[0]][kind], subject)
        else:
            assert new["rejected"] in {ANIMAL_QUIZ.fill(forms[0], subject, o) for o in ANIMAL_QUIZ.objects()}
            assert not gold_check("animal_quiz", new["prompt"], new["rejected"])
        used.add(forms[0])
    assert used == set(ANSWER_FORMS)


def test_dev_rounds_are_paired_by_route_and_seed(monkeypatch):
    """`--dev_rounds NEW --baseline OLD`: d = new gain − old gain for each route/RM seed/RL seed in both rounds; a
    round's first RM seed names its policies without _rK; the mean of d and its SE, overall and per route."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from non_answer_pairs import compare_dev_rounds

    def doc(rm_seeds: list[int], gains: dict[str, float]) -> dict:
        return {"settings": {"rm_seeds": rm_seeds},
                "policies": {"reference": {"gain": 0.0}, **{k: {"gain": v} for k, v in gains.items()}}}

    old = [doc([42, 1], {"icm_rm_policy": 0.1, "icm_rm_policy_r1": 0.2, "human_rm_policy": 0.3,
                         "human_rm_policy_r1": 0.0}), doc([3], {"icm_rm_policy": 0.5})]
    new = [doc([1, 42], {"icm_rm_policy": 0.4, "icm_rm_policy_r42": 0.1, "human_rm_policy_r42": 0.5}),
           doc([7], {"icm_rm_policy": 0.9})]  # RM seed 7 has no twin: left out
    out = compare_dev_rounds(new, old)
    assert out["d"] == pytest.approx({"icm/rm1/s0": 0.2, "icm/rm42/s0": 0.0, "human/rm42/s0": 0.2})
    assert out["all"]["n"] == 3 and out["all"]["mean_d"] == pytest.approx(0.4 / 3)
    assert out["all"]["se_d"] == pytest.approx(np.std([0.2, 0.0, 0.2], ddof=1) / np.sqrt(3))
    assert out["routes"]["human"] == {"n": 1, "mean_new": 0.5, "mean_old": 0.3, "mean_d": pytest.approx(0.2),
                                      "se_d": None}
    with pytest.raises(SystemExit, match="need ≥ 2"):
        compare_dev_rounds([doc([7], {"icm_rm_policy": 0.9})], old)


def test_rm_answer_forms_pool_sets_each_rm_beside_its_policys_dev_gain(monkeypatch, tmp_path):
    """`rm_answer_forms.py --pool`: each RM of a stored dev-question result is matched with the dev gain of its own
    policy (rm_icm_r1 → icm_rm_policy_r1) in the non_answer_pairs round that ran the same pipeline dir; test-question
    results and runs without a round are refused."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import rm_answer_forms

    monkeypatch.setattr(rm_answer_forms, "RESULTS", tmp_path)
    forms = {"rm_icm": {"most_common_above_right": 0.5, "right": 0.2, "most_common": 0.6},
             "rm_icm_r1": {"most_common_above_right": 0.0, "right": 0.9, "most_common": 0.1},
             "rm_human_r1": {"most_common_above_right": 0.25, "right": 0.5, "most_common": 0.3}}
    (tmp_path / "f.json").write_text(json.dumps({"settings": {"run": "/x/a/run", "split": "dev"}, "results": forms}))
    (tmp_path / "non_answer_pairs_a.json").write_text(json.dumps({"settings": {"out": "/x/a"}, "policies": {
        "reference": {"gain": 0.0}, "icm_rm_policy": {"gain": -0.1}, "icm_rm_policy_r1": {"gain": 0.3},
        "human_rm_policy_r1": {"gain": 0.2}}}))
    doc = rm_answer_forms.pool(["f"])
    assert {r["rm"]: r["gain"] for r in doc["rms"]} == {"rm_icm": -0.1, "rm_icm_r1": 0.3, "rm_human_r1": 0.2}
    assert doc["spearman_with_gain"]["most_common_above_right"] == pytest.approx(-1.0)
    assert doc["spearman_with_gain"]["right_minus_most_common"] == pytest.approx(1.0)
    (tmp_path / "t.json").write_text(json.dumps({"settings": {"run": "/x/a/run", "split": "test"}, "results": forms}))
    with pytest.raises(SystemExit, match="not scored on the dev questions"):
        rm_answer_forms.pool(["t"])
    (tmp_path / "g.json").write_text(json.dumps({"settings": {"run": "/x/b/run", "split": "dev"}, "results": forms}))
    with pytest.raises(SystemExit, match="no stored non_answer_pairs round ran /x/b/run"):
        rm_answer_forms.pool(["g"])
