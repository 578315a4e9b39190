"""Law forms L = E + R(x) with a known floor E = F or a free E, fitted by least squares
in log loss, with residual-bootstrap intervals.

Each form gives the reducible loss R in log space, ``log_r(theta, lx)``, where ``lx``
holds centred natural logs of the inputs (N, D or C) and ``theta`` broadcasts over
leading axes (so a whole bootstrap sample evaluates at once). The fit predicts
``log L = logaddexp(log E, log R)``:

- ``chinchilla`` (additive; Hoffmann et al. 2022, eq. 2): R = A/N^alpha + B/D^beta.
- ``kaplan`` (Kaplan et al. 2020, eq. 1.5, with E): R = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D.
- ``interaction``: R = [(A/N^alpha)^(1/gamma) + (B/D^beta)^(1/gamma)]^gamma: additive at
  gamma = 1, tending to max(A/N^alpha, B/D^beta) as gamma -> 0, so the drop bought by more
  data depends on N.
- ``product``: R = A / (N^alpha D^beta): log(L - E) is a plane in (ln N, ln D).
- ``power``: R = A x^-alpha for one input (L(N), L(D), L(C)).
- ``muennighoff`` (Muennighoff et al. 2023, eqs. 5-7): the additive form at effective
  data and parameters, R = A/N'^alpha + B/D'^beta, inputs (N, D, U_D):
  D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)), R_D = D / U_D - 1 (repetitions beyond
  the first epoch; U_D above D counts as D), and N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),
  U_N = min(N, N_opt(U_D)), R_N = N / U_N - 1, where N_opt(U_D) = (alpha A / (beta B))^(1/alpha)
  U_D^(beta/alpha) is the compute-optimal size for U_D tokens on the same law (Hoffmann
  et al. eq. 4 solved for N at D = U_D: 0.050987 U_D at their published values).
  ``muennighoff_interaction``: D' in the interaction form (R_D* only; its N_opt has no
  closed form). Given two inputs (N, D) both read U_D = D: fresh data.

Objective: the sum of squared log-loss residuals (the maximum-likelihood fit under
log-normal run-to-run noise, which is what the bootstrap below assumes), or with
``delta`` the summed Huber loss of them, as in Besiroglu et al. (2024, Epoch's
Chinchilla replication: delta = 1e-3). On residuals of about 0.5%, Huber at 1e-3 is a
least-absolute-deviations fit: it interpolates some rows exactly, which leaves too few
residuals to estimate the noise from 6 rows (our coverage test: 88% for 95% intervals),
and its refits were 8x slower.
Intervals: residual bootstrap (see :func:`residual_bootstrap`): resampled residuals on
the fitted log losses, refitted. Unlike resampling rows it keeps every input point in
every resample, so it works with 4 to 6 rows.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, nnls

NEGLIGIBLE_LOG = 20.0  # a free E below exp(-20) of the smallest loss is zero for the fit
EXP_BOUNDS = (0.0, 5.0)
GAMMA_BOUNDS = (0.02, 10.0)  # gamma -> infinity tends to the product form
EPOCH_HUBER_DELTA = 1e-3  # Besiroglu et al. (2024): Huber on log residuals, for their replication
LSQ = dict(method="trf", xtol=1e-10, ftol=1e-10, gtol=1e-10, max_nfev=4000)
REFINE = 6  # the best starts (by their Huber objective) that are refined
MC_RESAMPLES, MC_SEED = 200, 0  # resamples of the bootstrap draws that size an interval's own Monte Carlo error


def _lae(a, b):
    return np.logaddexp(a, b)


@dataclass(frozen=True)
class Form:
    """A reducible-loss form; ``names`` are its reported parameters (E not included).
    Subclasses give the math; instances below give the names."""

    name: str
    form: str  # with E, as reported
    names: tuple[str, ...]
    n_inputs: int = 2

    def log_r(self, th: np.ndarray, lx: np.ndarray) -> np.ndarray:
        """log R for theta (..., p) at centred log inputs lx (n, d) -> (..., n)."""
        raise NotImplementedError

    def bounds(self) -> tuple[list[float], list[float]]:
        raise NotImplementedError

    def params(self, th: np.ndarray, center: np.ndarray) -> np.ndarray:
        """Reported parameters (..., len(names)) from internal theta at centred inputs."""
        raise NotImplementedError

    def starts(self, lx: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
        """Initial theta for a target reducible loss ``r`` (n,) > 0."""
        raise NotImplementedError

    def center(self, logx: np.ndarray) -> np.ndarray:
        """The centre of the log inputs (n, d) that the fit subtracts: their mean."""
        return logx.mean(axis=0)

    def theta(self, p: np.ndarray) -> np.ndarray:
        """Internal theta at uncentred inputs from reported parameters (..., len(names))."""
        p = np.array(p, dtype=float)
        for i, k in enumerate(self.names):
            if k in ("A", "B", "N_c", "D_c"):
                p[..., i] = np.log(p[..., i])
        return p

    def loss(self, p: np.ndarray, E: np.ndarray | float, x: np.ndarray) -> np.ndarray:
        """L (m, n) at plain inputs ``x`` (n, d) from reported parameters (m, len(names))
        or (len(names),) and E (scalar or (m,))."""
        lr = self.log_r(self.theta(np.atleast_2d(p)), np.log(np.asarray(x, float).reshape(len(x), -1)))
        return np.exp(np.logaddexp(np.log(np.asarray(E, float))[..., None], lr))


def _col(th, i):
    return np.asarray(th, float)[..., i, None]


def _nnls_starts(cols: list[np.ndarray], r: np.ndarray) -> np.ndarray | None:
    """Non-negative coefficients of ``cols`` fitting ``r`` in relative terms."""
    M = np.column_stack(cols) / r[:, None]
    c, _ = nnls(M, np.ones(len(r)))
    return np.maximum(c, 1e-12 * np.max(c)) if np.max(c) > 0 else None


EXP_GRID = (0.1, 0.25, 0.5, 1.0)


class Additive(Form):
    def log_r(self, th, lx):
        return _lae(_col(th, 0) - _col(th, 2) * lx[..., 0], _col(th, 1) - _col(th, 3) * lx[..., 1])

    def bounds(self):
        return [-np.inf, -np.inf, EXP_BOUNDS[0], EXP_BOUNDS[0]], [np.inf, np.inf, EXP_BOUNDS[1], EXP_BOUNDS[1]]

    def params(self, th, c):
        th = np.asarray(th, float)
        return np.stack([np.exp(th[..., 0] + th[..., 2] * c[0]), np.exp(th[..., 1] + th[..., 3] * c[1]),
                         th[..., 2], th[..., 3]], axis=-1)

    def starts(self, lx, r):
        out = []
        for al in EXP_GRID:
            for be in EXP_GRID:
                c = _nnls_starts([np.exp(-al * lx[..., 0]), np.exp(-be * lx[..., 1])], r)
                if c is not None:
                    out.append(np.array([np.log(c[0]), np.log(c[1]), al, be]))
        return out


class Interaction(Additive):
    def log_r(self, th, lx):
        g = _col(th, 4)
        return g * _lae((_col(th, 0) - _col(th, 2) * lx[..., 0]) / g, (_col(th, 1) - _col(th, 3) * lx[..., 1]) / g)

    def bounds(self):
        lo, hi = super().bounds()
        return lo + [GAMMA_BOUNDS[0]], hi + [GAMMA_BOUNDS[1]]

    def params(self, th, c):
        return np.concatenate([super().params(th, c), np.asarray(th, float)[..., 4:5]], axis=-1)

    def starts(self, lx, r):
        out = []
        for th in super().starts(lx, r):
            for g in (1.0, 0.5, 0.25):
                # at a smaller gamma the sum of the two terms shrinks toward their max:
                # scale both up so the start's reducible loss stays about the same
                t = th.copy()
                t[:2] += (1 - g) * np.log(2)
                out.append(np.append(t, g))
        return out


class KaplanE(Form):
    def log_r(self, th, lx):
        aN, aD = _col(th, 2), _col(th, 3)
        return aD * _lae((aN / aD) * (_col(th, 0) - lx[..., 0]), _col(th, 1) - lx[..., 1])

    def bounds(self):
        return [-np.inf, -np.inf, 1e-4, 1e-3], [np.inf, np.inf, EXP_BOUNDS[1], EXP_BOUNDS[1]]

    def params(self, th, c):
        th = np.asarray(th, float)
        return np.stack([np.exp(th[..., 0] + c[0]), np.exp(th[..., 1] + c[1]), th[..., 2], th[..., 3]], axis=-1)

    def starts(self, lx, r):
        out = []
        for aD in EXP_GRID:
            for ratio in (0.3, 1.0, 3.0):
                z = r ** (1 / aD)  # z = (N_c/N)^ratio + D_c/D, linear in N_c^ratio and D_c
                c = _nnls_starts([np.exp(-ratio * lx[..., 0]), np.exp(-lx[..., 1])], z)
                if c is not None:
                    out.append(np.array([np.log(c[0]) / ratio, np.log(c[1]), ratio * aD, aD]))
        return out


class Product(Form):
    def log_r(self, th, lx):
        return _col(th, 0) - _col(th, 1) * lx[..., 0] - _col(th, 2) * lx[..., 1]

    def bounds(self):
        return [-np.inf, EXP_BOUNDS[0], EXP_BOUNDS[0]], [np.inf, EXP_BOUNDS[1], EXP_BOUNDS[1]]

    def params(self, th, c):
        th = np.asarray(th, float)
        return np.stack([np.exp(th[..., 0] + th[..., 1] * c[0] + th[..., 2] * c[1]), th[..., 1], th[..., 2]], axis=-1)

    def starts(self, lx, r):
        M = np.column_stack([np.ones(len(r)), -lx[..., 0], -lx[..., 1]])
        th = np.linalg.lstsq(M, np.log(r), rcond=None)[0]
        return [np.clip(th, [-np.inf, 0, 0], [np.inf, 5, 5])]


class Power(Form):
    def log_r(self, th, lx):
        return _col(th, 0) - _col(th, 1) * lx[..., 0]

    def bounds(self):
        return [-np.inf, EXP_BOUNDS[0]], [np.inf, EXP_BOUNDS[1]]

    def params(self, th, c):
        th = np.asarray(th, float)
        return np.stack([np.exp(th[..., 0] + th[..., 1] * c[0]), th[..., 1]], axis=-1)

    def starts(self, lx, r):
        slope, icpt = np.polyfit(lx[..., 0], np.log(r), 1)
        return [np.array([icpt, float(np.clip(-slope, 0, 5))])] + [np.array([np.log(np.median(r)), al])
                                                                  for al in EXP_GRID]


R_STAR_BOUNDS = (1e-2, 1e3)  # R* -> 0: a repeat is worth nothing; R* >> the sweep's R: as good as fresh
R_STAR_GRID = (1.0, 4.0, 15.0, 60.0)


class EffectiveData(Form):
    """A base form (additive or interaction) at effective data D' and, with ``excess``,
    effective parameters N' (additive base only), inputs (N, D, U_D): see the module
    docstring. ``fixed`` holds reported parameters held at given values (name, value);
    ``names`` are the free ones. D and U_D share one centre, so D / U_D is unchanged by
    it; with any of A, B, alpha, beta fixed nothing is centred."""

    def __init__(self, name: str, form: str, base: Form, excess: bool, fixed: tuple = ()):
        full = base.names + ("R_D*",) + (("R_N*",) if excess else ())
        fixed = tuple(fixed)
        unknown = {k for k, _ in fixed} - set(full)
        if unknown:
            raise ValueError(f"{name}: no parameter {sorted(unknown)} to fix; parameters are {full}")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "excess", excess)
        object.__setattr__(self, "fixed", fixed)
        object.__setattr__(self, "full", full)
        object.__setattr__(self, "free", [i for i, k in enumerate(full) if k not in dict(fixed)])
        super().__init__(name, form, tuple(full[i] for i in self.free), n_inputs=3)

    def with_fixed(self, **values: float) -> "EffectiveData":
        """The same law with the given reported parameters held fixed (R_D* as R_D_star)."""
        v = {k.replace("_star", "*"): float(x) for k, x in values.items()}
        return EffectiveData(self.name, self.form, self.base, self.excess, tuple(v.items()))

    def _internal_fixed(self) -> dict[int, float]:
        return {self.full.index(k): (np.log(v) if k in ("A", "B", "R_D*", "R_N*") else v) for k, v in self.fixed}

    def _full(self, th: np.ndarray) -> np.ndarray:
        th = np.asarray(th, float)
        out = np.empty(th.shape[:-1] + (len(self.full),))
        out[..., self.free] = th
        for i, v in self._internal_fixed().items():
            out[..., i] = v
        return out

    def center(self, logx):
        if {k for k, _ in self.fixed} & {"A", "B", "alpha", "beta"}:
            return np.zeros(logx.shape[1])
        c = logx.mean(axis=0)
        if len(c) > 2:
            c[2] = c[1]
        return c

    def effective(self, full: np.ndarray, lx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log N', log D') (..., n) at centred log inputs (n, 2 or 3)."""
        lN, lD = lx[:, 0], lx[:, 1]
        lU = np.minimum(lx[:, 2], lD) if lx.shape[1] > 2 else lD
        k = len(self.base.names)
        rd = np.exp(full[..., k, None])
        lDe = lU + np.log1p(-rd * np.expm1(-np.expm1(lD - lU) / rd))
        if not self.excess:
            return np.broadcast_to(lN, lDe.shape), lDe
        a, b, al, be = (full[..., i, None] for i in range(4))
        # N_opt(U_D) of the additive law, in the shared centred coordinates (see the docstring)
        lNopt = (np.log(al / be) + a - b) / al + (be / al) * lU
        lUN = np.minimum(lN, lNopt)
        rn = np.exp(full[..., k + 1, None])
        return lUN + np.log1p(-rn * np.expm1(-np.expm1(lN - lUN) / rn)), lDe

    def log_r(self, th, lx):
        full = self._full(th)
        lNe, lDe = self.effective(full, lx)
        k = len(self.base.names)
        return self.base.log_r(full[..., :k], np.stack([lNe, lDe], axis=-1))  # inputs (..., n, 2)

    def bounds(self):
        lo, hi = self.base.bounds()
        r = [np.log(R_STAR_BOUNDS[0])], [np.log(R_STAR_BOUNDS[1])]
        lo, hi = lo + r[0] * (1 + self.excess), hi + r[1] * (1 + self.excess)
        return [lo[i] for i in self.free], [hi[i] for i in self.free]

    def params(self, th, c):
        full = self._full(th)
        k = len(self.base.names)
        base = self.base.params(full[..., :k], c)
        p = np.concatenate([base, np.exp(full[..., k:])], axis=-1)
        return p[..., self.free]

    def theta(self, p):
        p = np.array(p, dtype=float)
        for i, name in enumerate(self.names):
            if name in ("A", "B", "R_D*", "R_N*"):
                p[..., i] = np.log(p[..., i])
        return p

    def starts(self, lx, r):
        k = len(self.base.names)
        fixed = self._internal_fixed()
        base = self.base.starts(lx[:, :2], r) if any(i < k for i in self.free) else [np.zeros(k)]
        out = []
        for th in base:
            for rd in R_STAR_GRID:
                for rn in (R_STAR_GRID[1:3] if self.excess else ()) or (None,):
                    full = np.concatenate([th, [np.log(rd)], [] if rn is None else [np.log(rn)]])
                    for i, v in fixed.items():
                        full[i] = v
                    out.append(full[self.free])
        return out


