"""Algorithm 1 (simulated annealing over labels) and Algorithm 2 (ConsistencyFix), exactly as docs/icm.md fixes them.

The search sees `Claim`s (no label field exists), a `Scorer` and the task's consistency rules — never gold labels.
Its whole state (labels, current scores, RNG state, counters, history) is a JSON-able `SearchState`, saved
atomically every `checkpoint_every` iterations and on interrupt, so a killed run resumes to exactly the labels an
uninterrupted run would give.

    for each chain:  seed K labels → ConsistencyFix → score
        repeat: propose (greedy) → fix consistency → score → accept/reject (Metropolis at T(n)) → anneal
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.records import Claim
from ..data.tasks import ConsistencyRules, pair_violates
from ..infra.config import cfg_field
from ..infra.errors import ConfigError, UserError
from ..infra.io import atomic_write_json
from ..scoring.base import Scorer
from .energy import GroupStructure, build_structure, inconsistency, predictability, utility, violating_pairs

Labels = list  # list[bool | None]


@dataclass
class SearchConfig:
    """Simulated-annealing parameters of Algorithm 1 (defaults from docs/icm.md)."""

    alpha: float = cfg_field(50.0, "weight α of mutual predictability P(D) against inconsistency I(D)")
    iterations: int = cfg_field(3000, "annealing iterations per chain (proposals, incl. cheap no-change ones)")
    num_seeds: int = cfg_field(8, "K: claims given random seed labels at the start (half True)")
    t0: float = cfg_field(10.0, "initial temperature T_0")
    t_min: float = cfg_field(0.01, "temperature floor T_min")
    cooling: float = cfg_field(0.99, "β in T_n = max(T_min, T_0 / (1 + β·ln(1 + n))), n = accepted proposals")
    priority_weight: float = cfg_field(100.0, "sampling weight of unlabeled claims whose group has a labeled member")
    patience: int = cfg_field(300, "stop when all claims are labeled and nothing was accepted for this many "
                                   "iterations (0 = never stop early)")
    fix_rounds: int = cfg_field(10, "M: maximum ConsistencyFix rounds")
    restarts: int = cfg_field(1, "independent annealing chains; the labeling with the best U is kept")
    proposal: str = cfg_field("greedy", "greedy: sampled claim set to the model's argmax; worst_margin: once all "
                                        "are labeled, revisit the labeled claim with the most negative margin",
                              choices=("greedy", "worst_margin"))
    checkpoint_every: int = cfg_field(25, "save the resumable search state every N iterations (and on exit)")
    snapshot_every: int = cfg_field(10, "record a label snapshot every N iterations (for accuracy curves)")
    seed: int = cfg_field(0, "random seed of the search (seed labels, sampling, acceptance)")

    def __post_init__(self):
        if self.alpha <= 0:
            raise ConfigError("search.alpha", f"must be > 0, got {self.alpha}")
        if self.iterations < 0:
            raise ConfigError("search.iterations", f"must be ≥ 0, got {self.iterations}")
        if self.num_seeds < 0 or self.num_seeds % 2:
            raise ConfigError("search.num_seeds", f"must be an even number ≥ 0 (half True, half False), "
                                                  f"got {self.num_seeds}")
        if not (0 < self.t_min <= self.t0):
            raise ConfigError("search.t_min", f"need 0 < t_min ≤ t0, got t_min={self.t_min}, t0={self.t0}")
        if self.restarts < 1:
            raise ConfigError("search.restarts", f"must be ≥ 1, got {self.restarts}")
        if self.proposal not in ("greedy", "worst_margin"):
            raise ConfigError("search.proposal", f"must be 'greedy' or 'worst_margin', got '{self.proposal}'")
        if self.checkpoint_every < 1 or self.snapshot_every < 1:
            raise ConfigError("search.checkpoint_every", "checkpoint_every and snapshot_every must be ≥ 1")


def temperature(cfg: SearchConfig, accepted: int) -> float:
    """T_n = max(T_min, T_0 / (1 + β·ln(1 + n))) with n = accepted proposals so far."""
    return max(cfg.t_min, cfg.t0 / (1.0 + cfg.cooling * math.log1p(accepted)))


@dataclass
class Evaluation:
    """U, P, I of one labeling and the LOO scores of its labeled claims (NaN where unlabeled)."""

    u: float
    p: float
    i: int
    scores: np.ndarray


@dataclass
class ChainState:
    """Everything a chain needs to continue bit-for-bit: labels, their scores, counters, RNG and history."""

    chain: int
    labels: list
    scores: list
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


@dataclass
class SearchState:
    """The resumable state of a whole search (all chains)."""

    fingerprint: str
    chains: list = field(default_factory=list)  # finished ChainState dicts
    current: dict | None = None  # ChainState dict in progress

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    labels: list
    evaluation: Evaluation
    best_chain: int
    chains: list[ChainState]
    scorer_stats: dict


class SearchInterrupted(Exception):
    """Raised after the state was saved because `should_stop()` returned True (Ctrl-C / SIGTERM)."""


def encode_labels(labels: Sequence[bool | None]) -> str:
    return "".join("." if y is None else ("T" if y else "F") for y in labels)


def decode_labels(s: str) -> list:
    return [None if c == "." else c == "T" for c in s]


def pool_fingerprint(claims: Sequence[Claim], cfg: SearchConfig, rules: ConsistencyRules, scorer_name: str) -> str:
    """A hash of what the search result depends on: resuming under a different pool/config is refused."""
    h = hashlib.sha256()
    for c in claims:
        h.update(f"{c.id}\x00{c.group}\x00{c.key}\x00{c.text}\x01".encode())
    h.update(json.dumps([asdict(cfg) | {"checkpoint_every": 0, "snapshot_every": 0, "iterations": 0,
                                        "patience": 0, "restarts": 0},
                         asdict(rules), scorer_name], sort_keys=True).encode())
    return h.hexdigest()[:16]


class ICMSearch:
    """Searches labels maximising U(D) = α·P(D) − I(D) for `claims` under `scorer`."""

    def __init__(self, claims: Sequence[Claim], scorer: Scorer, rules: ConsistencyRules, cfg: SearchConfig,
                 *, memo_size: int = 512):
        if not claims:
            raise UserError("the labeling pool is empty")
        self.claims = list(claims)
        self.scorer = scorer
        self.cfg = cfg
        self.structure: GroupStructure = build_structure([c.group for c in claims], [c.key for c in claims], rules)
        self.n = len(self.claims)
        self._memo: OrderedDict[str, Evaluation] = OrderedDict()
        self._memo_size = memo_size
        self.evaluations = 0

    # ------------------------------------------------------------------ scoring

    def evaluate(self, labels: Sequence[bool | None]) -> Evaluation:
        """U, P, I and LOO scores of a labeling (memoised by the label vector)."""
        key = encode_labels(labels)
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        labeled = [i for i, y in enumerate(labels) if y is not None]
        scores = np.full(self.n, np.nan)
        if labeled:
            scores[labeled] = self.scorer.loo_scores(self.claims, list(labels), labeled)
        p = predictability(scores, labels)
        i = inconsistency(self.structure, labels)
        ev = Evaluation(u=utility(self.cfg.alpha, p, i), p=p, i=i, scores=scores)
        self.evaluations += 1
        self._memo[key] = ev
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return ev

    def query_score(self, labels: Sequence[bool | None], i: int, ev: Evaluation) -> float:
        """Claim i's score with every other labeled claim in context (its LOO score when labeled)."""
        if labels[i] is not None:
            return float(ev.scores[i])
        return float(self.scorer.loo_scores(self.claims, list(labels), [i])[0])

    # ------------------------------------------------------------------ Algorithm 2

    def consistency_fix(self, labels: list, ev: Evaluation) -> tuple[list, Evaluation]:
        """Up to M rounds: for each violating pair, apply the best consistent assignment if it strictly raises U."""
        s = self.structure
        for _ in range(self.cfg.fix_rounds):
            pairs = violating_pairs(s, labels)
            if not pairs:
                break
            improved = False
            for i, j in pairs:
                if labels[i] is None or labels[j] is None or not pair_violates(
                        s.keys[i], labels[i], s.keys[j], labels[j], s.rules):
                    continue  # already resolved by an earlier fix this round
                best: tuple[list, Evaluation] | None = None
                for a, b in s.options(i, j):
                    cand = list(labels)
                    cand[i], cand[j] = a, b
                    cev = self.evaluate(cand)
                    if cev.u > (best[1].u if best else ev.u):
                        best = (cand, cev)
                if best is not None:
                    labels, ev = best
                    improved = True
            if not improved:
                break
        return labels, ev

    # ------------------------------------------------------------------ Algorithm 1

    def _init_chain(self, chain: int) -> ChainState:
        rng = np.random.default_rng([self.cfg.seed, chain])
        labels: list = [None] * self.n
        k = min(self.cfg.num_seeds, self.n)
        picked = rng.choice(self.n, size=k, replace=False) if k else []
        seed_labels = [True] * (k // 2) + [False] * (k - k // 2)
        rng.shuffle(seed_labels)
        for idx, y in zip(picked, seed_labels):
            labels[int(idx)] = bool(y)
        ev = self.evaluate(labels)
        labels, ev = self.consistency_fix(labels, ev)
        st = ChainState(chain=chain, labels=labels, scores=_to_list(ev.scores), u=ev.u, p=ev.p, i=ev.i,
                        rng_state=rng.bit_generator.state, seed_indices=[int(x) for x in picked])
        st.snapshots.append([0, encode_labels(labels)])
        return st

    def _weights(self, labels: Sequence[bool | None]) -> np.ndarray:
        labeled_groups = {self.structure.group_of[i] for i, y in enumerate(labels)
                          if y is not None and self.structure.group_of[i] >= 0}
        w = np.ones(self.n)
        for i, y in enumerate(labels):
            if y is None and self.structure.group_of[i] in labeled_groups:
                w[i] = self.cfg.priority_weight
        return w / w.sum()

    def _pick(self, st: ChainState, rng: np.random.Generator, ev: Evaluation) -> int:
        labels = st.labels
        if self.cfg.proposal == "worst_margin" and all(y is not None for y in labels):
            margins = np.array([ev.scores[i] if labels[i] else -ev.scores[i] for i in range(self.n)])
            worst = int(np.argmin(margins))
            if margins[worst] < 0:
                rng.random()  # keep the stream aligned with the sampling branch
                return worst
        return int(rng.choice(self.n, p=self._weights(labels)))

    def _step(self, st: ChainState, rng: np.random.Generator) -> None:
        ev = Evaluation(u=st.u, p=st.p, i=st.i, scores=_to_array(st.scores))
        i = self._pick(st, rng, ev)
        s_i = self.query_score(st.labels, i, ev)
        y_hat = bool(s_i > 0)
        st.iteration += 1
        accepted = False
        if st.labels[i] != y_hat:
            st.proposals += 1
            cand = list(st.labels)
            cand[i] = y_hat
            cev = self.evaluate(cand)
            cand, cev = self.consistency_fix(cand, cev)
            t = temperature(self.cfg, st.accepted)
            du = cev.u - st.u
            if du >= 0 or rng.random() < math.exp(du / t):
                accepted = True
                st.labels, st.scores = cand, _to_list(cev.scores)
                st.u, st.p, st.i = cev.u, cev.p, cev.i
                st.accepted += 1
        st.since_accept = 0 if accepted else st.since_accept + 1
        n_labeled = sum(y is not None for y in st.labels)
        st.history.append([st.iteration, st.u, st.p, st.i, temperature(self.cfg, st.accepted), st.accepted, n_labeled])
        if st.iteration % self.cfg.snapshot_every == 0:
            st.snapshots.append([st.iteration, encode_labels(st.labels)])

    def _finished(self, st: ChainState) -> bool:
        if st.iteration >= self.cfg.iterations:
            return True
        all_labeled = all(y is not None for y in st.labels)
        return bool(self.cfg.patience and all_labeled and st.since_accept >= self.cfg.patience)

    def run(self, *, state_path: str | Path | None = None, resume: bool = False,
            should_stop: Callable[[], bool] | None = None,
            on_step: Callable[[ChainState], None] | None = None) -> SearchResult:
        """Run all chains (resuming from `state_path` when asked); returns the best chain's labeling."""
        fp = pool_fingerprint(self.claims, self.cfg, self.structure.rules, self.scorer.name)
        state = SearchState(fingerprint=fp)
        if resume and state_path and Path(state_path).exists():
            state = load_state(state_path)
            if state.fingerprint != fp:
                raise UserError(f"{state_path}: saved search state belongs to a different pool, config or scorer "
                                f"(fingerprint {state.fingerprint} ≠ {fp}); remove it or drop --resume")

        def save() -> None:
            if state_path:
                atomic_write_json(state_path, state.to_json())

        for chain in range(len(state.chains), self.cfg.restarts):
            if state.current is not None:
                st = ChainState(**state.current)
            else:
                st = self._init_chain(chain)
                state.current = asdict(st)
                save()
            rng = np.random.default_rng()
            rng.bit_generator.state = st.rng_state
            while not st.done and not self._finished(st):
                self._step(st, rng)
                if on_step:
                    on_step(st)
                if st.iteration % self.cfg.checkpoint_every == 0 or (should_stop and should_stop()):
                    st.rng_state = rng.bit_generator.state
                    state.current = asdict(st)
                    save()
                    if should_stop and should_stop():
                        raise SearchInterrupted(f"search interrupted at chain {chain}, iteration {st.iteration}")
            st.done = True
            st.rng_state = rng.bit_generator.state
            state.chains.append(asdict(st))
            state.current = None
            save()

        chains = [ChainState(**c) for c in state.chains]
        best = max(range(len(chains)), key=lambda c: (chains[c].u, -c))
        b = chains[best]
        ev = Evaluation(u=b.u, p=b.p, i=b.i, scores=_to_array(b.scores))
        stats = self.scorer.stats.as_dict()
        return SearchResult(labels=list(b.labels), evaluation=ev, best_chain=best, chains=chains,
                            scorer_stats=stats | {"evaluations": self.evaluations})


def _to_list(a: np.ndarray) -> list:
    return [None if not np.isfinite(x) else float(x) for x in a]


def _to_array(xs: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in xs], dtype=np.float64)


def load_state(path: str | Path) -> SearchState:
    try:
        data = json.loads(Path(path).read_text())
        return SearchState(**data)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: search state is unreadable ({e}); remove it to start over") from None
