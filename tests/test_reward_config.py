"""RewardModelConfig: the shipped YAMLs load, cross-field checks name the key and the fix, bad keys exit 2 with one
line, and the held-out split is deterministic and order-independent."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import yaml

from icm_rm.infra.config import load_config
from icm_rm.infra.errors import ConfigError
from icm_rm.reward.config import RewardModelConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "rm"
YAMLS = sorted(CONFIGS.glob("*.yaml"))


def test_the_three_configs_ship():
    assert {p.name for p in YAMLS} >= {"default.yaml", "gold.yaml", "lora.yaml"}


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.name)
def test_yaml_keys_load_into_reward_model_config(path):
    data = yaml.safe_load(path.read_text())
    fields = {f.name for f in dataclasses.fields(RewardModelConfig)}
    assert set(data) <= fields
    cfg = load_config(RewardModelConfig, path)
    assert cfg.trainer["learning_rate"] == data["trainer"]["learning_rate"]
    assert isinstance(cfg.trainer["learning_rate"], float)
    header = path.read_text().splitlines()[:4]
    assert any("icm-rm train-rm --config configs/rm/" + path.name in line for line in header)
    assert any("accelerate launch" in line for line in header)
    assert any("wall time" in line for line in header)


def _settings(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_gold_differs_from_default_by_the_train_data_line_only():
    default, gold = _settings(CONFIGS / "default.yaml"), _settings(CONFIGS / "gold.yaml")
    diff = [(a, b) for a, b in zip(default, gold) if a != b]
    assert len(default) == len(gold)
    assert diff == [("train_data: runs/label/preferences.jsonl", "train_data: runs/label/preferences_gold.jsonl")]
    d, g = load_config(RewardModelConfig, CONFIGS / "default.yaml"), load_config(RewardModelConfig,
                                                                                  CONFIGS / "gold.yaml")
    assert (d.label_source, d.output_dir) == ("icm", "runs/rm/icm")
    assert (g.label_source, g.output_dir) == ("gold", "runs/rm/gold")


@pytest.mark.parametrize("kw, key, fix", [
    ({"eval_split": 1.5}, "eval_split", "0.1 holds out 10%"),
    ({"eval_split": 0.0}, "eval_split", "set eval_data or eval_split > 0"),
    ({"trainer": {"output_dir": "x"}}, "trainer.output_dir", "top-level `output_dir`"),
    ({"trainer": {"max_length": 5}}, "trainer.max_length", "top-level `max_length`"),
    ({"trainer": {"learnin_rate": 1.0}}, "trainer.learnin_rate", "did you mean 'trainer.learning_rate'"),
    ({"trainer": {"learning_rate": "fast"}}, "trainer.learning_rate", "expected a number"),
    ({"resume": True, "overwrite": True}, "overwrite", "set only one of them"),
    ({"lora_r": 0}, "lora_r", "must be ≥ 1"),
])
def test_cross_field_checks_name_key_and_fix(kw, key, fix):
    with pytest.raises(ConfigError) as e:
        RewardModelConfig(**kw)
    assert e.value.key == key and fix in str(e.value)


def test_trainer_flags_pass_through_and_yaml_1_1_readings_are_undone():
    from icm_rm.infra.config import parse_config

    cfg, _ = parse_config(RewardModelConfig, ["--trainer.learning_rate", "1e-4", "--trainer.num_train_epochs", "2",
                                              "--trainer.eval_strategy", "no", "--trainer.disable_tqdm", "no",
                                              "--use_lora", "true", "--train_data", "data/x.json:icm_alpaca"])
    assert cfg.trainer == {"learning_rate": 1e-4, "num_train_epochs": 2, "eval_strategy": "no",
                           "disable_tqdm": False}
    assert cfg.use_lora is True and cfg.label_source == "human" and cfg.output_dir == "runs/rm/human"


@pytest.mark.parametrize("argv, needle", [
    (["--trainer.learnin_rate", "1"], "key 'trainer.learnin_rate': not a TRL RewardConfig field (did you mean"),
    (["--trainer.seed", "1"], "key 'trainer.seed': set by icm-rm; use the top-level `seed` field instead"),
    (["--eval_split", "2"], "key 'eval_split': must be in [0, 1)"),
    (["--drop_least_confident", "1"], "key 'drop_least_confident': must be in [0, 1)"),
    (["--drop_least_confident", "nan"], "key 'drop_least_confident'"),
])
def test_bad_flags_exit_2_with_one_line(argv, needle, capsys):
    from icm_rm.cli import main

    assert main(["train-rm", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and err.startswith("icm-rm: error:")


def test_unknown_top_level_flag_exits_2(capsys):
    from icm_rm.cli import main

    assert main(["train-rm", "--learnin_rate", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "learnin_rate" in err


def test_bad_yaml_key_exits_2_naming_file_and_key(tmp_path, capsys):
    from icm_rm.cli import main

    bad = tmp_path / "rm.yaml"
    bad.write_text("model: x\nuse_lroa: true\n")
    assert main(["train-rm", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("icm-rm: error:") and str(bad) in err
    assert "key 'use_lroa': unknown key for RewardModelConfig (did you mean 'use_lora'?)" in err


def test_missing_inputs_are_one_line_exit_2(tmp_path, capsys):
    from icm_rm.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "Q?", "chosen": "yes", "rejected": "no"}\n' * 3)
    for argv, needle in ([["--model", str(tmp_path), "--train_data", str(tmp_path / "nope.jsonl")],
                          "nope.jsonl: preference file not found"],
                         [["--model", str(tmp_path / "empty"), "--train_data", str(data)],
                          "not a Hugging Face model dir (no config.json)"]):
        (tmp_path / "empty").mkdir(exist_ok=True)
        assert main(["train-rm", *argv, "--output_dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err


# ------------------------------------------------------------------------------------------------ held-out split

def _examples(n: int):
    from icm_rm.data.preferences import PreferenceExample

    # prompts repeat (two pairs per prompt), as in TruthfulQA-style pools
    return [PreferenceExample(id=f"e{i}", prompt=f"prompt {i // 2}", chosen=f"c{i}", rejected=f"r{i}")
            for i in range(n)]


def test_holdout_split_is_deterministic_order_independent_and_keeps_prompts_together():
    from icm_rm.reward.data import holdout_split

    ex = _examples(100)
    train, held = holdout_split(ex, 0.2, seed=7)
    assert len(held) == 20 and len(train) == 80
    shuffled = ex[:]
    random.Random(0).shuffle(shuffled)
    _, held2 = holdout_split(shuffled, 0.2, seed=7)
    assert {e.id for e in held2} == {e.id for e in held}
    assert not {e.prompt for e in held} & {e.prompt for e in train}
    _, held3 = holdout_split(ex, 0.2, seed=8)
    assert {e.id for e in held3} != {e.id for e in held}


def test_margin_column_is_scaled_and_required(tiny_tok):
    from icm_rm.data.preferences import PreferenceExample
    from icm_rm.infra.errors import InputError
    from icm_rm.reward.data import tokenize_pairs
    from icm_rm.reward.format import encode_for_rm

    ex = [PreferenceExample("a", "Q?", "yes", "no", margin=0.5),
          PreferenceExample("b", "Q?", "yes " * 50, "no", margin=1.0)]
    tok = tokenize_pairs(ex, tiny_tok, max_length=20, margin_scale=2.0)
    assert tok.columns["margin"] == [1.0] and tok.dropped == 1  # the long pair is dropped
    assert tok.columns["chosen_ids"] == [encode_for_rm(tiny_tok, "Q?", "yes")]
    assert "margin" not in tokenize_pairs(ex, tiny_tok, max_length=200).columns
    with pytest.raises(InputError, match="pair 'c' has no margin"):
        tokenize_pairs([PreferenceExample("c", "Q?", "yes", "no")], tiny_tok, 20, margin_scale=1.0)


def test_drop_least_confident_drops_the_smallest_margins_after_the_split(tmp_path):
    from icm_rm.data.preferences import PreferenceExample, write_preferences_jsonl
    from icm_rm.infra.errors import InputError
    from icm_rm.reward.data import drop_least_confident
    from icm_rm.reward.trainer import load_data

    margins = [0.5, 0.0, 2.0, 0.1, 0.1, 3.0, 0.7, 1.5, 0.2, 0.9]
    ex = [PreferenceExample(f"p{i}", f"Q{i}?", "yes", "no", margin=m) for i, m in enumerate(margins)]
    kept, n = drop_least_confident(ex, 0.3)  # round(3.0) = 3: margins 0.0, then the two 0.1s in file order
    assert n == 3 and [e.id for e in kept] == ["p0", "p2", "p5", "p6", "p7", "p8", "p9"]
    kept, n = drop_least_confident(ex, 0.25)  # round(2.5) = 2 (banker's): the tie at 0.1 goes by file order
    assert n == 2 and {e.id for e in ex} - {e.id for e in kept} == {"p1", "p3"}
    assert drop_least_confident(ex, 0.0) == (ex, 0)
    assert drop_least_confident(ex[:1], 0.9) == (ex[:1], 0)  # round(0.9) = 1 would leave nothing: keep one
    gold = [dataclasses.replace(e, margin=None) for e in ex]
    assert drop_least_confident(gold, 0.3) == (gold, 0)  # gold / human files have no margin: all kept
    with pytest.raises(InputError, match="pair 'p1' has no margin while others have one"):
        drop_least_confident([ex[0], gold[1]], 0.5)
    # in the stage: the held-out pairs are the unfiltered split's, the filter only thins the training side
    f = tmp_path / "icm.jsonl"
    write_preferences_jsonl(f, ex)
    plain = load_data(RewardModelConfig(train_data=str(f), eval_split=0.2))
    thin = load_data(RewardModelConfig(train_data=str(f), eval_split=0.2, drop_least_confident=0.25))
    assert [e.id for e in thin.eval] == [e.id for e in plain.eval]
    lowest = sorted(plain.train, key=lambda e: e.margin)[:2]
    assert [e.id for e in thin.train] == [e.id for e in plain.train if e not in lowest]
    assert thin.skipped["train_least_confident"] == 2 and plain.skipped["train_least_confident"] == 0


def test_reward_config_gets_icm_rm_fields_and_cpu_defaults(monkeypatch, tmp_path):
    from icm_rm.reward.trainer import build_reward_config

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = RewardModelConfig(output_dir=str(tmp_path / "rm"), seed=7, center_rewards_coefficient=0.01,
                            trainer={"gradient_checkpointing": False, "learning_rate": 2e-5})
    args = build_reward_config(cfg)
    assert (args.output_dir, args.seed, args.center_rewards_coefficient) == (str(tmp_path / "rm"), 7, 0.01)
    assert args.max_length is None  # pairs are length-filtered at tokenisation, with a count
    assert args.learning_rate == 2e-5 and args.activation_checkpointing is False  # the old name still works
    assert args.report_to == ["tensorboard"] and args.bf16 is False and args.ddp_backend is None  # CPU, 1 process


def test_expect_world_size_mismatch_is_one_line_exit_2(tiny_model_dir, tmp_path, capsys):
    from icm_rm.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(f'{{"prompt": "Q{i}?", "chosen": "yes", "rejected": "no"}}\n' for i in range(10)))
    rc = main(["train-rm", "--model", str(tiny_model_dir), "--train_data", str(data), "--output_dir",
               str(tmp_path / "out"), "--expect_world_size", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "running with world size 1, expected 2 (expect_world_size)" in err


def test_zero3_without_16bit_gather_is_refused():
    from types import SimpleNamespace

    from icm_rm.reward.trainer import _check_deepspeed

    def args(stage, gather):
        return SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=stage, zero3_save_16bit_model=gather))

    with pytest.raises(ConfigError, match="stage3_gather_16bit_weights_on_model_save: true"):
        _check_deepspeed(args(3, False))
    _check_deepspeed(args(3, True))
    _check_deepspeed(args(2, False))
    _check_deepspeed(SimpleNamespace(deepspeed_plugin=None))


def test_split_seed_fixes_the_held_out_pairs_while_the_seed_changes(tmp_path):
    from icm_rm.data.preferences import PreferenceExample, write_preferences_jsonl
    from icm_rm.reward.trainer import load_data

    f = tmp_path / "prefs.jsonl"
    write_preferences_jsonl(f, [PreferenceExample(f"p{i}", f"Q{i}?", "yes", "no") for i in range(40)])

    def held(**kw) -> list[str]:
        return [e.id for e in load_data(RewardModelConfig(train_data=str(f), eval_split=0.25, **kw)).eval]

    assert held(seed=1) != held(seed=42)  # the seed alone moves the split …
    assert held(seed=1, split_seed=42) == held(seed=42) == held(seed=7, split_seed=42)  # … split_seed pins it
    assert load_data(RewardModelConfig(train_data=str(f), seed=1, split_seed=42)).eval_source.endswith("seed 42)")
