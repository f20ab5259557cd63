"""Exact leave-one-out log-odds with KV-cache prefix sharing (docs/icm.md), equal to `NaiveScorer` to float tolerance.

The recursion of `order.loo_orders` runs depth-first on one cached row: a subtree's queries share its prefix, so the
cache is extended by the sibling's demonstrations, the subtree is scored, and the cache is cropped back
(≈ n·L·log₂n tokens instead of n²·L). Near the leaves many tiny forwards would dominate, so once a subtree fits
the KV memory budget (`kv_budget_mb`) it is finished breadth-first: each level of its recursion runs as a few padded
batches (rows = the subtree's nodes at that depth, each a copy of its parent's row plus its own extension; rows of
similar length batched together, `plan_batches`), and each query is scored as a branch of its parent's row
(sibling's demonstrations + query) without copying it. Capped contexts (`max_demos`) and zero-shot scoring (no
labels) share nothing worth caching and run as length-sorted padded batches.

Scores are cached by (query text, demonstrations (text, label) in context order), so re-scoring an unchanged
context is free (`stats.cache_hits`); `stats.forward_tokens` counts every token run through the model, pads
included (`stats.extra["pad_tokens"]`). Flipping one label changes every other query's context (each holds that
demonstration), so re-scoring after a flip costs nearly a full scoring; undoing it (a rejected proposal) is free.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from itertools import accumulate

import numpy as np
import torch

from ..data.records import Claim
from .base import DEFAULT_CLAMP, Label, Prior, ScorerStats
from .incontext import InContextScorer
from .kv import KVRows, gather
from .lm import CausalLMRunner
from .order import active_items, context_orders, split_point
from .settings import ScorerSettings
from .tokens import TokenCache, check_context_length


class ScoreCache:
    """(query text, demonstrations in order) → raw log-odds; keys are 16-byte digests so a long search stays small."""

    def __init__(self, max_entries: int = 1_000_000):
        self.max_entries = max_entries
        self._text_ids: dict[str, int] = {}
        self._scores: dict[bytes, float] = {}

    def key(self, query_text: str, demo_texts: Sequence[str], demo_labels: Sequence[bool]) -> bytes:
        codes = array("q", [self._text_id(query_text)])
        codes.extend(2 * self._text_id(t) + int(y) for t, y in zip(demo_texts, demo_labels))
        return hashlib.blake2b(codes.tobytes(), digest_size=16).digest()

    def _text_id(self, text: str) -> int:
        return self._text_ids.setdefault(text, len(self._text_ids))

    def get(self, key: bytes) -> float | None:
        return self._scores.get(key)

    def put(self, key: bytes, score: float) -> None:
        if len(self._scores) >= self.max_entries:
            del self._scores[next(iter(self._scores))]  # oldest first
        self._scores[key] = score

    def clear(self) -> None:
        self._scores.clear()

    def __len__(self) -> int:
        return len(self._scores)


def plan_batches(lengths: Sequence[int], overhead_tokens: float) -> list[list[int]]:
    """Partition rows (by index) into padded batches minimising Σ (overhead + rows × longest), rows sorted by
    length so each batch is a contiguous run; a batch of empty rows costs nothing (no forward)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j sorted rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]
        for i in range(j):
            cost = best[i] + ((j - i) * longest + overhead_tokens if longest else 0.0)
            if cost < best[j]:
                best[j], cut[j] = cost, i
    out, j = [], n
    while j > 0:
        out.append(order[cut[j]:j])
        j = cut[j]
    return out[::-1]


