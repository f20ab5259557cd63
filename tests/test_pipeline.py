"""The whole pipeline on tiny random models: every contract file exists and feeds the next stage; a rerun skips."""

import json

import pytest

from icm_rm.pipeline import Pipeline, PipelineConfig


def tiny_pipeline(tmp_path, model_dir, algo="ppo") -> PipelineConfig:
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
        eval_rm_limit=16,
    )


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_pipeline_contracts_and_skip(tmp_path, tiny_model_dir, algo, capsys):
    cfg = tiny_pipeline(tmp_path, tiny_model_dir, algo)
    out = Pipeline(cfg).run()
    # label → preference files loadable with datasets (the RM stage's input)
    from datasets import load_dataset

    for name in ("preferences.jsonl", "preferences_gold.jsonl"):
        ds = load_dataset("json", data_files=str(out / "label" / name), split="train")
        assert len(ds) == 10 and {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    # train-rm → RM dirs that plain transformers loads, with reward stats (the RL stage's input)
    from transformers import AutoModelForSequenceClassification

    for route in ("icm", "human"):
        rm_dir = out / f"rm_{route}" / "model"
        cfg_json = json.loads((rm_dir / "config.json").read_text())
        assert "reward_mean" in cfg_json and cfg_json["reward_std"] > 0
        assert AutoModelForSequenceClassification.from_pretrained(rm_dir).config.num_labels == 1
        # rl → policy dirs (eval-policy's input)
        assert (out / f"{algo}_{route}" / "policy" / "config.json").exists()
        assert (out / f"{algo}_{route}" / ".complete").exists()
    erm = json.loads((out / "eval_rm" / "eval_rm.json").read_text())
    assert len(erm["results"]) == 2
    epol = json.loads((out / "eval_policy" / "eval_policy.json").read_text())
    pairs = {(r["policy"], r["versus"]) for r in epol["win_rates"]}
    assert pairs == {("icm_rm_policy", "reference"), ("human_rm_policy", "reference"),
                     ("icm_rm_policy", "human_rm_policy")}
    assert set(epol["rm_mean_reward"]["reference"]) == {"icm_rm", "human_rm"}
    report = (out / "report.md").read_text()
    assert "ICM labels" in report and "Reward models" in report and "Policies" in report
    assert (out / ".complete").exists() and (out / "run.json").exists()
    summary = json.loads((out / "summary.json").read_text())  # every stage timed, with its own peak RSS
    assert set(summary["peak_rss_mib"]) == set(summary["timings_s"]) and len(summary["timings_s"]) == 7
    assert all(50 < v < 16_000 for v in summary["peak_rss_mib"].values())

    capsys.readouterr()
    Pipeline(cfg).run()  # everything done: every stage is skipped
    err = capsys.readouterr().err
    for stage in ("label", "train-rm (icm)", "train-rm (human)", f"{algo} (icm)", f"{algo} (human)", "eval-rm",
                  "eval-policy"):
        assert f"pipeline: {stage}: complete, skipped" in err


def test_pipeline_config_errors_name_the_stage_key(tmp_path, tiny_model_dir):
    from icm_rm.infra.errors import ConfigError

    cfg = tiny_pipeline(tmp_path, tiny_model_dir)
    cfg.label["search"]["alpha"] = -1
    with pytest.raises(ConfigError) as e:
        Pipeline(cfg).run()
    assert e.value.key == "label.search.alpha"
    assert not (tmp_path / "run").exists()  # nothing written before the configs validate
