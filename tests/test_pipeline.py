"""The whole pipeline on tiny random models: every contract file exists and feeds the next stage; the random-label
control runs beside the ICM and gold routes; a rerun skips; gold labels equal to ICM's train one route; eval prompts
are held out; a judge RM a policy is trained against is refused; `icm-rm pipeline --rl_algo grpo` from a config."""

import json
from pathlib import Path

import pytest

from icm_rm.data.preferences import PreferenceExample, write_preferences_jsonl
from icm_rm.infra.config import load_config, save_config
from icm_rm.infra.errors import ConfigError, InputError, UserError
from icm_rm.pipeline import Pipeline, PipelineConfig, main


def tiny_pipeline(tmp_path, model_dir, algo="ppo", **kw) -> PipelineConfig:
    model = str(model_dir)
    return PipelineConfig(
        output_dir=str(tmp_path / "run"),
        label={"model": model, "scorer": "probe", "limit_groups": 10, "feature_cache": str(tmp_path / "feat"),
               "report_to": "none", "search": {"iterations": 30, "patience": 0}},
        rm={"model": model, "max_length": 64, "trainer": {"num_train_epochs": 1, "per_device_train_batch_size": 4,
                                                           "learning_rate": 1e-3, "report_to": [],
                                                           "eval_strategy": "no", "save_strategy": "no"}},
        rl_algo=algo,
        ppo={"model": model, "prompts": "builtin:capitals", "max_prompt_length": 32, "max_new_tokens": 6,
             "num_steps": 2, "rollout_batch_size": 4, "micro_batch_size": 4, "ppo_epochs": 1, "save_steps": 1,
             "tensorboard": False},
        grpo={"model": model, "prompts": "builtin:capitals", "num_steps": 2, "per_device_batch_size": 4,
              "num_generations": 2, "max_new_tokens": 6, "save_steps": 1, "tensorboard": False},
        eval_policy={"max_prompts": 6, "max_new_tokens": 6, "pref_limit": 8},
        eval_rm_limit=16, **kw,
    )