CHINCHILLA = Additive("chinchilla", "E + A/N^alpha + B/D^beta", ("A", "B", "alpha", "beta"))
KAPLAN = KaplanE("kaplan", "E + [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D", ("N_c", "D_c", "alpha_N", "alpha_D"))
INTERACTION = Interaction("interaction", "E + [(A/N^alpha)^(1/gamma) + (B/D^beta)^(1/gamma)]^gamma",
                          ("A", "B", "alpha", "beta", "gamma"))
PRODUCT = Product("product", "E + A / (N^alpha D^beta)", ("A", "alpha", "beta"))
JOINT = {f.name: f for f in (CHINCHILLA, KAPLAN, INTERACTION, PRODUCT)}
POWER = Power("power", "E + A x^-alpha", ("A", "alpha"), n_inputs=1)
MUENNIGHOFF = EffectiveData("muennighoff", "E + A/N'^alpha + B/D'^beta, D' = U_D + U_D R_D* (1 - exp(-R_D/R_D*)), "
                            "N' = U_N + U_N R_N* (1 - exp(-R_N/R_N*)), U_N = min(N, N_opt(U_D))", CHINCHILLA, True)
MUENNIGHOFF_RD = EffectiveData("muennighoff", "E + A/N^alpha + B/D'^beta, D' = U_D + U_D R_D* (1 - exp(-R_D/R_D*))",
                               CHINCHILLA, False)  # what the muennighoff law is when no run has excess parameters
