"""`ServeConfig` of `icm-rm serve-rm` and the bind rule: a non-loopback host needs a bearer token."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from icm_rm.infra.config import cfg_field
from icm_rm.infra.device import resolve_device
from icm_rm.infra.errors import ConfigError, UserError

TOKEN_ENV = "ICM_RM_SERVE_TOKEN"
LOOPBACK_NAMES = ("localhost",)


@dataclass
class ServeConfig:
    """Serve a reward model over HTTP: POST /score, GET /health."""

    model: str | None = cfg_field(None, "reward-model directory (the RM stage's `model/`: AutoModelForSequence"
                                        "Classification + tokenizer, reward_mean/std in config.json)")
    host: str = cfg_field("127.0.0.1", "interface to bind; anything but loopback needs a token")
    port: int = cfg_field(8000, "TCP port (0 = any free port; the chosen one is printed)", ge=0, le=65535)
    token: str | None = cfg_field(None, f"bearer token clients must send (default ${TOKEN_ENV}; prefer the env var, "
                                        "flags are visible in `ps`)")
    normalize: bool = cfg_field(True, "return (r − reward_mean) / reward_std by default (per request: ?raw=1)")
    max_length: int = cfg_field(1024, "tokens kept per text (left-truncated, as rl.rewards.HFRewardModel does)", ge=1)
    device: str = cfg_field("auto", "cpu, cuda, cuda:N or auto")
    torch_threads: int | None = cfg_field(None, "CPU threads per forward (null = torch's default, one per core); 1 is "
                                                "steadier on a CPU shared with other jobs", ge=1)
    micro_batch: bool = cfg_field(True, "merge concurrent requests into one forward (false: one forward per request)")
    max_micro_batch: int = cfg_field(64, "most samples merged into one micro-batch", ge=1)
    batch_wait_ms: float = cfg_field(5.0, "how long the first request of a micro-batch waits for others", ge=0)
    forward_batch_size: int = cfg_field(32, "samples per model forward inside a (micro-)batch", ge=1)
    max_batch: int = cfg_field(1024, "most samples in one request (more → 413)", ge=1)
    max_request_mb: float = cfg_field(8.0, "largest request body in MiB (more → 413)", gt=0)
    max_connections: int = cfg_field(512, "connections admitted at once (served or waiting for a worker); more get "
                                          "503 + Retry-After", ge=1)
    workers: int = cfg_field(16, "threads serving connections (a fixed pool: stalled clients start no threads)",
                             ge=1)
    request_timeout_s: float = cfg_field(60.0, "deadline of a whole request: reading it (every byte) and waiting for "
                                               "its rewards", gt=0)

    def __post_init__(self):
        resolve_device(self.device)
        if self.token is not None:
            self.resolved_token()  # a blank --token fails here
        if not self.model:
            raise ConfigError("model", "no reward model given; pass --model DIR (the RM stage's model/ dir)")
        if not 0 <= self.port <= 65535:
            raise ConfigError("port", f"must be in 0..65535, got {self.port}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ConfigError("torch_threads", f"must be ≥ 1 or null, got {self.torch_threads}")
        for key in ("max_length", "max_micro_batch", "forward_batch_size", "max_batch", "max_connections"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be ≥ 1, got {getattr(self, key)}")
        if self.max_request_mb <= 0 or self.request_timeout_s <= 0 or self.batch_wait_ms < 0:
            raise ConfigError("max_request_mb", "max_request_mb and request_timeout_s must be > 0, batch_wait_ms ≥ 0")

    def resolved_token(self) -> str | None:
        """The token (flag, else $ICM_RM_SERVE_TOKEN); blank or padded ones are refused: no client could send them."""
        token, key = (self.token, "token") if self.token is not None else (os.environ.get(TOKEN_ENV), TOKEN_ENV)
        if token is None or token == "" and key == TOKEN_ENV:
            return None
        if not token.strip() or token != token.strip():
            raise ConfigError(key, "the bearer token is blank or starts/ends with whitespace, which no client can "
                                   "send (the Authorization header is trimmed); use a non-blank token without "
                                   "surrounding spaces")
        return token


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(cfg: ServeConfig) -> None:
    """Refuse a non-loopback host without a token (one-line UserError → exit 2)."""
    if not is_loopback(cfg.host) and not cfg.resolved_token():
        raise UserError(f"refusing to serve on {cfg.host} without a token: anyone who can reach it could use the RM; "
                        f"set ${TOKEN_ENV} (or --token) or bind 127.0.0.1")