def check_outputs(out, algo, routes):
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification

    for name in ("preferences.jsonl", "preferences_gold.jsonl"):   # label → files the RM stage reads
        ds = load_dataset("json", data_files=str(out / "label" / name), split="train")
        assert len(ds) == 10 and {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    for route in routes:                                           # train-rm → RM dirs with reward stats
        rm_dir = out / f"rm_{route}" / "model"
        cfg_json = json.loads((rm_dir / "config.json").read_text())
        assert "reward_mean" in cfg_json and cfg_json["reward_std"] > 0
        assert AutoModelForSequenceClassification.from_pretrained(rm_dir).config.num_labels == 1
        assert (out / f"{algo}_{route}" / "policy" / "config.json").exists()  # rl → policy dirs
        assert (out / f"{algo}_{route}" / ".complete").exists()
    erm = json.loads((out / "eval_rm" / "eval_rm.json").read_text())
    assert len(erm["results"]) == len(routes)
    epol = json.loads((out / "eval_policy" / "eval_policy.json").read_text())
    names = [f"{r}_rm_policy" for r in routes]
    expected = {(n, "reference") for n in names} | {(a, b) for i, a in enumerate(names) for b in names[i + 1:]}
    assert {(r["policy"], r["versus"]) for r in epol["win_rates"]} == expected
    assert all({"diff", "ci", "sign_p", "verdict"} <= set(r["score_diff"]) for r in epol["win_rates"])
    assert set(epol["rm_mean_reward"]["reference"]) == {f"{r}_rm" for r in routes}
    assert set(epol["degenerate"]) == {"reference", *names}
    return epol


def test_pipeline_with_the_random_label_control(tmp_path, tiny_model_dir, capsys):
    cfg = tiny_pipeline(tmp_path, tiny_model_dir, controls=["random_labels"], best_of_n={"n": 2, "max_prompts": 3})
    cfg.rm["drop_least_confident"] = 0.3
    out = Pipeline(cfg).run()
    check_outputs(out, "ppo", ["icm", "human", "random"])
    n_train = {r: json.loads((out / f"rm_{r}" / "run.json").read_text())["metrics"]["n_train"]
               for r in ("icm", "human", "random")}
    assert n_train == {"icm": 6, "human": 9, "random": 9}  # only the ICM labels carry a margin: 3 of 9 left out
    icm = [json.loads(x) for x in (out / "label" / "preferences.jsonl").read_text().splitlines()]
    rnd = [json.loads(x) for x in (out / "data" / "preferences_random.jsonl").read_text().splitlines()]
    assert [{r["chosen"], r["rejected"]} for r in rnd] == [{r["chosen"], r["rejected"]} for r in icm]  # same pairs
    assert 0 < sum(a["chosen"] != b["chosen"] for a, b in zip(icm, rnd)) < len(icm)                     # some flipped
    report = (out / "report.md").read_text()
    for text in ("ICM-RM policy", "gold-RM policy", "random-RM policy", "diff vs reference [95% CI]",
                 "random labels (seed 0)", "Reward models", "Policies"):
        assert text in report
    summary = json.loads((out / "summary.json").read_text())  # every stage timed, with its own peak RSS
    assert set(summary["peak_rss_mib"]) == set(summary["timings_s"]) and len(summary["timings_s"]) == 10
    assert all(50 < v < 16_000 for v in summary["peak_rss_mib"].values())
    head = summary["headline"]
    label = json.loads((out / "label" / "report.json").read_text())
    strong = label["strongest_baseline"]["name"]  # ICM is printed next to the strongest gold-free baseline
    assert sum(line.startswith("ICM labels vs gold: ICM ") and f"vs strongest baseline {strong} " in line
               for line in head) == 1
    assert sum(line.startswith("ICM labels without gold: ") for line in head) == 1
    review = [line for line in head if line.startswith("check by eye: the 1 of 10 pairs the labeler was least sure of")]
    assert len(review) == 1 and f"{out / 'label' / 'least_confident.jsonl'} (gold: " in review[0]
    assert "Check by eye: the 1 of 10 pairs" in report and "label/least_confident.jsonl" in report
    spot = [line for line in head if line.startswith("spot check: 10 of 10 pairs drawn at random are in ")]
    assert len(spot) == 1 and f"{out / 'label' / 'spot_check.jsonl'} (gold: " in spot[0]
    assert "Spot check: 10 of 10 pairs drawn at random are in label/spot_check.jsonl" in report
    assert summary["label"]["spot_check"]["n"] == 10
    assert "RM training data: the ICM-RM trained on 6 of 9 pairs (rm.drop_least_confident 0.3 left out the 3 " \
           "pairs with the smallest ICM margin)" in head
    assert f"**{strong}** (strongest baseline)" in report and "Without gold: " in report
    assert summary["label"]["diagnostics"] == label["diagnostics"]
    assert [r["seen_in_training"] for r in summary["rm"]] == [0, 0, 0] and "NOT held out" not in report
    from icm_rm.pipeline.report import _seen_note  # what a row says when eval_rm_data holds RM training pairs
    assert _seen_note({"seen_in_training": 3, "n": 10}) == " — NOT held out: 3 of its 10 pairs are RM training pairs"
    epol = json.loads((out / "eval_policy" / "eval_policy.json").read_text())
    own = {(r["policy"], r["versus"]): r for r in epol["win_rates"]}
    stats = summary["policy"]["seed_mean"]  # one RL seed: the seed mean is each policy's own eval-policy result
    for route, r in stats["routes"].items():
        row = own[(f"{route}_rm_policy", "reference")]
        assert r["vs_reference"] == {k: row[k] for k in r["vs_reference"]}
    for x in stats["pairs"]:
        row = own[(f"{x['route']}_rm_policy", f"{x['versus']}_rm_policy")]
        mine = {k: v for k, v in x.items() if k not in ("route", "versus")}
        assert mine == {k: row[k] for k in mine}
    assert sum(line.startswith("control") for line in head) == 1
    bon = json.loads((out / "best_of_n" / "best_of_n.json").read_text())  # the RL policy's answers, judged as eval's
    assert bon["policy"] == str(tiny_model_dir) and bon["n_prompts"] == 3 and bon["judge"] == epol["judge"]
    assert set(bon["results"]) == {"icm_rm", "human_rm", "random_rm"} and "2b. Reward models on the ref" in report
    assert sum(line.startswith("RMs on the reference policy's own answers (best-of-2 gain, 3 prompts): ICM-RM ")
               and "; gold-RM " in line and "; random-RM " in line for line in head) == 1
    assert sum(line.startswith("degenerate answers: ") for line in head) == 1
    i = next(k for k, line in enumerate(head) if line.startswith("policies on 6 held-out prompts, judge: gold checker"))
    assert head[i + 1].startswith("WARNING: only 6 held-out prompts: the score differences below carry wide CIs")
    vs_ref = [line for line in head if line.startswith(("  ICM-RM policy ", "  gold-RM policy ", "  random-RM policy "))
              and " vs " not in line]
    assert len(vs_ref) == 3 and all(" — " in line for line in vs_ref)  # one line per policy vs the reference
    assert sum(" policy vs " in line for line in head) == 3               # and one per pair of policies
    err = capsys.readouterr().err
    assert "── icm-rm pipeline summary ──" in err and head[-1] in err

    for stages in (["rm"], ["rl"], ["eval_rm", "eval_policy"]):  # each reads the finished stages before it
        Pipeline(PipelineConfig(**{**vars(cfg), "stages": stages})).check_prerequisites()
    Pipeline(cfg).run()  # everything done: every stage is skipped
    err = capsys.readouterr().err
    for stage in ("label", "train-rm (icm)", "train-rm (human)", "train-rm (random)", "ppo (icm)", "ppo (human)",
                  "ppo (random)", "eval-rm", "best-of-n", "eval-policy"):
        assert f"pipeline: {stage}: complete, skipped" in err


def test_grpo_route_from_a_config_file(tmp_path, tiny_model_dir, capsys):
    """`icm-rm pipeline --config FILE --rl_algo grpo`, as a user runs it; the prompts get the chat template (the
    tiny tokenizer has one) in GRPO and in the evaluation alike, and the summary names any degenerate answers."""
    cfg = tiny_pipeline(tmp_path, tiny_model_dir, compare_human=False)
    save_config(cfg, tmp_path / "pipeline.yaml")
    assert main(["--config", str(tmp_path / "pipeline.yaml"), "--rl_algo", "grpo"]) == 0
    out = tmp_path / "run"
    epol = check_outputs(out, "grpo", ["icm"])
    import yaml

    formats = {yaml.safe_load((out / "eval_policy" / "config.yaml").read_text())["prompt_format"],
               json.loads((out / "grpo_icm" / "run.json").read_text())["config"]["prompt_format"]}
    assert formats == {"auto"}  # one rule (tests/test_prompt_format.py): the chat template where the tokenizer has one
    assert epol["n_prompts"] == 6
    assert "degenerate answers: " in capsys.readouterr().err

    # the same folder with the other RL algorithm: label and RM are reused, the evaluations judge the new policies
    assert main(["--config", str(tmp_path / "pipeline.yaml"), "--rl_algo", "ppo"]) == 0
    err = capsys.readouterr().err
    assert "pipeline: label: complete, skipped" in err and "pipeline: train-rm (icm): complete, skipped" in err
    assert "pipeline: eval-policy: complete, skipped" not in err and "pipeline: eval-rm: complete, skipped" in err
    judged = yaml.safe_load((out / "eval_policy" / "config.yaml").read_text())["policies"]
    assert judged == [f"icm_rm_policy={out / 'ppo_icm' / 'policy'}"]
    assert main(["--config", str(tmp_path / "pipeline.yaml"), "--rl_algo", "ppo"]) == 0
    assert "pipeline: eval-policy: complete, skipped" in capsys.readouterr().err


def _prefs(path, flip=()):
    rows = [PreferenceExample(id=str(i), prompt=f"Q{i}?", chosen=f"right {i}", rejected=f"wrong {i}")
            for i in range(6)]
    rows = [PreferenceExample(id=e.id, prompt=e.prompt, chosen=e.rejected, rejected=e.chosen) if i in flip else e
            for i, e in enumerate(rows)]
    write_preferences_jsonl(path, rows[::-1])  # another order: the same labels all the same


def test_gold_labels_equal_to_icm_train_one_route(tmp_path, tiny_model_dir):
    p = Pipeline(tiny_pipeline(tmp_path, tiny_model_dir, controls=["random_labels"]))
    label = p.dir("label")
    label.mkdir(parents=True)
    _prefs(label / "preferences.jsonl")
    _prefs(label / "preferences_gold.jsonl")
    assert p.human_is_icm() and p.routes() == ["icm", "random"]
    _prefs(label / "preferences_gold.jsonl", flip={2})
    assert not p.human_is_icm() and p.routes() == ["icm", "human", "random"]
    p.cfg.compare_human = False
    assert p.routes() == ["icm", "random"]


def test_eval_prompts_must_be_held_out_and_the_judge_must_not_be_a_training_rm(tmp_path, tiny_model_dir):
    cfg = tiny_pipeline(tmp_path, tiny_model_dir)
    cfg.eval_policy["prompt_split"] = "train"
    with pytest.raises(UserError, match="eval prompts are RL prompts"):
        Pipeline(cfg).run()
    cfg = tiny_pipeline(tmp_path, tiny_model_dir)
    cfg.eval_policy["judge"] = str(tmp_path / "run" / "rm_icm" / "model")
    with pytest.raises(ConfigError) as e:
        Pipeline(cfg).run()
    assert e.value.key == "eval_policy.judge" and "trained against" in e.value.message
    assert not (tmp_path / "run").exists()  # refused before anything was written
    with pytest.raises(ConfigError) as e:
        tiny_pipeline(tmp_path, tiny_model_dir, controls=["shuffled"])
    assert e.value.key == "controls"


def test_pipeline_config_errors_name_the_stage_key(tmp_path, tiny_model_dir):
    cfg = tiny_pipeline(tmp_path, tiny_model_dir)
    cfg.label["search"]["alpha"] = -1
    with pytest.raises(ConfigError) as e:
        Pipeline(cfg).run()
    assert e.value.key == "label.search.alpha"
    assert not (tmp_path / "run").exists()  # nothing written before the configs validate


@pytest.mark.parametrize("stages, reads, producer", [(["rl", "eval_policy"], "rm_icm", "rm"),
                                                     (["rm", "rl"], "label", "label"),
                                                     (["eval_rm"], "rm_icm", "rm"),
                                                     (["eval_policy"], "rm_icm", "rm")])  # it reads the RMs too
def test_a_stage_without_the_stage_it_reads_is_refused_up_front(tmp_path, tiny_model_dir, stages, reads, producer):
    """`stages: [rl]` on a fresh folder: refused naming the folder it reads and the stage that writes it, before
    anything is written — not after an earlier stage of the list has run (a finished run passes: see above)."""
    cfg = tiny_pipeline(tmp_path, tiny_model_dir, stages=stages)
    with pytest.raises(ConfigError, match=f"stage '{stages[0]}' reads .*{reads}, which the '{producer}' stage has "
                                          f"not finished: add '{producer}' to stages") as e:
        Pipeline(cfg).run()
    assert e.value.key == "stages" and not (tmp_path / "run").exists()


def test_a_pipeline_on_a_data_file_is_refused_up_front_without_held_out_pairs_or_a_judge(tmp_path, tiny_model_dir):
    """Labels and RL prompts from a user's file: no built-in test split to score RMs on and no gold checker for the
    policies' answers — refused before the label stage, naming the key, not after every model is trained."""
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Is {i} even?", "chosen": "Yes." if i % 2 == 0 else "No.",
                                        "rejected": "No." if i % 2 == 0 else "Yes."}) + "\n" for i in range(12)))

    def on_file(**kw) -> PipelineConfig:
        cfg = tiny_pipeline(tmp_path, tiny_model_dir, **kw)
        cfg.label.update(data_format="trl", data_path=str(data))
        cfg.ppo["prompts"] = str(data)
        return cfg

    for cfg, key in [(on_file(), "eval_rm_data"), (on_file(eval_rm_data=[f"{data}:trl"]), "eval_policy.judge")]:
        with pytest.raises(ConfigError) as e:
            Pipeline(cfg).run()
        assert e.value.key == key
        assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match="preference file not found"):
        Pipeline(on_file(eval_rm_data=[str(tmp_path / "heldout.jsonl")])).run()
    assert not (tmp_path / "run").exists()
    cfg = on_file(eval_rm_data=[f"{data}:trl"])
    cfg.eval_policy["judge"] = str(tmp_path / "no_such_rm")
    with pytest.raises(ConfigError, match="no_such_rm: no such judge RM directory") as e:
        Pipeline(cfg).run()
    assert e.value.key == "eval_policy.judge" and not (tmp_path / "run").exists()
    cfg = on_file(stages=["label", "rm"])  # without the evaluation stages nothing is missing
    Pipeline(cfg).check_evaluations(Pipeline(cfg).eval_policy_cfg())
    Pipeline(cfg).check_human_labels()  # chosen/rejected are the gold labels


