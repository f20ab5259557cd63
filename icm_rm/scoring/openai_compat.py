"""Scorer over any OpenAI-compatible `/v1/completions` server that returns logprobs (llama.cpp, `vllm serve`).

For each query the prompt is the *text* the in-process scorers tokenise (`icm_rm.scoring.tokens`):
    demo_text(C_1) + … + demo_text(C_k) + query text,      demos in `order.context_orders` order,
sent with `max_tokens=1, temperature=0, logprobs=top_logprobs`. The score is read from the top-k logprobs of the
one generated position (docs/icm.md):
    s = log max(Σ_{t ∈ top-k, t.strip().lower() = "true"} p(t), 1e-5) − log max(Σ_{… "false"} p(t), 1e-5),
clamped to ±clamp. This is the released code's top-k rule, an approximation of the in-process scorers' sum over the
whole vocabulary: the two agree whenever every True/False variant with noticeable mass is in the top-k (at k = 20 the
missing mass is ≤ 20 × the 20th token's probability, usually < 1e-3), and a side missing from the top-k is floored
at 1e-5 (so |s| ≤ 11.5 before the clamp).

Differences from the in-process scorers, all small (tests/test_openai_compat.py measures them on SmolLM2):
- BOS: the in-process scorers prepend what the HF tokenizer adds (`tokens.prefix_ids`); llama.cpp adds BOS iff the
  GGUF's `tokenizer.ggml.add_bos_token` is true and vLLM tokenises with the HF tokenizer's own special tokens, so the
  prefix is the same rule on both sides (SmolLM2: no BOS on either). We never put BOS in the text ourselves.
- tokenisation: the in-process scorers tokenise each demonstration on its own (so a KV cache can reuse it); a server
  tokenises the joined text, which can merge tokens across a demo boundary ("\\n\\n" + "Claim" → one token fewer).
- weights: a GGUF is quantised (Q4_1 for the default model) while the HF copy is the dequantised fp32.

Work saving: responses are cached by a hash of (model, top_logprobs, prompt) in memory and, with `cache_path`, in an
append-only JSONL file shared across runs; the prompts still to fetch are sent in lexicographic order (a depth-first
walk of their prefix trie, which maximises the prefix consecutive requests share) so the server's prefix cache
(llama.cpp's KV reuse of the previous prompt, vLLM `--enable-prefix-caching`) does the leave-one-out sharing that
`HFScorer` does in process. Requests run on `concurrency` threads with timeouts and exponential-backoff retries on
refused connections, timeouts, 5xx and 429.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException
from pathlib import Path

import numpy as np

from ..data.records import Claim, ClaimSet
from ..data.tasks import demo_text
from ..infra.config import from_dict
from ..infra.errors import ConfigError, UserError
from .base import DEFAULT_CLAMP, Label, Scorer, ScorerStats
from .order import context_orders
from .settings import ScorerSettings, ServerConfig

MASS_FLOOR = 1e-5  # each side's probability mass is floored here, as in the released code
MAX_BACKOFF_S = 30.0


def side_masses(top: dict[str, float]) -> tuple[float, float]:
    """(P(True), P(False)) summed over the top-k tokens whose stripped, lower-cased text is "true"/"false"."""
    t = f = 0.0
    for token, logprob in top.items():
        word = token.strip().lower()
        if word == "true":
            t += math.exp(logprob)
        elif word == "false":
            f += math.exp(logprob)
    return t, f


def log_odds_from_top(top: dict[str, float], clamp: float = DEFAULT_CLAMP) -> float:
    """s = log max(P(True), 1e-5) − log max(P(False), 1e-5), clamped to ±clamp."""
    t, f = side_masses(top)
    s = math.log(max(t, MASS_FLOOR)) - math.log(max(f, MASS_FLOOR))
    return float(min(max(s, -clamp), clamp))


def parse_top_logprobs(answer: dict) -> dict[str, float] | None:
    """The first generated position's {token: logprob} from a completions response, or None when absent.
    Reads the legacy completions shape (`logprobs.top_logprobs[0]`: llama-cpp-python, vLLM, OpenAI) and the
    chat-style shape (`logprobs.content[0].top_logprobs`: newer llama.cpp `llama-server`)."""
    try:
        lp = answer["choices"][0].get("logprobs")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if not isinstance(lp, dict):
        return None
    tops = lp.get("top_logprobs")
    if isinstance(tops, list) and tops and isinstance(tops[0], dict):
        return {str(k): float(v) for k, v in tops[0].items()}
    content = lp.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        entries = content[0].get("top_logprobs") or []
        out: dict[str, float] = {}
        for e in entries:
            if isinstance(e, dict) and "token" in e and "logprob" in e:
                tok, lp_ = str(e["token"]), float(e["logprob"])
                out[tok] = math.log(math.exp(out[tok]) + math.exp(lp_)) if tok in out else lp_
        return out or None
    return None


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ResponseCache:
    """prompt hash → top logprobs, in memory and optionally appended to a JSONL file (one `{"key", "top"}` a line)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path else None
        self._mem: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self._mem[row["key"]] = row["top"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a killed run: that prompt is simply fetched again

    def __len__(self) -> int:
        return len(self._mem)

    def get(self, key: str) -> dict[str, float] | None:
        return self._mem.get(key)

    def put(self, key: str, top: dict[str, float]) -> None:
        with self._lock:
            self._mem[key] = top
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # one O_APPEND write per line: workers of a sharded run can share the file without tearing lines
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, (json.dumps({"key": key, "top": top}) + "\n").encode("utf-8"))
                finally:
                    os.close(fd)


