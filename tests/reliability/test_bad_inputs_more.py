"""The bad-input catalogue, round two (issue #19): config values (non-finite, out of range, TRL values that would fail
late), YAML that must not be built (duplicate keys, aliases, deep nesting, huge integers), `--config`/data/output
paths that are not regular files (directory, FIFO, device, a file where a dir belongs), JSON nested past Python's
recursion limit or holding huge integers, broken model dirs, device strings, reward sources that misbehave, and the
model mismatches PPO/GRPO must refuse. Same contract as `test_bad_inputs.py`: exit 2, one `icm-rm: error:` line
naming the file/row/field or config key, no traceback, nothing half-written in the output dir."""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from .conftest import assert_user_error, record, run_cli
from .test_bad_inputs import EVAL_POLICY, EVAL_RM, GOOD_PAIR, GRPO, L, PAIRS, PPO, RM, _fill, _in_process

TINY_RL = ["--num_steps", "1", "--max_new_tokens", "2"]
PPO_RUN = [*PPO, "--prompts", "{prompts}", *TINY_RL, "--rollout_batch_size", "2", "--micro_batch_size", "1",
           "--ppo_epochs", "1"]
GRPO_RUN = [*GRPO, "--prompts", "{prompts}", *TINY_RL, "--per_device_batch_size", "2", "--num_generations", "2"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model_dir, rm_dir) -> dict[str, Path]:
    """Every input this catalogue needs, made in code: special files, JSON/YAML traps, broken models, rewards."""
    d = tmp_path_factory.mktemp("round2")
    out: dict[str, Path] = {"dir": d}
    good = "".join(GOOD_PAIR % (f"p{i}", i, i, 2 * i, 2 * i + 1) for i in range(6))
    _write(out, d, "good_pairs.jsonl", good)
    _write(out, d, "prompts.jsonl", "".join(json.dumps({"prompt": f"Question {i}?"}) + "\n" for i in range(8)))
    os.mkfifo(d / "fifo.jsonl")
    out["fifo"] = d / "fifo.jsonl"
    (d / "zero.jsonl").symlink_to("/dev/zero")
    out["zero"] = d / "zero.jsonl"
    (d / "x.jsonl").mkdir()  # a directory with a data file's name
    (d / "a_file").write_text("not a directory\n")
    out["a_file"] = d / "a_file"
    deep = "[" * 100_000 + "]" * 100_000
    _write(out, d, "deep_pairs.jsonl", '{"id": "a", "prompt": %s, "chosen": "x", "rejected": "y"}\n' % deep)
    _write(out, d, "deep_prompts.jsonl", '{"prompt": %s}\n' % deep)
    _write(out, d, "bigint_pairs.jsonl", '{"id": %s, "prompt": "p", "chosen": "x", "rejected": "y"}\n' % ("7" * 5000))
    _write(out, d, "dup_key.yaml", "search:\n  alpha: 20\nbatch_size: 8\nsearch:\n  iterations: 5\n")
    _write(out, d, "alias_bomb.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                                      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nfields: {x: *c}\n")
    _write(out, d, "deep.yaml", "fields: " + "[" * 40 + "]" * 40 + "\n")
    _write(out, d, "bigint.yaml", "batch_size: " + "9" * 5000 + "\n")
    _write(out, d, "list.yaml", "- batch_size: 8\n- scorer: probe\n")
    _write(out, d, "nan_alpha.yaml", "search:\n  alpha: .nan\n")
    _write(out, d, "trainer_scalar.yaml", "trainer: 5\n")
    _write(out, d, "bad_reward.py", "def fn(prompts, completions):\n    return [1.0 for c in completions\n")
    _write(out, d, "nan_reward.py", "import math\n\n\ndef fn(prompts, completions):\n    return [math.nan] * "
                                    "len(completions)\n")
    out.update(_broken_models(d, tiny_model_dir, rm_dir))
    return out


def _write(out: dict, d: Path, name: str, text: str) -> None:
    (d / name).write_text(text)
    out[name.rsplit(".", 1)[0]] = d / name


