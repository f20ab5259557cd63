"""Reward sources for RL: anything that maps (prompt, completion) pairs to one float each.

A `RewardSource` is a callable `source(prompts, completions) -> list[float]` with a `name`. Prompts are what the data
holds (a string, or a list of chat messages `{"role", "content"}`); completions are the decoded response texts.
PPO and GRPO take the same sources, built from one config value by `build_reward_source(spec)`:

  spec                                          source
  ─────────────────────────────────────────────  ──────────────────────────────────────────────────────────────
  "runs/x/rm/model"  (a directory)              HFRewardModel: AutoModelForSequenceClassification + its tokenizer
  "http://host:8000"  (an http(s) URL)          HTTPRewardModel: POST {url}/score (contract below)
  "my_pkg.rewards:fn" or "path/to/file.py:fn"   PythonReward: fn(prompts, completions) -> list[float]
  {type: hf, path: DIR, normalize: true, batch_size: 8, max_length: 1024}
  {type: http, url: URL, token_env: ICM_RM_REWARD_TOKEN, timeout: 60, retries: 3, batch_size: 64}
  {type: python, function: "mod:fn", kwargs: {...}}
  {type: mix, sources: [{<spec>, weight: 0.7, name: helpful}, {<spec>, weight: 0.3}]}

Switching the RM is one config line (`reward_model: runs/x/rm/model` → `reward_model: runs/y/rm/model`).

HF reward models re-tokenise prompt + completion with the RM's OWN tokenizer through
`icm_rm.reward.format.format_for_rm(tokenizer, prompt, response)` (the RM stage's rule; the text carries its special
tokens, so it is tokenised with add_special_tokens=False), so the policy and the RM may use different
tokenizers. With `normalize: true` (the default) scores become (r − reward_mean) / reward_std using the statistics the
RM stage stored in the RM's `config.json` (held-out data), so rewards from two RMs are on the same scale.

HTTP contract (the RM server in `rl/serve.py` implements exactly this):

    POST {url}/score
    Authorization: Bearer <token>            (only when a token is configured)
    Content-Type: application/json
    {"prompts": [str | [{"role": str, "content": str}, ...], ...], "completions": [str, ...]}
    → 200 {"rewards": [float, ...]}          (same length and order as "completions")

Errors: 4xx fails at once (bad request or token); 5xx, 429, timeouts and refused connections are retried
`retries` times with exponential backoff, then raise. Rewards returned by the server are used as they are
(the server applies its own normalisation, if any).

After scoring, trainers apply `postprocess_scores`: clipping to ±`reward_clip` and subtracting `missing_eos_penalty`
from completions that did not end with EOS (only the trainer knows the token ids, so it is not a source's job).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import math
import numbers
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from icm_rm.infra.errors import ConfigError, UserError
from icm_rm.infra.files import check_input_file, loads_json
from icm_rm.infra.models import resolve_model
from icm_rm.reward.scoring import RewardModel

log = logging.getLogger(__name__)

Prompt = str | list[dict]
DEFAULT_TOKEN_ENV = "ICM_RM_REWARD_TOKEN"


@runtime_checkable
class RewardSource(Protocol):
    name: str

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> list[float]: ...


def _check_lengths(prompts: Sequence, completions: Sequence) -> None:
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts and {len(completions)} completions; they must pair up")


def finite_rewards(values: Any, n: int, who: str) -> list[float]:
    """`values` as n finite floats; anything else (null, a string, NaN, the wrong count) is one UserError naming
    the source, never a TypeError deep in a trainer."""
    if not isinstance(values, (list, tuple)) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, (list, tuple)) else repr(values)[:100]
        raise UserError(f"{who}: expected {n} rewards, got {got}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise UserError(f"{who}: reward {i} is {v!r}, not a finite number")
    return [float(v) for v in values]


# ------------------------------------------------------------------------------------------------- HF reward model

class HFRewardModel:
    """A reward-model directory scored through `icm_rm.reward.scoring.RewardModel` — the same formatting, truncation
    and batching as `eval-rm` and RM export, so RL sees exactly the rewards the RM was evaluated with."""

    def __init__(self, path: str | Path, *, normalize: bool = True, batch_size: int = 8, max_length: int = 1024,
                 device: Any = None, dtype: Any = None, name: str | None = None):
        path = Path(_resolve(str(path)))
        if not (path / "config.json").exists():
            raise UserError(f"{path}: not a reward-model directory (no config.json); point reward_model at the RM "
                            "stage's output model dir")
        self.path, self.batch_size = path, int(batch_size)
        self.name = name or f"hf:{path.name if path.name not in ('model', 'rm') else '/'.join(path.parts[-3:])}"
        self.rm = RewardModel.from_pretrained(path, device=str(device) if device is not None else "cpu", dtype=dtype,
                                              max_length=int(max_length))
        self.model, self.tokenizer = self.rm.model, self.rm.tokenizer
        self.model.requires_grad_(False)
        self.normalize = bool(normalize)
        if normalize and (self.rm.reward_mean is None or self.rm.reward_std is None):
            log.warning("%s: config.json has no reward_mean/reward_std; rewards are not normalised", path)
            self.normalize = False
        std = self.rm.reward_std
        if self.normalize and (std is None or std <= 0 or not math.isfinite(std)):
            raise UserError(f"{path}/config.json: reward_std must be a positive number, got {std}")

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> list[float]:
        _check_lengths(prompts, completions)
        rewards = self.rm.score(list(prompts), list(completions), batch_size=self.batch_size)
        return (self.rm.normalize(rewards) if self.normalize else rewards).tolist()


def _resolve(name_or_path: str) -> str:
    """Registry names (icm_rm.infra.models) → cached dirs; paths stay."""
    return resolve_model(name_or_path)


# ------------------------------------------------------------------------------------------------- HTTP client

class HTTPRewardModel:
    """Client for a remote RM speaking the `/score` contract in this module's docstring."""

    def __init__(self, url: str, *, token: str | None = None, token_env: str = DEFAULT_TOKEN_ENV, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.5, batch_size: int = 64, name: str | None = None):
        self.url = url.rstrip("/")
        self.endpoint = self.url if self.url.endswith("/score") else self.url + "/score"
        self.token = token if token is not None else os.environ.get(token_env) or None
        self.timeout, self.retries, self.backoff, self.batch_size = float(timeout), int(retries), float(backoff), int(batch_size)
        self.name = name or f"http:{self.url.split('://', 1)[-1]}"

    def _post(self, payload: dict) -> dict:
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                try:
                    return loads_json(raw.decode("utf-8"), max_depth=8)
                except ValueError as e:  # incl. UnicodeDecodeError and JSON nested too deep
                    raise UserError(f"reward server {self.endpoint} answered something that is not JSON ({e})") \
                        from None
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:300]
                if e.code < 500 and e.code != 429:
                    raise UserError(f"reward server {self.endpoint} answered {e.code}: {detail}") from None
                last = UserError(f"reward server {self.endpoint} answered {e.code}: {detail}")
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = UserError(f"reward server {self.endpoint} unreachable: {getattr(e, 'reason', e)}")
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise last  # type: ignore[misc]

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> list[float]:
        _check_lengths(prompts, completions)
        out: list[float] = []
        for i in range(0, len(completions), self.batch_size):
            p, c = list(prompts[i:i + self.batch_size]), list(completions[i:i + self.batch_size])
            answer = self._post({"prompts": p, "completions": c})
            if not isinstance(answer, dict) or "rewards" not in answer:
                raise UserError(f"reward server {self.endpoint}: expected {{\"rewards\": [{len(c)} floats]}}, "
                                f"got {str(answer)[:200]}")
            out.extend(finite_rewards(answer["rewards"], len(c), f"reward server {self.endpoint}"))
        return out