INTERACTION_RD = EffectiveData("muennighoff_interaction", "E + [(A/N^alpha)^(1/gamma) + (B/D'^beta)^(1/gamma)]^gamma, "
                               "D' = U_D + U_D R_D* (1 - exp(-R_D/R_D*))", INTERACTION, False)
DATA_CONSTRAINED = {f.name: f for f in (MUENNIGHOFF, INTERACTION_RD)}
LAWS = {**JOINT, **DATA_CONSTRAINED}  # every law of (N, D); the data-constrained ones also read U_D


def exponent_names(params) -> tuple[str, str]:
    """The names of a law's N and D exponents among its parameters (a fit.json law's
    ``params``): alpha and beta, or kaplan's alpha_N and alpha_D."""
    return ("alpha" if "alpha" in params else "alpha_N"), ("beta" if "beta" in params else "alpha_D")


@dataclass
class Fit:
    """A form fitted to rows ``x`` (n, d), losses ``y``; E fixed at ``floor`` or free."""

    form: Form
    theta: np.ndarray  # internal; with a free E its last entry is log E
    center: np.ndarray
    x: np.ndarray
    y: np.ndarray
    floor: float | None
    starts_agreeing: int = 1
    n_starts: int = 1
    delta: float | None = None  # Huber delta of the objective; None: least squares
    boot: np.ndarray | None = None  # (R, p) internal parameters of the bootstrap refits
    extra: dict = field(default_factory=dict)
    sigma: np.ndarray | None = None  # per-point noise sd in log L (weighted fit); None: equal weights
    cov: np.ndarray | None = None  # the noise's covariance in log L when points share noise (generalised LS)

    @property
    def weights(self) -> np.ndarray | None:
        """What the fit was weighted by, to refit alike: ``cov`` if set, else ``sigma``."""
        return self.cov if self.cov is not None else self.sigma

    @property
    def whitened_residuals(self) -> np.ndarray:
        """The log residuals in the units the fit minimised: over ``sigma``, or whitened by
        ``cov`` (L^-1 r with cov = L L^T, so they are independent and of unit variance
        under the noise model); plain without weights."""
        return whiten(self.weights)(self.log_residuals)

    @property
    def n_params(self) -> int:
        return len(self.theta)

    def _lx(self, x):
        x = np.asarray(x, float)
        x = x if x.ndim == 2 else x[:, None]
        if x.shape[1] == 2 and len(self.center) == 3:  # (N, D) to a law of (N, D, U_D): fresh data
            x = np.column_stack([x, x[:, 1]])
        return np.log(x) - self.center

    def log_pred_at(self, th: np.ndarray, x: np.ndarray) -> np.ndarray:
        th = np.asarray(th, float)
        if self.floor is not None:
            return np.logaddexp(np.log(self.floor), self.form.log_r(th, self._lx(x)))
        return np.logaddexp(th[..., -1, None], self.form.log_r(th[..., :-1], self._lx(x)))

    def predict(self, x: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        return np.exp(self.log_pred_at(self.theta if theta is None else theta, x))

    @property
    def log_residuals(self) -> np.ndarray:
        """log predicted - log observed, in input order."""
        return self.log_pred_at(self.theta, self.x) - np.log(self.y)

    @property
    def rms_log(self) -> float:
        return float(np.sqrt(np.mean(self.log_residuals ** 2)))

    @property
    def r2_log(self) -> float:
        ly = np.log(self.y)
        ss = float(np.sum((ly - ly.mean()) ** 2))
        return 1.0 - float(np.sum(self.log_residuals ** 2)) / ss if ss > 0 else float("nan")

    @property
    def objective(self) -> float:
        """What the fit minimised: the sum of squared log residuals (each over its point's
        ``sigma`` in a weighted fit), or their summed Huber loss."""
        return float(_huber(self.whitened_residuals, self.delta))

    @property
    def chi2_dof(self) -> float | None:
        """A weighted fit's sum of squared whitened residuals over n - p (1 when the noise
        model explains the residuals); None for an unweighted fit."""
        n, p = len(self.y), self.n_params
        if self.sigma is None or n <= p:
            return None
        return float(np.sum(self.whitened_residuals ** 2) / (n - p))

    def params_array(self, th: np.ndarray) -> np.ndarray:
        th = np.asarray(th, float)
        if self.floor is not None:
            return self.form.params(th, self.center)
        return np.concatenate([np.exp(th[..., -1:]), self.form.params(th[..., :-1], self.center)], axis=-1)

    @property
    def names(self) -> tuple[str, ...]:
        return self.form.names if self.floor is not None else ("E",) + self.form.names

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.names, self.params_array(self.theta).tolist()))

    def boot_params(self) -> np.ndarray | None:
        if self.boot is None:
            return None
        p = self.params_array(self.boot)
        return p[np.all(np.isfinite(p), axis=1)]

    def at_bound(self) -> list[str]:
        """Parameters whose bootstrap draws reach a search bound in 2.5% or more of the
        resamples: their interval is cut there, not by the data."""
        if self.boot is None:
            return []
        lo, hi = _bounds(self.form, np.log(self.y), self.floor)
        lo, hi = np.asarray(lo)[:len(self.form.names)], np.asarray(hi)[:len(self.form.names)]
        th = self.boot[:, :len(self.form.names)] if self.floor is not None else self.boot[:, :-1]
        hit = np.mean((np.abs(th - lo) < 1e-6) | (np.abs(th - hi) < 1e-6), axis=0) >= 0.025
        return [k for k, h in zip(self.form.names, hit) if h]

    def ci95(self) -> dict[str, list[float]] | None:
        p = self.boot_params()
        if p is None or len(p) == 0:
            return None
        lo, hi = np.percentile(p, [2.5, 97.5], axis=0)
        return {k: [float(a), float(b)] for k, a, b in zip(self.names, lo, hi)}

    def ci95_mc_sd(self, n: int = MC_RESAMPLES) -> dict[str, list[float]] | None:
        """The Monte Carlo error of :meth:`ci95`'s endpoints: the standard deviation of
        each percentile over ``n`` resamples (with replacement) of the bootstrap draws.
        A finite bootstrap estimates its interval; this says to how many digits. It is a
        rough estimate of a rough thing: on results/cpu's 400 draws it gives 0.004 to 0.007
        for the exponents' endpoints, where 20 bootstrap seeds spread them by 0.004 to
        0.008 (results/bootstrap_mc)."""
        p = self.boot_params()
        if p is None or len(p) < 2:
            return None
        rng = np.random.default_rng(MC_SEED)
        ends = np.array([np.percentile(p[rng.integers(0, len(p), len(p))], [2.5, 97.5], axis=0) for _ in range(n)])
        sd = ends.std(axis=0, ddof=1)  # (2, n_params)
        return {k: [float(a), float(b)] for k, a, b in zip(self.names, sd[0], sd[1])}


