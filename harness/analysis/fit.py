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
  (variable projection), reweighted a few times for the Huber loss (IRLS, see
  :class:`Grid`). The best local minima of the grid (by the Huber objective) are
  refined with L-BFGS-B using analytic gradients; ``starts_agreeing`` counts the
  refined starts that end at the best optimum.
- Uncertainty: a bootstrap over rows; every resample is re-initialised from the grid
  (its own variable projection on its own weights) and its best grid minima refined.
  Percentile 95% intervals. The resamples come from a seeded generator and are
  chunked independently of the number of workers, so a fit is deterministic.

Cost: a bootstrap is some 10^5 L-BFGS-B evaluations on a few dozen points, so what
counts is per-call overhead: the objective is evaluated with as few array operations
as possible (:class:`Objective`), the grid's small systems are solved by explicit
formulas over the whole batch (:func:`nnls_small`), and all laws' resamples go
through one worker pool (:func:`bootstrap_all`).

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
LBFGSB_OPTIONS = {"ftol": 1e-12, "gtol": 1e-12, "maxiter": 20_000, "maxfun": 40_000, "maxls": 50}
_COEF_FLOOR = 1e-8  # smallest normalised coefficient of a start: keeps logs finite
_CHUNK = 32  # resamples per variable-projection batch; fixed so results never depend on workers
_BATCH_ELEMENTS = 1 << 21  # resamples x grid points x rows per batch of reweighting steps
IRLS_STEPS = 3  # Huber reweighting steps of the grid's coefficients (see Grid)


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


class Objective:
    """:func:`objective` for one data set and weight vector as L-BFGS-B sees it:
    ``theta -> (f, grad)`` divided by delta^2 (see :func:`refine`).

    A bootstrap makes some 10^5 calls on a few dozen points each, so what a call costs
    is the number of array operations, not arithmetic. For laws with a
    :meth:`~harness.analysis.laws.Law.design` (log L a logsumexp of terms linear in
    theta: Chinchilla and the power laws) value and gradient take two matrix products
    and a dozen operations; other laws give a Jacobian-vector product
    (:meth:`~harness.analysis.laws.Law.log_pred_vjp`). Either way a call does about
    a third less work than :func:`objective`, which the tests use as the reference."""

    def __init__(self, law: Law, logx: np.ndarray, logy: np.ndarray, w: np.ndarray, delta: float = HUBER_DELTA):
        self.law, self.logx, self.logy, self.w, self.delta = law, logx, logy, w, delta
        self.scale = 1.0 / (delta * delta)
        M = law.design(logx)
        self.M = None if M is None else M.reshape(-1, M.shape[-1])
        self.MT = None if M is None else np.ascontiguousarray(self.M.T)
        self.shape = None if M is None else M.shape[:2]

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        if self.M is None:
            lp, vjp = self.law.log_pred_vjp(theta, self.logx)
            r = lp - self.logy
        else:
            t = (self.M @ theta).reshape(self.shape)
            m = t.max(axis=0)
            e = np.exp(t - m)
            tot = e.sum(axis=0)
            r = np.log(tot) + m - self.logy
        c = np.clip(r, -self.delta, self.delta)  # huber'(r)
        wc = self.w * c
        # c (r - c/2) is r^2/2 inside delta and delta (|r| - delta/2) outside: huber(r)
        f = float(wc @ (r - 0.5 * c))
        if self.M is None:
            g = vjp(wc)
        else:
            g = self.MT @ (e * (wc / tot)).ravel()  # d log L / d theta = sum_k softmax_k * design_k
        return f * self.scale, g * self.scale


