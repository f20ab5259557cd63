"""The resumable state of a search, saved so that a checkpoint costs O(n + what is new), not O(everything so far).

`<state>.json` (rewritten atomically at each checkpoint) holds each chain's labels as one "TF." string, its counters,
RNG state and scorer sums; `<state>.log` is append-only: one line per checkpoint with the history rows and label
snapshots added since the last one (fsynced before the JSON is replaced). A reader takes from the log exactly the
rows the JSON counts, so rows a killed run appended after its last checkpoint, or a torn last line, are ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..infra.errors import UserError
from ..infra.io import atomic_write_text

_LOGGED = ("history", "snapshots")


_CODE = {None: ".", True: "T", False: "F"}


def encode_labels(labels: Sequence[bool | None]) -> str:
    return "".join(map(_CODE.__getitem__, labels))


def decode_labels(s: str) -> list:
    return [None if c == "." else c == "T" for c in s]


@dataclass
class ChainState:
    """Everything a chain needs to continue bit-for-bit: labels, their scores, counters, RNG and history."""

    chain: int
    labels: list
    scores: list  # without a scorer session: the current scores (a resume must not recompute them); else []
    u: float
    p: float
    i: int
    iteration: int = 0
    accepted: int = 0
    since_accept: int = 0
    proposals: int = 0  # proposals that differed from the current label (each cost a re-score)
    seed_indices: list = field(default_factory=list)  # claims that got the K random seed labels
    rng_state: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # [iteration, U, P, I, T, accepted, n_labeled]
    snapshots: list = field(default_factory=list)  # [iteration, "TF.…" labels]
    done: bool = False
    scorer_state: dict = field(default_factory=dict)  # the scorer session's running sums (resume bit for bit)
    origin: str = "random"  # random | verdict:<name> (started from that zero-shot verdict)
    replica: int = 0
    best: dict | None = None  # the best complete labeling the chain evaluated: iteration, u, p, i, labels ("TF")


@dataclass
class SearchState:
    """The resumable state of a whole search (all chains)."""

    fingerprint: str
    chains: list = field(default_factory=list)  # finished ChainStates
    current: ChainState | None = None  # the chain in progress


class StateFile:
    """Saves and loads a `SearchState` at `path` (+ its append-only log)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.log = self.path.with_suffix(".log")
        self._written: dict[int, tuple[int, int]] = {}  # chain → (history rows, snapshots) already in the log
        self._fresh = True  # the first save of a new search starts the log over

    def save(self, state: SearchState) -> None:
        lines = []
        for st in state.chains + ([state.current] if state.current is not None else []):
            h, s = self._written.get(st.chain, (0, 0))
            if len(st.history) > h or len(st.snapshots) > s:
                lines.append(json.dumps({"chain": st.chain, "history": [h, st.history[h:]],
                                         "snapshots": [s, st.snapshots[s:]]}, separators=(",", ":")) + "\n")
                self._written[st.chain] = (len(st.history), len(st.snapshots))
        if lines or self._fresh:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "w" if self._fresh else "a", encoding="utf-8") as f:
                f.write("".join(lines))
                f.flush()
                os.fsync(f.fileno())
            self._fresh = False
        doc = {"fingerprint": state.fingerprint, "chains": [_chain_json(c) for c in state.chains],
               "current": _chain_json(state.current) if state.current is not None else None}
        atomic_write_text(self.path, json.dumps(doc, separators=(",", ":")) + "\n")

    def load(self) -> SearchState:
        try:
            doc = json.loads(self.path.read_text())
            rows = self._read_log()
            chains = [_chain_from(d, rows) for d in doc["chains"]]
            current = _chain_from(doc["current"], rows) if doc["current"] is not None else None
            state = SearchState(fingerprint=doc["fingerprint"], chains=chains, current=current)
        except (json.JSONDecodeError, TypeError, KeyError, ValueError, UnicodeDecodeError, OSError) as e:
            raise UserError(f"{self.path}: search state is unreadable ({e}); remove it to start over") from None
        self._written = {c.chain: (len(c.history), len(c.snapshots)) for c in chains + [current] if c is not None}
        self._fresh = False
        return state

    def _read_log(self) -> dict[int, dict[str, list]]:
        rows: dict[int, dict[str, list]] = {}
        if not self.log.exists():
            return rows
        data, good = self.log.read_bytes(), 0
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("torn")
                rec = json.loads(line)
            except ValueError:  # a torn last line (killed mid-append): cut it, so new lines follow whole ones
                with open(self.log, "r+b") as f:
                    f.truncate(good)
                break
            good += len(line)
            per = rows.setdefault(rec["chain"], {"history": [], "snapshots": []})
            for name in _LOGGED:
                start, new = rec[name]
                del per[name][start:]  # rows after a checkpoint that a killed run never counted
                per[name].extend(new)
        return rows


def _chain_json(st: ChainState) -> dict:
    d = {f.name: getattr(st, f.name) for f in fields(ChainState) if f.name not in _LOGGED}
    d["labels"] = encode_labels(st.labels)
    d["logged"] = [len(st.history), len(st.snapshots)]
    return d


def _chain_from(d: dict, rows: dict[int, dict[str, list]]) -> ChainState:
    d = dict(d)
    if isinstance(d["labels"], str):
        d["labels"] = decode_labels(d["labels"])
    if "logged" in d:  # (older state files hold the history inline)
        counts, per = d.pop("logged"), rows.get(d["chain"], {"history": [], "snapshots": []})
        for name, n in zip(_LOGGED, counts):
            if len(per[name]) < n:
                raise ValueError(f"the log holds {len(per[name])} of chain {d['chain']}'s {n} {name} rows")
            d[name] = per[name][:n]
    return ChainState(**d)