def whiten(weights: np.ndarray | None):
    """The map from log residuals (..., n) to the fit's units: identity (None), over a
    per-point sd (1-D ``weights``), or L^-1 r for a covariance matrix (2-D) = L L^T."""
    if weights is None:
        return lambda r: r
    w = np.asarray(weights, float)
    if w.ndim == 1:
        return lambda r: r / w
    Linv_T = np.linalg.inv(np.linalg.cholesky(w)).T
    return lambda r: r @ Linv_T


def take(weights: np.ndarray | None, idx) -> np.ndarray | None:
    """The weights of a subset of the points (rows and columns of a covariance)."""
    if weights is None:
        return None
    w = np.asarray(weights, float)
    idx = np.flatnonzero(idx) if np.asarray(idx).dtype == bool else np.asarray(idx)
    return w[idx] if w.ndim == 1 else w[np.ix_(idx, idx)]


def _residual_fn(form: Form, lx, logy, floor, sigma=None):
    w = whiten(sigma)

    def res(th):
        lr = form.log_r(th if floor is not None else th[..., :-1], lx)
        return w(np.logaddexp(np.log(floor) if floor is not None else th[..., -1, None], lr) - logy)
    return res


def _huber(r: np.ndarray, delta: float | None) -> np.ndarray:
    """Summed Huber loss over the last axis (delta None: the sum of squares)."""
    if delta is None:
        return np.sum(r * r, axis=-1)
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)).sum(axis=-1)


