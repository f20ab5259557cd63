"""The RM server (`rl/serve.py`): same rewards as in process, auth, limits, errors, bind rule, load, shutdown.

Real servers on loopback ports the OS picks at run time (port 0), stopped at the end of each test module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-1234"
REWARD_MEAN, REWARD_STD = 0.25, 2.0

PROMPTS = ["Which is larger, 3 or 5?", "Name the capital of France.",
           [{"role": "user", "content": "Say something helpful."}], "The quick brown fox"]
COMPLETIONS = ["5 is larger.", " Paris is the capital.", "Here is a helpful answer.", "jumps over the lazy dog"]


# ----------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory) -> Path:
    """A tiny random RM dir: LlamaForSequenceClassification (num_labels=1) + tiny tokenizer + reward stats."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from testkit.tiny_models import tiny_llama, tiny_tokenizer

    path = tmp_path_factory.mktemp("rm")
    tok = tiny_tokenizer()
    cfg = tiny_llama(tok).config
    cfg.num_labels = 1
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(cfg)
    with torch.no_grad():
        model.score.weight.normal_(0.0, 1.0)  # rewards of order 1, so differences between texts are visible
    model.save_pretrained(path)
    tok.save_pretrained(path)
    config = json.loads((path / "config.json").read_text())
    config.update(reward_mean=REWARD_MEAN, reward_std=REWARD_STD)
    (path / "config.json").write_text(json.dumps(config))
    return path


def _start(rm_dir: Path, **kw):
    from rl.serve import build_server
    from rl.serve_config import ServeConfig

    server = build_server(ServeConfig(model=str(rm_dir), port=0, device="cpu", **kw))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


