"""Fitting a law: Huber loss on log residuals, grid starts by variable projection,
L-BFGS-B refinement, and a bootstrap over rows.

The method follows Besiroglu et al. (2024), "Chinchilla Scaling: A replication
attempt" (Epoch AI), section 2:

- Objective: ``sum_i w_i * huber_delta(log L_pred_i - log L_obs_i)`` with
  ``delta = 1e-3``, **summed** over points, not averaged (averaging scales the
  objective down so far that L-BFGS-B stops early, one explanation the replication
  gives for the original paper's estimates). ``w_i`` are row counts: 1 for a plain fit,
  bootstrap multiplicities for a resample, which is the same as fitting the
  resampled rows.
- Starts: instead of Epoch's grid over all parameters, a dense grid over the
  exponents only; at each grid point the coefficients (E, A, B or their Kaplan
  analogues) solve a non-negative linear least squares problem in closed form
  (variable projection). The best local minima of the grid (by the Huber objective)
  are refined with L-BFGS-B using analytic gradients; ``starts_agreeing`` counts the
  refined starts that end at the best optimum.
- Uncertainty: a bootstrap over rows; every resample is re-initialised from the grid
  (its own variable projection on its own weights) and refined. Percentile 95%
  intervals. The resamples come from a seeded generator and are chunked independently
  of the number of workers, so a fit is deterministic.

scipy's ``nnls`` is not used for the grid because it solves one problem at a time;
with two or three coefficients the exact solution of every problem on the grid is the
best feasible one among the unconstrained solutions on each subset of coefficients,
which vectorises (see :func:`nnls_small`).
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from harness.analysis._threads import blas_threads
from harness.analysis.laws import Law

HUBER_DELTA = 1e-3
N_STARTS = 8  # refined starts in a plain fit
BOOT_RATIO = 1.5  # a resample refines its grid minima up to this factor above its best (at most law.boot_starts)
LBFGSB_OPTIONS = {"ftol": 1e-12, "gtol": 1e-12, "maxiter": 20_000, "maxfun": 40_000, "maxls": 50}
_COEF_FLOOR = 1e-8  # smallest normalised coefficient of a start: keeps logs finite
_CHUNK = 32  # resamples per variable-projection batch; fixed so results never depend on workers


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss of each residual and its derivative (as ``scipy.special.huber``)."""
    a = np.abs(r)
    val = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
    return val, np.minimum(np.maximum(r, -delta), delta)


def objective(theta: np.ndarray, law: Law, logx: np.ndarray, logy: np.ndarray, w: np.ndarray,
              delta: float = HUBER_DELTA) -> tuple[float, np.ndarray]:
    """Summed, weighted Huber loss on log residuals and its gradient in theta."""
    lp, jac = law.log_pred_grad(theta, logx)
    val, d = huber(lp - logy, delta)
    return float(w @ val), jac.T @ (w * d)


