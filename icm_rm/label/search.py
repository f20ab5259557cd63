"""Algorithm 1 (simulated annealing over labels) and Algorithm 2 (ConsistencyFix), exactly as docs/icm.md fixes them.

The search sees `Claim`s (no label field exists), a `Scorer` and the task's consistency rules — never gold labels.
Its whole state (labels, current scores, RNG state, counters, history) is a `SearchState`, saved (search_state.py)
every `checkpoint_every` iterations and on interrupt, so a killed run resumes to exactly the labels an
uninterrupted run would give.

    for each chain (random K seed labels, or one zero-shot verdict):  → ConsistencyFix → score
        repeat: propose (greedy) → fix consistency → score → accept/reject (Metropolis at T(n)) → anneal
    result: the highest-U labeling among every chain's best-seen complete state and its mirror (candidates.py)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.records import Claim
from ..data.tasks import ConsistencyRules
from ..infra.config import cfg_field
from ..infra.errors import ConfigError, UserError
from ..scoring.base import Scorer
from .candidates import BestSeen, Candidate, collect, decode_labels, verdict_labels
from .energy import GroupStructure, build_structure
from .search_state import ChainState, SearchState, StateFile, encode_labels
from .state import LabelState, ScoreMemo

Labels = list  # list[bool | None]


@dataclass
class SearchConfig:
    """Simulated-annealing parameters of Algorithm 1 (defaults from docs/icm.md)."""

    alpha: float = cfg_field(50.0, "weight α of mutual predictability P(D) against inconsistency I(D)", gt=0)
    iterations: int = cfg_field(3000, "annealing iterations per chain (proposals, incl. cheap no-change ones)", ge=0)
    num_seeds: int = cfg_field(8, "K: claims given random seed labels at the start (half True)", ge=0)
    t0: float = cfg_field(10.0, "initial temperature T_0", gt=0)
    t_min: float = cfg_field(0.01, "temperature floor T_min", gt=0)
    cooling: float = cfg_field(0.99, "β in T_n = max(T_min, T_0 / (1 + β·ln(1 + n))), n = accepted proposals", ge=0)
    priority_weight: float = cfg_field(100.0, "sampling weight of unlabeled claims whose group has a labeled member",
                                       gt=0)
    patience: int = cfg_field(300, "stop when all claims are labeled and nothing was accepted for this many "
                                   "iterations (0 = never stop early)", ge=0)
    fix_rounds: int = cfg_field(10, "M: maximum ConsistencyFix rounds", ge=0)
    restarts: int = cfg_field(8, "random-start annealing chains per replica (8: seeds agree on ≥ 97% of the dev "
                                 "fact-table labels; benchmarks/search_candidates.py)", ge=1)
    verdict_chains: bool = cfg_field(True, "also start one chain per replica from each zero-shot verdict of the "
                                           "model (T/F log-odds; pairs: response likelihood), after ConsistencyFix")
    replicas: int = cfg_field(2, "independent copies of the whole search (own random streams); the result is the "
                                 "best U over all, and their agreement is reported as seed agreement", ge=1)
    proposal: str = cfg_field("greedy", "greedy: sampled claim set to the model's argmax; worst_margin: once all "
                                        "are labeled, revisit the labeled claim with the most negative margin",
                              choices=("greedy", "worst_margin"))
    checkpoint_every: int = cfg_field(25, "save the resumable search state every N iterations (and on exit)",
                                      ge=1, resume_safe=True)
    snapshot_every: int = cfg_field(10, "record a label snapshot every N iterations (for accuracy curves); pools "
                                        "over 1,000 claims every n/100 at least, so snapshots stay O(1) per step",
                                    ge=1)
    seed: int = cfg_field(0, "random seed of the search (seed labels, sampling, acceptance)", ge=0)

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
        if self.replicas < 1:
            raise ConfigError("search.replicas", f"must be ≥ 1, got {self.replicas}")
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
class SearchResult:
    labels: list
    evaluation: Evaluation
    best_chain: int  # the chain whose best-seen state (or its mirror) won
    chains: list[ChainState]
    scorer_stats: dict
    candidates: list[Candidate] = field(default_factory=list)  # best U first


class SearchInterrupted(Exception):
    """Raised after the state was saved because `should_stop()` returned True (Ctrl-C / SIGTERM)."""


def pool_fingerprint(claims: Sequence[Claim], cfg: SearchConfig, rules: ConsistencyRules, scorer_name: str,
                     carry_digest: str = "", verdicts: Mapping[str, np.ndarray] | None = None) -> str:
    """A hash of what the search result depends on: resuming under a different pool/config/carry is refused."""
    h = hashlib.sha256(carry_digest.encode())
    for name, signal in (verdicts or {}).items():  # the verdict chains' starting labels
        h.update(f"{name}\x00{encode_labels(verdict_labels(signal))}".encode())
    for c in claims:
        h.update(f"{c.id}\x00{c.group}\x00{c.key}\x00{c.text}\x01".encode())
    h.update(json.dumps([asdict(cfg) | {"checkpoint_every": 0, "snapshot_every": 0, "iterations": 0,
                                        "patience": 0},
                         asdict(rules), scorer_name], sort_keys=True).encode())
    return h.hexdigest()[:16]


class ICMSearch:
    """Searches labels maximising U(D) = α·P(D) − I(D) for `claims` under `scorer`."""

    def __init__(self, claims: Sequence[Claim], scorer: Scorer, rules: ConsistencyRules, cfg: SearchConfig,
                 *, verdicts: Mapping[str, Sequence[float]] | None = None, sign: Sequence[float] | None = None,
                 memo_size: int = 512, carry=None):
        """`verdicts`: the model's zero-shot verdicts per claim (kind → signal, > 0 says True; on swapped pairs the
        within-pair comparison): one chain per replica starts from each. `sign`: the verdict that chooses between
        labelings of equal U (a labeling and its mirror under a sign-symmetric scorer). carry: claims labeled by
        earlier batches, as the scorer's `carry(...)` made them (the probe: a CarriedFit); they join every fit, are
        never scored or changed."""
        if not claims:
            raise UserError("the labeling pool is empty")
        self.claims = list(claims)
        self.verdicts = {k: np.asarray(v, dtype=np.float64) for k, v in sorted((verdicts or {}).items())}
        self.sign = None if sign is None else np.asarray(sign, dtype=np.float64)
        self.scorer = scorer
        self.cfg = cfg
        self.structure: GroupStructure = build_structure([c.group for c in claims], [c.key for c in claims], rules)
        self.n = len(self.claims)
        self._memo = ScoreMemo(self.n, memo_size)
        self.carry = carry if carry is not None and carry.n else None
        self._evaluations = 0

    @property
    def evaluations(self) -> int:
        """Labelings scored so far (memo hits excluded)."""
        return self._evaluations

    def _state(self, labels: list, **saved) -> LabelState:
        state = LabelState(self.claims, self.scorer, self.structure, self.cfg.alpha, self.cfg.priority_weight,
                           labels, self._memo, carry=self.carry, **saved)
        self._evaluations += state.evaluations
        state.evaluations = 0
        return state

    # ------------------------------------------------------------------ scoring

    def evaluate(self, labels: Sequence[bool | None]) -> Evaluation:
        """U, P, I and LOO scores of a labeling."""
        state = self._state(list(labels))
        return Evaluation(u=state.u, p=state.p, i=state.i, scores=state.scores())

    # ------------------------------------------------------------------ Algorithm 2

    def consistency_fix(self, labels: list, ev: Evaluation) -> tuple[list, Evaluation]:
        """Up to M rounds: for each violating pair, apply the best consistent assignment if it strictly raises U."""
        state = self._state(list(labels), evaluation=(ev.u, ev.p, ev.i), scores=_to_list(ev.scores))
        state.commit(state.fix(state.evaluate({}), self.cfg.fix_rounds))
        self._evaluations += state.evaluations
        return list(state.labels), Evaluation(u=state.u, p=state.p, i=state.i, scores=state.scores())

    # ------------------------------------------------------------------ Algorithm 1

    def chain_plan(self) -> list[tuple[int, str]]:
        """(replica, origin) of every chain, in run order: per replica `restarts` random chains, then one chain
        per zero-shot verdict."""
        origins = ["random"] * self.cfg.restarts
        if self.cfg.verdict_chains:
            origins += [f"verdict:{name}" for name in self.verdicts]
        return [(r, o) for r in range(self.cfg.replicas) for o in origins]

    def _init_chain(self, chain: int) -> tuple[ChainState, LabelState, BestSeen]:
        replica, origin = self.chain_plan()[chain]
        rng = np.random.default_rng([self.cfg.seed, chain])
        labels: list = [None] * self.n
        picked: Sequence[int] = []
        if origin == "random":
            k = min(self.cfg.num_seeds, self.n)
            picked = rng.choice(self.n, size=k, replace=False) if k else []
            seed_labels = [True] * (k // 2) + [False] * (k - k // 2)
            rng.shuffle(seed_labels)
            for idx, y in zip(picked, seed_labels):
                labels[int(idx)] = bool(y)
        else:
            labels = verdict_labels(self.verdicts[origin.removeprefix("verdict:")])
        state = self._state(labels)
        best = BestSeen(state.labels, None)
        fixed = state.fix(state.evaluate({}), self.cfg.fix_rounds)
        best.offer(0, fixed, state)
        best.commit(fixed.changes)
        state.commit(fixed)
        st = ChainState(chain=chain, labels=state.labels, scores=[], u=state.u, p=state.p, i=state.i,
                        rng_state=rng.bit_generator.state, seed_indices=[int(x) for x in picked], origin=origin,
                        replica=replica)
        st.snapshots.append([0, encode_labels(st.labels)])
        return st, state, best

    def _resume_chain(self, st: ChainState) -> tuple[ChainState, LabelState, BestSeen]:
        state = self._state(st.labels, evaluation=(st.u, st.p, st.i), scores=st.scores, scorer_state=st.scorer_state)
        return st, state, BestSeen(state.labels, st.best)

    def _pick(self, state: LabelState, rng: np.random.Generator) -> int:
        if self.cfg.proposal == "worst_margin" and state.n_labeled == self.n:
            scores = state.scores()
            margins = np.where(np.array(state.labels, dtype=bool), scores, -scores)
            worst = int(np.argmin(margins))
            if margins[worst] < 0:
                rng.random()  # keep the stream aligned with the sampling branch
                return worst
        return state.pick(rng)

    def _step(self, st: ChainState, state: LabelState, rng: np.random.Generator, best: BestSeen) -> None:
        i = self._pick(state, rng)
        y_hat = bool(state.query_score(i) > 0)
        st.iteration += 1
        accepted = False
        if st.labels[i] != y_hat:
            st.proposals += 1
            cand = state.fix(state.evaluate({i: y_hat}), self.cfg.fix_rounds)
            best.offer(st.iteration, cand, state)
            t = temperature(self.cfg, st.accepted)
            du = cand.u - st.u
            if du >= 0 or rng.random() < math.exp(du / t):
                accepted = True
                best.commit(cand.changes)
                state.commit(cand)  # updates st.labels (the same list) in place
                st.u, st.p, st.i = cand.u, cand.p, cand.i
                st.accepted += 1
        self._evaluations += state.evaluations
        state.evaluations = 0
        st.since_accept = 0 if accepted else st.since_accept + 1
        st.history.append([st.iteration, st.u, st.p, st.i, temperature(self.cfg, st.accepted), st.accepted,
                           state.n_labeled])
        if st.iteration % max(self.cfg.snapshot_every, self.n // 100) == 0:
            st.snapshots.append([st.iteration, encode_labels(st.labels)])

    def _finished(self, st: ChainState, state: LabelState) -> bool:
        if st.iteration >= self.cfg.iterations:
            return True
        return bool(self.cfg.patience and state.n_labeled == self.n and st.since_accept >= self.cfg.patience)

    def _save_point(self, st: ChainState, state: LabelState, rng: np.random.Generator, best: BestSeen) -> ChainState:
        """Bring what a checkpoint stores up to date: RNG, the best-seen labeling, the session's running sums, or
        (without a session) the scores a resume must not recompute."""
        st.rng_state = rng.bit_generator.state
        st.best = best.as_dict()
        st.scorer_state = state.scorer_state()
        st.scores = _to_list(state.scores()) if state.session is None else []
        return st

    def run(self, *, state_path: str | Path | None = None, resume: bool = False,
            should_stop: Callable[[], bool] | None = None,
            on_step: Callable[[ChainState], None] | None = None) -> SearchResult:
        """Run all chains (resuming from `state_path` when asked); returns the highest-U labeling they name."""
        fp = pool_fingerprint(self.claims, self.cfg, self.structure.rules, self.scorer.name,
                              self.carry.digest if self.carry is not None else "",
                              self.verdicts if self.cfg.verdict_chains else None)
        state = SearchState(fingerprint=fp)
        store = StateFile(state_path) if state_path else None
        if resume and store and store.path.exists():
            state = store.load()
            if state.fingerprint != fp:
                raise UserError(f"{state_path}: saved search state belongs to a different pool, config or scorer "
                                f"(fingerprint {state.fingerprint} ≠ {fp}); remove it or drop --resume")

        def save() -> None:
            if store:
                store.save(state)

        for chain in range(len(state.chains), len(self.chain_plan())):
            rng = np.random.default_rng()
            st, lab, best = (self._resume_chain(state.current) if state.current is not None
                             else self._init_chain(chain))
            rng.bit_generator.state = st.rng_state
            if state.current is None:
                state.current = self._save_point(st, lab, rng, best)
                save()
            while not st.done and not self._finished(st, lab):
                self._step(st, lab, rng, best)
                if on_step:
                    on_step(st)
                if st.iteration % self.cfg.checkpoint_every == 0 or (should_stop and should_stop()):
                    self._save_point(st, lab, rng, best)
                    save()
                    if should_stop and should_stop():
                        raise SearchInterrupted(f"search interrupted at chain {chain}, iteration {st.iteration}")
            st.done = True
            self._save_point(st, lab, rng, best).scores = _to_list(lab.scores())
            state.chains.append(st)
            state.current = None
            save()

        candidates = collect(state.chains, self.evaluate, self.sign)
        labels = decode_labels(candidates[0].labels)
        return SearchResult(labels=labels, evaluation=self.evaluate(labels), best_chain=candidates[0].chain,
                            chains=state.chains, candidates=candidates,
                            scorer_stats=self.scorer.stats.as_dict() | {"evaluations": self.evaluations})


def _to_list(a: np.ndarray) -> list:
    return [None if not np.isfinite(x) else float(x) for x in a]