def _stop(server, thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture(scope="module")
def server(rm_dir):
    srv, thread = _start(rm_dir, token=TOKEN, max_batch=16, max_request_mb=0.01, batch_wait_ms=5)
    yield srv
    _stop(srv, thread)


def post(url: str, payload, *, token: str | None = TOKEN, raw_body: bytes | None = None, timeout: float = 30):
    """(status, decoded JSON answer)."""
    body = raw_body if raw_body is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def expected(rm_dir):
    """Raw and normalised rewards of PROMPTS/COMPLETIONS from the in-process RM (icm_rm.reward.scoring)."""
    from icm_rm.reward.scoring import RewardModel

    rm = RewardModel.from_pretrained(rm_dir, device="cpu", max_length=1024)
    raw = rm.score(PROMPTS, COMPLETIONS)
    return raw, rm.normalize(raw)


# ----------------------------------------------------------------------------------------------- rewards

def test_served_rewards_equal_in_process(server, expected, rm_dir):
    from rl.rewards import HFRewardModel

    raw, norm = expected
    status, answer = post(server.url + "/score", {"prompts": PROMPTS, "completions": COMPLETIONS})
    assert status == 200
    np.testing.assert_allclose(answer["rewards"], norm, rtol=1e-5, atol=1e-5)
    status, answer = post(server.url + "/score?raw=1", {"prompts": PROMPTS, "completions": COMPLETIONS})
    np.testing.assert_allclose(answer["rewards"], raw, rtol=1e-5, atol=1e-5)
    assert np.ptp(raw) > 1e-3  # the texts get different rewards: the comparison means something
    # the RL stage's in-process source gives the same numbers
    np.testing.assert_allclose(HFRewardModel(rm_dir)(PROMPTS, COMPLETIONS), norm, rtol=1e-5, atol=1e-5)
    status, answer = post(server.url + "/score", {"prompts": [], "completions": []})
    assert (status, answer) == (200, {"rewards": []})


def test_http_reward_source_against_server(server, expected):
    from rl.rewards import HTTPRewardModel, build_reward_source

    source = HTTPRewardModel(server.url, token=TOKEN, batch_size=3)  # 2 requests: 3 + 1 samples
    np.testing.assert_allclose(source(PROMPTS, COMPLETIONS), expected[1], rtol=1e-5, atol=1e-5)
    os.environ["ICM_RM_REWARD_TOKEN"] = TOKEN
    try:
        via_spec = build_reward_source(server.url)
        np.testing.assert_allclose(via_spec(PROMPTS, COMPLETIONS), expected[1], rtol=1e-5, atol=1e-5)
    finally:
        del os.environ["ICM_RM_REWARD_TOKEN"]


def test_health(server):
    with urllib.request.urlopen(server.url + "/health", timeout=10) as resp:
        answer = json.loads(resp.read())
    assert answer["status"] == "ok" and answer["auth"] is True and answer["normalize"] is True


# ----------------------------------------------------------------------------------------------- auth and limits

def test_unauthorized(server):
    from icm_rm.infra.errors import UserError
    from rl.rewards import HTTPRewardModel

    payload = {"prompts": ["a"], "completions": ["b"]}
    for token in (None, "wrong-token", TOKEN + "x", ""):
        status, answer = post(server.url + "/score", payload, token=token)
        assert status == 401, token
        assert "token" in answer["error"]
    req = urllib.request.Request(server.url + "/score", data=json.dumps(payload).encode(), method="POST",
                                 headers={"Authorization": f"Basic {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
    with pytest.raises(UserError, match="401"):  # the client fails at once on 4xx (no retries)
        HTTPRewardModel(server.url, token="wrong", retries=0)(["a"], ["b"])


def test_too_large(server):
    status, answer = post(server.url + "/score", {"prompts": ["p"] * 17, "completions": ["c"] * 17})
    assert status == 413 and "max_batch" in answer["error"]
    big = "x" * 20_000  # the server's limit is 0.01 MiB
    status, answer = post(server.url + "/score", {"prompts": [big], "completions": ["c"]})
    assert status == 413 and "max_request_mb" in answer["error"]


@pytest.mark.parametrize("body, message", [
    (b"{not json", "malformed JSON"),
    (b"\xff\xfe", "UTF-8"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"prompts": "a", "completions": ["b"]}).encode(), "'prompts' must be a list"),
    (json.dumps({"prompts": ["a"]}).encode(), "'completions' must be a list"),
    (json.dumps({"prompts": ["a", "b"], "completions": ["c"]}).encode(), "pair up"),
    (json.dumps({"prompts": ["a"], "completions": [3]}).encode(), "completions[0]"),
    (json.dumps({"prompts": [[{"role": "user"}]], "completions": ["c"]}).encode(), "prompts[0]"),
])
def test_bad_requests(server, body, message):
    status, answer = post(server.url + "/score", None, raw_body=body)
    assert status == 400
    assert message in answer["error"]


def test_unknown_endpoint_and_method(server):
    status, _ = post(server.url + "/nope", {"prompts": [], "completions": []})
    assert status == 404
    req = urllib.request.Request(server.url + "/score", method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def test_refuses_public_bind_without_token(rm_dir):
    env = {k: v for k, v in os.environ.items() if k != "ICM_RM_SERVE_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "icm_rm.cli", "serve-rm", "--model", str(rm_dir),
                           "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve on 0.0.0.0 without a token" in lines[0]


def test_public_host_rule():
    from icm_rm.infra.errors import UserError
    from rl.serve_config import ServeConfig, check_bind, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.com")
    with pytest.raises(UserError, match="refusing"):
        check_bind(ServeConfig(model="m", host="::"))
    check_bind(ServeConfig(model="m", host="0.0.0.0", token="t"))  # explicit host + token: allowed


# ----------------------------------------------------------------------------------------------- load, batching

def test_load_200_concurrent_requests(server, expected):
    """200 concurrent requests of 1–4 samples each, bounded in time: all answered, 0 errors, correct numbers."""
    n_requests = 200
    batches_before = server.batcher.batches

    def one(i: int):
        k = 1 + i % 4
        idx = [(i + j) % len(PROMPTS) for j in range(k)]
        status, answer = post(server.url + "/score", {"prompts": [PROMPTS[j] for j in idx],
                                                      "completions": [COMPLETIONS[j] for j in idx]}, timeout=60)
        return status, idx, answer

    t0 = time.time()
    with ThreadPoolExecutor(max_workers=n_requests) as pool:
        results = list(pool.map(one, range(n_requests)))
    wall = time.time() - t0
    errors = [(s, a) for s, _, a in results if s != 200]
    assert not errors, errors[:3]
    for _, idx, answer in results:
        np.testing.assert_allclose(answer["rewards"], expected[1][idx], rtol=1e-4, atol=1e-4)
    assert wall < 120
    merged = server.batcher.batches - batches_before
    assert merged < n_requests  # concurrent requests shared forwards


def test_without_micro_batching_same_rewards(rm_dir, expected):
    srv, thread = _start(rm_dir, micro_batch=False)
    try:
        assert srv.batcher is None
        with ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(lambda _: post(srv.url + "/score", {"prompts": PROMPTS, "completions": COMPLETIONS},
                                                token=None), range(8)))
        for status, answer in outs:
            assert status == 200
            np.testing.assert_allclose(answer["rewards"], expected[1], rtol=1e-5, atol=1e-5)
    finally:
        _stop(srv, thread)


def test_micro_batcher_merges_and_splits():
    from rl.serve_batching import MicroBatcher

    calls = []

    def fn(items):
        calls.append(list(items))
        return [float(x) * 2 for x in items]

    b = MicroBatcher(fn, max_batch=5, wait_ms=200)
    futs = [b.submit([i, i + 100]) for i in range(4)]  # 8 items, max 5 per batch → 2+2 then 2+2
    assert [f.result(5) for f in futs] == [[2.0 * i, 2.0 * (i + 100)] for i in range(4)]
    assert all(len(c) <= 5 for c in calls) and len(calls) < 4
    big = b.submit(list(range(7)))  # larger than max_batch: scored on its own
    assert big.result(5) == [2.0 * x for x in range(7)]
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.submit([1])


def test_micro_batcher_errors_reach_every_request():
    from rl.serve_batching import MicroBatcher

    def fn(items):
        if -1 in items:
            raise ValueError("bad item")
        return [0.0] * len(items)

    b = MicroBatcher(fn, max_batch=8, wait_ms=100)
    f1, f2 = b.submit([1]), b.submit([-1])
    for f in (f1, f2):
        with pytest.raises(ValueError, match="bad item"):
            f.result(5)
    assert b.submit([2]).result(5) == [0.0]  # the worker survives
    b.close()


# ----------------------------------------------------------------------------------------------- the CLI process

def test_cli_serves_and_stops_on_sigterm(rm_dir):
    """`icm-rm serve-rm` in its own process: prints its URL, answers, and exits 0 on SIGTERM after finishing."""
    env = {**os.environ, "ICM_RM_SERVE_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "icm_rm.cli", "serve-rm", "--model", str(rm_dir), "--port", "0",
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=REPO)
    try:
        line = proc.stdout.readline()  # blocks until the server is up (or the process died)
        assert "serving" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        status, answer = post(url + "/score", {"prompts": PROMPTS, "completions": COMPLETIONS})
        assert status == 200 and len(answer["rewards"]) == len(PROMPTS)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "stopped after 1 requests" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
