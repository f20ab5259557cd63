"""`icm-rm serve-rm`: serve a reward-model directory over HTTP (the contract `rl/rewards.py`'s HTTP source speaks;
the config and the bind rule are in `serve_config.py`).

    icm-rm serve-rm --model runs/rm/model                       # http://127.0.0.1:8000, no auth (loopback only)
    ICM_RM_SERVE_TOKEN=s3cret icm-rm serve-rm --model DIR --host 0.0.0.0 --port 8000

Endpoints:
    POST /score[?raw=1]   {"prompts": [str | [{"role", "content"}, ...]], "completions": [str, ...]}
                          → 200 {"rewards": [float, ...]}   normalised (r − reward_mean) / reward_std with the
                          statistics in the RM's config.json unless `?raw=1` or `normalize: false`
    GET  /health          → 200 {"status": "ok", ...}      (no auth: for load balancers and readiness probes)

Rewards are computed exactly as in process: `icm_rm.reward.format.format_for_rm` builds the text and
`icm_rm.reward.scoring.RewardModel` scores it (left-truncated to `max_length` tokens, like `rl.rewards.HFRewardModel`).

Safety: binds 127.0.0.1 by default; any other host needs a bearer token (`--token` or $ICM_RM_SERVE_TOKEN, the env var
being preferred: flags show up in `ps`), checked in constant time (401 otherwise). Bodies over `max_request_mb` and
batches over `max_batch` get 413; malformed JSON, JSON nested deeper than 16 levels and wrong types get 400 with a
message. Connections are served by a fixed pool of `workers` threads; more than `max_connections` connections at once
get 503 (the client retries); each request must arrive and be answered within `request_timeout_s` as a whole
(`rl/serve_pool.py`). Concurrent requests are merged into one forward by
`rl.serve_batching.MicroBatcher`. SIGTERM/SIGINT stop accepting, finish in-flight requests, then exit 0.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from icm_rm.infra.config import parse_config
from icm_rm.infra.device import resolve_device
from icm_rm.infra.errors import UserError
from icm_rm.infra.files import loads_json
from icm_rm.infra.runner import run_main
from icm_rm.reward.scoring import RewardModel

from .serve_batching import MicroBatcher
from .serve_config import ServeConfig, check_bind
from .serve_pool import DeadlineHandler, PooledHTTPServer

log = logging.getLogger(__name__)
MAX_REQUEST_DEPTH = 16  # {"prompts": [[{"role", "content"}]]} is 4 deep

# ----------------------------------------------------------------------------------------------- requests

class RequestError(Exception):
    """A client error with its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _is_messages(x: Any) -> bool:
    return isinstance(x, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in x)


def parse_score_request(body: bytes, max_batch: int) -> tuple[list, list]:
    """(prompts, completions) from a /score body, or RequestError 400/413 naming what is wrong."""
    try:
        data = loads_json(body.decode("utf-8"), max_depth=MAX_REQUEST_DEPTH)  # depth checked without recursion
    except UnicodeDecodeError:
        raise RequestError(400, "body is not UTF-8") from None
    except ValueError as e:
        raise RequestError(400, f"malformed JSON: {e}") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"expected a JSON object with prompts and completions, got {type(data).__name__}")
    prompts, completions = data.get("prompts"), data.get("completions")
    for name, value in (("prompts", prompts), ("completions", completions)):
        if not isinstance(value, list):
            raise RequestError(400, f"'{name}' must be a list, got {type(value).__name__}")
    if len(prompts) != len(completions):
        raise RequestError(400, f"got {len(prompts)} prompts and {len(completions)} completions; they must pair up")
    if len(completions) > max_batch:
        raise RequestError(413, f"batch of {len(completions)} samples exceeds max_batch {max_batch}; split it")
    for name, values in (("prompts", prompts), ("completions", completions)):
        for i, v in enumerate(values):
            if not (isinstance(v, str) or _is_messages(v)):
                raise RequestError(400, f"{name}[{i}] must be a string or a list of {{\"role\": str, \"content\": "
                                        f"str}} messages, got {type(v).__name__}")
    return prompts, completions


# ----------------------------------------------------------------------------------------------- the model