class OpenAICompatScorer(Scorer):
    """Leave-one-out log-odds from an OpenAI-compatible completions server (see the module docstring)."""

    name = "openai"
    summary = "an OpenAI-compatible /v1/completions server with logprobs (llama.cpp, vLLM)"

    def __init__(self, server: ServerConfig, clamp: float = DEFAULT_CLAMP, max_demos: int | None = None):
        self.server, self.clamp, self.max_demos = server, float(clamp), max_demos
        self.url = server.completions_url
        self._api_key = server.api_key()
        self.cache = ResponseCache(server.cache_path)
        self.stats = ScorerStats(extra={"requests": 0, "retries": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0,
                                        "disk_cache_entries": len(self.cache)})
        self._stats_lock = threading.Lock()

    @classmethod
    def build(cls, settings: ScorerSettings, pool: ClaimSet) -> OpenAICompatScorer:
        return cls(settings.server, clamp=settings.clamp, max_demos=settings.max_demos)

    @classmethod
    def from_config(cls, server: dict, clamp: float = DEFAULT_CLAMP,
                    max_demos: int | None = None) -> OpenAICompatScorer:
        """Build from a `server:` mapping as a label config holds it (unknown keys and bad values raise ConfigError
        naming `server.<key>`)."""
        try:
            cfg = from_dict(ServerConfig, dict(server or {}))
        except ConfigError as e:
            key = e.key if e.key is None or e.key.startswith("server.") else f"server.{e.key}"
            raise ConfigError(key, e.message, e.path) from None
        return cls(cfg, clamp=clamp, max_demos=max_demos)

    # ------------------------------------------------------------------------------------------- prompts

    @staticmethod
    def prompt_text(claims: Sequence[Claim], labels: Sequence[Label], q: int, demos: Sequence[int]) -> str:
        """The text of query q's context: the in-process token contract, joined (no BOS: the server adds it)."""
        return "".join(demo_text(claims[j].text, bool(labels[j])) for j in demos) + claims[q].text

    def cache_key(self, prompt: str) -> str:
        blob = json.dumps([self.server.model, self.server.top_logprobs, prompt], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    # ------------------------------------------------------------------------------------------- scoring

    def loo_scores(self, claims: Sequence[Claim], labels: Sequence[Label], queries: Sequence[int]) -> np.ndarray:
        orders = context_orders([c.group for c in claims], labels, queries, self.max_demos)
        prompts = [self.prompt_text(claims, labels, q, orders[q]) for q in queries]
        keys = [self.cache_key(p) for p in prompts]
        missing = {k: p for k, p in zip(keys, prompts) if self.cache.get(k) is None}
        self.stats.cache_hits += len(keys) - sum(1 for k in keys if k in missing)
        self.fetch(missing)
        self.stats.queries += len(queries)
        return np.array([log_odds_from_top(self.cache.get(k), self.clamp) for k in keys], dtype=np.float64)

    def fetch(self, prompts: dict[str, str]) -> None:
        """Request every prompt (key → text) not yet cached: sorted so neighbours share prefixes, `concurrency`
        at a time; each answer goes into the cache as it arrives."""
        if not prompts:
            return
        todo = sorted(prompts.items(), key=lambda kv: kv[1])

        def one(item: tuple[str, str]) -> None:
            key, prompt = item
            self.cache.put(key, self._complete(prompt))

        if self.server.concurrency == 1 or len(todo) == 1:
            for item in todo:
                one(item)
            return
        with ThreadPoolExecutor(max_workers=min(self.server.concurrency, len(todo))) as pool:
            for _ in pool.map(one, todo):  # map re-raises the first failure
                pass

    # ------------------------------------------------------------------------------------------- HTTP

    def _complete(self, prompt: str) -> dict[str, float]:
        body = json.dumps({"model": self.server.model, "prompt": prompt, "max_tokens": 1, "temperature": 0,
                           "logprobs": self.server.top_logprobs, "echo": False, "stream": False}).encode("utf-8")
        answer = self._post(body)
        top = parse_top_logprobs(answer)
        if top is None:
            raise UserError(f"{self.url} returned no logprobs (answer starts {json.dumps(answer)[:200]}); the server "
                            "must support `logprobs` on /v1/completions (llama-cpp-python: logits_all true, the "
                            "server's default; vLLM: allow max_logprobs ≥ server.top_logprobs)")
        usage = answer.get("usage") or {}
        with self._stats_lock:
            self.stats.forward_calls += 1
            self.stats.extra["requests"] += 1
            n = usage.get("prompt_tokens")
            if isinstance(n, int):
                self.stats.forward_tokens += n
                self.stats.extra["prompt_tokens"] += n
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            if isinstance(cached, int):
                self.stats.extra["cached_prompt_tokens"] += cached
        return top

    def _post(self, body: bytes) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last = ""
        for attempt in range(self.server.max_retries + 1):
            if attempt:
                with self._stats_lock:
                    self.stats.extra["retries"] += 1
            try:
                return self._post_once(body, headers)
            except _Retryable as e:
                last = str(e)
                if attempt == self.server.max_retries:
                    break
                delay = min(self.server.backoff_s * 2 ** attempt, MAX_BACKOFF_S)
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, MAX_BACKOFF_S))
                time.sleep(delay)
        raise UserError(f"scorer server {self.url} failed after {self.server.max_retries + 1} tries ({last}); start "
                        "the server (docs/serving.md) or fix server.base_url")

    def _post_once(self, body: bytes, headers: dict) -> dict:
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.server.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:300].strip()
            if e.code >= 500 or e.code == 429:
                raise _Retryable(f"HTTP {e.code}: {detail}", _retry_after(e.headers.get("Retry-After"))) from None
            hint = ""
            if e.code in (401, 403):
                hint = "; set server.api_key_env to the variable holding the server's API key"
            elif e.code == 404:
                hint = "; is server.base_url the API root (…/v1) of an OpenAI-compatible server?"
            elif e.code == 400 and "context" in detail.lower():
                hint = "; the prompt is longer than the server's context: set max_demos or raise the server's n_ctx"
            raise UserError(f"scorer server {self.url} answered HTTP {e.code}: {detail}{hint}") from None
        except urllib.error.URLError as e:
            raise _Retryable(f"unreachable: {e.reason}") from None
        except (TimeoutError, socket.timeout) as e:
            raise _Retryable(f"timed out after {self.server.timeout_s} s ({e})") from None
        except (ConnectionError, HTTPException, OSError) as e:
            raise _Retryable(f"connection failed: {type(e).__name__}: {e}") from None
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise UserError(f"scorer server {self.url} answered with non-JSON: {raw[:200]!r}") from None
        if not isinstance(answer, dict):
            raise UserError(f"scorer server {self.url} answered {str(answer)[:200]}, not a completions object")
        return answer


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