class HFScorer(InContextScorer):
    """Exact LOO in-context log-odds from a transformers causal LM, sharing KV-cache prefixes across queries."""

    name = "hf"
    summary = "many-shot in-context log-odds, exact LOO with KV-cache prefix sharing"

    def __init__(self, model, tokenizer, clamp: float = DEFAULT_CLAMP, max_demos: int | None = None,
                 kv_budget_mb: float | None = None, block_items: int | None = None, batch_tokens: int = 4096,
                 cache_entries: int = 1_000_000, forward_overhead_tokens: float | None = None,
                 prior: Prior | None = None):
        """kv_budget_mb bounds the batched KV cache of a breadth-first leaf block (default 1024 on CPU, a quarter of
        the free memory on CUDA, where fewer, larger forwards win); block_items caps its size (default 32 on CPU;
        none on an accelerator, where the budget alone bounds it: fewer forwards, BENCHMARKS §6);
        batch_tokens bounds a padded batch (rows × length) for capped / zero-shot scoring;
        forward_overhead_tokens prices one extra forward in padded tokens when splitting a level into batches
        (default 64 on CPU, 4096 on an accelerator, where a forward's fixed cost dwarfs a token's);
        prior: the zero-shot likelihood verdict on pair pools (`likelihood.pair_prior`)."""
        self.model, self.tokenizer, self.prior = model, tokenizer, prior
        self.clamp, self.max_demos = clamp, max_demos
        self.batch_tokens = batch_tokens
        self.stats = ScorerStats()
        self.tokens = TokenCache(tokenizer)
        self.runner = CausalLMRunner(model, tokenizer, self.stats)
        self.scores = ScoreCache(cache_entries)
        self.kv_budget_request = kv_budget_mb  # as asked (None: sized from the device), for a rebuilt copy
        if kv_budget_mb is None:
            kv_budget_mb = 1024.0
            if self.runner.device.type == "cuda":
                kv_budget_mb = max(kv_budget_mb, torch.cuda.mem_get_info(self.runner.device)[0] / 4 / 2**20)
        self.kv_budget_mb = kv_budget_mb
        on_cpu = self.runner.device.type == "cpu"  # elsewhere a forward's fixed cost dwarfs a token's
        if forward_overhead_tokens is None:
            forward_overhead_tokens = 64 if on_cpu else 4096
        if block_items is None:
            block_items = 32 if on_cpu else 1 << 30
        self.forward_overhead_tokens, self.block_items = forward_overhead_tokens, block_items

    @classmethod
    def settings_kwargs(cls, settings: ScorerSettings) -> dict:
        return {**super().settings_kwargs(settings), "kv_budget_mb": settings.kv_budget_mb}

    def rebuild_kwargs(self) -> dict:
        return {**super().rebuild_kwargs(), "kv_budget_mb": self.kv_budget_request}

    def clear_cache(self) -> None:
        self.scores.clear()

    def loo_scores(self, claims: Sequence[Claim], labels: Sequence[Label], queries: Sequence[int]) -> np.ndarray:
        orders = context_orders([c.group for c in claims], labels, queries, self.max_demos)
        keys = {q: self.scores.key(claims[q].text, [claims[j].text for j in orders[q]],
                                   [bool(labels[j]) for j in orders[q]]) for q in queries}
        misses = {q for q in queries if self.scores.get(keys[q]) is None}
        todo = sorted(misses)
        self.stats.cache_hits += sum(1 for q in queries if q not in misses)
        for q in todo:
            n = len(self.tokens.prefix) + len(self.tokens.query(claims[q].text)) + sum(
                len(self.tokens.demo(claims[j].text, bool(labels[j]))) for j in orders[q])
            check_context_length(claims[q].id, n, self.runner.max_positions)
        if todo:
            if self.max_demos is not None or all(y is None for y in labels):
                new = self._score_expanded(claims, labels, {q: orders[q] for q in todo})
            else:
                new = _LooRecursion(self, claims, labels, queries, misses).run()
            for q, s in new.items():
                self.scores.put(keys[q], s)
        self.stats.queries += len(queries)
        out = np.array([self.scores.get(keys[q]) for q in queries], dtype=np.float64)
        return np.clip(out, -self.clamp, self.clamp)

    def _score_expanded(self, claims: Sequence[Claim], labels: Sequence[Label],
                        orders: dict[int, list[int]]) -> dict[int, float]:
        """Each query's full context, run as length-sorted right-padded batches."""
        ctx = {q: self.tokens.context(claims[q].text, [claims[j].text for j in d], [bool(labels[j]) for j in d])
               for q, d in orders.items()}
        order = sorted(ctx, key=lambda q: len(ctx[q]))
        out: dict[int, float] = {}
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop - start + 1) * len(ctx[order[stop]]) <= self.batch_tokens:
                stop += 1
            batch = order[start:stop]
            rows = KVRows.empty(self.runner, len(batch))
            hidden = rows.extend([ctx[q] for q in batch], keep=False)  # [B, H]
            out.update(zip(batch, self.runner.tf_log_odds(hidden).tolist()))
            start = stop
        return out