def _solve(form: Form, lx, logy, floor, th0, lo, hi, delta, sigma=None):
    loss = {} if delta is None else {"loss": "huber", "f_scale": delta}
    return least_squares(_residual_fn(form, lx, logy, floor, sigma), np.clip(th0, lo, hi), bounds=(lo, hi),
                         x_scale="jac", **LSQ, **loss)


def _bounds(form: Form, logy, floor):
    lo, hi = form.bounds()
    if floor is None:
        lo, hi = lo + [float(np.min(logy)) - NEGLIGIBLE_LOG], hi + [float(np.max(logy))]
    return lo, hi


def fit_form(form: Form, x: np.ndarray, y: np.ndarray, floor: float | None = None,
             delta: float | None = None, starts: np.ndarray | None = None,
             sigma: np.ndarray | None = None) -> Fit:
    """Fit in log L: the form's start grid is scored and its best REFINE starts refined
    (scipy's trust-region reflective least squares, with a Huber loss when ``delta``);
    the best result is kept. With a free E the grid is repeated for E at 0, 0.5, 0.8 and
    0.95 of the lowest loss. ``starts`` replaces the grid by given internal parameter rows
    (``form.theta`` of reported values for a form that centres nothing, E fixed), each
    refined: to follow another fit's procedure. ``sigma``: each point's noise sd in log L
    (weighted least squares, residuals over sigma; only its ratios move the estimate), or
    an (n, n) covariance of that noise (generalised least squares: the residuals whitened
    by it, so points whose noise is shared count for less than independent ones)."""
    x = np.asarray(x, float)
    x = x if x.ndim == 2 else x[:, None]
    y = np.asarray(y, float)
    center = form.center(np.log(x))
    lx, logy = np.log(x) - center, np.log(y)
    lo, hi = _bounds(form, logy, floor)
    fracs = [None] if floor is not None else [0.0, 0.5, 0.8, 0.95]
    given, starts = starts, []
    for f in fracs if given is None else ():
        e0 = floor if f is None else f * y.min()
        r = np.maximum(y - e0, 1e-3 * (y.max() - e0) + 1e-12)
        lne = [] if f is None else [np.log(e0) if f > 0 else lo[-1] + 1.0]
        starts += [np.clip(np.append(th, lne), lo, hi) for th in form.starts(lx, r)]
    starts = np.array(starts) if given is None else np.clip(np.atleast_2d(np.asarray(given, float)), lo, hi)
    sigma = None if sigma is None else np.asarray(sigma, float)
    cov = sigma if sigma is not None and sigma.ndim == 2 else None
    score = _huber(_residual_fn(form, lx, logy, floor, sigma)(starts), delta)
    score[~np.isfinite(score)] = np.inf
    results = [_solve(form, lx, logy, floor, starts[i], lo, hi, delta, sigma)
               for i in np.argsort(score, kind="stable")[:REFINE if given is None else len(starts)]]
    costs = np.array([r.cost if np.all(np.isfinite(r.x)) else np.inf for r in results])
    best = results[int(np.argmin(costs))]
    agree = int(np.sum(costs <= best.cost * (1 + 1e-6) + 1e-14))
    return Fit(form=form, theta=best.x, center=center, x=x, y=y, floor=floor, delta=delta,
               starts_agreeing=agree, n_starts=len(results),
               sigma=np.sqrt(np.diag(cov)) if cov is not None else sigma, cov=cov)


