"""The result of a search: the highest-U labeling it can name (docs/icm.md, "The result of a search").

Candidates are every chain's best-seen complete labeling (its final state if it never completed one) and the
mirror image of each (all labels negated). The winner is the complete candidate with the highest U; among those
whose U ties the best (a sign-symmetric scorer such as the pure probe gives a labeling and its mirror the same U),
the one the scorer's sign verdict agrees with most. Labelings travel as strings: "T", "F", "." (unlabeled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..scoring.verdicts import signed_agreement, tied_u
from .search_state import decode_labels, encode_labels


class BestSeen:
    """A chain's best complete labeling so far, held as the claims where it differs from the chain's current labeling
    (`current`, the list the chain updates in place), so keeping it costs O(changes) per step, not O(n)."""

    def __init__(self, current: list, saved: dict | None):
        self.current = current
        self.meta = None if saved is None else {k: saved[k] for k in ("iteration", "u", "p", "i")}
        best = decode_labels(saved["labels"]) if saved else current
        self.diff = {k: y for k, (y, c) in enumerate(zip(best, current)) if y != c}  # claim → best's label

    def offer(self, iteration: int, cand: Any, state: Any) -> None:
        """Remember `cand` (the state's current labeling with `cand.changes`) if complete and better than the best."""
        if self.meta is not None and cand.u <= self.meta["u"]:
            return
        gained = sum((state.labels[k] is None) - (y is None) for k, y in cand.changes.items())
        if state.n_labeled + gained < state.n:
            return
        self.meta = {"iteration": iteration, "u": cand.u, "p": cand.p, "i": cand.i}
        self.diff = dict(cand.changes)

    def commit(self, changes: dict) -> None:
        """Call before the chain's labels take `changes`."""
        for k, y in changes.items():
            if k not in self.diff:
                self.diff[k] = self.current[k]
            elif self.diff[k] == y:
                del self.diff[k]

    def as_dict(self) -> dict | None:
        if self.meta is None:
            return None
        labels = list(self.current)
        for k, y in self.diff.items():
            labels[k] = y
        return self.meta | {"labels": encode_labels(labels)}


def verdict_labels(signal: Sequence[float]) -> list:
    """The labeling a zero-shot verdict says: True where its signal is > 0, unlabeled where it says nothing (NaN)."""
    return [None if not np.isfinite(v) else bool(v > 0) for v in signal]


@dataclass
class Candidate:
    """One labeling the search can name, where it came from, and its U = α·P − I."""

    chain: int
    replica: int
    source: str  # the chain's start: random | verdict:<kind>
    mirrored: bool  # the mirror image of the chain's best-seen state
    iteration: int  # where the chain saw it (−1: its final state; it never completed a labeling)
    u: float
    p: float
    i: int
    labels: str  # encode_labels form
    sign_agreement: float  # Σ ±signal of the scorer's sign verdict (the tie-break)

    @property
    def origin(self) -> str:
        seen = f"best seen at iteration {self.iteration}" if self.iteration >= 0 else "final state"
        return f"{'mirror of ' if self.mirrored else ''}chain {self.chain} ({self.source}, replica {self.replica}), " \
               f"{seen}"

    def as_dict(self) -> dict:
        return asdict(self) | {"origin": self.origin}


def rank(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Best first: complete labelings before partial ones (U of a partial labeling averages over fewer claims);
    then the highest U; among those tied with the best, the most sign agreement; then the earliest chain."""
    if not candidates:
        return []
    complete = [c for c in candidates if "." not in c.labels] or list(candidates)
    top = max(c.u for c in complete)
    win = max((c for c in complete if tied_u(c.u, top)), key=lambda c: (c.sign_agreement, -c.chain, not c.mirrored))
    rest = sorted((c for c in candidates if c is not win), key=lambda c: ("." in c.labels, -c.u, c.chain, c.mirrored))
    return [win, *rest]


def collect(chains: Sequence[Any], evaluate: Callable[[list], Any], sign: np.ndarray | None) -> list[Candidate]:
    """Every chain's best-seen labeling and its mirror, U from `evaluate` (the search's own); best first.
    `chains`: the search's ChainStates (chain, replica, origin, best, labels, u, p, i)."""
    out = []
    for st in chains:
        best = st.best or {"labels": encode_labels(st.labels), "iteration": -1, "u": st.u, "p": st.p, "i": st.i}
        labels = decode_labels(best["labels"])
        mirror = [None if y is None else not y for y in labels]
        ev = evaluate(mirror)
        for lab, mirrored, (u, p, i) in ((labels, False, (best["u"], best["p"], best["i"])),
                                         (mirror, True, (ev.u, ev.p, ev.i))):
            out.append(Candidate(st.chain, st.replica, st.origin, mirrored, int(best["iteration"]), u, p, i,
                                 encode_labels(lab), signed_agreement(lab, sign)))
    return rank(out)


def replica_winners(candidates: Sequence[Candidate]) -> dict[int, Candidate]:
    """Each replica's own result (what that replica alone would have returned)."""
    by: dict[int, list[Candidate]] = {}
    for c in candidates:
        by.setdefault(c.replica, []).append(c)
    return {r: rank(cs)[0] for r, cs in sorted(by.items())}
