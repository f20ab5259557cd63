"""Hidden-state features for the probe scorer: the last-token state of every layer for a claim prompt, plus the
LM's zero-shot True/False log-odds from the same forward. Computed once per (model, text) and cached on disk.

A `FeatureSource` is what the probe reads: texts → (features (n, d), zero-shot log-odds (n,)). `LayerFeatures` is
one layer of a `FeatureExtractor` (the label stage's source); `FunctionFeatures` wraps a plain function (tests,
benchmarks)."""

from __future__ import annotations

import hashlib
import io
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
    """`get(texts)` → (states (n, layers+1, d) float32, zero-shot log-odds (n,))."""

    def __init__(self, model, tokenizer, *, cache_dir: str | Path | None = None, batch_size: int = 16,
                 clamp: float = 11.5, show_progress: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.clamp, self.show_progress = batch_size, clamp, show_progress
        try:
            self.true_ids, self.false_ids = true_false_token_ids(tokenizer)
        except UserError:  # no True/False tokens: features still work; zero-shot verdicts are 0 (no anchoring)
            self.true_ids = self.false_ids = None
        self.fingerprint = model_fingerprint(model)
        self.cache_dir = Path(cache_dir) / self.fingerprint if cache_dir else None
        self._mem: dict[str, tuple[np.ndarray, float]] = {}
        self.forward_tokens = 0
        self._prefix = prefix_ids(tokenizer)

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def _load(self, k: str) -> tuple[np.ndarray, float] | None:
        if k in self._mem:
            return self._mem[k]
        if self.cache_dir is not None:
            f = self.cache_dir / k[:2] / f"{k}.npz"
            if f.exists():
                try:
                    with np.load(f) as z:
                        item = (z["h"].astype(np.float32), float(z["z"]))
                    self._mem[k] = item
                    return item
                except (OSError, ValueError, KeyError):
                    f.unlink(missing_ok=True)  # a corrupt cache entry is recomputed
        return None

    def _store(self, k: str, h: np.ndarray, z: float) -> None:
        self._mem[k] = (h, z)
        if self.cache_dir is not None:
            buf = io.BytesIO()
            np.savez(buf, h=h, z=np.float64(z))
            atomic_write_bytes(self.cache_dir / k[:2] / f"{k}.npz", buf.getvalue())

    def get(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        keys = [self.key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if self._load(k) is None}.items(), key=lambda kv: len(kv[1]))
        if missing:
            self._compute(missing)
        items = [self._load(k) for k in keys]
        return np.stack([h for h, _ in items]), np.array([z for _, z in items], dtype=np.float64)

    @torch.inference_mode()
    def _compute(self, items: list[tuple[str, str]]) -> None:
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batches = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        for batch in tqdm(batches, desc="features", disable=not self.show_progress or len(batches) < 2, leave=False):
            ids = [self._prefix + self.tokenizer(t, add_special_tokens=False).input_ids for _, t in batch]
            input_ids, mask = right_pad(ids, pad)  # read the state at each row's last real token
            last_pos = [len(s) - 1 for s in ids]
            # logits only at the rows' last positions: a full [b, T, vocab] block is GBs for a 262k vocab (Gemma 3)
            keep = sorted(set(last_pos))
            out = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device), output_hidden_states=True,
                             logits_to_keep=torch.tensor(keep, device=device))
            self.forward_tokens += int(mask.sum())
            last = torch.tensor(last_pos, device=device)
            rows = torch.arange(len(ids), device=device)
            states = torch.stack([h[rows, last] for h in out.hidden_states], dim=1)  # (b, layers+1, d)
            if self.true_ids is None:
                z = torch.zeros(len(ids))
            else:
                cols = torch.tensor([keep.index(p) for p in last_pos], device=device)
                logp = torch.log_softmax(out.logits[rows, cols].double(), dim=-1)  # (b, vocab)
                z = torch.logsumexp(logp[:, self.true_ids], -1) - torch.logsumexp(logp[:, self.false_ids], -1)
                z = z.clamp(-self.clamp, self.clamp)
            for (k, _), h, zz in zip(batch, states.float().cpu().numpy(), z.cpu().numpy()):
                self._store(k, h, float(zz))


class FeatureSource:
    """texts → (features (n, d), zero-shot True/False log-odds (n,)), plus what a report or a pre-flight check asks."""

    forward_tokens: int = 0  # tokens run through a model to make features

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def check_claims(self, claims: Sequence[Claim]) -> None:
        """Refuse claims this source cannot read (UserError)."""


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
        states, z = self.extractor.get(texts)
        return states[:, self.layer], z

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
