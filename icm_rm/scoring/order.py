"""The canonical demonstration order each query sees. Fast and naive scorers both build contexts from here, so
they must agree exactly.

Recursion (docs/icm.md): over the active items (labeled claims and queries, in pool order),
    order(S, prefix): if |S| = 1 → the query in S sees `prefix`;
                      else split S = A ‖ B (at the group boundary nearest the middle, so groups stay together
                      where the split allows) → order(A, prefix + demos(B)), order(B, prefix + demos(A)).
demos(X) = labeled members of X in pool order. Every query sees every other labeled claim exactly once; the prefix
for a subtree is shared by all its queries, which is what the KV-cache scorer exploits (≈ n·L·log₂n tokens).

With a context cap (`max_demos`), query i instead sees: the labeled members of its own group, then the labeled
claims that follow i in pool order (wrapping round), until `max_demos` are taken; these are presented in pool order.
"""

from __future__ import annotations

from collections.abc import Sequence


def split_point(groups: Sequence[str], lo: int, hi: int) -> int:
    """Index m in (lo, hi) splitting items[lo:hi] into two non-empty halves, at the group boundary nearest the
    middle when one exists, else the middle."""
    n = hi - lo
    mid = lo + n // 2
    best = None
    for m in range(lo + 1, hi):
        if groups[m] != groups[m - 1]:
            if best is None or abs(m - mid) < abs(best - mid) or (abs(m - mid) == abs(best - mid) and m < best):
                best = m
    return best if best is not None else mid


def active_items(labels: Sequence[bool | None], queries: Sequence[int]) -> list[int]:
    """Pool indices taking part in the recursion: labeled claims and queries, in pool order."""
    qs = set(queries)
    return [i for i, y in enumerate(labels) if y is not None or i in qs]


def loo_orders(groups: Sequence[str], labels: Sequence[bool | None], queries: Sequence[int]) -> dict[int, list[int]]:
    """For each query q: the pool indices of the demonstrations in its context, in order."""
    items = active_items(labels, queries)
    item_groups = [groups[i] for i in items]
    qs = set(queries)
    out: dict[int, list[int]] = {}

    def demos(lo: int, hi: int) -> list[int]:
        return [items[k] for k in range(lo, hi) if labels[items[k]] is not None]

    def rec(lo: int, hi: int, prefix: list[int]) -> None:
        if hi - lo == 1:
            if items[lo] in qs:
                out[items[lo]] = prefix
            return
        m = split_point(item_groups, lo, hi)
        rec(lo, m, prefix + demos(m, hi))
        rec(m, hi, prefix + demos(lo, m))

    if items:
        rec(0, len(items), [])
    return out


def capped_orders(groups: Sequence[str], labels: Sequence[bool | None], queries: Sequence[int],
                  max_demos: int) -> dict[int, list[int]]:
    """Per-query contexts under a cap: own-group labeled members first, then the following labeled claims."""
    n = len(labels)
    out: dict[int, list[int]] = {}
    for q in queries:
        chosen = [j for j in range(n) if j != q and labels[j] is not None and groups[j] == groups[q]][:max_demos]
        taken = set(chosen)
        k = 1
        while len(chosen) < max_demos and k < n:
            j = (q + k) % n
            if j != q and labels[j] is not None and j not in taken:
                chosen.append(j)
                taken.add(j)
            k += 1
        out[q] = sorted(chosen)
    return out


def context_orders(groups: Sequence[str], labels: Sequence[bool | None], queries: Sequence[int],
                   max_demos: int | None = None) -> dict[int, list[int]]:
    if max_demos is None:
        return loo_orders(groups, labels, queries)
    return capped_orders(groups, labels, queries, max_demos)