def _broken_models(d: Path, model: Path, rm: Path) -> dict[str, Path]:
    from testkit.tiny_models import tiny_llama, tiny_tokenizer

    out = {}
    for name in ("no_config", "bad_config", "truncated", "no_tokenizer", "no_template"):
        out[name] = shutil.copytree(model, d / name)
    (out["no_config"] / "config.json").unlink()
    (out["bad_config"] / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
    weights = out["truncated"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (out["no_tokenizer"] / f).unlink(missing_ok=True)
    tc = json.loads((out["no_template"] / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (out["no_template"] / "tokenizer_config.json").write_text(json.dumps(tc))
    (out["no_template"] / "chat_template.jinja").unlink(missing_ok=True)
    tok = tiny_tokenizer(320)  # another vocabulary
    tiny_llama(tok).save_pretrained(d / "other_vocab")
    tok.save_pretrained(d / "other_vocab")
    out["other_vocab"] = d / "other_vocab"
    out["rm_bad_std"] = shutil.copytree(rm, d / "rm_bad_std")
    cfg = json.loads((out["rm_bad_std"] / "config.json").read_text())
    (out["rm_bad_std"] / "config.json").write_text(json.dumps({**cfg, "reward_std": "abc"}))
    out["rm_truncated"] = shutil.copytree(rm, d / "rm_truncated")
    w = out["rm_truncated"] / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    return out


@pytest.fixture(scope="module")
def null_reward_server():
    """A reward server that answers {"rewards": [null, …]}."""
    class H(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            n = len(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["completions"])
            body = json.dumps({"rewards": [None] * n}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


CUDA_PRESENT = __import__("torch").cuda.is_available()
GOOD = ["{good_pairs}"]

# (id, class, mode, argv, strings the one error line must contain)
CASES = [
    # ---------------------------------------------------------------- config values: finite, ranges, TRL values
    ("label-alpha-inf", "value", "sub", [*PAIRS, *GOOD, "--search.alpha", ".inf"],
     ["key 'search.alpha'", "finite"]),
    ("label-alpha-nan-in-yaml", "value", "in", [*PAIRS, *GOOD, "--config", "{nan_alpha}"],
     ["nan_alpha.yaml", "key 'search.alpha'", "finite"]),
    ("label-clamp-negative", "value", "in", [*PAIRS, *GOOD, "--clamp", "-1"], ["key 'clamp'", "> 0"]),
    ("label-iterations-negative", "value", "in", [*PAIRS, *GOOD, "--search.iterations", "-5"],
     ["key 'search.iterations'", "≥ 0"]),
    ("label-server-timeout-inf", "value", "in", [*PAIRS, *GOOD, "--server.timeout_s", ".inf"],
     ["key 'server.timeout_s'", "finite"]),
    ("label-probe-ridge-nan", "value", "in", [*PAIRS, *GOOD, "--probe.ridge", ".nan"], ["key 'probe.ridge'"]),
    ("label-limit-groups-zero", "value", "in", [*PAIRS, *GOOD, "--limit_groups", "0"], ["key 'limit_groups'"]),
    ("rm-lr-negative", "value", "sub", [*RM, *GOOD, "--trainer.learning_rate", "-1e-4"],
     ["key 'trainer.learning_rate'", "> 0"]),
    ("rm-lr-nan", "value", "in", [*RM, *GOOD, "--trainer.learning_rate", ".nan"],
     ["key 'trainer.learning_rate'", "finite"]),
    ("rm-epochs-negative", "value", "in", [*RM, *GOOD, "--trainer.num_train_epochs", "-1"],
     ["key 'trainer.num_train_epochs'", "> 0"]),
    ("rm-batch-size-zero", "value", "in", [*RM, *GOOD, "--trainer.per_device_train_batch_size", "0"],
     ["key 'trainer.per_device_train_batch_size'", "≥ 1"]),
    ("rm-max-grad-norm-negative", "value", "in", [*RM, *GOOD, "--trainer.max_grad_norm", "-1"],
     ["key 'trainer.max_grad_norm'"]),
    ("rm-margin-scale-inf", "value", "in", [*RM, *GOOD, "--margin_scale", ".inf"], ["key 'margin_scale'", "finite"]),
    ("ppo-lr-nan", "value", "sub", [*PPO, "--prompts", "{prompts}", "--learning_rate", ".nan"],
     ["key 'learning_rate'", "finite"]),
    ("ppo-lr-negative", "value", "in", [*PPO, "--prompts", "{prompts}", "--learning_rate", "-3e-6"],
     ["key 'learning_rate'", "> 0"]),
    ("ppo-cliprange-negative", "value", "in", [*PPO, "--prompts", "{prompts}", "--cliprange", "-0.5"],
     ["key 'cliprange'", "> 0"]),
    ("ppo-max-grad-norm-negative", "value", "in", [*PPO, "--prompts", "{prompts}", "--max_grad_norm", "-1"],
     ["key 'max_grad_norm'", "> 0"]),
    ("ppo-temperature-negative", "value", "in", [*PPO, "--prompts", "{prompts}", "--temperature", "-1"],
     ["key 'temperature'"]),
    ("ppo-max-prompts-zero", "value", "in", [*PPO, "--prompts", "{prompts}", "--max_prompts", "0"],
     ["key 'max_prompts'", "≥ 1"]),
    ("ppo-epochs-zero", "value", "in", [*PPO, "--prompts", "{prompts}", "--ppo_epochs", "0"], ["key 'ppo_epochs'"]),
    ("ppo-kl-coef-inf", "value", "in", [*PPO, "--prompts", "{prompts}", "--kl_coef", ".inf"],
     ["key 'kl_coef'", "finite"]),
    ("ppo-reward-clip-nan", "value", "in", [*PPO, "--prompts", "{prompts}", "--reward_clip", ".nan"],
     ["key 'reward_clip'"]),
    ("grpo-lr-negative", "value", "in", [*GRPO, "--prompts", "{prompts}", "--learning_rate", "-1e-6"],
     ["key 'learning_rate'"]),
    ("grpo-temperature-zero", "value", "in", [*GRPO, "--prompts", "{prompts}", "--temperature", "0"],
     ["key 'temperature'", "> 0"]),
    ("grpo-batch-size-zero", "value", "in", [*GRPO, "--prompts", "{prompts}", "--per_device_batch_size", "0"],
     ["key 'per_device_batch_size'"]),
    ("grpo-trl-epsilon-negative", "value", "in", [*GRPO, "--prompts", "{prompts}", "--trl.epsilon", "-0.2"],
     ["key 'trl.epsilon'", "> 0"]),
    ("grpo-trl-top-p-inf", "value", "in", [*GRPO, "--prompts", "{prompts}", "--trl.top_p", ".inf"],
     ["key 'trl.top_p'", "finite"]),
    ("eval-rm-batch-size-zero", "value", "in", [*EVAL_RM, "--data", *GOOD, "--batch_size", "0"],
     ["key 'batch_size'"]),
    ("eval-policy-max-prompts-zero", "value", "in", [*EVAL_POLICY, "--policies", "p={model}", "--max_prompts", "0"],
     ["key 'max_prompts'"]),
    ("eval-policy-temperature-inf", "value", "in", [*EVAL_POLICY, "--policies", "p={model}", "--temperature", ".inf"],
     ["key 'temperature'", "finite"]),
    ("serve-rm-timeout-inf", "value", "in", ["serve-rm", "--model", "{rm}", "--request_timeout_s", ".inf"],
     ["key 'request_timeout_s'", "finite"]),
    ("serve-rm-blank-token", "value", "sub", ["serve-rm", "--model", "{rm}", "--token", " "],
     ["key 'token'", "blank"]),
    ("label-data-path-without-format", "value", "in", [*L, "--data_path", "{good_pairs}"],
     ["key 'data_format'", "'builtin'", "good_pairs.jsonl"]),
    ("label-resume-not-a-bool", "value", "in", [*PAIRS, *GOOD, "--resume", "maybe"],
     ["key 'resume'", "bool or 'force'", "'maybe'"]),
    ("rm-trainer-int-not-a-number", "value", "in", [*RM, *GOOD, "--trainer.per_device_train_batch_size", "two"],
     ["key 'trainer.per_device_train_batch_size'", "expected an integer"]),
    ("rm-trainer-max-steps-not-a-number", "value", "in", [*RM, *GOOD, "--trainer.max_steps", "abc"],
     ["key 'trainer.max_steps'", "expected an integer"]),
    ("rm-trainer-report-to-unknown", "value", "in", [*RM, *GOOD, "--trainer.report_to", "abc"],
     ["key 'trainer.report_to'", "'abc'", "tensorboard"]),
    ("rm-lora-targets-empty", "value", "in", [*RM, *GOOD, "--use_lora", "true", "--lora_target_modules", "[]"],
     ["key 'lora_target_modules'", "empty list"]),
    ("grpo-trl-int-not-a-number", "value", "in", [*GRPO, "--prompts", "{prompts}", "--trl.num_iterations", "two"],
     ["key 'trl.num_iterations'", "expected an integer"]),
    ("grpo-trl-bool-not-a-bool", "value", "in", [*GRPO_RUN, "--trl.log_completions", "maybe"],
     ["key 'trl.log_completions'", "true/false"]),
    ("grpo-trl-report-to-unknown", "value", "in", [*GRPO_RUN, "--trl.report_to", "abc"],
     ["key 'trl.report_to'", "'abc'"]),
    ("grpo-trl-loss-type-unknown", "value", "in", [*GRPO_RUN, "--trl.loss_type", "foo"],
     ["key 'trl.loss_type'", "expected one of grpo, dr_grpo, dapo", "'foo'"]),
    ("best-of-n-duplicate-rm-names", "value", "in", ["best-of-n", "--rms", "a={rm}", "--rms", "a={rm}", "--policy",
                                                     "{model}", "--prompts", "{prompts}", "--judge", "{rm}"],
     ["key 'rms'", "unique"]),
    ("pipeline-nested-nan", "value", "in", ["pipeline", "--label.search.alpha", ".nan"],
     ["key 'label.search.alpha'", "finite"]),
    ("pipeline-ppo-lr-negative", "value", "in", ["pipeline", "--ppo.learning_rate", "-1"],
     ["key 'ppo.learning_rate'"]),
    # ---------------------------------------------------------------- YAML and flags that must not be built
    ("label-yaml-duplicate-key", "yaml", "sub", [*L, "--config", "{dup_key}"],
     ["dup_key.yaml", "line 4", "duplicate key 'search'"]),
    ("label-yaml-alias-bomb", "yaml", "in", [*L, "--config", "{alias_bomb}"], ["alias_bomb.yaml", "aliases"]),
    ("label-yaml-deep-nesting", "yaml", "in", [*L, "--config", "{deep}"], ["deep.yaml", "nested more than"]),
    ("label-yaml-huge-integer", "yaml", "in", [*L, "--config", "{bigint}"], ["bigint.yaml", "5000 digits"]),
    ("label-yaml-top-level-list", "yaml", "in", [*L, "--config", "{list}"], ["list.yaml", "top level", "list"]),
    ("label-flag-huge-integer", "yaml", "in", [*L, "--batch_size", "9" * 5000], ["key 'batch_size'", "digits"]),
    ("label-flag-int64-overflow", "yaml", "in", [*L, "--search.seed", "9" * 30], ["key 'search.seed'", "too large"]),
    ("label-flag-alias", "yaml", "in", [*L, "--fields", "{{a: &x text, b: *x}}"], ["key 'fields'", "aliases"]),
    ("rm-trainer-not-a-mapping", "yaml", "in", [*RM, *GOOD, "--trainer", "abc", "--trainer.learning_rate", "1e-4"],
     ["key 'trainer'", "expected a mapping", "'abc'"]),
    ("rm-yaml-trainer-not-a-mapping", "yaml", "in", [*RM, *GOOD, "--config", "{trainer_scalar}",
                                                     "--trainer.learning_rate", "1e-4"],
     ["key 'trainer'", "expected a mapping", "5"]),
    # ---------------------------------------------------------------- paths that are not regular files
    ("label-config-is-directory", "file", "sub", [*L, "--config", "{dir}"], ["is a directory"]),
    ("label-config-is-fifo", "file", "in", [*L, "--config", "{fifo}"], ["fifo.jsonl", "FIFO"]),
    ("label-data-is-fifo", "file", "sub", [*PAIRS, "{fifo}"], ["fifo.jsonl", "FIFO"]),
    ("label-data-is-device", "file", "in", [*PAIRS, "{zero}"], ["zero.jsonl", "character device"]),
    ("label-data-is-directory", "file", "in", [*PAIRS, "{dir}"], ["round2", "cannot tell the file type"]),
    ("label-output-dir-is-file", "file", "in", [*PAIRS, *GOOD, "--output_dir", "{a_file}"],
     ["a_file", "is a file"]),
    ("rm-data-is-fifo", "file", "in", [*RM, "{fifo}"], ["fifo.jsonl", "FIFO"]),
    ("rm-output-dir-is-file", "file", "in", [*RM, *GOOD, "--output_dir", "{a_file}"], ["a_file", "is a file"]),
    ("ppo-prompts-is-fifo", "file", "in", [*PPO, "--prompts", "{fifo}"], ["fifo.jsonl", "FIFO"]),
    ("ppo-output-dir-is-file", "file", "in", [*PPO, "--prompts", "{prompts}", "--output_dir", "{a_file}"],
     ["a_file", "is a file"]),
    ("grpo-prompts-is-device", "file", "in", [*GRPO, "--prompts", "{zero}"], ["zero.jsonl", "character device"]),
    ("grpo-output-dir-is-file", "file", "in", [*GRPO, "--prompts", "{prompts}", "--output_dir", "{a_file}"],
     ["a_file", "is a file"]),
    ("eval-rm-data-is-directory", "file", "in", [*EVAL_RM, "--data", "{dir}"], ["round2", "no <subset>"]),
    ("label-claims-data-is-directory", "file", "in", [*L, "--data_format", "claims", "--data_path", "{dir}/x.jsonl"],
     ["x.jsonl", "is a directory"]),
    ("eval-rm-output-dir-is-file", "file", "in", [*EVAL_RM, "--data", *GOOD, "--output_dir", "{a_file}"],
     ["a_file", "is a file"]),
    ("eval-policy-prompts-is-fifo", "file", "in", [*EVAL_POLICY, "--policies", "p={model}", "--prompts", "{fifo}",
                                                   "--judge", "{rm}"], ["fifo.jsonl", "FIFO"]),
    # ---------------------------------------------------------------- JSON Python cannot read
    ("label-data-deep-json", "json", "sub", [*PAIRS, "{deep_pairs}"], ["deep_pairs.jsonl", "row 1", "nested"]),
    ("label-data-huge-integer", "json", "in", [*PAIRS, "{bigint_pairs}"], ["bigint_pairs.jsonl", "row 1", "digits"]),
    ("rm-data-deep-json", "json", "in", [*RM, "{deep_pairs}"], ["deep_pairs.jsonl", "row 1"]),
    ("grpo-prompts-deep-json", "json", "in", [*GRPO, "--prompts", "{deep_prompts}"], ["deep_prompts.jsonl", "row 1"]),
    # ---------------------------------------------------------------- broken model dirs
    ("label-model-no-config", "model", "sub", [*PAIRS, *GOOD, "--model", "{no_config}"],
     ["no_config", "no config.json"]),
    ("label-model-invalid-config", "model", "in", [*PAIRS, *GOOD, "--model", "{bad_config}"],
     ["bad_config/config.json", "not valid JSON"]),
    ("label-model-truncated-weights", "model", "in", [*PAIRS, *GOOD, "--model", "{truncated}"],
     ["truncated/model.safetensors", "truncated"]),
    ("label-model-no-tokenizer", "model", "in", [*PAIRS, *GOOD, "--model", "{no_tokenizer}"],
     ["no_tokenizer", "no tokenizer files"]),
    ("label-model-is-a-file", "model", "in", [*PAIRS, *GOOD, "--model", "{good_pairs}"],
     ["good_pairs.jsonl", "is a file, not a model directory"]),
    ("label-model-empty-name", "model", "in", [*PAIRS, *GOOD, "--model", ""], ["empty model name"]),
    ("eval-rm-rm-is-a-file", "model", "in", ["eval-rm", "--model", "{good_pairs}", "--data", *GOOD],
     ["good_pairs.jsonl", "is a file, not a model directory"]),
    ("rm-lora-targets-match-nothing", "model", "in", [*RM, *GOOD, "--use_lora", "true", "--lora_target_modules",
                                                      "foo_proj"], ["key 'lora_target_modules'", "foo_proj", "q_proj"]),
    ("ppo-lora-targets-match-nothing", "model", "in", [*PPO_RUN, "--lora", "true", "--lora_target_modules",
                                                       "foo_proj"], ["key 'lora_target_modules'", "foo_proj"]),
    ("grpo-lora-targets-match-nothing", "model", "sub", [*GRPO_RUN, "--lora", "true", "--lora_target_modules",
                                                         "foo_proj"], ["key 'lora_target_modules'", "foo_proj"]),
    ("rm-base-truncated-weights", "model", "in", [*RM, *GOOD, "--model", "{truncated}"],
     ["model.safetensors", "truncated"]),
    ("ppo-policy-no-tokenizer", "model", "sub", ["ppo", "--model", "{no_tokenizer}", "--reward_model",
                                                 "rl.rewards:substring_reward", "--prompts", "{prompts}"],
     ["key 'model'", "no tokenizer files"]),
    ("ppo-reward-model-no-config", "model", "in", ["ppo", "--model", "{model}", "--reward_model", "{no_config}",
                                                   "--prompts", "{prompts}"], ["no_config"]),
    ("grpo-policy-invalid-config", "model", "in", ["grpo", "--model", "{bad_config}", "--reward_model",
                                                   "rl.rewards:substring_reward", "--prompts", "{prompts}"],
     ["key 'model'", "config.json", "not valid JSON"]),
    ("eval-rm-rm-truncated-weights", "model", "in", ["eval-rm", "--model", "{rm_truncated}", "--data", *GOOD],
     ["rm_truncated/model.safetensors", "truncated"]),
    ("eval-rm-rm-reward-std-not-a-number", "model", "in", ["eval-rm", "--model", "{rm_bad_std}", "--data", *GOOD],
     ["rm_bad_std/config.json", "'reward_std'", "'abc'"]),
    ("ppo-rm-reward-std-not-a-number", "model", "in", ["ppo", "--model", "{model}", "--reward_model", "{rm_bad_std}",
                                                       "--prompts", "{prompts}"], ["'reward_std'", "'abc'"]),
    ("serve-rm-rm-no-config", "model", "in", ["serve-rm", "--model", "{no_config}"], ["no_config", "config.json"]),
    ("eval-policy-policy-truncated", "model", "in", [*EVAL_POLICY, "--policies", "p={truncated}"],
     ["truncated/model.safetensors", "truncated"]),
    ("ppo-ref-model-other-vocabulary", "model", "in", [*PPO_RUN, "--ref_model", "{other_vocab}"],
     ["key 'ref_model'", "vocabulary"]),
    ("ppo-chat-format-without-template", "model", "in", ["ppo", "--model", "{no_template}", "--reward_model",
                                                         "rl.rewards:substring_reward", "--prompts", "{prompts}",
                                                         "--prompt_format", "chat"],
     ["key 'prompt_format'", "chat template"]),
    ("grpo-chat-format-without-template", "model", "sub", ["grpo", "--model", "{no_template}", "--reward_model",
                                                           "rl.rewards:substring_reward", "--prompts", "{prompts}",
                                                           "--prompt_format", "chat"],
     ["key 'prompt_format'", "chat template"]),
    # ---------------------------------------------------------------- devices
    ("label-device-unknown", "device", "in", [*PAIRS, *GOOD, "--device", "tpu"], ["key 'device'", "unknown device"]),
    ("eval-rm-device-unknown", "device", "in", [*EVAL_RM, "--data", *GOOD, "--device", "gpu0"],
     ["key 'device'", "unknown device"]),
    ("eval-policy-device-unknown", "device", "in", [*EVAL_POLICY, "--policies", "p={model}", "--device", "cuda:x"],
     ["key 'device'"]),
    ("serve-rm-device-cpu-index", "device", "in", ["serve-rm", "--model", "{rm}", "--device", "cpu:3"],
     ["key 'device'"]),
    *([] if CUDA_PRESENT else [
        ("label-device-cuda-on-cpu-build", "device", "sub", [*PAIRS, *GOOD, "--device", "cuda"],
         ["key 'device'", "'cuda'"]),
        ("serve-rm-device-cuda-on-cpu-build", "device", "in", ["serve-rm", "--model", "{rm}", "--device", "cuda:0"],
         ["key 'device'", "'cuda:0'"]),
    ]),
    # ---------------------------------------------------------------- reward sources that misbehave
    ("ppo-reward-file-syntax-error", "reward", "sub", ["ppo", "--model", "{model}", "--reward_model", "{bad_reward}:fn",
                                                       "--prompts", "{prompts}"],
     ["key 'reward'", "bad_reward.py", "line 2", "syntax error"]),
    ("grpo-reward-file-syntax-error", "reward", "in", ["grpo", "--model", "{model}", "--reward_model",
                                                       "{bad_reward}:fn", "--prompts", "{prompts}"],
     ["key 'reward'", "syntax error"]),
    ("ppo-reward-server-answers-null", "reward", "in", ["ppo", "--model", "{model}", "--reward_model", "{null_url}",
                                                        "--prompts", "{prompts}", *TINY_RL, "--rollout_batch_size",
                                                        "2", "--micro_batch_size", "1", "--ppo_epochs", "1"],
     ["reward server", "reward 0 is None"]),
    ("grpo-reward-function-returns-nan", "reward", "in", ["grpo", "--model", "{model}", "--reward_model",
                                                          "{nan_reward}:fn", "--prompts", "{prompts}", *TINY_RL,
                                                          "--per_device_batch_size", "2", "--num_generations", "2"],
     ["reward function", "not a finite number"]),
]


@pytest.fixture
def paths(files, tiny_model_dir, rm_dir, tmp_path, null_reward_server) -> dict:
    return {**files, "model": tiny_model_dir, "rm": rm_dir, "tmp": tmp_path, "null_url": null_reward_server}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_and_exit_2(case, paths, env, capsys, monkeypatch, tmp_path):
    name, cls, mode, argv, names = case
    argv = _fill(argv, paths)
    out = tmp_path / "out"
    if "--output_dir" not in argv and not name.startswith(("serve-rm-", "pipeline-")):
        argv += ["--output_dir", str(out)]
    if mode == "sub":
        r = run_cli(argv, env=env, timeout=300)
        rc, err = r.rc, r.err
    else:
        rc, err = _in_process(argv, env, capsys, monkeypatch)
    line = assert_user_error(rc, err, *names, output_dir=out)
    record("bad_input", case=name, cls=cls, mode=mode, rc=rc, traceback="Traceback" in err, line=line)


def test_this_catalogue_covers_every_class_and_command():
    assert len(CASES) >= 80 and sum(mode == "sub" for _, _, mode, _, _ in CASES) >= 12
    assert {cls for _, cls, _, _, _ in CASES} == {"value", "yaml", "file", "json", "model", "device", "reward"}
    assert {argv[0] for *_, argv, _ in CASES} >= {"label", "train-rm", "eval-rm", "ppo", "grpo", "eval-policy",
                                                 "pipeline", "serve-rm"}


@pytest.mark.parametrize("cmd", ["label", "train-rm", "eval-rm", "best-of-n", "eval-policy", "ppo", "grpo", "pipeline",
                                 "serve-rm"])
def test_every_command_prints_its_help(cmd, capsys):
    """`--help` lists every field; a `%` in a field's help ("> 15% of pairs") once crashed argparse's formatting."""
    from icm_rm.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([cmd, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--config" in out and "Traceback" not in out


def test_prompt_files_with_a_bom_crlf_and_blank_lines_are_read(tmp_path):
    """Valid input a Windows editor writes: a UTF-8 BOM, CRLF line ends, blank trailing lines — read, not refused."""
    from rl.ppo.data import load_prompts

    rows = [{"prompt": f"Qué es {i}? 🤔"} for i in range(6)]
    (tmp_path / "p.jsonl").write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r, ensure_ascii=False) + "\r\n"
                                                              for r in rows).encode() + b"\r\n\r\n")
    (tmp_path / "p.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(rows).encode())
    for name in ("p.jsonl", "p.json"):
        assert load_prompts(str(tmp_path / name), "all") == [r["prompt"] for r in rows]
