"""Probe predictability: mutual predictability measured by an exact leave-one-out ridge probe on hidden states.

Where in-context learning is at chance (small models, long examples), a linear probe on one layer still tells true
from false. s_i = the ridge probe's prediction for claim i trained on every other labeled claim (targets ±1), so
P(D) = mean yᵢ·sᵢ is the probe's LOO agreement with the labeling; the search, energy and ConsistencyFix are unchanged.

Features: the last-token state at `layer` of each claim prompt; for a swapped pair (keys A>B / B>A) the claim's
feature is φ(self) − φ(twin), so the two claims are exact negations and the probe is antisymmetric by construction.
Leave-one-*group*-out (default): a claim is predicted without its own group, since its twin is its mirror image and
would otherwise predict it trivially. The probe has no intercept, so the mirror labeling has the same P: the sign
is anchored afterwards by the LM's zero-shot log-odds (`anchor_sign`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import cfg_field
from ..data.records import COMPARISON_KEYS, Claim
from ..errors import ConfigError
from .base import ScorerStats
from .ridge import group_loo_predictions, ridge_dual

# texts → (features (n, d), zero-shot log-odds (n,))
FeatureSource = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]


@dataclass
class ProbeConfig:
    """How the probe scorer turns hidden states into LOO predictions."""

    layer: int | None = cfg_field(None, "hidden layer read (0 = embeddings); null = two thirds of the depth "
                                        "(SmolLM2-135M: 20, Gemma 3 270M: 12; see BENCHMARKS.md)")
    ridge: float = cfg_field(1.0, "ridge λ, relative to the mean squared feature norm of the labeled claims")
    center: str = cfg_field("none", "none | group: subtract each consistency group's mean feature (claims only)",
                            choices=("none", "group"))
    pca_dims: int | None = cfg_field(8, "project features on the pool's top-k principal components (null = off); "
                                        "few dimensions leave fewer spurious partitions to find")
    loo: str = cfg_field("group", "group: leave the claim's whole group out; claim: leave only the claim out",
                         choices=("group", "claim"))
    score_scale: float = cfg_field(1.0, "multiplier on the probe prediction (sets its scale against I(D))")
    zero_shot_weight: float = cfg_field(0.3, "hybrid energy: add this × the LM's zero-shot verdict (pairs: its "
                                             "response-likelihood preference) to each score; 0 = pure probe")
    batch_size: int = cfg_field(16, "claims per forward pass when extracting features")

    def __post_init__(self):
        if self.ridge <= 0:
            raise ConfigError("probe.ridge", f"must be > 0, got {self.ridge}")
        if self.center not in ("none", "group"):
            raise ConfigError("probe.center", f"must be 'none' or 'group', got '{self.center}'")
        if self.loo not in ("group", "claim"):
            raise ConfigError("probe.loo", f"must be 'group' or 'claim', got '{self.loo}'")
        if self.pca_dims is not None and self.pca_dims < 1:
            raise ConfigError("probe.pca_dims", f"must be ≥ 1 or null, got {self.pca_dims}")


def twin_index(claims: Sequence[Claim]) -> list[int | None]:
    """For each claim of a swapped pair (a group of exactly the keys A>B and B>A), the index of its twin."""
    by_group: dict[str, list[int]] = {}
    for i, c in enumerate(claims):
        by_group.setdefault(c.group, []).append(i)
    twin: list[int | None] = [None] * len(claims)
    for members in by_group.values():
        if len(members) == 2 and {claims[m].key for m in members} == set(COMPARISON_KEYS):
            twin[members[0]], twin[members[1]] = members[1], members[0]
    return twin


def zero_shot_signal(claims: Sequence[Claim], z: np.ndarray) -> np.ndarray:
    """The LM's zero-shot verdict per claim; for swapped pairs the within-pair comparison z_i − z_twin."""
    tw = twin_index(claims)
    z = np.nan_to_num(np.asarray(z, dtype=np.float64))
    return np.array([z[i] - z[t] if t is not None else z[i] for i, t in enumerate(tw)], dtype=np.float64)


@dataclass
class _Pool:
    features: np.ndarray  # (n, d) after pairing / centring / scaling / PCA
    kernel: np.ndarray  # (n, n) = F Fᵀ / d
    zero_shot: np.ndarray  # (n,) zero_shot_signal
    groups: list[str]