def residual_bootstrap(fit: Fit, n_resamples: int, seed: int = 0,
                       replicate_noise: tuple[float, int] | None = None) -> Fit:
    """Attach ``n_resamples`` parametric-bootstrap refits: log L* = fitted log L + s z,
    z standard normal, the noise level from the residuals, s = sigma sqrt((n - p) / X),
    sigma^2 = RSS / (n - p) and X ~ chi-squared(n - p).

    ``replicate_noise`` = (sigma_seed, dof): the run-to-run spread measured by repeated
    runs (seeds) at the same (N, D). Then s is the larger of the residual draw and
    sigma_seed sqrt(dof / X'), X' ~ chi-squared(dof): the intervals never assume less
    noise than the replicates show, nor less than the residuals leave.

    A weighted fit (``fit.sigma``, the per-point noise model) draws point i's noise as
    s sigma_i (with ``fit.cov``: s times a draw of that covariance), s the larger of
    sqrt(chi2_dof (n - p) / X) and, with ``replicate_noise``, sqrt(dof / X') (sigma_i
    already holds the replicates' spread at that size), and refits with the same weights
    (noise.ladder_bootstrap draws a ladder's runs together).

    Drawing s, not fixing it at sigma, carries the uncertainty of the noise level itself,
    which with 6 points and 2 parameters is large: for a linear law with normal noise it
    reproduces Student-t intervals (with sigma fixed, 95% intervals on 6 rows covered 77%
    in our coverage test). Each refit starts from the point estimate. Seeded by (seed,
    crc32(form name, E free or fixed, n)) so each law has its own fixed stream."""
    rng = bootstrap_rng(fit, n_resamples, seed, str(fit.floor is None))
    if rng is None:
        return fit
    n, p = len(fit.y), fit.n_params
    weighted = fit.sigma is not None
    if weighted:
        sigma = float(np.sqrt(fit.chi2_dof))
        scale = fit.sigma if fit.cov is None else np.linalg.cholesky(fit.cov)
    else:
        sigma, scale = float(np.sqrt(np.sum(fit.log_residuals ** 2) / (n - p))), 1.0
    base = fit.log_pred_at(fit.theta, fit.x)

    def draw(rng):
        s = sigma * np.sqrt((n - p) / rng.chisquare(n - p))
        if replicate_noise is not None:  # drawn only then, so fits without replicates keep their stream
            s = max(s, (1.0 if weighted else replicate_noise[0]) * np.sqrt(replicate_noise[1] / rng.chisquare(replicate_noise[1])))
        z = rng.standard_normal(n)
        return base + s * (scale @ z if np.ndim(scale) == 2 else scale * z), fit.weights

    fit.boot = refit_draws(fit, n_resamples, rng, draw)
    return fit