class _LooRecursion:
    """One `loo_scores` call's divide-and-conquer over the active items (splits exactly as `order.loo_orders`)."""

    def __init__(self, scorer: HFScorer, claims: Sequence[Claim], labels: Sequence[Label],
                 queries: Sequence[int], todo: set[int]):
        self.s, self.runner = scorer, scorer.runner
        self.items = active_items(labels, queries)
        self.groups = [claims[i].group for i in self.items]
        tok = scorer.tokens
        self.demo = [tok.demo(claims[i].text, bool(labels[i])) if labels[i] is not None else [] for i in self.items]
        self.query = [tok.query(claims[i].text) if i in todo else [] for i in self.items]
        self.work = [0, *accumulate(int(i in todo) for i in self.items)]  # prefix counts of queries to score
        self.demo_tokens = [0, *accumulate(len(d) for d in self.demo)]
        self.max_query = max(len(q) for q in self.query)
        self.kv_budget = scorer.kv_budget_mb * 2**20 / self.runner.kv_bytes_per_token()  # token-rows
        self.out: dict[int, float] = {}

    def run(self) -> dict[int, float]:
        root = KVRows.empty(self.runner, reserve=len(self.s.tokens.prefix) + self._growth(0, len(self.items)))
        if self.s.tokens.prefix:
            root.extend([self.s.tokens.prefix])
        self._depth_first(0, len(self.items), root)
        return self.out

    def _has_work(self, lo: int, hi: int) -> bool:
        return self.work[hi] > self.work[lo]

    def _demos(self, lo: int, hi: int) -> list[int]:
        return [t for k in range(lo, hi) for t in self.demo[k]]

    def _halves(self, lo: int, hi: int):
        """((child range), (range whose demos extend the child's prefix)) for both children, as loo_orders."""
        m = split_point(self.groups, lo, hi)
        return (((lo, m), (m, hi)), ((m, hi), (lo, m)))

    def _fits(self, lo: int, hi: int, prefix_len: int) -> bool:
        if hi - lo <= 2:
            return True
        rows = self.work[hi] - self.work[lo]
        length = prefix_len + self.demo_tokens[hi] - self.demo_tokens[lo] + self.max_query
        return hi - lo <= self.s.block_items and rows * length <= self.kv_budget

    def _depth_first(self, lo: int, hi: int, rows: KVRows) -> None:
        """Score the queries in items[lo:hi] on top of the single cached row `rows` (left as it was found)."""
        if not self._has_work(lo, hi):
            return
        if self._fits(lo, hi, rows.slots):
            self._breadth_first(lo, hi, rows)
            return
        for (a, b), (c, d) in self._halves(lo, hi):
            if not self._has_work(a, b):
                continue
            ext = self._demos(c, d)
            if ext:
                rows.extend([ext])
            self._depth_first(a, b, rows)
            rows.crop(len(ext))

    def _breadth_first(self, lo: int, hi: int, base: KVRows) -> None:
        """Finish items[lo:hi] level by level from `base`'s single row. Each level's inner nodes extend a copy of
        their parent's row, in a few padded batches of similar lengths; its leaves are scored as branches of their
        parent's row (sibling demonstrations + query), without copying it."""
        if hi - lo == 1:
            self._record([lo], base.extend([self.query[lo]], keep=False))
            return
        nodes = [((lo, hi), base, 0)]  # (item range, rows holding its prefix, row index)
        while nodes:
            inner = []  # (item range, parent rows, parent row index, new ids)
            leaves: dict[int, tuple[KVRows, list[tuple[int, int, list[int]]]]] = {}  # by id(parent rows)
            for (a, b), src, r in nodes:
                for (c, d), (e, f) in self._halves(a, b):
                    if not self._has_work(c, d):
                        continue
                    if d - c == 1:
                        leaves.setdefault(id(src), (src, []))[1].append((r, c, self._demos(e, f) + self.query[c]))
                    else:
                        inner.append(((c, d), src, r, self._demos(e, f)))
            for src, found in leaves.values():
                branches: list[list[list[int]]] = [[] for _ in range(src.rows)]
                items: list[list[int]] = [[] for _ in range(src.rows)]
                for r, c, ids in found:
                    branches[r].append(ids)
                    items[r].append(c)
                self._record([c for row in items for c in row], src.score_branches(branches))
            nodes = []
            for batch in plan_batches([len(k[3]) for k in inner], self.s.forward_overhead_tokens):
                reserve = max(len(inner[k][3]) + self._growth(*inner[k][0]) for k in batch)
                rows = gather(_runs([(inner[k][1], inner[k][2]) for k in batch]), reserve)
                if any(inner[k][3] for k in batch):
                    rows.extend([inner[k][3] for k in batch])
                nodes.extend((inner[k][0], rows, i) for i, k in enumerate(batch))

    def _growth(self, lo: int, hi: int) -> int:
        """Most tokens a row holding the prefix of items[lo:hi] (≥ 2 items) still appends: its demonstrations, plus
        a query per leaf branch (at most two branches hang off one row)."""
        return self.demo_tokens[hi] - self.demo_tokens[lo] + 2 * self.max_query

    def _record(self, positions: list[int], hidden) -> None:
        if positions:
            for k, s in zip(positions, self.runner.tf_log_odds(hidden).tolist()):
                self.out[self.items[k]] = s


def _runs(rows: list[tuple[KVRows, int]]) -> list[tuple[KVRows, list[int]]]:
    """(source, row) pairs → consecutive runs sharing a source, as `gather` takes them."""
    out: list[tuple[KVRows, list[int]]] = []
    for src, r in rows:
        if out and out[-1][0] is src:
            out[-1][1].append(r)
        else:
            out.append((src, [r]))
    return out