# ------------------------------------------------------------------------------------------------- Python callable

def load_callable(target: str) -> Callable:
    """`package.module:function` or `path/to/file.py:function`."""
    if ":" not in target:
        raise ConfigError("reward", f"'{target}' is not 'module:function' or 'file.py:function'")
    mod_name, fn_name = target.rsplit(":", 1)
    try:
        if mod_name.endswith(".py"):
            path = check_input_file(mod_name)
            spec = importlib.util.spec_from_file_location(f"_icm_rm_reward_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(mod_name)
    except SyntaxError as e:
        raise ConfigError("reward", f"{e.filename}, line {e.lineno}: syntax error ({e.msg}) in the reward "
                                    "function's file") from None
    except ImportError as e:
        raise ConfigError("reward", f"cannot import '{mod_name}': {e}") from None
    except UserError:
        raise
    except Exception as e:  # the user's module failed while importing: name it, not our stack
        raise ConfigError("reward", f"importing '{mod_name}' raised {type(e).__name__}: {str(e)[:200]}") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError("reward", f"'{mod_name}' has no callable '{fn_name}'")
    return fn


class PythonReward:
    """A Python function `fn(prompts, completions, **kwargs) -> list[float]`."""

    def __init__(self, function: str | Callable, *, kwargs: dict | None = None, name: str | None = None):
        self.fn = load_callable(function) if isinstance(function, str) else function
        self.kwargs = dict(kwargs or {})
        self.name = name or f"python:{getattr(self.fn, '__name__', 'fn')}"

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> list[float]:
        _check_lengths(prompts, completions)
        out = self.fn(list(prompts), list(completions), **self.kwargs)
        if out is not None and not isinstance(out, (str, bytes, dict)) and hasattr(out, "__iter__"):
            out = list(out)  # a numpy array, tuple or generator
        return finite_rewards(out, len(completions), f"reward function {self.name}")


# ------------------------------------------------------------------------------------------------- weighted mix

class MixReward:
    """Σ_i w_i · source_i. `last_metrics` holds each source's mean from the latest call, for per-source logging."""

    def __init__(self, sources: Sequence[RewardSource], weights: Sequence[float], name: str = "mix"):
        if len(sources) != len(weights) or not sources:
            raise ConfigError("reward.sources", "a mix needs at least one source, each with a weight")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ConfigError("reward.sources", f"source names must differ (got {names}); give each a `name:`")
        self.sources, self.weights, self.name = list(sources), [float(w) for w in weights], name
        self.last_metrics: dict[str, float] = {}

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> list[float]:
        _check_lengths(prompts, completions)
        total = [0.0] * len(completions)
        metrics = {}
        for src, w in zip(self.sources, self.weights):
            r = src(prompts, completions)
            metrics[src.name] = sum(r) / max(1, len(r))
            total = [t + w * x for t, x in zip(total, r)]
        self.last_metrics = metrics
        return total


# ------------------------------------------------------------------------------------------------- config → source

def build_reward_source(spec: str | dict | RewardSource, *, normalize: bool = True, device: Any = None,
                        batch_size: int | None = None) -> RewardSource:
    """Build a source from a config value (see the module docstring). `normalize`, `device` and `batch_size` are
    defaults for HF sources; keys inside a dict spec win."""
    if spec is None:
        raise ConfigError("reward_model", "no reward source: set `reward_model` (RM dir, URL or module:function) or "
                                          "`reward` (a spec mapping)")
    if not isinstance(spec, (str, dict)):
        if callable(spec):
            return spec if hasattr(spec, "name") else PythonReward(spec)
        raise ConfigError("reward", f"expected a string or a mapping, got {type(spec).__name__}")
    if isinstance(spec, str):
        spec = _spec_from_string(spec)
    spec = dict(spec)
    kind = spec.pop("type", None)
    spec.pop("weight", None)
    name = spec.pop("name", None)
    try:
        if kind == "hf":
            path = spec.pop("path", None)
            if path is None:
                raise ConfigError("reward.path", "an hf reward source needs `path: <RM dir>`")
            kw = {"normalize": normalize, "device": device, **({"batch_size": batch_size} if batch_size else {}), **spec}
            return HFRewardModel(path, name=name, **kw)
        if kind == "http":
            url = spec.pop("url", None)
            if not url:
                raise ConfigError("reward.url", "an http reward source needs `url: http://host:port`")
            return HTTPRewardModel(url, name=name, **spec)
        if kind == "python":
            fn = spec.pop("function", None)
            if not fn:
                raise ConfigError("reward.function", "a python reward source needs `function: module:function`")
            return PythonReward(fn, name=name, **spec)
        if kind == "mix":
            subs = spec.pop("sources", None)
            if not isinstance(subs, list) or not subs:
                raise ConfigError("reward.sources", "a mix needs `sources: [{...}, ...]`")
            if spec:
                raise ConfigError(f"reward.{next(iter(spec))}", "unknown key for a mix (expected type, sources, name)")
            parts, weights = [], []
            for s in subs:
                s = _spec_from_string(s) if isinstance(s, str) else s
                weights.append(float(s.get("weight", 1.0)))
                parts.append(build_reward_source(s, normalize=normalize, device=device, batch_size=batch_size))
            return MixReward(parts, weights, name=name or "mix")
    except TypeError as e:  # an unexpected key in a spec mapping
        raise ConfigError("reward", f"bad {kind} reward spec: {e}") from None
    raise ConfigError("reward.type", f"unknown reward type {kind!r}; expected hf, http, python or mix")


def _spec_from_string(s: str) -> dict:
    if s.startswith(("http://", "https://")):
        return {"type": "http", "url": s}
    if Path(s).is_dir():
        return {"type": "hf", "path": s}
    if ":" in s and not Path(s).exists():
        return {"type": "python", "function": s}
    raise ConfigError("reward_model", f"'{s}' is neither a reward-model directory, an http(s) URL, nor "
                                      "'module:function'")


def source_metrics(source: RewardSource) -> dict[str, float]:
    """Per-source means from a mix's latest call, as `reward/<name>` metrics (empty for single sources)."""
    return {f"reward/{k}": v for k, v in getattr(source, "last_metrics", {}).items()}


def postprocess_scores(scores, has_eos, *, reward_clip: float | None = None, missing_eos_penalty: float | None = None):
    """Clip scores to ±reward_clip, then subtract `missing_eos_penalty` where a completion has no EOS.
    Works on torch tensors ([B] floats, [B] bools) and on plain lists."""
    import torch

    t = torch.as_tensor(scores, dtype=torch.float32).clone()
    if reward_clip is not None:
        t = t.clamp(-reward_clip, reward_clip)
    if missing_eos_penalty is not None:
        t = t - missing_eos_penalty * (~torch.as_tensor(has_eos, dtype=torch.bool, device=t.device)).float()
    return t


def substring_reward(prompts: Sequence[Prompt], completions: Sequence[str], text: str = " the",
                     scale: float = 1.0) -> list[float]:
    """A toy reward for smoke runs and tests (`rl.rewards:substring_reward`): `scale` × occurrences of `text`."""
    return [scale * c.count(text) for c in completions]
