"""OpenAICompatScorer: fast tests against a tiny fake OpenAI server (stdlib, in a thread), and one real test against
llama-cpp-python's server on the default model's GGUF (`-m llama_server`; skipped when llama_cpp is not installed —
`scripts/build_llama_cpp.sh` builds and installs it).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from icm_rm.data.records import Claim
from icm_rm.data.tasks import demo_text
from icm_rm.infra.errors import ConfigError, UserError
from icm_rm.scoring.order import context_orders

# ----------------------------------------------------------------------------------------------- the fake server


def canned_top(prompt: str) -> dict[str, float]:
    """Deterministic top logprobs for a prompt: P(True) rises with the number of " True" demos in it."""
    z = prompt.count(" True\n\n") - prompt.count(" False\n\n") + (len(prompt) % 7 - 3) / 4
    p = 1 / (1 + math.exp(-z))
    return {" True": math.log(0.8 * p), "True": math.log(0.1 * p), " False": math.log(0.85 * (1 - p)),
            " Maybe": math.log(0.01), "Trueish": math.log(0.04)}


def expected_score(prompt: str) -> float:
    top = canned_top(prompt)
    t = sum(math.exp(v) for k, v in top.items() if k.strip().lower() == "true")
    f = sum(math.exp(v) for k, v in top.items() if k.strip().lower() == "false")
    return math.log(max(t, 1e-5)) - math.log(max(f, 1e-5))


class FakeOpenAI(ThreadingHTTPServer):
    """`POST /v1/completions` with canned logprobs; `fail` is a list of failure modes consumed one per request."""

    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that timed out on purpose: not worth a traceback
        pass

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.requests: list[dict] = []
        self.headers_seen: list[dict] = []
        self.fail: list[str] = []  # "503", "429", "drop", "400", "401", "nologprobs", "sleep"
        self.chat_style = False
        self.in_flight = self.max_in_flight = 0
        self.delay = 0.0
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _FakeHandler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        s = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with s.lock:
            mode = s.fail.pop(0) if s.fail else None
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            if mode == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if mode == "sleep":
                time.sleep(1.0)
            if s.delay:
                time.sleep(s.delay)
            if mode in ("503", "429", "400", "401"):
                extra = {"Retry-After": "0"} if mode == "429" else {}
                self._send(int(mode), {"error": {"message": f"fake {mode}: context too long" if mode == "400"
                                                 else f"fake {mode}"}}, extra)
                return
            with s.lock:
                s.requests.append(body)
                s.headers_seen.append(dict(self.headers))
            if self.path != "/v1/completions":
                self._send(404, {"error": "not found"})
                return
            top = canned_top(body["prompt"])
            if mode == "nologprobs":
                logprobs = None
            elif s.chat_style:
                logprobs = {"content": [{"token": " True", "logprob": max(top.values()),
                                         "top_logprobs": [{"token": k, "logprob": v} for k, v in top.items()]}]}
            else:
                logprobs = {"tokens": [" True"], "token_logprobs": [top[" True"]], "top_logprobs": [top],
                            "text_offset": [len(body["prompt"])]}
            self._send(200, {"id": "x", "object": "text_completion", "model": body.get("model"),
                             "choices": [{"text": " True", "index": 0, "logprobs": logprobs,
                                          "finish_reason": "length"}],
                             "usage": {"prompt_tokens": len(body["prompt"]) // 4, "completion_tokens": 1,
                                       "prompt_tokens_details": {"cached_tokens": 2}}})
        finally:
            with s.lock:
                s.in_flight -= 1

    def _send(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake():
    srv = FakeOpenAI()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def make_scorer(base_url: str, **server):
    from icm_rm.scoring.openai_compat import OpenAICompatScorer

    return OpenAICompatScorer.from_config({"base_url": base_url, "backoff_s": 0.01, **server})


def pool(n_groups: int = 4, per_group: int = 3) -> list[Claim]:
    return [Claim(id=f"g{g}:{k}", group=f"g{g}", key=str(k),
                  text=f"Claim: item {g}-{k} is fine.\nI think this claim is")
            for g in range(n_groups) for k in range(per_group)]


LABELS = [True, False, None, True, None, False, True, True, None, False, None, True]


# ----------------------------------------------------------------------------------------------- prompts and scores

def test_prompts_follow_the_canonical_order_and_token_contract(fake, tiny_tok):
    from icm_rm.scoring.naive import NaiveScorer
    from testkit.tiny_models import tiny_llama

    claims, queries = pool(), list(range(12))
    scorer = make_scorer(fake.base_url, concurrency=1)
    scores = scorer.loo_scores(claims, LABELS, queries)
    orders = context_orders([c.group for c in claims], LABELS, queries)
    want = {q: "".join(demo_text(claims[j].text, LABELS[j]) for j in orders[q]) + claims[q].text for q in queries}
    assert sorted(r["prompt"] for r in fake.requests) == sorted(want.values())
    np.testing.assert_allclose(scores, [expected_score(want[q]) for q in queries], rtol=0, atol=1e-12)
    for r in fake.requests:
        assert (r["max_tokens"], r["temperature"], r["logprobs"], r["echo"]) == (1, 0, 20, False)
    # the same text the in-process scorers tokenise (their ids decode to it, after their BOS prefix)
    naive = NaiveScorer(tiny_llama(tiny_tok), tiny_tok)
    for q in (0, 5, 11):
        ids = naive.context_ids(claims, LABELS, q, orders[q])
        assert tiny_tok.decode(ids[len(naive.tokens.prefix):]) == want[q]


def test_capped_context_and_queries_subset(fake):
    claims = pool()
    scorer = make_scorer(fake.base_url, concurrency=2)
    scorer.max_demos = 2
    s = scorer.loo_scores(claims, LABELS, [3, 0])
    orders = context_orders([c.group for c in claims], LABELS, [3, 0], 2)
    for k, q in enumerate([3, 0]):
        prompt = "".join(demo_text(claims[j].text, LABELS[j]) for j in orders[q]) + claims[q].text
        assert s[k] == pytest.approx(expected_score(prompt), abs=1e-12)


def test_log_odds_rule():
    from icm_rm.scoring.openai_compat import log_odds_from_top, side_masses

    top = {" True": math.log(0.3), "true": math.log(0.1), " TRUE": math.log(0.05), "Trueish": math.log(0.2),
           " False": math.log(0.2), "false\n": math.log(0.05)}
    t, f = side_masses(top)
    assert t == pytest.approx(0.45) and f == pytest.approx(0.25)
    assert log_odds_from_top(top) == pytest.approx(math.log(0.45 / 0.25))
    # a side missing from the top-k is floored at 1e-5, then the clamp applies
    assert log_odds_from_top({" True": math.log(0.9)}) == pytest.approx(math.log(0.9) - math.log(1e-5))
    assert log_odds_from_top({" True": math.log(0.9)}, clamp=3.0) == 3.0
    assert log_odds_from_top({" False": 0.0}, clamp=3.0) == -3.0
    assert log_odds_from_top({}) == 0.0


def test_chat_style_logprobs(fake):
    fake.chat_style = True
    claims = pool(1, 2)
    s = make_scorer(fake.base_url).loo_scores(claims, [None, None], [0, 1])
    np.testing.assert_allclose(s, [expected_score(c.text) for c in claims], atol=1e-12)


# ----------------------------------------------------------------------------------------------- cache, ordering, stats

def test_cache_in_memory_and_on_disk(fake, tmp_path):
    claims, queries = pool(), list(range(12))
    path = tmp_path / "cache" / "scores.jsonl"
    a = make_scorer(fake.base_url, cache_path=str(path))
    first = a.loo_scores(claims, LABELS, queries)
    n = len(fake.requests)
    assert n == 12 and a.stats.cache_hits == 0 and a.stats.extra["requests"] == 12
    again = a.loo_scores(claims, LABELS, queries)
    assert len(fake.requests) == n and a.stats.cache_hits == 12
    np.testing.assert_array_equal(first, again)
    # a new scorer (a new run) reads the JSONL; a torn last line is ignored
    with open(path, "a") as f:
        f.write('{"key": "abc", "top"')
    b = make_scorer(fake.base_url, cache_path=str(path))
    assert b.stats.extra["disk_cache_entries"] == 12
    np.testing.assert_array_equal(b.loo_scores(claims, LABELS, queries), first)
    assert len(fake.requests) == n
    # a changed label changes some contexts: only those are fetched
    labels = list(LABELS)
    labels[0] = False
    b.loo_scores(claims, labels, queries)
    assert 0 < len(fake.requests) - n < 12
    # another model name is another cache entry
    c = make_scorer(fake.base_url, cache_path=str(path), model="other")
    c.loo_scores(claims, LABELS, [0])
    assert c.stats.cache_hits == 0


def _shared_prefix_total(prompts: list[str]) -> int:
    return sum(len(os.path.commonprefix([a, b])) for a, b in zip(prompts, prompts[1:]))


def test_requests_ordered_for_prefix_reuse(fake):
    claims = pool(8, 2)
    labels = [i % 3 != 0 for i in range(16)]
    queries = list(range(16))
    make_scorer(fake.base_url, concurrency=1).loo_scores(claims, labels, queries)
    sent = [r["prompt"] for r in fake.requests]
    assert sent == sorted(sent)
    orders = context_orders([c.group for c in claims], labels, queries)
    in_query_order = ["".join(demo_text(claims[j].text, labels[j]) for j in orders[q]) + claims[q].text
                      for q in queries]
    shuffled = list(in_query_order)
    np.random.default_rng(0).shuffle(shuffled)
    # lexicographic order is a depth-first walk of the prefix trie: no order shares more between neighbours
    assert _shared_prefix_total(sent) >= _shared_prefix_total(in_query_order)
    assert _shared_prefix_total(sent) > _shared_prefix_total(shuffled)


def test_concurrency_and_usage_stats(fake):
    fake.delay = 0.05
    claims = pool(4, 2)
    scorer = make_scorer(fake.base_url, concurrency=4)
    scorer.loo_scores(claims, [None] * 8, list(range(8)))
    assert fake.max_in_flight >= 2
    st = scorer.stats.as_dict()
    assert st["requests"] == 8 and st["queries"] == 8 and st["forward_calls"] == 8
    assert st["prompt_tokens"] == sum(len(c.text) // 4 for c in claims) == st["forward_tokens"]
    assert st["cached_prompt_tokens"] == 16


# ----------------------------------------------------------------------------------------------- retries and errors

def test_retries_with_backoff(fake):
    fake.fail = ["503", "429", "drop"]
    scorer = make_scorer(fake.base_url, concurrency=1, max_retries=3)
    s = scorer.loo_scores(pool(1, 1), [None], [0])
    assert s[0] == pytest.approx(expected_score(pool(1, 1)[0].text))
    assert scorer.stats.extra["retries"] == 3


def test_gives_up_after_max_retries(fake):
    fake.fail = ["503"] * 3
    scorer = make_scorer(fake.base_url, max_retries=2)
    with pytest.raises(UserError, match=r"failed after 3 tries \(HTTP 503"):
        scorer.loo_scores(pool(1, 1), [None], [0])


def test_timeout_is_retried(fake):
    fake.fail = ["sleep"]
    scorer = make_scorer(fake.base_url, timeout_s=0.3, max_retries=1)
    assert np.isfinite(scorer.loo_scores(pool(1, 1), [None], [0])[0])
    assert scorer.stats.extra["retries"] == 1


def test_unreachable_server_is_a_clear_user_error():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scorer = make_scorer(f"http://127.0.0.1:{port}", max_retries=2)
    t0 = time.time()
    with pytest.raises(UserError, match=r"failed after 3 tries \(unreachable.*start the server"):
        scorer.loo_scores(pool(1, 1), [None], [0])
    assert time.time() - t0 < 10


@pytest.mark.parametrize("mode, message", [("nologprobs", "returned no logprobs"),
                                           ("400", "HTTP 400.*context too long.*max_demos"),
                                           ("401", "HTTP 401.*api_key_env")])
def test_client_errors_fail_at_once(fake, mode, message):
    fake.fail = [mode]
    scorer = make_scorer(fake.base_url, max_retries=5)
    with pytest.raises(UserError, match=message):
        scorer.loo_scores(pool(1, 1), [None], [0])
    assert scorer.stats.extra["retries"] == 0


def test_api_key_and_config(fake, monkeypatch):
    from icm_rm.data.records import ClaimSet
    from icm_rm.scoring.registry import build_scorer
    from icm_rm.scoring.settings import ScorerSettings, ServerConfig

    monkeypatch.setenv("MY_KEY", "sk-123")
    server = ServerConfig(base_url=fake.base_url.removesuffix("/v1"), api_key_env="MY_KEY")
    scorer = build_scorer(ScorerSettings(scorer="openai", server=server, clamp=5.0), ClaimSet(claims=pool(1, 1)))
    assert scorer.url == fake.base_url + "/completions" and scorer.clamp == 5.0
    scorer.zero_shot(pool(1, 1))
    assert fake.headers_seen[-1]["Authorization"] == "Bearer sk-123"
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(ConfigError, match="MY_KEY"):
        make_scorer(fake.base_url, api_key_env="MY_KEY")
    with pytest.raises(ConfigError, match="server.concurency.*did you mean 'concurrency'"):
        make_scorer(fake.base_url, concurency=2)
    with pytest.raises(ConfigError, match="server.base_url"):
        make_scorer("localhost:8080")
    with pytest.raises(ConfigError, match="server.top_logprobs"):
        make_scorer(fake.base_url, top_logprobs=0)
    assert ServerConfig(base_url="http://h:1/openai/v1/").completions_url == "http://h:1/openai/v1/completions"


# ------------------------------------------------------------------------------------------ the real llama.cpp server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def llama_cpp_server(gguf, log_path, n_ctx: int = 4096):
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(n_ctx), "--n_threads", "2", "--n_threads_batch", "2", "--logits_all", "true"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {open(log_path).read()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"llama_cpp.server not healthy after 180 s: {open(log_path).read()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.llama_server
def test_llama_cpp_server_agrees_with_in_process_scorer(tmp_path):
    """~40 claims scored by llama.cpp (Q4_1 GGUF) and by the in-process scorer (HFScorer, dequantised fp32):
    the signs agree on ≥ 95% of the claims."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed; run scripts/build_llama_cpp.sh")
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python lacks its [server] extras; run "
                                                   "scripts/build_llama_cpp.sh")
    from icm_rm.data.builtin import builtin_claimset
    from icm_rm.scoring.settings import ScorerSettings
    from icm_rm.scoring.hf import HFScorer
    from icm_rm.scoring.openai_compat import OpenAICompatScorer
    from icm_rm.infra.model_fetch import registry_gguf

    gguf = registry_gguf("smollm2-135m")  # the registry's own fetch + cache (no /tmp paths)
    cs = builtin_claimset("capitals", form="claims", n_groups=10, seed=0)
    claims = cs.claims
    # gold labels on every 4th claim as context (golden many-shot); every claim is a query
    labels = [cs.gold[c.id] if i % 4 == 0 else None for i, c in enumerate(claims)]
    queries = list(range(len(claims)))

    in_process = HFScorer.build(ScorerSettings(scorer="icl", device="cpu"), cs)  # exact LOO (= naive scorer)
    t0 = time.time()
    ref = in_process.loo_scores(claims, labels, queries)
    t_ref = time.time() - t0

    with llama_cpp_server(gguf, tmp_path / "llama_server.log") as url:
        scorer = OpenAICompatScorer.from_config({"base_url": url, "concurrency": 2, "timeout_s": 300,
                                                 "cache_path": str(tmp_path / "cache.jsonl")})
        t0 = time.time()
        got = scorer.loo_scores(claims, labels, queries)
        t_srv = time.time() - t0
        again = scorer.loo_scores(claims, labels, queries)  # all cache hits
    np.testing.assert_array_equal(got, again)
    agree = float(np.mean(np.sign(got) == np.sign(ref)))
    corr = float(np.corrcoef(got, ref)[0, 1])
    print(f"\nllama.cpp vs in-process: sign agreement {agree:.3f}, corr {corr:.3f}, "
          f"mean |diff| {np.mean(np.abs(got - ref)):.3f}; in-process {t_ref:.1f} s, server {t_srv:.1f} s; "
          f"stats {scorer.stats.as_dict()}")
    assert agree >= 0.95, (agree, list(zip(np.round(ref, 3), np.round(got, 3))))
    assert scorer.stats.cache_hits == len(queries)


