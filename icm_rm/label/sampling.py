"""Weighted claim sampling for the search in O(log n) per draw and per weight change (a Fenwick tree).

Weights are integers (1, or the priority weight for an unlabeled claim whose group has a labeled member), so the
prefix sums are exact. A draw consumes exactly one `rng.random()` and returns the index that
`rng.choice(n, p=w / w.sum())` returns for the same stream: numpy draws u the same way and picks the first index
whose cumulative probability exceeds u. (Only a u within float rounding of a cumulative boundary could differ.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class PrioritySampler:
    """Sampling weights of n claims under point updates."""

    def __init__(self, weights: Sequence[int]):
        self.n = len(weights)
        self.w = [int(x) for x in weights]
        self.tree = [0] * (self.n + 1)
        for i, x in enumerate(self.w):  # O(n) build
            j = i + 1
            self.tree[j] += x
            parent = j + (j & -j)
            if parent <= self.n:
                self.tree[parent] += self.tree[j]
        self.total = sum(self.w)
        self._top = 1 << max(self.n.bit_length() - 1, 0)

    def set(self, i: int, weight: int) -> None:
        d = int(weight) - self.w[i]
        if not d:
            return
        self.w[i] = int(weight)
        self.total += d
        j = i + 1
        while j <= self.n:
            self.tree[j] += d
            j += j & -j

    def draw(self, rng: np.random.Generator) -> int:
        """The index whose cumulative weight first exceeds u·total, u = rng.random()."""
        target = rng.random() * self.total
        pos, step = 0, self._top
        while step:  # largest pos with prefix(pos) ≤ target: the index of the first prefix > target
            nxt = pos + step
            if nxt <= self.n and self.tree[nxt] <= target:
                pos = nxt
                target -= self.tree[nxt]
            step >>= 1
        return min(pos, self.n - 1)