def test_a_gold_label_route_without_gold_is_refused_before_the_label_stage(tmp_path, tiny_model_dir):
    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text("".join(json.dumps({"prompt": f"Is {i} even?", "response_a": "Yes.", "response_b": "No."})
                                 + "\n" for i in range(12)))
    cfg = tiny_pipeline(tmp_path, tiny_model_dir, eval_rm_data=[f"{unlabeled}:pairs"])
    cfg.label.update(data_format="pairs", data_path=str(unlabeled))
    with pytest.raises(ConfigError, match="has no gold labels") as e:
        Pipeline(cfg).run()
    assert e.value.key == "compare_human" and not (tmp_path / "run").exists()
    cfg.human_labels = str(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="missing.jsonl: no such preference file") as e:
        Pipeline(cfg).run()
    assert e.value.key == "human_labels" and not (tmp_path / "run").exists()
    cfg.human_labels, cfg.compare_human = None, False
    Pipeline(cfg).check_human_labels()


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_the_default_config_resolves_for_both_rl_routes(algo):
    """configs/pipeline/default.yaml (`make demo`): every stage's config validates for PPO and GRPO alike, RL and
    evaluation share one prompt format, the random-label control is on, and ≥ 50 held-out questions are judged."""
    cfg = load_config(PipelineConfig, Path(__file__).resolve().parents[1] / "configs/pipeline/default.yaml")
    cfg.rl_algo = algo
    p = Pipeline(cfg)
    p.label_cfg(), p.rm_cfg("icm")
    rl, ev = p.rl_cfg("icm"), p.eval_policy_cfg()
    assert cfg.controls == ["random_labels"] and rl.prompt_format == ev.prompt_format
    assert rl.prompts == ev.prompts == f"builtin:{cfg.label['task']}"
    assert p.check_heldout(ev) >= 50
