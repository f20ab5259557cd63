"""Probe predictability: mutual predictability measured by an exact leave-one-out ridge probe on hidden states.

Where in-context learning is at chance (small models, long examples), a linear probe on one layer still tells true
from false. s_i = the ridge probe's prediction for claim i trained on every other labeled claim (targets ±1), so
P(D) = mean yᵢ·sᵢ is the probe's LOO agreement with the labeling; the search, energy and ConsistencyFix are unchanged.

Features: the last-token state at `layer` of each claim prompt; for a swapped pair (keys A>B / B>A) the claim's
feature is φ(self) − φ(twin), so the two claims are exact negations and the probe is antisymmetric by construction.
Leave-one-*group*-out (default): a claim is predicted without its own group, since its twin is its mirror image and
would otherwise predict it trivially. The probe has no intercept, so the mirror labeling has the same P: the sign
is anchored by the LM's zero-shot verdict (the search's tie-break between a labeling and its mirror; `anchor_sign`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..data.records import Claim, ClaimSet
from ..infra.errors import ConfigError
from ..infra.lm import load_causal_lm
from ..infra.model_registry import icm_rm_home
from .base import Prior, Scorer, ScorerStats
from .features import FeatureExtractor, FeatureSource, FunctionFeatures, LayerFeatures
from .likelihood import pair_prior
from .primal_probe import CarriedFit, PrimalProbe
from .ridge import group_loo_predictions, ridge_dual
from .settings import ProbeConfig, ScorerSettings
from .verdicts import twin_index, zero_shot_signal


SVD_MAX_ELEMENTS = 2**24  # larger pools take their principal axes from the d×d Gram matrix (no n×d U factor)


def principal_axes(F: np.ndarray, k: int) -> np.ndarray:
    """The top-k right singular vectors of F as a (d, k) matrix. An SVD for pools up to SVD_MAX_ELEMENTS entries;
    above that the eigenvectors of FᵀF, the same subspace (each axis up to sign, which no ridge prediction sees)
    without the SVD's n×d workspace."""
    if F.size <= SVD_MAX_ELEMENTS:
        return np.linalg.svd(F, full_matrices=False)[2][:k].T
    vals, vecs = np.linalg.eigh(F.T @ F)
    return vecs[:, np.argsort(vals)[::-1][:k]]


@dataclass
class _Pool:
    features: np.ndarray  # (n, d) after pairing / centring / scaling / PCA
    zero_shot: np.ndarray  # (n,) zero_shot_signal
    groups: list[str]
    _kernel: np.ndarray | None = None

    @property
    def kernel(self) -> np.ndarray:
        """(n, n) = F Fᵀ / d, built on first use (the kernel form only)."""
        if self._kernel is None:
            self._kernel = self.features @ self.features.T / self.features.shape[1]
        return self._kernel