def nnls_small(gram: np.ndarray, rhs: np.ndarray, const: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched exact non-negative least squares for k <= 3 coefficients.

    Minimises ``const - 2 rhs.c + c.gram.c`` over ``c >= 0`` for every leading index.
    The optimum is the unconstrained optimum on its support, so it is the best
    feasible candidate over all 2^k supports. Columns are normalised to unit Gram
    diagonal first, which makes the systems well conditioned whatever the units.
    Returns (coefficients (..., k), residual sum of squares (...)).
    """
    k = gram.shape[-1]
    d = np.sqrt(np.maximum(np.diagonal(gram, axis1=-2, axis2=-1), 1e-300))
    g = gram / (d[..., :, None] * d[..., None, :])
    b = rhs / d
    best_q = np.array(const, dtype=float, copy=True)
    best_c = np.zeros(b.shape)
    for size in range(1, k + 1):
        for sub in itertools.combinations(range(k), size):
            idx = list(sub)
            gs = g[..., idx, :][..., :, idx] + 1e-10 * np.eye(size)
            bs = b[..., idx]
            cs = np.linalg.solve(gs, bs[..., None])[..., 0]
            q = const - np.sum(bs * cs, axis=-1)
            ok = np.all(cs >= 0, axis=-1) & (q < best_q)
            best_q = np.where(ok, q, best_q)
            full = np.zeros(b.shape)
            full[..., idx] = cs
            best_c = np.where(ok[..., None], full, best_c)
    best_c = np.maximum(best_c, _COEF_FLOOR)
    return best_c / d, np.maximum(best_q, 0.0)


class Grid:
    """Variable projection on a law's exponent grid for one data set.

    ``solve(W)`` takes row weights (n, R) (R weight vectors, e.g. bootstrap counts)
    and returns, for every weight vector and grid point, the optimal non-negative
    coefficients (R, G, k). ``objective(coef, w)`` is the Huber objective of those
    coefficients at every grid point, computed from the basis directly (predicted
    over observed is ``basis . c``), which is much cheaper than through the law's
    exp/logsumexp. ``thetas(coef)`` turns coefficients into the law's parameters.
    """

    def __init__(self, law: Law, logx: np.ndarray, y: np.ndarray):
        self.law = law
        self.points, self.shape = law.grid()
        self.basis, self.rscale, self.scale = law.vp_system(self.points, logx, y)
        G, k, n = self.basis.shape
        self.k = k
        self.iu = np.triu_indices(k)
        # Gram entries are linear in the weights: precompute the products once and
        # get every resample's Gram matrices from one matrix product.
        self.outer = (self.basis[:, self.iu[0], :] * self.basis[:, self.iu[1], :]).reshape(G * len(self.iu[0]), n)
        self.lin = self.basis.reshape(G * k, n)

    def solve(self, W: np.ndarray) -> np.ndarray:
        G, k, R = len(self.points), self.k, W.shape[1]
        gu = (self.outer @ W).reshape(G, len(self.iu[0]), R).transpose(2, 0, 1)
        gram = np.empty((R, G, k, k))
        gram[..., self.iu[0], self.iu[1]] = gu
        gram[..., self.iu[1], self.iu[0]] = gu
        rhs = (self.lin @ W).reshape(G, k, R).transpose(2, 0, 1)
        const = np.broadcast_to(W.sum(axis=0)[:, None], (R, G))
        return nnls_small(gram, rhs, const)[0]

    def objective(self, coef: np.ndarray, w: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
        """Huber objective at every grid point for coefficients (G, k) and weights (n,)."""
        ratio = np.einsum("gkn,gk->gn", self.basis, coef)
        val, _ = huber(self.rscale[:, None] * np.log(ratio), delta)
        out = val @ w
        out[~np.isfinite(out)] = np.inf
        return out

    def thetas(self, coef: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Law parameters (m, p) at grid points ``idx`` (all by default)."""
        idx = np.arange(len(self.points)) if idx is None else np.asarray(idx)
        return self.law.theta_from_vp(self.points[idx], coef[idx], self.scale)


def local_minima(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Flat indices of grid points no worse than any neighbour (diagonals included, so
    a valley running diagonally is one minimum, not many), best first."""
    v = np.pad(values.reshape(shape), 1, constant_values=np.inf)
    core = tuple(slice(1, -1) for _ in shape)
    c = v[core]
    is_min = np.isfinite(c)
    for off in itertools.product((-1, 0, 1), repeat=len(shape)):
        if any(off):
            is_min &= c <= v[tuple(slice(1 + o, v.shape[i] - 1 + o) for i, o in enumerate(off))]
    idx = np.flatnonzero(is_min.ravel())
    return idx[np.argsort(values[idx], kind="stable")]


def pick_starts(values: np.ndarray, shape: tuple[int, ...], n: int) -> np.ndarray:
    """The best ``n`` local minima of the grid, topped up with the best other points."""
    starts = list(local_minima(values, shape)[:n])
    if len(starts) < n:
        taken = set(starts)
        for i in np.argsort(values, kind="stable"):
            if len(starts) >= n or not np.isfinite(values[i]):
                break
            if i not in taken:
                starts.append(i)
    return np.asarray(starts, dtype=int)


def _scaled(theta, law, logx, logy, w, delta):
    f, g = objective(theta, law, logx, logy, w, delta)
    s = 1.0 / (delta * delta)
    return f * s, g * s


def refine(law: Law, theta0: np.ndarray, logx: np.ndarray, logy: np.ndarray, w: np.ndarray,
           delta: float = HUBER_DELTA):
    """L-BFGS-B from ``theta0`` with tight tolerances (scipy's OptimizeResult; ``fun``
    is the unscaled objective).

    The optimizer sees the objective divided by delta^2 (about |r|/delta per point):
    L-BFGS-B's ftol test is relative to max(|f|, 1), so on the raw objective (about
    1e-3 for typical fits) it would act as a loose absolute test and stop in the flat
    valley of A and B short of the optimum."""
    r = minimize(_scaled, theta0, args=(law, logx, logy, w, delta), jac=True,
                 method="L-BFGS-B", bounds=law.bounds(), options=LBFGSB_OPTIONS)
    r.fun = float(r.fun) * delta * delta
    return r


@dataclass
class FitResult:
    """A fitted law on ``n_points`` rows (inputs ``x`` plain scale, losses ``y``)."""

    law: Law
    theta: np.ndarray
    objective: float
    x: np.ndarray
    y: np.ndarray
    starts_agreeing: int
    n_starts: int
    message: str
    boot_thetas: np.ndarray | None = None  # (R, p) internal parameters per resample
    extra: dict = field(default_factory=dict)

    @property
    def params(self) -> dict[str, float]:
        return self.law.params(self.theta)

    @property
    def n_points(self) -> int:
        return len(self.y)

    @property
    def log_residuals(self) -> np.ndarray:
        """log predicted - log observed, in input order."""
        return self.law.log_pred(self.theta, np.log(self.x)) - np.log(self.y)

    @property
    def r2_log(self) -> float:
        """1 - SS_res/SS_tot of log loss (unweighted)."""
        ly = np.log(self.y)
        ss_tot = float(np.sum((ly - ly.mean()) ** 2))
        ss_res = float(np.sum(self.log_residuals ** 2))
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.law.predict(self.theta, x)

    def boot_params(self) -> np.ndarray | None:
        """Reported parameters per resample (R, len(names)), finite rows only."""
        if self.boot_thetas is None:
            return None
        p = self.law.params_array(self.boot_thetas)
        return p[np.all(np.isfinite(p), axis=1)]

    def ci95(self) -> dict[str, list[float]] | None:
        p = self.boot_params()
        if p is None or len(p) == 0:
            return None
        lo, hi = np.percentile(p, [2.5, 97.5], axis=0)
        return {k: [float(a), float(b)] for k, a, b in zip(self.law.names, lo, hi)}


def _as_inputs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(y, dtype=float)
    if not (np.all(x > 0) and np.all(y > 0) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("inputs and losses must be finite and positive")
    return x, y, np.log(x), np.log(y)


def _agree(res: list, best) -> int:
    """Refined starts whose objective and parameters match the best one."""
    n = 0
    for r in res:
        same_f = r.fun - best.fun <= 1e-6 * abs(best.fun) + 1e-14
        same_x = np.max(np.abs(r.x - best.x)) <= 1e-2
        n += bool(same_f and same_x)
    return n


def fit_law(law: Law, x: np.ndarray, y: np.ndarray, n_starts: int = N_STARTS,
            delta: float = HUBER_DELTA) -> FitResult:
    """Fit ``law`` to inputs ``x`` ((n, d) plain scale) and losses ``y`` (n,)."""
    with blas_threads(1):
        return _fit_law(law, x, y, n_starts, delta)


def _fit_law(law, x, y, n_starts, delta):
    x, y, logx, logy = _as_inputs(x, y)
    center = logx.mean(axis=0)
    lx = logx - center  # fit on centred log inputs, see Law.recenter
    w = np.ones(len(y))
    grid = Grid(law, lx, y)
    coef = grid.solve(w[:, None])[0]
    starts = pick_starts(grid.objective(coef, w, delta), grid.shape, n_starts)
    res = [refine(law, th, lx, logy, w, delta) for th in grid.thetas(coef, starts)]
    best = min(res, key=lambda r: (r.fun if np.isfinite(r.fun) else np.inf))
    return FitResult(law=law, theta=law.recenter(np.asarray(best.x), center), objective=float(best.fun),
                     x=x, y=y, starts_agreeing=_agree(res, best), n_starts=len(res), message=str(best.message))


def _boot_chunk(law: Law, logx: np.ndarray, logy: np.ndarray, W: np.ndarray, delta: float) -> np.ndarray:
    """Refit every column of weights ``W`` (n, R) from its own grid; -> (R, p)."""
    with blas_threads(1):
        return _boot_chunk_inner(law, logx, logy, W, delta)


def _boot_chunk_inner(law, logx, logy, W, delta):
    center = logx.mean(axis=0)
    logx = logx - center
    grid = Grid(law, logx, np.exp(logy))
    out = np.full((W.shape[1], len(law.bounds())), np.nan)
    for s in range(0, W.shape[1], _CHUNK):
        sub = W[:, s:s + _CHUNK]
        coefs = grid.solve(sub)
        for j in range(sub.shape[1]):
            w = sub[:, j]
            f = grid.objective(coefs[j], w, delta)
            starts = pick_starts(f, grid.shape, law.boot_starts)
            # Grid minima far worse than the best (> BOOT_RATIO x) never won in our
            # checks; skipping them halves the cost on well-separated landscapes.
            starts = starts[f[starts] <= BOOT_RATIO * f[starts[0]]]
            best = None
            for th in grid.thetas(coefs[j], starts):
                r = refine(law, th, logx, logy, w, delta)
                if best is None or r.fun < best.fun:
                    best = r
            out[s + j] = best.x
    return law.recenter(out, center)


def bootstrap_weights(n: int, n_resamples: int, seed: int, name: str) -> np.ndarray:
    """Row multiplicities (n, R) of ``n_resamples`` resamples with replacement.

    Seeded by ``(seed, crc32(name))`` so each law gets its own fixed stream."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    idx = rng.integers(0, n, size=(n_resamples, n))
    W = np.zeros((n_resamples, n))
    np.add.at(W, (np.repeat(np.arange(n_resamples), n), idx.ravel()), 1.0)
    return W.T.copy()


def bootstrap(fit: FitResult, n_resamples: int = 1000, seed: int = 0, n_jobs: int = 1,
              delta: float = HUBER_DELTA) -> FitResult:
    """Attach ``n_resamples`` bootstrap refits (rows resampled with replacement)."""
    if n_resamples <= 0:
        return fit
    logx, logy = np.log(fit.x), np.log(fit.y)
    W = bootstrap_weights(len(fit.y), n_resamples, seed, fit.law.name)
    # Job boundaries are multiples of _CHUNK, so results do not depend on n_jobs.
    per_job = _CHUNK * max(1, -(-n_resamples // (_CHUNK * max(1, n_jobs) * 4)))
    parts = [W[:, s:s + per_job] for s in range(0, n_resamples, per_job)]
    if n_jobs > 1 and len(parts) > 1:
        from joblib import Parallel, delayed

        outs = Parallel(n_jobs=n_jobs)(delayed(_boot_chunk)(fit.law, logx, logy, P, delta) for P in parts)
    else:
        outs = [_boot_chunk(fit.law, logx, logy, P, delta) for P in parts]
    fit.boot_thetas = np.concatenate(outs, axis=0)
    return fit