def _solve_sub(g: list, b: list, sub: tuple[int, ...]) -> list[np.ndarray]:
    """Solve the sub-system of ``g c = b`` on the indices ``sub`` (at most 3) for a batch,
    by Cramer's rule on component arrays: on 10^3 grid points times 32 resamples a
    LAPACK call per tiny system, or stacking and fancy indexing, costs far more than
    this arithmetic. ``g[i][j]`` and ``b[i]`` are arrays of the batch shape."""
    if len(sub) == 1:
        i, = sub
        return [b[i] / g[i][i]]
    if len(sub) == 2:
        i, j = sub
        det = g[i][i] * g[j][j] - g[i][j] * g[j][i]
        return [(g[j][j] * b[i] - g[i][j] * b[j]) / det, (g[i][i] * b[j] - g[j][i] * b[i]) / det]
    i, j, l = sub
    (a11, a12, a13), (a21, a22, a23), (a31, a32, a33) = ([g[r][c] for c in sub] for r in sub)
    r1, r2, r3 = b[i], b[j], b[l]
    m1, m2, m3 = a22 * a33 - a23 * a32, a21 * a33 - a23 * a31, a21 * a32 - a22 * a31
    det = a11 * m1 - a12 * m2 + a13 * m3
    x1 = r1 * m1 - a12 * (r2 * a33 - a23 * r3) + a13 * (r2 * a32 - a22 * r3)
    x2 = a11 * (r2 * a33 - a23 * r3) - r1 * m2 + a13 * (a21 * r3 - r2 * a31)
    x3 = a11 * (a22 * r3 - r2 * a32) - a12 * (a21 * r3 - r2 * a31) + r1 * m3
    return [x1 / det, x2 / det, x3 / det]


