"""serve-rm against slow and hostile clients (issue #19, Deliver 5): a whole-request deadline (a client trickling one
byte at a time is cut off at the deadline, not kept alive by each byte), a fixed worker pool (stalled connections
start no threads; past `max_connections` the acceptor answers 503), a blank token refused, and request JSON nested
past the limit answered 400 without recursion."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from icm_rm.infra.errors import ConfigError
from test_serve_rm import _start, _stop  # the same server start/stop as the functional tests

from .conftest import record


def _connect(server) -> socket.socket:
    host, port = server.server_address[:2]
    return socket.create_connection((host, port), timeout=10)


def test_a_trickling_client_is_cut_off_at_the_whole_request_deadline(rm_dir):
    server, thread = _start(rm_dir, request_timeout_s=1.0, workers=2)
    try:
        s = _connect(server)
        head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        sent, closed_after = 0, None
        for i in range(40):  # one byte every 0.1 s: each read is quick, only the request as a whole is slow
            try:
                s.sendall(head[i:i + 1] if i < len(head) else b"x")
                sent += 1
            except OSError:
                closed_after = sent
                break
            time.sleep(0.1)
            s.settimeout(0.01)
            try:
                if s.recv(1024) == b"":
                    closed_after = sent
                    break
            except TimeoutError:
                pass
            except OSError:
                closed_after = sent
                break
        assert closed_after is not None and closed_after < 30, closed_after  # cut off after ~10 bytes (1 s)
        ok = urllib.request.urlopen(server.url + "/health", timeout=10)  # the worker is free again
        assert ok.status == 200
    finally:
        _stop(server, thread)
    record("check", case="serve-rm-trickle-deadline", cls="security")


def test_stalled_clients_start_no_threads_and_excess_connections_get_503(rm_dir):
    server, thread = _start(rm_dir, request_timeout_s=30.0, workers=3, max_connections=8)
    try:
        threads_before = threading.active_count()
        stalled = [_connect(server) for _ in range(8)]  # connect, send nothing
        time.sleep(0.5)
        assert threading.active_count() <= threads_before + 3  # the pool's workers at most, not one per client
        extra = _connect(server)
        extra.settimeout(10)
        answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
        for s in stalled:
            s.close()
        deadline = time.time() + 10
        while time.time() < deadline:  # the closed connections free their slots
            try:
                with urllib.request.urlopen(server.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        else:
            raise AssertionError("server did not recover after the stalled clients left")
    finally:
        _stop(server, thread)
    record("check", case="serve-rm-stalled-clients-bounded", cls="security")


@pytest.mark.parametrize("token", [" ", "", "  \t", " secret", "secret\n"])
def test_blank_or_padded_tokens_are_refused(rm_dir, token, monkeypatch):
    from rl.serve_config import TOKEN_ENV, ServeConfig

    if token == "":
        monkeypatch.setenv(TOKEN_ENV, " ")
        cfg = ServeConfig(model=str(rm_dir), host="0.0.0.0")
        with pytest.raises(ConfigError, match=TOKEN_ENV):
            cfg.resolved_token()
    else:
        with pytest.raises(ConfigError, match="key 'token'.*blank or starts/ends with whitespace"):
            ServeConfig(model=str(rm_dir), token=token)
    record("check", case=f"serve-rm-token-{token!r}-refused", cls="security")


def test_request_json_nested_past_the_limit_is_a_400(rm_dir):
    from rl.serve import MAX_REQUEST_DEPTH, RequestError, parse_score_request

    deep = '{"prompts": ' + "[" * 200_000 + "]" * 200_000 + ', "completions": []}'
    with pytest.raises(RequestError, match="nested 200001 levels deep") as e:
        parse_score_request(deep.encode(), 16)
    assert e.value.status == 400
    ok = json.dumps({"prompts": [[{"role": "user", "content": "hi"}]], "completions": ["x"]})
    assert parse_score_request(ok.encode(), 16) == ([[{"role": "user", "content": "hi"}]], ["x"])
    assert MAX_REQUEST_DEPTH >= 4
    record("check", case="serve-rm-deep-json-400", cls="security")