# ------------------------------------------------------------------------------------------ through the label stage

def test_label_stage_sharded_over_one_server(fake, tmp_path):
    """`icm-rm label` with scorer openai: two shards sharing one server (and one cache file) give the same labels as
    one worker (the pattern scripts/label_parallel.sh runs as parallel processes)."""
    from icm_rm.infra.config import from_dict
    from icm_rm.label import LabelConfig, run_label

    def cfg(out, **kw):
        return from_dict(LabelConfig, {
            "form": "claims", "limit_groups": 8, "scorer": "openai", "batch_size": 16, "baselines": False,
            "report_to": "none", "output_dir": str(out),
            "server": {"base_url": fake.base_url, "concurrency": 2, "cache_path": str(tmp_path / "cache.jsonl")},
            "search": {"iterations": 30, "patience": 15, "checkpoint_every": 1000}, **kw})

    run_label(cfg(tmp_path / "one"))
    for i in range(2):
        run_label(cfg(tmp_path / "sharded", num_shards=2, shard_index=i))
    run_label(cfg(tmp_path / "sharded", resume=True))  # the merge step (a no-op when a shard already finished)
    one = (tmp_path / "one" / "labels.jsonl").read_text()
    assert one and (tmp_path / "sharded" / "labels.jsonl").read_text() == one