def nnls_small(gram: np.ndarray, rhs: np.ndarray, const: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched exact non-negative least squares for k <= 3 coefficients.

    Minimises ``const - 2 rhs.c + c.gram.c`` over ``c >= 0`` for every leading index.
    The optimum is the unconstrained optimum on its support, so it is the best
    feasible candidate over all 2^k supports. Columns are normalised to unit Gram
    diagonal first (plus a 1e-10 ridge), which makes the systems well conditioned
    whatever the units. Returns (coefficients (..., k), residual sum of squares (...)).
    """
    k = gram.shape[-1]
    d = np.sqrt(np.maximum(np.diagonal(gram, axis1=-2, axis2=-1), 1e-300))
    g = [[gram[..., i, j] / (d[..., i] * d[..., j]) + (1e-10 if i == j else 0.0) for j in range(k)]
         for i in range(k)]
    b = [rhs[..., i] / d[..., i] for i in range(k)]
    best_q = np.array(const, dtype=float, copy=True)
    best_c = [np.zeros(best_q.shape) for _ in range(k)]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for size in range(1, k + 1):
            for sub in itertools.combinations(range(k), size):
                cs = _solve_sub(g, b, sub)
                q = const - sum(b[i] * c for i, c in zip(sub, cs))
                ok = (q < best_q) & np.isfinite(q)
                for c in cs:
                    ok &= c >= 0
                best_q = np.where(ok, q, best_q)
                for i in range(k):
                    best_c[i] = np.where(ok, cs[sub.index(i)] if i in sub else 0.0, best_c[i])
    c = np.maximum(np.stack(best_c, axis=-1), _COEF_FLOOR)
    return c / d, np.maximum(best_q, 0.0)


class Grid:
    """Variable projection on a law's exponent grid for one data set.

    ``solve(W)`` takes row weights (n, R) (R weight vectors, e.g. bootstrap counts)
    and returns, for every weight vector and grid point, non-negative coefficients
    (R, G, k) that nearly minimise the Huber objective at those exponents: the
    least-squares solution, then ``IRLS_STEPS`` steps of iteratively reweighted least
    squares (Huber's weights min(1, delta/|r|), Holland & Welsch 1977). Least squares
    alone lets one badly fitting run pull the coefficients, so the grid ranks the wrong
    valleys first: on our CPU sweep's records the best two least-squares grid minima
    missed a bootstrap resample's best Chinchilla optimum in a quarter of resamples;
    after three reweighting steps the best one or two find it (measured against the
    best of sixteen refined starts, eight from each kind of grid).
    ``objectives(coefs, W)`` is the Huber objective of those coefficients at every
    grid point, computed from the basis directly (predicted over observed is
    ``basis . c``), which is much cheaper than through the law's exp/logsumexp.
    ``thetas(coef)`` turns coefficients into the law's parameters.
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
        self.outer3 = self.basis[:, self.iu[0], :] * self.basis[:, self.iu[1], :]  # (G, u, n)
        self.outer = self.outer3.reshape(G * len(self.iu[0]), n)
        self.lin = self.basis.reshape(G * k, n)

    def _nnls(self, gu: np.ndarray, rhs: np.ndarray, const: np.ndarray) -> np.ndarray:
        """Coefficients from Gram entries (R, G, u), right-hand sides (R, G, k), const (R, G)."""
        gram = np.empty(gu.shape[:2] + (self.k, self.k))
        gram[..., self.iu[0], self.iu[1]] = gu
        gram[..., self.iu[1], self.iu[0]] = gu
        return nnls_small(gram, rhs, const)[0]

    def solve(self, W: np.ndarray, delta: float = HUBER_DELTA, irls_steps: int | None = None) -> np.ndarray:
        G, k, R = len(self.points), self.k, W.shape[1]
        gu = (self.outer @ W).reshape(G, len(self.iu[0]), R).transpose(2, 0, 1)
        rhs = (self.lin @ W).reshape(G, k, R).transpose(2, 0, 1)
        coefs = self._nnls(gu, rhs, np.broadcast_to(W.sum(axis=0)[:, None], (R, G)))
        steps = IRLS_STEPS if irls_steps is None else irls_steps
        n = W.shape[0]
        per = max(1, _BATCH_ELEMENTS // (G * n))  # bounds the (per, G, n) temporaries
        for s in range(0, R, per):
            for _ in range(steps):
                coefs[s:s + per] = self._reweighted(coefs[s:s + per], W[:, s:s + per], delta)
        return coefs

    def _reweighted(self, coefs: np.ndarray, W: np.ndarray, delta: float) -> np.ndarray:
        """One IRLS step for the Huber loss: weighted least squares with weights
        w * min(1, delta / |log residual|) at the current coefficients (R, G, k)."""
        ratio = np.matmul(coefs.transpose(1, 0, 2), self.basis)  # (G, R, n): predicted over observed
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = np.abs(np.log(ratio) * self.rscale[:, None, None])
            om = np.minimum(1.0, delta / r) * W.T[None]
        om[~np.isfinite(om)] = 0.0
        omT = om.transpose(0, 2, 1)  # (G, n, R)
        gu = np.matmul(self.outer3, omT).transpose(2, 0, 1)
        rhs = np.matmul(self.basis, omT).transpose(2, 0, 1)
        return self._nnls(gu, rhs, om.sum(axis=-1).T)

    def objective(self, coef: np.ndarray, w: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
        """Huber objective at every grid point for coefficients (G, k) and weights (n,)."""
        return self.objectives(coef[None], w[:, None], delta)[0]

    def objectives(self, coefs: np.ndarray, W: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
        """Huber objective at every grid point for R weight vectors: coefficients
        (R, G, k), weights (n, R) -> (R, G); non-finite values become inf."""
        k = self.basis.shape[1]
        out = np.empty(coefs.shape[:2])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for j in range(coefs.shape[0]):
                ratio = self.basis[:, 0, :] * coefs[j, :, 0, None]
                for i in range(1, k):
                    ratio += self.basis[:, i, :] * coefs[j, :, i, None]
                val, _ = huber(self.rscale[:, None] * np.log(ratio), delta)
                out[j] = val @ W[:, j]
        out[~np.isfinite(out)] = np.inf
        return out

    def thetas(self, coef: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Law parameters (m, p) at grid points ``idx`` (all by default)."""
        idx = np.arange(len(self.points)) if idx is None else np.asarray(idx)
        return self.law.theta_from_vp(self.points[idx], coef[idx], self.scale)


def minima_mask(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Grid points no worse than any neighbour (diagonals included, so a valley running
    diagonally is one minimum, not many), for a batch: values (R, G) -> bool (R, G)."""
    R = values.shape[0]
    v = np.pad(values.reshape((R,) + tuple(shape)), [(0, 0)] + [(1, 1)] * len(shape), constant_values=np.inf)
    c = v[(slice(None),) + tuple(slice(1, -1) for _ in shape)]
    is_min = np.isfinite(c)
    for off in itertools.product((-1, 0, 1), repeat=len(shape)):
        if any(off):
            is_min &= c <= v[(slice(None),) + tuple(slice(1 + o, v.shape[i + 1] - 1 + o) for i, o in enumerate(off))]
    return is_min.reshape(R, -1)


def local_minima(values: np.ndarray, shape: tuple[int, ...], mask: np.ndarray | None = None) -> np.ndarray:
    """Flat indices of the grid's local minima (see :func:`minima_mask`), best first."""
    mask = minima_mask(values[None], shape)[0] if mask is None else mask
    idx = np.flatnonzero(mask)
    return idx[np.argsort(values[idx], kind="stable")]


def pick_starts(values: np.ndarray, shape: tuple[int, ...], n: int, mask: np.ndarray | None = None) -> np.ndarray:
    """The best ``n`` local minima of the grid, topped up with the best other points."""
    starts = list(local_minima(values, shape, mask)[:n])
    if len(starts) < n:
        taken = set(starts)
        for i in np.argsort(values, kind="stable"):
            if len(starts) >= n or not np.isfinite(values[i]):
                break
            if i not in taken:
                starts.append(i)
    return np.asarray(starts, dtype=int)


def refine(law: Law, theta0: np.ndarray, logx: np.ndarray, logy: np.ndarray, w: np.ndarray,
           delta: float = HUBER_DELTA):
    """L-BFGS-B from ``theta0`` with tight tolerances (scipy's OptimizeResult; ``fun``
    is the unscaled objective).

    The optimizer sees the objective divided by delta^2 (about |r|/delta per point):
    L-BFGS-B's ftol test is relative to max(|f|, 1), so on the raw objective (about
    1e-3 for typical fits) it would act as a loose absolute test and stop in the flat
    valley of A and B short of the optimum."""
    r = minimize(Objective(law, logx, logy, w, delta), theta0, jac=True,
                 method="L-BFGS-B", bounds=law.bounds(logy), options=LBFGSB_OPTIONS)
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
    coef = grid.solve(w[:, None], delta)[0]
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
        coefs = grid.solve(sub, delta)
        fs = grid.objectives(coefs, sub, delta)
        mins = minima_mask(fs, grid.shape)
        for j in range(sub.shape[1]):
            w, f = sub[:, j], fs[j]
            starts = pick_starts(f, grid.shape, law.boot_starts, mins[j])
            # Grid minima far worse than the best never won in our checks; skipping
            # them halves the cost on well-separated landscapes.
            starts = starts[f[starts] <= law.boot_ratio * f[starts[0]]]
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
    bootstrap_all([fit], n_resamples, seed, n_jobs, delta)
    return fit


def bootstrap_all(fits: list[FitResult], n_resamples: int = 1000, seed: int = 0, n_jobs: int = 1,
                  delta: float = HUBER_DELTA) -> None:
    """:func:`bootstrap` for several fits through one pool of ``n_jobs`` workers.

    Every fit's resamples are cut into parts (multiples of _CHUNK, so results do not
    depend on n_jobs) and all parts of all fits go to the pool together: workers start
    once and stay busy across laws instead of idling at the end of each law."""
    if n_resamples <= 0 or not fits:
        return
    per_job = _CHUNK * max(1, -(-n_resamples // (_CHUNK * max(1, n_jobs) * 4)))
    tasks = []
    for i, fit in enumerate(fits):
        W = bootstrap_weights(len(fit.y), n_resamples, seed, fit.law.name)
        logx, logy = np.log(fit.x), np.log(fit.y)
        tasks += [(i, fit.law, logx, logy, W[:, s:s + per_job]) for s in range(0, n_resamples, per_job)]
    if n_jobs > 1 and len(tasks) > 1:
        from joblib import Parallel, delayed

        outs = Parallel(n_jobs=n_jobs)(delayed(_boot_chunk)(law, lx, ly, P, delta) for _, law, lx, ly, P in tasks)
    else:
        outs = [_boot_chunk(law, lx, ly, P, delta) for _, law, lx, ly, P in tasks]
    for i, fit in enumerate(fits):
        fit.boot_thetas = np.concatenate([o for (j, *_), o in zip(tasks, outs) if j == i], axis=0)