class ProbeScorer:
    """Scorer whose s_i is an exact LOO ridge-probe prediction on hidden-state features."""

    name = "probe"

    def __init__(self, features: FeatureSource, cfg: ProbeConfig | None = None,
                 prior: Callable[[Sequence[Claim]], np.ndarray] | None = None):
        self.features = features
        self.cfg = cfg or ProbeConfig()
        self.prior = prior  # per-claim zero-shot verdicts for the hybrid term (default: the features' own log-odds)
        self.stats = ScorerStats()
        self._pools: OrderedDict[tuple, _Pool] = OrderedDict()
        self._inverses: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def pure(self) -> "ProbeScorer":
        """The same probe without the hybrid zero-shot term: what the random- and golden-label baselines train."""
        from dataclasses import replace

        return ProbeScorer(self.features, replace(self.cfg, zero_shot_weight=0.0))

    # ------------------------------------------------------------------ features of a pool

    def pool(self, claims: Sequence[Claim]) -> _Pool:
        key = tuple(c.id for c in claims)
        if key in self._pools:
            return self._pools[key]
        raw, z = self.features([c.text for c in claims])
        raw = np.asarray(raw, dtype=np.float64)
        tw = twin_index(claims)
        paired = [t is not None for t in tw]
        F = raw.copy()
        for i, t in enumerate(tw):
            if t is not None:
                F[i] = raw[i] - raw[t]
        single = [i for i, p in enumerate(paired) if not p]
        if single:
            if self.cfg.center == "group":
                groups: dict[str, list[int]] = {}
                for i in single:
                    groups.setdefault(claims[i].group, []).append(i)
                for members in groups.values():
                    F[members] -= F[members].mean(axis=0)
            else:
                F[single] -= F[single].mean(axis=0)
        scale = np.sqrt((F ** 2).mean(axis=0)) + 1e-8  # per-dimension RMS; keeps pair features antisymmetric
        F = F / scale
        if self.cfg.pca_dims is not None and self.cfg.pca_dims < F.shape[1]:
            _, _, vt = np.linalg.svd(F, full_matrices=False)  # no mean removal: antisymmetry survives
            F = F @ vt[: self.cfg.pca_dims].T
        if self.prior is not None:
            z = self.prior(claims)
        pool = _Pool(features=F, kernel=F @ F.T / F.shape[1], zero_shot=zero_shot_signal(claims, z),
                     groups=[c.group for c in claims])
        self._pools[key] = pool
        if len(self._pools) > 8:
            self._pools.popitem(last=False)
        return pool

    # ------------------------------------------------------------------ scoring

    def _inverse(self, pool_key: tuple, pool: _Pool, labeled: tuple[int, ...]) -> np.ndarray:
        key = (pool_key, labeled)
        if key not in self._inverses:
            K = pool.kernel[np.ix_(labeled, labeled)]
            lam = self.cfg.ridge * max(float(np.mean(np.diag(K))), 1e-12)
            self._inverses[key] = ridge_dual(K, lam)
            if len(self._inverses) > 64:
                self._inverses.popitem(last=False)
        else:
            self._inverses.move_to_end(key)
        return self._inverses[key]

    def loo_scores(self, claims: Sequence[Claim], labels: Sequence[bool | None], queries: Sequence[int]) -> np.ndarray:
        pool = self.pool(claims)
        pool_key = tuple(c.id for c in claims)
        labeled = tuple(i for i, y in enumerate(labels) if y is not None)
        preds = np.zeros(len(queries))
        if labeled:
            y = np.array([1.0 if labels[i] else -1.0 for i in labeled])
            A = self._inverse(pool_key, pool, labeled)
            pos = {i: k for k, i in enumerate(labeled)}
            if self.cfg.loo == "group":
                blocks: dict[str, list[int]] = {}
                for k, i in enumerate(labeled):
                    blocks.setdefault(pool.groups[i], []).append(k)
                loo = group_loo_predictions(A, y, list(blocks.values()))
            else:
                loo = group_loo_predictions(A, y, [[k] for k in range(len(labeled))])
            alpha = A @ y
            for qk, q in enumerate(queries):
                if q in pos:
                    preds[qk] = loo[pos[q]]
                else:
                    # an unlabeled query: fit on all labeled claims outside its group
                    same = [k for k, i in enumerate(labeled) if pool.groups[i] == pool.groups[q]]
                    if same and self.cfg.loo == "group":
                        keep = [k for k in range(len(labeled)) if k not in set(same)]
                        if keep:
                            sub = np.array(labeled)[keep]
                            A2 = self._inverse(pool_key, pool, tuple(int(i) for i in sub))
                            preds[qk] = pool.kernel[q, sub] @ (A2 @ y[keep])
                    else:
                        preds[qk] = pool.kernel[q, list(labeled)] @ alpha
        self.stats.queries += len(queries)
        self.stats.forward_calls += 1
        return self.cfg.score_scale * preds + self.cfg.zero_shot_weight * pool.zero_shot[list(queries)]


def anchor_sign(claims: Sequence[Claim], labels: list, zero_shot: np.ndarray,
                evaluate: Callable[[list], float]) -> tuple[list, bool]:
    """Pick between a labeling and its mirror image by the LM's zero-shot verdicts.

    Only when the mirror has the same U (the probe cannot tell them apart) and agrees better with the zero-shot
    signal (Σ ±z_i) is it returned. Returns (labels, flipped).
    """
    if any(y is None for y in labels):
        return labels, False
    signal = zero_shot_signal(claims, zero_shot)
    agreement = float(sum(s if y else -s for y, s in zip(labels, signal)))
    mirror = [not y for y in labels]
    if agreement < 0 and abs(evaluate(mirror) - evaluate(labels)) <= 1e-9 * max(1.0, abs(evaluate(labels))):
        return mirror, True
    return labels, False
