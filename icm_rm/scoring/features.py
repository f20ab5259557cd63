"""Hidden-state features for the probe scorer: the last-token state of each kept layer for a claim prompt, plus the
LM's zero-shot True/False log-odds from the same forward.

Computed once per (model, text) and streamed to an on-disk cache in shards: texts still missing are sorted by length,
run in batches, and every `shard_mb` of states is written as one content-addressed shard (`<hash of its texts>.npy`
+ `.json` with the text keys and log-odds, written last), so a killed extraction resumes after its last shard and a
pool of any size never holds more than one shard of hidden states in memory. Reads go through memory maps.

A `FeatureSource` is what the probe reads: texts → (features (n, d), zero-shot log-odds (n,)). `LayerFeatures` is
one layer of a `FeatureExtractor` (the label stage's source); `FunctionFeatures` wraps a plain function (tests,
benchmarks).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.records import Claim
from ..infra.errors import UserError
from ..infra.io import atomic_write_bytes
from ..infra.lm import right_pad
from .tokens import prefix_ids, true_false_token_ids


def model_fingerprint(model) -> str:
    """Identifies the weights well enough to key a cache: name/path, config, and a checksum of a few tensors."""
    h = hashlib.sha256()
    h.update(str(getattr(model.config, "_name_or_path", "")).encode())
    h.update(model.config.to_json_string(use_diff=False).encode())
    with torch.no_grad():
        for _, p in list(model.named_parameters())[:3] + list(model.named_parameters())[-2:]:
            h.update(np.ascontiguousarray(p.detach().float().cpu().numpy().ravel()[:4096]).tobytes())
    return h.hexdigest()[:16]


class FeatureExtractor:
    """`get(texts)` → (states (n, kept layers, d) float32, zero-shot log-odds (n,)); `layer(texts, l)` → (n, d)."""

    def __init__(self, model, tokenizer, *, cache_dir: str | Path | None = None, batch_size: int = 16,
                 clamp: float = 11.5, show_progress: bool = True, layers: Sequence[int] | None = None,
                 shard_mb: float = 64.0):
        """layers: the hidden layers kept (0 = embeddings; None = all); shard_mb: states per shard file."""
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.clamp, self.show_progress = batch_size, clamp, show_progress
        self.layers = None if layers is None else sorted({int(x) for x in layers})
        self.shard_mb = shard_mb
        try:
            self.true_ids, self.false_ids = true_false_token_ids(tokenizer)
        except UserError:  # no True/False tokens: features still work; zero-shot verdicts are 0 (no anchoring)
            self.true_ids = self.false_ids = None
        self.fingerprint = model_fingerprint(model)
        tag = "all" if self.layers is None else "l" + "-".join(map(str, self.layers))
        self.cache_dir = Path(cache_dir) / self.fingerprint / f"shards-{tag}" if cache_dir else None
        self._prefix = prefix_ids(tokenizer)
        self._index: dict[str, tuple[str, int]] = {}  # text key → (shard name, row)
        self._z: dict[str, float] = {}
        self._shards: dict[str, np.ndarray] = {}  # shard name → states (memory map, or the array without a cache)
        self.forward_tokens = 0  # tokens run through the model (cache hits excluded)
        self.forward_s = 0.0  # seconds inside model forwards
        self.extract_s = 0.0  # seconds extracting (tokenize + forward + write)
        self._scan()

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def tokens_per_s(self) -> float:
        """Extraction throughput: forward tokens over the whole extraction wall time (tokenizing and writing too)."""
        return self.forward_tokens / self.extract_s if self.extract_s else 0.0

    # ------------------------------------------------------------------ the shard index

    def _scan(self) -> None:
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return
        for manifest in sorted(self.cache_dir.glob("*.json")):
            try:
                meta = json.loads(manifest.read_text())
                states = np.load(manifest.with_suffix(".npy"), mmap_mode="r")
                if states.shape[0] != len(meta["keys"]) or len(meta["z"]) != len(meta["keys"]):
                    raise ValueError("row count")
            except (OSError, ValueError, KeyError, json.JSONDecodeError):
                manifest.unlink(missing_ok=True)  # a corrupt shard is dropped and its texts recomputed
                manifest.with_suffix(".npy").unlink(missing_ok=True)
                continue
            self._add_shard(manifest.stem, states, meta["keys"], meta["z"])

    def _add_shard(self, name: str, states: np.ndarray, keys: Sequence[str], z: Sequence[float]) -> None:
        self._shards[name] = states
        for row, (k, zz) in enumerate(zip(keys, z)):
            self._index[k] = (name, row)
            self._z[k] = float(zz)

    def _write_shard(self, keys: list[str], states: np.ndarray, z: list[float]) -> None:
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:24]  # content-addressed
        if self.cache_dir is not None:
            buf = io.BytesIO()
            np.save(buf, states)
            atomic_write_bytes(self.cache_dir / f"{name}.npy", buf.getvalue())
            meta = json.dumps({"keys": keys, "z": z, "layers": self.layers})
            atomic_write_bytes(self.cache_dir / f"{name}.json", meta.encode())
            states = np.load(self.cache_dir / f"{name}.npy", mmap_mode="r")
        self._add_shard(name, states, keys, z)

    # ------------------------------------------------------------------ reads

    def _rows(self, texts: Sequence[str], layer_pos: int | None) -> tuple[np.ndarray, np.ndarray]:
        keys = [self.key(t) for t in texts]
        self.ensure(texts, keys)
        if not keys:
            return np.zeros((0,), dtype=np.float32), np.zeros(0)
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for pos, k in enumerate(keys):
            name, row = self._index[k]
            by_shard.setdefault(name, []).append((pos, row))
        first = next(iter(self._shards.values()))
        shape = first.shape[1:] if layer_pos is None else first.shape[2:]
        out = np.empty((len(keys), *shape), dtype=np.float32)
        for name, items in by_shard.items():
            pos, rows = zip(*items)
            src = self._shards[name]
            rows = np.asarray(rows)
            out[list(pos)] = src[rows] if layer_pos is None else src[rows, layer_pos]
        return out, np.array([self._z[k] for k in keys], dtype=np.float64)

    def get(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(states (n, kept layers, d) float32, zero-shot log-odds (n,)); computes what the cache lacks."""
        return self._rows(texts, None)

    def log_odds(self, texts: Sequence[str]) -> np.ndarray:
        """The zero-shot True/False log-odds (n,), without reading any hidden state."""
        keys = [self.key(t) for t in texts]
        self.ensure(texts, keys)
        return np.array([self._z[k] for k in keys], dtype=np.float64)

    def layer(self, texts: Sequence[str], layer: int) -> tuple[np.ndarray, np.ndarray]:
        """One layer's states (n, d) float32 and the log-odds, read without materialising the other layers."""
        if self.layers is None:
            return self._rows(texts, layer)
        if layer not in self.layers:
            raise ValueError(f"layer {layer} is not kept by this extractor (layers {self.layers})")
        return self._rows(texts, self.layers.index(layer))

    # ------------------------------------------------------------------ extraction

    def ensure(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> None:
        """Extract every text the cache lacks: sorted by length, in batches, one shard written per `shard_mb`."""
        keys = keys if keys is not None else [self.key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self._index}.items(), key=lambda kv: len(kv[1]))
        if not missing:
            return
        t0 = time.perf_counter()
        n_layers = int(self.model.config.get_text_config().num_hidden_layers) + 1
        kept = len(self.layers) if self.layers is not None else n_layers
        width = int(self.model.config.get_text_config().hidden_size)
        per_shard = max(self.batch_size, int(self.shard_mb * 2**20 / (4 * kept * width)) // self.batch_size
                        * self.batch_size)  # whole batches per shard, so batches are the same with or without shards
        bar = tqdm(total=len(missing), desc="features", unit="text", leave=False,
                   disable=not self.show_progress or len(missing) <= self.batch_size)
        for start in range(0, len(missing), per_shard):
            chunk = missing[start:start + per_shard]
            states, z = [], []
            for b in range(0, len(chunk), self.batch_size):
                s, zz = self._forward([t for _, t in chunk[b:b + self.batch_size]])
                states.append(s)
                z += zz
                bar.update(len(s))
            self._write_shard([k for k, _ in chunk], np.concatenate(states), z)
        bar.close()
        self.extract_s += time.perf_counter() - t0

    @torch.inference_mode()
    def _forward(self, texts: list[str]) -> tuple[np.ndarray, list[float]]:
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = [self._prefix + self.tokenizer(t, add_special_tokens=False).input_ids for t in texts]
        input_ids, mask = right_pad(ids, pad)  # read the state at each row's last real token
        last_pos = [len(s) - 1 for s in ids]
        # logits only at the rows' last positions: a full [b, T, vocab] block is GBs for a 262k vocab (Gemma 3)
        keep = sorted(set(last_pos))
        t0 = time.perf_counter()
        out = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device), output_hidden_states=True,
                         logits_to_keep=torch.tensor(keep, device=device))
        self.forward_s += time.perf_counter() - t0
        self.forward_tokens += int(mask.sum())
        last = torch.tensor(last_pos, device=device)
        rows = torch.arange(len(ids), device=device)
        hidden = out.hidden_states if self.layers is None else [out.hidden_states[i] for i in self.layers]
        states = torch.stack([h[rows, last] for h in hidden], dim=1)  # (b, kept layers, d)
        if self.true_ids is None:
            z = torch.zeros(len(ids))
        else:
            cols = torch.tensor([keep.index(p) for p in last_pos], device=device)
            logp = torch.log_softmax(out.logits[rows, cols].double(), dim=-1)  # (b, vocab)
            z = torch.logsumexp(logp[:, self.true_ids], -1) - torch.logsumexp(logp[:, self.false_ids], -1)
            z = z.clamp(-self.clamp, self.clamp)
        return states.float().cpu().numpy(), [float(x) for x in z.cpu().numpy()]


