"""Every scorer setting, as config fields: `ScorerSettings` (the label config's scorer fields; `LabelConfig` extends
it), the probe's block (`ProbeConfig`) and the OpenAI-compatible server's block (`ServerConfig`). A scorer's factory
(`Scorer.build`) reads only these."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field

from ..infra.config import cfg_field
from ..infra.device import resolve_device
from ..infra.errors import ConfigError
from ..infra.model_registry import DTYPES


@dataclass
class ProbeConfig:
    """How the probe scorer turns hidden states into LOO predictions."""

    layer: int | None = cfg_field(None, "hidden layer read (0 = embeddings); null = two thirds of the depth "
                                        "(SmolLM2-135M: 20, Gemma 3 270M: 12; see BENCHMARKS.md)", ge=0)
    ridge: float = cfg_field(1.0, "ridge λ, relative to the mean squared feature norm of the labeled claims", gt=0)
    center: str = cfg_field("none", "none | group: subtract each consistency group's mean feature (claims only)",
                            choices=("none", "group"))
    pca_dims: int | None = cfg_field(8, "project features on the pool's top-k principal components (null = off); "
                                        "few dimensions leave fewer spurious partitions to find", ge=1)
    loo: str = cfg_field("group", "group: leave the claim's whole group out; claim: leave only the claim out",
                         choices=("group", "claim"))
    score_scale: float = cfg_field(1.0, "multiplier on the probe prediction (sets its scale against I(D))", gt=0)
    zero_shot_weight: float = cfg_field(1.0, "hybrid energy: add this × the LM's zero-shot verdict (pairs: its "
                                             "response-likelihood preference) to each score; 0 = pure probe "
                                             "(1 with rms scale: chosen on the dev tasks, BENCHMARKS.md §2a)", ge=0)
    zero_shot_scale: str = cfg_field("rms", "raw: the verdict as the LM gives it (nats); rms: divided by its root "
                                            "mean square over the pool, so the weight means the same on every task",
                                     choices=("raw", "rms"))
    batch_size: int = cfg_field(16, "claims per forward pass when extracting features", ge=1)
    form: str = cfg_field("auto", "primal: solve the d×d system (d = feature dims after PCA; O(n·d) memory); kernel: "
                                  "the n×n one (O(n²)); auto: primal when d < n. Both give the same scores",
                          choices=("auto", "primal", "kernel"))

    def __post_init__(self):
        if self.ridge <= 0:
            raise ConfigError("probe.ridge", f"must be > 0, got {self.ridge}")
        if self.center not in ("none", "group"):
            raise ConfigError("probe.center", f"must be 'none' or 'group', got '{self.center}'")
        if self.loo not in ("group", "claim"):
            raise ConfigError("probe.loo", f"must be 'group' or 'claim', got '{self.loo}'")
        if self.zero_shot_scale not in ("raw", "rms"):
            raise ConfigError("probe.zero_shot_scale", f"must be 'raw' or 'rms', got '{self.zero_shot_scale}'")
        if self.pca_dims is not None and self.pca_dims < 1:
            raise ConfigError("probe.pca_dims", f"must be ≥ 1 or null, got {self.pca_dims}")
        if self.form not in ("auto", "primal", "kernel"):
            raise ConfigError("probe.form", f"must be auto, primal or kernel, got '{self.form}'")



@dataclass
class ServerConfig:
    """The `server:` block of a label config for `scorer: openai`."""

    base_url: str = cfg_field("http://127.0.0.1:8080/v1", "OpenAI-compatible API root; `/v1` is appended when the "
                                                         "path does not end in it")
    model: str = cfg_field("default", "model name sent with each request (vLLM: the served name; llama.cpp "
                                      "ignores it)")
    api_key_env: str | None = cfg_field(None, "environment variable holding the API key, sent as a Bearer token "
                                              "(null = no Authorization header)")
    concurrency: int = cfg_field(4, "requests in flight at once", ge=1)
    timeout_s: float = cfg_field(120.0, "per-request timeout in seconds", gt=0)
    max_retries: int = cfg_field(5, "retries on refused connections, timeouts, 5xx and 429 (exponential backoff)", ge=0)
    backoff_s: float = cfg_field(0.5, "first retry delay; doubles each retry (capped at 30 s; Retry-After wins)", ge=0)
    top_logprobs: int = cfg_field(20, "top-k logprobs asked for (vLLM's default cap is 20, OpenAI's 5)", ge=1)
    cache_path: str | None = cfg_field(None, "JSONL file caching responses across runs (null = memory only)",
                                       resume_safe=True)

    def __post_init__(self):
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("server.base_url", f"expected http(s)://host:port[/v1], got {self.base_url!r}")
        for key in ("concurrency", "top_logprobs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"server.{key}", f"must be ≥ 1, got {getattr(self, key)}")
        if self.max_retries < 0:
            raise ConfigError("server.max_retries", f"must be ≥ 0, got {self.max_retries}")
        if self.timeout_s <= 0 or self.backoff_s < 0:
            raise ConfigError("server.timeout_s", "timeout_s must be > 0 and backoff_s ≥ 0")

    @property
    def completions_url(self) -> str:
        root = self.base_url.rstrip("/")
        if not urllib.parse.urlsplit(root).path.endswith("/v1"):
            root += "/v1"
        return root + "/completions"

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError("server.api_key_env", f"names ${self.api_key_env}, which is not set; export it or set "
                                                    "api_key_env to null for a server without auth")
        return key


@dataclass
class ScorerSettings:
    """Which scorer labels, on which model, with which settings (the scorer fields of `icm-rm label`)."""

    model: str = cfg_field("smollm2-135m", "labeler LM: registry name (smollm2-135m, gemma3-270m) or a local dir")
    dtype: str | None = cfg_field(None, "model dtype: float32, bfloat16, float16 (null = the model's default in "
                                        "`icm-rm models list`: bfloat16 for the 1.5B Qwen, else float32)",
                                  choices=DTYPES)
    device: str = cfg_field("auto", "cpu, cuda, cuda:N or auto")
    scorer: str = cfg_field("probe", "probe | icl | naive | openai (icm_rm/scoring/registry.py)")
    max_demos: int | None = cfg_field(None, "icl: cap on demonstrations per query (null = all other labeled claims)",
                                      ge=1)
    clamp: float = cfg_field(11.5, "bound on |log-odds|", gt=0)
    kv_budget_mb: float | None = cfg_field(None, "icl: memory for the batched KV cache of a leaf block, MiB (null = "
                                                 "1024 on CPU, a quarter of the free GPU memory on CUDA)",
                                                 gt=0, resume_safe=True)
    server: ServerConfig = field(default_factory=ServerConfig, metadata={"help": "openai scorer: the completions "
                                                                                 "server and how to call it"})
    probe: ProbeConfig = field(default_factory=ProbeConfig, metadata={"help": "probe scorer settings"})
    feature_cache: str | None = cfg_field(None, "probe feature cache dir (null = $ICM_RM_HOME/features)",
                                          resume_safe=True)

    def __post_init__(self):
        resolve_device(self.device)  # an unknown device, or cuda on a CPU-only build, fails here
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ConfigError("dtype", f"must be one of {', '.join(DTYPES)} or null, got '{self.dtype}'")
        if self.max_demos is not None and self.max_demos < 1:
            raise ConfigError("max_demos", f"must be ≥ 1 or null, got {self.max_demos}")
        if self.kv_budget_mb is not None and self.kv_budget_mb <= 0:
            raise ConfigError("kv_budget_mb", f"must be > 0 or null, got {self.kv_budget_mb}")
