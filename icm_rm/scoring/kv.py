"""Batched KV-cache rows for prefix-sharing scorers: R sequences in one cache, padding anywhere, exact masks.

Each batched extension is right-padded, so after a few of them pads sit between real tokens; a forward over padded
rows therefore gets explicit position ids and an explicit mask from the per-slot `valid`/`pos` tensors
(`CausalLMRunner.mask`). `score_branches` runs several continuations of one row side by side in the same sequence
(a tree mask keeps them apart), so scoring the leaves of a subtree needs no copy of their shared prefix. Cache
layers are full (never sliding-window) and keep spare capacity, so `crop` works at any length and an extension
writes in place instead of re-concatenating the whole cache every forward.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer

from .lm import CausalLMRunner


class GrowableLayer(DynamicLayer):
    """A full-attention cache layer with spare capacity; `keys`/`values` are views of the first n slots."""

    def __init__(self, reserve: int = 0):
        super().__init__()
        self.reserve = reserve  # extra slots to allocate when (re)allocating
        self.n = 0
        self._k: torch.Tensor | None = None  # [R, heads, capacity, dim]
        self._v: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.n + key_states.shape[-2]
        if self._k is None or end > self._k.shape[-2]:
            self._grow(key_states, value_states, end)
        self._k[:, :, self.n:end] = key_states
        self._v[:, :, self.n:end] = value_states
        self.n = end
        self._expose()
        return self.keys, self.values

    def _grow(self, k_like: torch.Tensor, v_like: torch.Tensor, end: int) -> None:
        old = 0 if self._k is None else self._k.shape[-2]
        cap = max(end + self.reserve, 2 * old)
        k = k_like.new_empty((*k_like.shape[:2], cap, k_like.shape[3]))
        v = v_like.new_empty((*v_like.shape[:2], cap, v_like.shape[3]))
        if self.n:
            k[:, :, :self.n] = self._k[:, :, :self.n]
            v[:, :, :self.n] = self._v[:, :, :self.n]
        self._k, self._v = k, v

    def adopt(self, k: torch.Tensor, v: torch.Tensor, n: int) -> None:
        """Take buffers [R, heads, capacity, dim] whose first n slots are filled."""
        self._k, self._v, self.n = k, v, n
        self.device, self.is_initialized = k.device, True
        self._expose()

    def _expose(self) -> None:
        self.keys = self._k[:, :, :self.n]
        self.values = self._v[:, :, :self.n]

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative count of tokens to drop")
        if self.is_initialized and self._k is not None:
            self.n = max(0, self.n + tokens_to_remove)
            self._expose()


def new_cache(layers: int, reserve: int = 0) -> Cache:
    return Cache(layers=[GrowableLayer(reserve) for _ in range(layers)])


class KVRows:
    """R token sequences sharing one batched cache, with per-slot validity and positions."""

    def __init__(self, runner: CausalLMRunner, cache: Cache, valid: torch.Tensor, pos: torch.Tensor):
        self.runner, self.cache = runner, cache
        self.valid = valid  # [R, C] bool: slot holds a real token (False: padding)
        self.pos = pos  # [R, C] long: position id of each slot
        self.lengths = valid.sum(1)  # [R] real tokens per row = next position id

    @classmethod
    def empty(cls, runner: CausalLMRunner, rows: int = 1, reserve: int = 0) -> "KVRows":
        z = torch.zeros((rows, 0), device=runner.device)
        return cls(runner, new_cache(runner.config.num_hidden_layers, reserve), z.bool(), z.long())

    @property
    def rows(self) -> int:
        return self.valid.shape[0]

    @property
    def slots(self) -> int:
        return self.valid.shape[1]

    def extend(self, new_ids: Sequence[Sequence[int]], keep: bool = True) -> torch.Tensor:
        """Append new_ids[r] to row r (right-padded to one length) and run them; returns the final hidden state at
        each row's last new token [R, H] (undefined for rows given no tokens). `keep=False`: leave the rows as they
        were (the tokens are only scored)."""
        r, s = self.rows, max(len(x) for x in new_ids)
        pad = self.runner.tokenizer.pad_token_id or 0
        ids = torch.full((r, s), pad, dtype=torch.long)
        q_valid = torch.zeros((r, s), dtype=torch.bool)
        for i, x in enumerate(new_ids):
            ids[i, :len(x)] = torch.as_tensor(x, dtype=torch.long)
            q_valid[i, :len(x)] = True
        dev = self.runner.device
        ids, q_valid = ids.to(dev), q_valid.to(dev)
        q_pos = self.lengths[:, None] + torch.arange(s, device=dev)  # [R, S]
        kv_valid = torch.cat([self.valid, q_valid], 1)  # [R, C+S]
        kv_pos = torch.cat([self.pos, q_pos], 1)
        # Without padding, slot index = position and transformers' own causal / sliding masks are exact; they also
        # let sdpa skip the masked half of a square (first) block instead of computing it under an explicit mask.
        mask = None if bool(kv_valid.all()) else self.runner.mask(q_pos, kv_pos, kv_valid)
        use_cache = keep or self.slots > 0
        with torch.inference_mode(), _sdpa_gqa(dev.type == "cpu"):
            out = self.runner.decoder(input_ids=ids, attention_mask=mask, position_ids=q_pos,
                                      cache=self.cache if use_cache else None, use_cache=use_cache)
        if not keep and use_cache:
            self.cache.crop(-s)
        self._count(r * s, int(q_valid.sum()))
        last = (q_valid.sum(1) - 1).clamp(min=0)  # [R]
        hidden = out.last_hidden_state[torch.arange(r, device=dev), last]  # [R, H]
        if keep:
            self.valid, self.pos = kv_valid, kv_pos
            self.lengths = self.lengths + q_valid.sum(1)
        return hidden

    def score_branches(self, branches: Sequence[Sequence[Sequence[int]]]) -> torch.Tensor:
        """Run several continuations of each row in one forward, without copying the row: branches[r] are token
        lists that each start right after row r (same positions) and see the row and themselves, not each other.
        Returns the final hidden state at each branch's last token, rows in order [Σ branches, H]; the rows are
        left as they were."""
        seqs = [[t for b in row for t in b] for row in branches]
        r, s = self.rows, max(len(x) for x in seqs)
        dev = self.runner.device
        ids = torch.full((r, s), self.runner.tokenizer.pad_token_id or 0, dtype=torch.long)
        offset = torch.zeros((r, s), dtype=torch.long)  # position within its branch
        branch = torch.zeros((r, s), dtype=torch.long)  # 1, 2, … per row; 0 = padding
        last = []  # (row, column) of each branch's final token
        for i, row in enumerate(branches):
            at = 0
            for k, b in enumerate(row, start=1):
                ids[i, at:at + len(b)] = torch.as_tensor(b, dtype=torch.long)
                offset[i, at:at + len(b)] = torch.arange(len(b))
                branch[i, at:at + len(b)] = k
                at += len(b)
                last.append((i, at - 1))
        ids, offset, branch = ids.to(dev), offset.to(dev), branch.to(dev)
        q_valid = branch > 0
        q_pos = self.lengths[:, None] + offset  # [R, S]
        kv_valid = torch.cat([self.valid, q_valid], 1)  # [R, C+S]
        kv_pos = torch.cat([self.pos, q_pos], 1)
        kv_branch = torch.cat([torch.zeros_like(self.pos), branch], 1)
        mask = self.runner.mask(q_pos, kv_pos, kv_valid, branch, kv_branch)
        with torch.inference_mode(), _sdpa_gqa(dev.type == "cpu"):
            out = self.runner.decoder(input_ids=ids, attention_mask=mask, position_ids=q_pos,
                                      cache=self.cache, use_cache=True)
        self.cache.crop(-s)
        self._count(r * s, int(q_valid.sum()))
        rows_idx, cols = (torch.tensor(x, device=dev) for x in zip(*last))
        return out.last_hidden_state[rows_idx, cols]  # [Σ branches, H]

    def _count(self, tokens: int, real: int) -> None:
        stats = self.runner.stats
        stats.forward_calls += 1
        stats.forward_tokens += tokens
        stats.extra["pad_tokens"] = stats.extra.get("pad_tokens", 0) + tokens - real

    def crop(self, n: int) -> None:
        """Drop the last n slots of every row (undo an `extend`)."""
        if n <= 0:
            return
        self.cache.crop(-n)
        self.lengths = self.lengths - self.valid[:, -n:].sum(1)
        self.valid, self.pos = self.valid[:, :-n], self.pos[:, :-n]

    def select(self, rows: Sequence[int], reserve: int = 0) -> "KVRows":
        """A new KVRows whose row k copies row rows[k] of this one (this one is left untouched)."""
        return gather([(self, list(rows))], reserve)


def gather(sources: Sequence[tuple[KVRows, list[int]]], reserve: int = 0) -> KVRows:
    """Stack the given rows of several KVRows into a new one with `reserve` spare slots per row; shorter caches
    are padded at the end with invalid, zeroed slots."""
    runner = sources[0][0].runner
    dev = runner.device
    width = max(src.slots for src, _ in sources)
    valid = torch.cat([_pad(src.valid[_idx(rows, dev)], width, False) for src, rows in sources])
    pos = torch.cat([_pad(src.pos[_idx(rows, dev)], width, 0) for src, rows in sources])
    cache = new_cache(runner.config.num_hidden_layers, reserve)
    filled = [src for src, _ in sources if src.slots]
    if filled:
        for i, layer in enumerate(cache.layers):
            like = filled[0].cache.layers[i]
            k = _gather_layer([(src.cache.layers[i].keys, rows, src.slots) for src, rows in sources],
                              like.keys, width, reserve)
            v = _gather_layer([(src.cache.layers[i].values, rows, src.slots) for src, rows in sources],
                              like.values, width, reserve)
            layer.adopt(k, v, width)
    return KVRows(runner, cache, valid, pos)


def _gather_layer(parts, like: torch.Tensor, width: int, reserve: int) -> torch.Tensor:
    """[Σ rows, heads, width + reserve, dim] buffer: the chosen rows of each part, zero slots after a part's end."""
    total = sum(len(rows) for _, rows, _ in parts)
    out = like.new_empty((total, like.shape[1], width + reserve, like.shape[3]))
    at = 0
    for kv, rows, slots in parts:
        if slots < width:
            out[at:at + len(rows), :, slots:width] = 0
        if slots:
            if rows == list(range(rows[0], rows[0] + len(rows))):
                out[at:at + len(rows), :, :slots] = kv[rows[0]:rows[0] + len(rows)]
            else:
                for j, r in enumerate(rows):
                    out[at + j, :, :slots] = kv[r]
        at += len(rows)
    return out


def _idx(rows: list[int], device) -> torch.Tensor:
    return torch.as_tensor(rows, dtype=torch.long, device=device)


def _pad(x: torch.Tensor, width: int, value) -> torch.Tensor:
    """[R, C] → [R, width], new columns = value."""
    return torch.cat([x, x.new_full((x.shape[0], width - x.shape[1]), value)], 1)


@contextlib.contextmanager
def _sdpa_gqa(enabled: bool) -> Iterator[None]:
    """Let transformers' sdpa attend grouped KV heads in the kernel even with a mask. Otherwise it copies K/V once per
    query head (repeat_kv) every layer, which on CPU costs more than the attention itself; on CUDA a mask with GQA
    would fall back to the math kernel, so there it stays off."""
    if not enabled:
        yield
        return
    key = "TRANSFORMERS_SDPA_FORCE_GQA"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before