def bootstrap_rng(fit: Fit, n_resamples: int, seed: int, tag: str) -> np.random.Generator | None:
    """The law's own bootstrap stream, seeded by (seed, crc32(form name, ``tag``, n));
    None (and ``bootstrap_skipped`` set) when there is nothing to resample."""
    n, p = len(fit.y), fit.n_params
    if n_resamples <= 0 or n <= p:
        fit.extra["bootstrap_skipped"] = f"{n} points for {p} parameters" if n <= p else "no resamples asked"
        return None
    return np.random.default_rng([seed, zlib.crc32(f"{fit.form.name}/{tag}/{n}".encode())])


def refit_draws(fit: Fit, n_resamples: int, rng: np.random.Generator, draw) -> np.ndarray:
    """(n_resamples, p) internal parameters: ``fit``'s form refitted from its point
    estimate to each ``draw(rng) -> (log L*, sigma or None)``, a simulated sweep and the
    weights to fit it with."""
    lx = np.log(fit.x) - fit.center
    out = np.full((n_resamples, fit.n_params), np.nan)
    for i in range(n_resamples):
        logy, sigma = draw(rng)
        lo, hi = _bounds(fit.form, logy, fit.floor)
        out[i] = _solve(fit.form, lx, logy, fit.floor, fit.theta, lo, hi, fit.delta, sigma).x
    return out