class FeatureSource:
    """texts → (features (n, d), zero-shot True/False log-odds (n,)), plus what a report or a pre-flight check asks."""

    forward_tokens: int = 0  # tokens run through a model to make features

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def check_claims(self, claims: Sequence[Claim]) -> None:
        """Refuse claims this source cannot read (UserError)."""

    def log_odds(self, texts: Sequence[str]) -> np.ndarray:
        """The zero-shot log-odds alone."""
        return self(texts)[1]


class FunctionFeatures(FeatureSource):
    """A plain function as a source (no model behind it: nothing to check, no tokens counted)."""

    def __init__(self, fn: Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]):
        self.fn = fn

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.fn(texts)


class LayerFeatures(FeatureSource):
    """One hidden layer of a `FeatureExtractor`: the label stage's probe features."""

    def __init__(self, extractor: FeatureExtractor, layer: int):
        self.extractor, self.layer = extractor, layer

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.extractor.layer(texts, self.layer)

    def log_odds(self, texts: Sequence[str]) -> np.ndarray:
        return self.extractor.log_odds(texts)

    @property
    def forward_tokens(self) -> int:
        return self.extractor.forward_tokens

    def check_claims(self, claims: Sequence[Claim]) -> None:
        """The probe reads each claim alone: one longer than the model's positions would give a meaningless state,
        so it is refused up front (the in-context scorers refuse an over-long context when they meet it)."""
        model, tokenizer = self.extractor.model, self.extractor.tokenizer
        limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        if not limit:
            return
        extra = len(prefix_ids(tokenizer))
        lengths = tokenizer([c.text for c in claims], add_special_tokens=False).input_ids
        for c, ids in zip(claims, lengths):
            if extra + len(ids) > limit:
                raise UserError(f"claim '{c.id}': {extra + len(ids)} tokens, more than the model's {limit} positions; "
                                "shorten that text (or drop it), or use a model with a longer context")