class RewardService:
    """The RM plus its normalisation; `score_raw` is what the micro-batcher calls (one thread at a time)."""

    def __init__(self, cfg: ServeConfig):
        device = resolve_device(cfg.device)
        if cfg.torch_threads is not None:
            import torch

            torch.set_num_threads(cfg.torch_threads)
        self.rm = RewardModel.from_pretrained(cfg.model, device=device, max_length=cfg.max_length)
        self.batch_size = cfg.forward_batch_size
        mean, std = self.rm.reward_mean, self.rm.reward_std
        self.normalize = cfg.normalize and mean is not None and std is not None
        if cfg.normalize and not self.normalize:
            log.warning("%s: config.json has no reward_mean/reward_std; serving raw rewards", cfg.model)
        if self.normalize and (not math.isfinite(std) or std <= 0):
            raise UserError(f"{cfg.model}/config.json: reward_std must be a positive number, got {std}")
        self.mean, self.std = (float(mean), float(std)) if self.normalize else (0.0, 1.0)

    def score_raw(self, items: Sequence[tuple[Any, Any]]) -> list[float]:
        if not items:
            return []
        prompts, completions = zip(*items)
        return [float(r) for r in self.rm.score(list(prompts), list(completions), batch_size=self.batch_size)]

    def finish(self, raw: Sequence[float], want_raw: bool) -> list[float]:
        if want_raw or not self.normalize:
            return list(raw)
        return [(r - self.mean) / self.std for r in raw]


# ----------------------------------------------------------------------------------------------- HTTP

class RMServer(PooledHTTPServer):
    """A fixed pool of `workers` threads, at most `max_connections` connections admitted (more: 503), a whole-request
    deadline; `server_close()` finishes the admitted requests (graceful shutdown)."""

    def __init__(self, cfg: ServeConfig, service: RewardService, token: str | None):
        self.cfg, self.service, self.token = cfg, service, token
        self.max_body = int(cfg.max_request_mb * 2**20)
        # The model only ever runs on one dedicated thread: torch's OpenMP pool is per calling thread, so calling it
        # from many request threads starts a thread team for each and oversubscribes the CPU (measured ~20× slower).
        self.batcher = self.model_thread = None
        if cfg.micro_batch:
            self.batcher = MicroBatcher(service.score_raw, cfg.max_micro_batch, cfg.batch_wait_ms)
        else:
            self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rm-model")
        self.stats = {"requests": 0, "samples": 0, "errors": 0}
        self._stats_lock = threading.Lock()
        handler = type("Handler", (Handler,), {"budget_s": cfg.request_timeout_s})
        super().__init__((cfg.host, cfg.port), handler, workers=cfg.workers, max_connections=cfg.max_connections)

    def score(self, items: list, timeout: float) -> list[float]:
        if self.batcher is not None:
            return self.batcher.submit(items).result(timeout=timeout)
        return self.model_thread.submit(self.service.score_raw, items).result(timeout=timeout)

    def count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def server_close(self) -> None:
        super().server_close()  # finishes the admitted connections
        if self.batcher is not None:
            self.batcher.close()
        if self.model_thread is not None:
            self.model_thread.shutdown(wait=True)

    @property
    def model_calls(self) -> int:
        """Batches the model scored: merged micro-batches, or one per request without micro-batching."""
        return self.batcher.batches if self.batcher is not None else self.stats["requests"]

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Handler(DeadlineHandler):
    server: RMServer
    server_version = "icm-rm-serve"
    sys_version = ""

    # -------------------------------------------------------------------------------------- routing

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = urllib.parse.urlsplit(self.path).path
        if path == "/health":
            s = self.server
            self._json(200, {"status": "ok", "normalize": s.service.normalize, "micro_batch": s.batcher is not None,
                             "max_batch": s.cfg.max_batch, "auth": s.token is not None})
        else:
            self._json(404, {"error": f"no such endpoint {path}; use POST /score or GET /health"})

    def do_POST(self) -> None:  # noqa: N802
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/score":
            self._json(404, {"error": f"no such endpoint {parts.path}; use POST /score or GET /health"})
            return
        self._score(parts.query)

    def do_PUT(self) -> None:  # noqa: N802
        self._json(405, {"error": "method not allowed; use POST /score or GET /health"}, headers={"Allow": "GET, POST"})

    do_DELETE = do_PATCH = do_PUT

    # -------------------------------------------------------------------------------------- /score

    def _score(self, query: str) -> None:
        s = self.server
        if not self._authorized():
            self._json(401, {"error": "missing or wrong bearer token"}, headers={"WWW-Authenticate": "Bearer"})
            return
        try:
            body = self._read_body()
            prompts, completions = parse_score_request(body, s.cfg.max_batch)
            want_raw = _flag(urllib.parse.parse_qs(query).get("raw", ["0"])[-1])
        except RequestError as e:
            s.count("errors")
            self._json(e.status, {"error": e.message}, close=e.status == 413)
            return
        try:
            raw = s.score(list(zip(prompts, completions)), timeout=self.remaining())
        except FutureTimeout:
            s.count("errors")
            self._json(503, {"error": "timed out waiting for the model; retry"}, headers={"Retry-After": "1"})
            return
        except Exception as e:  # noqa: BLE001 - a model failure is a 500 for this request, not a dead server
            s.count("errors")
            log.exception("scoring failed")
            self._json(500, {"error": f"scoring failed: {type(e).__name__}: {e}"})
            return
        s.count("requests")
        s.count("samples", len(completions))
        self._json(200, {"rewards": s.service.finish(raw, want_raw)})

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        # constant time: compare fixed-length digests, so neither the token's content nor its length leaks
        ok = hmac.compare_digest(hashlib.sha256(given.strip().encode("utf-8")).digest(),
                                 hashlib.sha256(token.encode("utf-8")).digest())
        return scheme.lower() == "bearer" and ok

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "chunked bodies are not supported; send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "missing Content-Length")
        try:
            n = int(length)
        except ValueError:
            raise RequestError(400, f"bad Content-Length {length!r}") from None
        if n < 0:
            raise RequestError(400, f"bad Content-Length {length!r}")
        if n > self.server.max_body:
            raise RequestError(413, f"body of {n} bytes exceeds max_request_mb ({self.server.max_body} bytes)")
        body = self.rfile.read(n)
        if len(body) != n:
            raise RequestError(400, f"body ended after {len(body)} of {n} bytes")
        return body

    # -------------------------------------------------------------------------------------- output

    def _json(self, status: int, payload: dict, headers: dict | None = None, close: bool = False) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.connection.settimeout(self.remaining() + 1.0)  # a client that never reads cannot hold the worker longer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


