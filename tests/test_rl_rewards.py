"""Reward sources: HF RM dir (own tokenizer, stored normalisation), HTTP client (contract, token, retries), Python
callables, weighted mix, config dispatch and score post-processing."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from icm_rm.infra.errors import ConfigError, UserError
from rl.rewards import (HFRewardModel, HTTPRewardModel, MixReward, PythonReward, RewardSource, build_reward_source,
                        postprocess_scores, source_metrics)


def save_tiny_rm(path, vocab_size=300, mean=0.5, std=2.0, seed=1):
    """A seq-cls RM dir with its own (smaller) tokenizer and stored reward statistics."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from testkit.tiny_models import tiny_tokenizer

    tok = tiny_tokenizer(vocab_size)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id, num_labels=1)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(cfg)
    model.config.reward_mean, model.config.reward_std = mean, std
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    return save_tiny_rm(tmp_path_factory.mktemp("rm") / "model")


def test_hf_rm_uses_own_tokenizer_and_normalises(rm_dir):
    norm = HFRewardModel(rm_dir, batch_size=2)
    raw = HFRewardModel(rm_dir, normalize=False, batch_size=3)
    assert isinstance(norm, RewardSource)
    assert len(norm.tokenizer) < 386                      # not the policy's tokenizer
    prompts = ["What is 2 + 3?", [{"role": "user", "content": "Capital of France?"}], "Hi"]
    completions = [" 5", "Paris.", " there is a long answer " * 5]
    r_raw, r_norm = raw(prompts, completions), norm(prompts, completions)
    assert len(r_raw) == 3 and len(set(r_raw)) == 3
    assert r_norm == pytest.approx([(r - 0.5) / 2.0 for r in r_raw], abs=1e-5)
    # batch size does not change scores
    assert HFRewardModel(rm_dir, normalize=False, batch_size=1)(prompts, completions) == pytest.approx(r_raw, abs=1e-5)


def test_hf_rm_without_stats_is_not_normalised(tmp_path):
    d = save_tiny_rm(tmp_path / "rm", mean=None, std=None)
    src = HFRewardModel(d)
    assert src.normalize is False


def test_python_sources_and_mix(tmp_path):
    f = tmp_path / "my_reward.py"
    f.write_text("def length(prompts, completions, scale=1.0):\n    return [scale * len(c) for c in completions]\n")
    a = build_reward_source(f"{f}:length")
    b = build_reward_source({"type": "python", "function": "rl.rewards:substring_reward", "kwargs": {"text": "a"},
                             "name": "count_a"})
    assert isinstance(a, PythonReward) and a(["p", "q"], ["abc", "a"]) == [3.0, 1.0]
    assert b(["p", "q"], ["abca", "b"]) == [2.0, 0.0]
    mix = build_reward_source({"type": "mix", "sources": [
        {"type": "python", "function": f"{f}:length", "weight": 0.5},
        {"type": "python", "function": "rl.rewards:substring_reward", "kwargs": {"text": "a"}, "weight": 2.0,
         "name": "count_a"}]})
    assert isinstance(mix, MixReward)
    assert mix(["p", "q"], ["abca", "b"]) == [0.5 * 4 + 2 * 2, 0.5 * 1 + 0]
    assert source_metrics(mix) == {"reward/python:length": 2.5, "reward/count_a": 1.0}


def test_build_dispatch_and_errors(rm_dir, tmp_path):
    assert isinstance(build_reward_source(str(rm_dir)), HFRewardModel)
    assert isinstance(build_reward_source("http://127.0.0.1:1"), HTTPRewardModel)
    for bad in ["no/such/dir", {"type": "nope"}, {"type": "hf"}, {"type": "mix", "sources": []},
                "rl.rewards:does_not_exist", {"type": "python", "function": "rl.rewards:substring_reward", "oops": 1}]:
        with pytest.raises((ConfigError, UserError)):
            build_reward_source(bad)
    with pytest.raises(ConfigError, match="names must differ"):
        build_reward_source({"type": "mix", "sources": ["rl.rewards:substring_reward", "rl.rewards:substring_reward"]})


class _Server:
    """A local RM server speaking the /score contract; `fail_first` 503s before answering."""

    def __init__(self, token=None, fail_first=0):
        calls = self.calls = []
        state = {"fail": fail_first}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls.append((self.path, self.headers.get("Authorization"), body))
                if token and self.headers.get("Authorization") != f"Bearer {token}":
                    return self._send(401, {"error": "bad token"})
                if state["fail"] > 0:
                    state["fail"] -= 1
                    return self._send(503, {"error": "busy"})
                self._send(200, {"rewards": [float(len(c)) for c in body["completions"]]})

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_client_contract_token_retries(monkeypatch):
    srv = _Server(token="s3cret", fail_first=1)
    try:
        monkeypatch.setenv("ICM_RM_REWARD_TOKEN", "s3cret")
        client = build_reward_source({"type": "http", "url": srv.url, "backoff": 0.01, "batch_size": 2})
        prompts = ["a", [{"role": "user", "content": "b"}], "c"]
        assert client(prompts, ["xx", "yyy", ""]) == [2.0, 3.0, 0.0]
        path, auth, body = srv.calls[-1]
        assert path == "/score" and auth == "Bearer s3cret" and body == {"prompts": ["c"], "completions": [""]}
        assert len(srv.calls) == 3          # one 503 retried, then two batches
        with pytest.raises(UserError, match="401"):
            HTTPRewardModel(srv.url, token="wrong", retries=0)(["a"], ["b"])
    finally:
        srv.close()
    with pytest.raises(UserError, match="unreachable"):
        HTTPRewardModel(srv.url, retries=1, backoff=0.01, timeout=1)(["a"], ["b"])


def test_postprocess_scores():
    out = postprocess_scores([3.0, -5.0, 0.5], [True, False, False], reward_clip=2.0, missing_eos_penalty=1.0)
    assert out.tolist() == [2.0, -3.0, -0.5]
    assert postprocess_scores(torch.tensor([1.0]), torch.tensor([False])).tolist() == [1.0]
