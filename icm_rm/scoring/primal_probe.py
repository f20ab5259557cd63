"""The probe in primal form, kept up to date while the search changes labels: no n×n matrix, O(n·d) memory.

For the current labeling it holds M⁻¹ = (X_LᵀX_L + λI)⁻¹ (d×d), w = M⁻¹X_Lᵀy and, per LOO block G (a consistency
group's labeled members, or one claim), B_G = (I − X_G M⁻¹ X_Gᵀ)⁻¹ (see ridge.py). Then
    Σ_{i∈L} y_i ŝ_i = |L| − a + vᵀw,    a = Σ_G y_Gᵀ B_G y_G,   v = Σ_G X_Gᵀ B_G y_G
so P(D) is a running sum. A label flip leaves L, λ and every B_G unchanged: a, v, b = X_Lᵀy and w move by the
flipped blocks' terms, O(d²). A claim entering or leaving L moves G = X_LᵀX_L by x·xᵀ and λ (relative to the
mean squared norm of the labeled claims), so M and every labeled block's B_G change: those are recomputed
vectorised, O(|L|·d²). The sums are running sums: `state_dict` saves them so a resume continues bit for bit.

`carry` (a `CarriedFit`: the sums of claims labeled by earlier batches) joins every fit and λ's mean; those claims
are never scored, and a search pays O(d²) for them however many there are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .ridge import block_inverses, ridge_lambda, sym_inv

Label = bool | None


@dataclass(frozen=True)
class CarriedFit:
    """Claims labeled before a search (earlier batches), as the sums a fit needs, in the scaled feature space
    (x = feature / √d): count, Σ‖x‖², XᵀX, Xᵀy; `digest` names exactly which claims and labels (resume checks it)."""

    n: int
    sq: float
    G: np.ndarray
    b: np.ndarray
    digest: str

    @classmethod
    def empty(cls, d: int) -> CarriedFit:
        return cls(0, 0.0, np.zeros((d, d)), np.zeros(d), "")

    def extend(self, X: np.ndarray, y: np.ndarray, names: Sequence[str]) -> CarriedFit:
        """These sums plus rows X (already scaled) with labels y = ±1; `names` (ids + labels) extend the digest."""
        h = hashlib.sha256(self.digest.encode())
        h.update("\x01".join(names).encode())
        return CarriedFit(self.n + len(X), self.sq + float(np.einsum("nd,nd->", X, X)), self.G + X.T @ X,
                          self.b + X.T @ y, h.hexdigest()[:24])


@dataclass
class _Fit:
    """Everything derived from one labeling; `y` holds +1 / −1 / 0 (unlabeled) per claim."""

    y: np.ndarray
    n_labeled: int
    sq: float  # Σ ‖x_i‖² over the fit's rows (labeled + carried)
    G: np.ndarray  # X_LᵀX_L (+ carried), d×d
    b: np.ndarray  # X_Lᵀy (+ carried), d
    zsum: float  # Σ y_i·ζ_i over labeled claims (the hybrid zero-shot term)
    Minv: np.ndarray | None  # None when nothing is in the fit
    w: np.ndarray
    B: dict  # block size k → (m, k, k)
    a: float
    v: np.ndarray

    @property
    def total(self) -> float:
        """Σ_{i∈L} y_i ŝ_i (the probe part of n·P)."""
        return self.n_labeled - self.a + float(self.v @ self.w)


@dataclass
class ProbeTrial:
    """A labeling evaluated but not committed: its P, and what `commit` needs to make it current."""

    p: float
    n_labeled: int
    changes: dict
    fit: _Fit | None  # a new fit when the labeled set changed; None for pure flips (only the fields below move)
    b: np.ndarray | None = None
    w: np.ndarray | None = None
    a: float = 0.0
    v: np.ndarray | None = None
    zsum: float = 0.0


class PrimalProbe:
    """LOO ridge-probe scores of one pool under a labeling that changes a few claims at a time."""

    def __init__(self, features: np.ndarray, zeta: np.ndarray, groups: Sequence[str], labels: Sequence[Label], *,
                 ridge: float, loo: str = "group", score_scale: float = 1.0,
                 carry: CarriedFit | None = None):
        """features: (n, d) with kernel = features·featuresᵀ / d (as the kernel form); zeta: the hybrid term per claim
        (zero_shot_weight × zero-shot signal); carry: claims fitted, never scored."""
        F = np.asarray(features, dtype=np.float64)
        self.X = F / np.sqrt(F.shape[1])
        self.n, self.d = self.X.shape
        self.sqn = np.einsum("nd,nd->n", self.X, self.X)
        self.zeta = np.asarray(zeta, dtype=np.float64)
        self.ridge, self.scale = ridge, score_scale
        self.group_mode = loo == "group"
        members: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(g if self.group_mode else i, []).append(i)
        self._groups = list(members.values())
        self.buckets: dict[int, np.ndarray] = {}
        self._eye: dict[int, np.ndarray] = {}
        self._block_of = np.zeros((self.n, 2), dtype=np.int64)  # claim → (block size k, row in bucket k)
        sizes: dict[int, list] = {}
        for g in self._groups:
            sizes.setdefault(len(g), []).append(g)
        for k, gs in sizes.items():
            self.buckets[k] = np.array(gs, dtype=np.int64).reshape(len(gs), k)
            self._eye[k] = np.broadcast_to(np.eye(k), (len(gs), k, k))
            for row, g in enumerate(gs):
                self._block_of[g] = (k, row)
        c = carry or CarriedFit.empty(self.d)
        self._carry = (c.n, c.sq, c.G, c.b)
        y = np.array([0.0 if v is None else (1.0 if v else -1.0) for v in labels], dtype=np.float64)
        lab = y != 0
        self.fit = self._fit(y, G=self.X.T @ (self.X * lab[:, None]) + self._carry[2], b=self.X.T @ y + self._carry[3],
                             sq=float(self.sqn @ lab) + self._carry[1], zsum=float(self.zeta @ y))

    # ------------------------------------------------------------------ the fit of a labeling

    def _fit(self, y: np.ndarray, *, G: np.ndarray, b: np.ndarray, sq: float, zsum: float,
             a: float | None = None, v: np.ndarray | None = None) -> _Fit:
        """M⁻¹, w and every labeled block's B_G for labels y and the sums G = XᵀX, b = Xᵀy, sq = Σ‖x‖² over the fit
        (a, v too unless given): O(|L|·d²), only blocks with a labeled member."""
        n_labeled = int(np.count_nonzero(y))
        n_fit = n_labeled + self._carry[0]
        B = {k: self._eye[k] for k in self.buckets}  # identity where a block has no labeled member
        if n_fit == 0:
            return _Fit(y=y, n_labeled=0, sq=sq, G=G, b=b, zsum=zsum, Minv=None, w=np.zeros(self.d), B=B,
                        a=0.0 if a is None else a, v=np.zeros(self.d) if v is None else v)
        Minv = sym_inv(G + ridge_lambda(self.ridge, sq, n_fit) * np.eye(self.d))
        w = Minv @ b
        a_sum, v_sum = 0.0, np.zeros(self.d)
        for k, idx in self.buckets.items():
            yb = y[idx]
            rows = np.flatnonzero((yb != 0).any(axis=1)) if k > 1 else np.flatnonzero(yb[:, 0])
            if not len(rows):
                continue
            idx, yb = idx[rows], yb[rows]
            Xb = self.X[idx] * (yb != 0)[..., None]  # unlabeled members drop out (zero rows)
            Bk = self._eye[k].copy()
            Bk[rows] = block_inverses(Xb, Minv)
            B[k] = Bk
            By = np.einsum("mkl,ml->mk", Bk[rows], yb)
            a_sum += float(np.einsum("mk,mk->", yb, By))
            v_sum += np.einsum("mkd,mk->d", Xb, By)
        return _Fit(y=y, n_labeled=n_labeled, sq=sq, G=G, b=b, zsum=zsum, Minv=Minv, w=w, B=B,
                    a=a_sum if a is None else a, v=v_sum if v is None else v)

    def _p(self, n_labeled: int, total: float, zsum: float) -> float:
        return (self.scale * total + zsum) / n_labeled if n_labeled else 0.0

    @property
    def p(self) -> float:
        """P(D) of the current labeling: mean over labeled claims of y_i·s_i."""
        f = self.fit
        return self._p(f.n_labeled, f.total, f.zsum)

    # ------------------------------------------------------------------ trials and commits

    def trial(self, changes: Mapping[int, Label]) -> ProbeTrial:
        """P of the current labeling with `changes` ({claim: new label}) applied; nothing changes until `commit`."""
        f = self.fit
        new = {i: 0.0 if v is None else (1.0 if v else -1.0) for i, v in changes.items()}
        if any((f.y[i] == 0) != (v == 0) for i, v in new.items()):  # the labeled set changes: refit
            y, G, b, sq, zsum = f.y.copy(), f.G.copy(), f.b.copy(), f.sq, f.zsum
            for i, v in new.items():
                x, old = self.X[i], f.y[i]
                if (old == 0) != (v == 0):
                    sign = 1.0 if old == 0 else -1.0
                    G += sign * np.outer(x, x)
                    sq += sign * self.sqn[i]
                b += (v - old) * x
                zsum += (v - old) * self.zeta[i]
                y[i] = v
            fit = self._fit(y, G=G, b=b, sq=sq, zsum=zsum)
            return ProbeTrial(p=self._p(fit.n_labeled, fit.total, fit.zsum), n_labeled=fit.n_labeled,
                              changes=dict(changes), fit=fit)
        dy = {i: v - f.y[i] for i, v in new.items() if v != f.y[i]}
        b, a, v, zsum = f.b.copy(), f.a, f.v.copy(), f.zsum
        for i, d in dy.items():
            b += d * self.X[i]
            zsum += d * self.zeta[i]
        for k, row in {tuple(self._block_of[i]) for i in dy}:
            idx = self.buckets[k][row]
            y_old = f.y[idx]
            y_new = np.array([new.get(int(j), f.y[j]) for j in idx])
            Bk = f.B[k][row]
            Xb = self.X[idx] * (y_old != 0)[:, None]
            a += float(y_new @ Bk @ y_new - y_old @ Bk @ y_old)
            v += Xb.T @ (Bk @ (y_new - y_old))
        w = f.Minv @ b if f.Minv is not None else f.w
        total = f.n_labeled - a + float(v @ w)
        return ProbeTrial(p=self._p(f.n_labeled, total, zsum), n_labeled=f.n_labeled, changes=dict(changes),
                          fit=None, b=b, w=w, a=a, v=v, zsum=zsum)

    def commit(self, t: ProbeTrial) -> None:
        """Make a trial's labeling the current one."""
        if t.fit is not None:
            self.fit = t.fit
            return
        f = self.fit
        for i, v in t.changes.items():
            f.y[i] = 0.0 if v is None else (1.0 if v else -1.0)
        f.b, f.w, f.a, f.v, f.zsum = t.b, t.w, t.a, t.v, t.zsum

    # ------------------------------------------------------------------ scores

    def score(self, q: int) -> float:
        """Claim q's score under the current labeling: its LOO prediction when labeled; when unlabeled, the fit on
        every labeled claim outside its group (group mode) or on all of them (claim mode)."""
        f = self.fit
        if f.y[q] != 0:
            k, row = self._block_of[q]
            idx = self.buckets[k][row]
            yb = f.y[idx]
            r = yb - (self.X[idx] * (yb != 0)[:, None]) @ f.w
            s_hat = yb - f.B[k][row] @ r
            return self.scale * float(s_hat[list(idx).index(q)]) + float(self.zeta[q])
        return self.scale * self._unlabeled_prediction(q) + float(self.zeta[q])

    def _unlabeled_prediction(self, q: int) -> float:
        f = self.fit
        nc = self._carry[0]
        same = []
        if self.group_mode:
            k, row = self._block_of[q]
            same = [int(j) for j in self.buckets[k][row] if f.y[j] != 0]
        if not same:
            return float(self.X[q] @ f.w) if f.Minv is not None else 0.0
        n_fit = f.n_labeled + nc - len(same)
        if n_fit == 0:
            return 0.0
        Xs = self.X[same]
        G = f.G - Xs.T @ Xs
        b = f.b - Xs.T @ f.y[same]
        lam = ridge_lambda(self.ridge, f.sq - float(self.sqn[same].sum()), n_fit)
        return float(self.X[q] @ np.linalg.solve(G + lam * np.eye(self.d), b))

    def scores(self) -> np.ndarray:
        """Every claim's score under the current labeling, NaN where unlabeled (vectorised, O(n·d))."""
        f = self.fit
        out = np.full(self.n, np.nan)
        for k, idx in self.buckets.items():
            yb = f.y[idx]
            r = yb - np.einsum("mkd,d->mk", self.X[idx] * (yb != 0)[..., None], f.w)
            s_hat = yb - np.einsum("mkl,ml->mk", f.B[k], r)
            lab = yb != 0
            out[idx[lab]] = self.scale * s_hat[lab] + self.zeta[idx[lab]]
        return out

    # ------------------------------------------------------------------ resumable state

    def state_dict(self) -> dict:
        """The running sums (everything else follows from them and the labels): saving them lets a resumed search
        continue with the same bits."""
        f = self.fit
        return {"G": f.G.tolist(), "b": f.b.tolist(), "sq": f.sq, "zsum": f.zsum, "a": f.a, "v": f.v.tolist()}

    def load_state_dict(self, state: Mapping) -> None:
        self.fit = self._fit(self.fit.y, G=np.array(state["G"]), b=np.array(state["b"]), sq=float(state["sq"]),
                             zsum=float(state["zsum"]), a=float(state["a"]), v=np.array(state["v"]))