# ----------------------------------------------------------------------------------------------- entry points

def build_server(cfg: ServeConfig) -> RMServer:
    """Check the bind rule, load the RM and bind (port 0 → a free port: read `server.url`). Not yet serving."""
    check_bind(cfg)
    service = RewardService(cfg)
    try:
        return RMServer(cfg, service, cfg.resolved_token())
    except OSError as e:
        raise UserError(f"cannot bind {cfg.host}:{cfg.port} ({e.strerror or e}); pick another --port") from None


def serve(server: RMServer) -> None:
    """Serve until SIGTERM/SIGINT, then finish in-flight requests and return."""
    stopping = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever to return, so it must not run on the thread serving
            threading.Thread(target=server.shutdown, daemon=True).start()

    in_main = threading.current_thread() is threading.main_thread()  # signals can only be set from there
    old = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for sig, handler in old.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    cfg, _ = parse_config(ServeConfig, argv, prog="icm-rm serve-rm")
    check_bind(cfg)  # before loading anything
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.time()
    server = build_server(cfg)
    auth = "bearer token" if server.token else "none (loopback only)"
    norm = (f"(r − {server.service.mean:.4g}) / {server.service.std:.4g}" if server.service.normalize else "raw")
    batching = f"micro-batches ≤ {cfg.max_micro_batch}, {cfg.batch_wait_ms:g} ms" if cfg.micro_batch else "off"
    print(f"icm-rm serve-rm: serving {cfg.model} on {server.url} (auth: {auth}; rewards: {norm}; batching: "
          f"{batching}; loaded in {time.time() - t0:.1f} s)", flush=True)
    serve(server)
    s = server.stats
    print(f"icm-rm serve-rm: stopped after {s['requests']} requests ({s['samples']} samples, {s['errors']} errors) "
          f"in {server.model_calls} model batches", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, sys.argv[1:]))