class ProbeScorer(Scorer):
    """Scorer whose s_i is an exact LOO ridge-probe prediction on hidden-state features."""

    name = "probe"
    summary = "exact LOO ridge probe on hidden states (works with small models)"
    carries_labels = True

    def __init__(self, features: FeatureSource | Callable, cfg: ProbeConfig | None = None, prior: Prior | None = None):
        """features: a FeatureSource or a plain function texts → (features, zero-shot log-odds); prior: per-claim
        zero-shot verdicts for the hybrid term and the sign (default: the features' own log-odds)."""
        self.features = features if isinstance(features, FeatureSource) else FunctionFeatures(features)
        self.cfg = cfg or ProbeConfig()
        self.prior = prior
        self.stats = ScorerStats()
        self._pools: OrderedDict[tuple, _Pool] = OrderedDict()
        self._inverses: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._universe: tuple[_Pool, dict[str, int]] | None = None  # see prepare()

    @classmethod
    def build(cls, settings: ScorerSettings, pool: ClaimSet) -> ProbeScorer:
        """The labeler's hidden states at `probe.layer` (cached on disk), its prior on pair pools."""
        model, tokenizer = load_causal_lm(settings.model, dtype=settings.dtype, device=settings.device)
        n_layers = int(model.config.num_hidden_layers)
        layer = round(2 * n_layers / 3) if settings.probe.layer is None else settings.probe.layer
        if not 0 <= layer <= n_layers:
            raise ConfigError("probe.layer", f"model has layers 0..{n_layers}, got {layer}")
        extractor = FeatureExtractor(model, tokenizer, cache_dir=settings.feature_cache or icm_rm_home() / "features",
                                     batch_size=settings.probe.batch_size, clamp=settings.clamp,
                                     layers=[layer])  # the probe reads one layer: cache only that
        scorer = cls(LayerFeatures(extractor, layer), settings.probe, prior=pair_prior(model, tokenizer, pool))
        scorer.stats.extra["layer"] = layer
        return scorer

    def zero_shot(self, claims: Sequence[Claim]) -> np.ndarray:
        """The True/False log-odds read from the feature forward."""
        return self.features.log_odds([c.text for c in claims])

    def sign_verdict(self, claims: Sequence[Claim]) -> np.ndarray:
        """The probe has no intercept, so a labeling and its mirror have the same P: the prior (pairs) or the T/F
        log-odds pick the sign."""
        return self.prior(claims) if self.prior is not None else self.zero_shot(claims)

    def baseline(self) -> ProbeScorer:
        """The same probe without the hybrid zero-shot term: what the random- and golden-label baselines train."""
        return ProbeScorer(self.features, replace(self.cfg, zero_shot_weight=0.0))

    def check_pool(self, claims: Sequence[Claim]) -> None:
        self.features.check_claims(claims)

    def work_stats(self) -> dict:
        stats = self.stats.as_dict()
        stats["forward_tokens"] += self.features.forward_tokens
        return stats

    # ------------------------------------------------------------------ features of a pool

    def prepare(self, claims: Sequence[Claim]) -> None:
        """Transform the features of a whole label pool at once (centring, scaling, PCA on all of it), so that every
        batch of it, and labels carried between batches, live in one feature space."""
        self._universe = (self.pool(claims), {c.id: r for r, c in enumerate(claims)})

    def pool(self, claims: Sequence[Claim]) -> _Pool:
        key = tuple(c.id for c in claims)
        if key in self._pools:
            return self._pools[key]
        if self._universe is not None and all(k in self._universe[1] for k in key):
            whole, rows = self._universe[0], [self._universe[1][k] for k in key]
            pool = _Pool(features=whole.features[rows], zero_shot=whole.zero_shot[rows],
                         groups=[whole.groups[r] for r in rows])
            self._pools[key] = pool
            return pool
        raw, z = self.features([c.text for c in claims])
        F = np.array(raw, dtype=np.float64)  # our own copy, transformed in place (a pool's features can be GBs)
        del raw
        tw = twin_index(claims)
        first = np.array([i for i, t in enumerate(tw) if t is not None and i < t], dtype=np.int64)
        if len(first):
            second = np.array([tw[i] for i in first], dtype=np.int64)
            diff = F[first] - F[second]
            F[first], F[second] = diff, -diff  # −(a − b) == b − a exactly: pair features stay antisymmetric
            del diff
        single = [i for i, t in enumerate(tw) if t is None]
        if single:
            if self.cfg.center == "group":
                groups: dict[str, list[int]] = {}
                for i in single:
                    groups.setdefault(claims[i].group, []).append(i)
                for members in groups.values():
                    F[members] -= F[members].mean(axis=0)
            elif len(single) == len(F):
                F -= F.mean(axis=0)
            else:
                F[single] -= F[single].mean(axis=0)
        F /= np.sqrt((F ** 2).mean(axis=0)) + 1e-8  # per-dimension RMS; keeps pair features antisymmetric
        if self.cfg.pca_dims is not None and self.cfg.pca_dims < F.shape[1]:
            F = F @ principal_axes(F, self.cfg.pca_dims)  # no mean removal: antisymmetry survives
        if self.prior is not None:
            z = self.prior(claims)
        zs = zero_shot_signal(claims, z)
        if self.cfg.zero_shot_scale == "rms":
            zs = zs / max(float(np.sqrt(np.mean(zs ** 2))), 1e-12)
        pool = _Pool(features=F, zero_shot=zs, groups=[c.group for c in claims])
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

    def primal(self, pool: _Pool) -> bool:
        """Whether this pool is scored in primal form (d×d system) rather than kernel form (n×n)."""
        n, d = pool.features.shape
        return self.cfg.form == "primal" or (self.cfg.form == "auto" and d < n)

    def carry(self, claims: Sequence[Claim], labels: Sequence[bool | None],
              onto: CarriedFit | None = None) -> CarriedFit:
        """The labeled ones of `claims` (a finished batch) as sums for later fits, added to `onto`: O(batch).
        Needs `prepare` on a pool that holds them, so every batch shares one feature space."""
        keep = [(c, y) for c, y in zip(claims, labels) if y is not None]
        if self._universe is None or any(c.id not in self._universe[1] for c, _ in keep):
            raise ValueError("carried claims need prepare() on a pool that holds them and the batch")
        whole, rows = self._universe[0], [self._universe[1][c.id] for c, _ in keep]
        X = whole.features[rows] / np.sqrt(whole.features.shape[1])
        y = np.array([1.0 if v else -1.0 for _, v in keep])
        base = onto or CarriedFit.empty(whole.features.shape[1])
        return base.extend(X, y, [f"{c.id}={int(v)}" for c, v in keep])

    def session(self, claims: Sequence[Claim], labels: Sequence[bool | None],
                carry: CarriedFit | None = None) -> PrimalProbe | None:
        """An incrementally updated scorer state for a search over `claims` (None in kernel form). `carry`: claims
        labeled earlier (see `carry`) that join every fit."""
        pool = self.pool(claims)
        carried = carry is not None and carry.n > 0
        if not (self.primal(pool) or carried and self.cfg.form == "auto"):  # carried rows make n ≫ d anyway
            return None
        return PrimalProbe(pool.features, self.cfg.zero_shot_weight * pool.zero_shot, pool.groups, labels,
                           ridge=self.cfg.ridge, loo=self.cfg.loo, score_scale=self.cfg.score_scale,
                           carry=carry if carried else None)

    def loo_scores(self, claims: Sequence[Claim], labels: Sequence[bool | None], queries: Sequence[int]) -> np.ndarray:
        state = self.session(claims, labels)
        if state is not None:
            self.stats.queries += len(queries)
            self.stats.forward_calls += 1
            labeled = state.scores()
            return np.array([labeled[q] if labels[q] is not None else state.score(q) for q in queries],
                            dtype=np.float64)
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
