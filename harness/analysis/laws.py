"""Scaling-law forms, written in log space for fitting.

Every law predicts ``log L`` from log inputs ``logx`` (shape ``(n, d)``: natural logs
of N, D or C) and an internal parameter vector ``theta``. As in Besiroglu et al.
(2024, Epoch's Chinchilla replication) the coefficients enter as logs and the sum of
terms as a logsumexp, which keeps every term positive and the fit well scaled:

- ``chinchilla``: L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, eq. 2);
  theta = (log A, log B, log E, alpha, beta).
- ``kaplan``: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. 2020,
  eq. 1.5); theta = (log N_c, log D_c, alpha_N, alpha_D).
- ``power``: L(x) = E + A x^-alpha for one variable (L(N), L(D), L(C));
  theta = (log A, log E, alpha).

Each law also says how to start a fit by variable projection (Golub & Pereyra 1973):
for fixed exponents the law is linear, with non-negative coefficients, in a
transformed target ``z`` (``z = L`` for the additive forms, ``z = L^(1/alpha_D)`` for
Kaplan). :meth:`Law.vp_system` returns the basis divided by ``z`` so that the
relative-residual least squares problem is ``min_c sum_i w_i (B_i . c - 1)^2``, which
:mod:`harness.analysis.fit` solves in closed form on a dense grid of exponents.

Pure functions: nothing here reads files or keeps state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A constant term E below exp(-NEGLIGIBLE_LOG) ~ 2e-9 times the smallest loss changes
# every log L by less than that: far below the Huber delta (1e-3) and L-BFGS-B's ftol.
# log E is bounded there because when the data favour E = 0 the optimizer otherwise
# crawls toward log E = -inf along a direction where the objective has barely any
# slope, ending wherever ftol stops it (log E from -19 to -24 on our CPU sweep's
# records), so refined starts that reached the same fit looked different.
NEGLIGIBLE_LOG = 20.0


def _floor(logy) -> tuple[float | None, None]:
    return (None, None) if logy is None else (float(np.min(logy)) - NEGLIGIBLE_LOG, None)


def _geomgrid(lo: float, hi: float, n: int) -> np.ndarray:
    return np.geomspace(lo, hi, n)


def _logsumexp_softmax(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """logsumexp over the last axis and the softmax weights (its gradient)."""
    m = np.max(t, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(t - m)
    s = e.sum(axis=-1, keepdims=True)
    return (np.log(s) + m)[..., 0], e / s


@dataclass(frozen=True)
class Law:
    """Base class. Subclasses define the form; see the module docstring."""

    name: str
    form: str
    names: tuple[str, ...]  # reported parameter names, in reporting order
    n_inputs: int
    boot_starts: int = 2  # at most this many grid local minima refined per bootstrap resample,
    boot_ratio: float = 1.5  # those within this factor of the resample's best grid objective

    # -- the form ---------------------------------------------------------------
    def log_pred(self, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
        """log L for parameters ``theta`` (shape (p,) or (m, p)) -> (n,) or (m, n)."""
        raise NotImplementedError

    def log_pred_grad(self, theta: np.ndarray, logx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log L (n,) and its Jacobian d log L / d theta (n, p) for one theta."""
        raise NotImplementedError

    def log_pred_vjp(self, theta: np.ndarray, logx: np.ndarray):
        """log L (n,) and a function ``v -> J.T @ v`` with J = d log L / d theta (the
        fit needs only this product; a law may compute it without forming J)."""
        lp, jac = self.log_pred_grad(theta, logx)
        return lp, jac.T.__matmul__

    def design(self, logx: np.ndarray) -> np.ndarray | None:
        """For a law whose log L is the logsumexp of k terms linear in theta: the matrix
        (k, n, p) with ``terms = design @ theta``; None for other laws. The fit's
        objective uses it to evaluate value and gradient with a few matrix products."""
        return None

    def recenter(self, thetas: np.ndarray, center: np.ndarray) -> np.ndarray:
        """Parameters for inputs ``logx`` from parameters fitted to ``logx - center``.

        Fits run on centred log inputs: with ln N ~ 20, log A and alpha are otherwise
        almost collinear and L-BFGS-B needs a third more iterations."""
        raise NotImplementedError

    def params(self, theta: np.ndarray) -> dict[str, float]:
        """Reported parameters (plain scale) from internal ``theta`` (p,)."""
        return dict(zip(self.names, self.params_array(np.asarray(theta)[None])[0].tolist()))

    def params_array(self, thetas: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`params`: (m, p) internal -> (m, len(names)) reported."""
        raise NotImplementedError

    def predict(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """L at inputs ``x`` (plain scale, shape (n, d) or (n,) for one input)."""
        x = np.asarray(x, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        return np.exp(self.log_pred(np.asarray(theta, float), np.log(x)))

    def bounds(self, logy: np.ndarray | None = None) -> list[tuple[float | None, float | None]]:
        """Box bounds on theta for L-BFGS-B; given the log losses, also a floor on a
        constant term's log (see NEGLIGIBLE_LOG)."""
        raise NotImplementedError

    # -- variable projection starts -----------------------------------------------
    def grid(self) -> tuple[np.ndarray, tuple[int, ...]]:
        """Exponent grid points (G, q) and the grid's shape (for finding local minima)."""
        raise NotImplementedError

    def vp_system(self, grid: np.ndarray, logx: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Basis over target, (G, k, n), so that ``basis . c`` is predicted z over
        observed z; the factor turning log(pred z / obs z) into the log-loss residual,
        (G,); and the loss scale used."""
        raise NotImplementedError

    def theta_from_vp(self, grid: np.ndarray, coef: np.ndarray, scale: float) -> np.ndarray:
        """Internal theta (G, p) from grid exponents (G, q) and coefficients (G, k)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Chinchilla(Law):
    name: str = "chinchilla"
    form: str = "E + A/N^alpha + B/D^beta"
    names: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")
    n_inputs: int = 2
    grid_size: int = 32
    # With Huber-reweighted grid starts the second grid minimum is worth refining only
    # when nearly as good as the first: on 150 resamples each of a 24-run and an 18-run
    # CPU sweep and of synthetic data, (2, 1.1) found the best of 16 refined starts in
    # every resample (the earlier least-squares grid with (2, 1.5): 75% of them).
    boot_ratio: float = 1.1

    def _terms(self, theta, logx):
        theta = np.asarray(theta, float)
        lnA, lnB, lnE, al, be = (theta[..., i, None] for i in range(5))
        lnN, lnD = logx[:, 0], logx[:, 1]
        return np.stack(np.broadcast_arrays(lnA - al * lnN, lnB - be * lnD, lnE), axis=-1)

    def log_pred(self, theta, logx):
        return _logsumexp_softmax(self._terms(theta, logx))[0]

    def log_pred_grad(self, theta, logx):
        lnA, lnB, lnE, al, be = (float(v) for v in theta)
        lnN, lnD = logx[:, 0], logx[:, 1]
        t1, t2 = lnA - al * lnN, lnB - be * lnD
        m = np.maximum(np.maximum(t1, t2), lnE)
        e1, e2, e3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(lnE - m)
        tot = e1 + e2 + e3
        s1, s2 = e1 / tot, e2 / tot
        jac = np.empty((len(tot), 5))
        jac[:, 0], jac[:, 1], jac[:, 2] = s1, s2, e3 / tot
        jac[:, 3] = -s1 * lnN
        jac[:, 4] = -s2 * lnD
        return np.log(tot) + m, jac

    def design(self, logx):
        M = np.zeros((3, len(logx), 5))
        M[0, :, 0], M[0, :, 3] = 1.0, -logx[:, 0]  # log A - alpha log N
        M[1, :, 1], M[1, :, 4] = 1.0, -logx[:, 1]  # log B - beta log D
        M[2, :, 2] = 1.0  # log E
        return M

    def recenter(self, thetas, center):
        t = np.array(thetas, dtype=float, copy=True)
        t[..., 0] += t[..., 3] * center[0]
        t[..., 1] += t[..., 4] * center[1]
        return t

    def params_array(self, thetas):
        t = np.asarray(thetas, float)
        return np.stack([np.exp(t[:, 2]), np.exp(t[:, 0]), np.exp(t[:, 1]), t[:, 3], t[:, 4]], axis=1)

    def theta_from_params(self, E, A, B, alpha, beta) -> np.ndarray:
        return np.array([np.log(A), np.log(B), np.log(E), alpha, beta], float)

    def bounds(self, logy=None):
        return [(None, None), (None, None), _floor(logy), (0.0, 10.0), (0.0, 10.0)]

    def grid(self):
        g = _geomgrid(0.02, 3.0, self.grid_size)
        al, be = np.meshgrid(g, g, indexing="ij")
        return np.stack([al.ravel(), be.ravel()], axis=1), (len(g), len(g))

    def vp_system(self, grid, logx, y):
        lnN, lnD = logx[:, 0], logx[:, 1]
        basis = np.empty((len(grid), 3, len(y)))
        basis[:, 0] = np.exp(-grid[:, 0:1] * lnN) / y
        basis[:, 1] = np.exp(-grid[:, 1:2] * lnD) / y
        basis[:, 2] = 1.0 / y
        return basis, np.ones(len(grid)), 1.0

    def theta_from_vp(self, grid, coef, scale):
        return np.column_stack([np.log(coef[:, 0]), np.log(coef[:, 1]), np.log(coef[:, 2]), grid[:, 0], grid[:, 1]])


@dataclass(frozen=True)
class Kaplan(Law):
    name: str = "kaplan"
    form: str = "[(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    names: tuple[str, ...] = ("N_c", "D_c", "alpha_N", "alpha_D")
    n_inputs: int = 2
    grid_size: int = 32
    # Misspecified data (an entropy floor, which this form lacks) gives it several
    # nearly equal optima. With Huber-reweighted grid starts, 3 grid minima per
    # resample miss the best of 16 refined starts in under 2% of resamples (the earlier
    # least-squares grid needed 4 to miss 3%; same data as Chinchilla's note).
    boot_starts: int = 3

    def _inner(self, theta, logx):
        theta = np.asarray(theta, float)
        lnNc, lnDc, aN, aD = (theta[..., i, None] for i in range(4))
        u1 = (aN / aD) * (lnNc - logx[:, 0])
        u2 = lnDc - logx[:, 1]
        return np.stack(np.broadcast_arrays(u1, u2), axis=-1), aD

    def log_pred(self, theta, logx):
        u, aD = self._inner(theta, logx)
        return aD * _logsumexp_softmax(u)[0]

    @staticmethod
    def _softmax_terms(theta, logx):
        """log L / aD = S = logsumexp(u1, u2) and the softmax weight s1 of the N term,
        the pieces the Jacobian and its vector product are built from."""
        lnNc, lnDc, aN, aD = (float(v) for v in theta)
        dn = lnNc - logx[:, 0]
        u1, u2 = (aN / aD) * dn, lnDc - logx[:, 1]
        m = np.maximum(u1, u2)
        e1, e2 = np.exp(u1 - m), np.exp(u2 - m)
        tot = e1 + e2
        return aN, aD, dn, u1, np.log(tot) + m, e1 / tot

    def log_pred_grad(self, theta, logx):
        aN, aD, dn, u1, S, s1 = self._softmax_terms(theta, logx)
        jac = np.empty((len(S), 4))
        jac[:, 0] = aN * s1
        jac[:, 1] = aD * (1 - s1)
        jac[:, 2] = s1 * dn
        jac[:, 3] = S - s1 * u1
        return aD * S, jac

    def log_pred_vjp(self, theta, logx):
        aN, aD, dn, u1, S, s1 = self._softmax_terms(theta, logx)

        def vjp(v):  # the columns of log_pred_grad's Jacobian, contracted with v
            a = v @ s1
            g2 = (v * s1) @ dn
            return np.array([aN * a, aD * (v.sum() - a), g2, v @ S - (aN / aD) * g2])
        return aD * S, vjp

    def recenter(self, thetas, center):
        t = np.array(thetas, dtype=float, copy=True)
        t[..., 0] += center[0]
        t[..., 1] += center[1]
        return t

    def params_array(self, thetas):
        t = np.asarray(thetas, float)
        return np.stack([np.exp(t[:, 0]), np.exp(t[:, 1]), t[:, 2], t[:, 3]], axis=1)

    def bounds(self, logy=None):
        return [(None, None), (None, None), (1e-4, 10.0), (1e-3, 10.0)]

    def grid(self):
        r = _geomgrid(0.05, 20.0, self.grid_size)  # alpha_N / alpha_D
        aD = _geomgrid(0.02, 2.0, self.grid_size)
        rr, dd = np.meshgrid(r, aD, indexing="ij")
        return np.stack([rr.ravel(), dd.ravel()], axis=1), (len(r), len(aD))

    def vp_system(self, grid, logx, y):
        # (L/s)^(1/alpha_D) = c1 N^-r + c2 / D with c1 = s^(-1/aD) N_c^r, c2 = s^(-1/aD) D_c;
        # s (the geometric mean loss) keeps z near 1 so large 1/alpha_D cannot overflow.
        scale = float(np.exp(np.mean(np.log(y))))
        lny = np.log(y / scale)
        r, aD = grid[:, 0:1], grid[:, 1:2]
        inv_z = np.exp(-lny[None, :] / aD)
        basis = np.empty((len(grid), 2, len(y)))
        basis[:, 0] = np.exp(-r * logx[:, 0]) * inv_z
        basis[:, 1] = np.exp(-logx[:, 1])[None, :] * inv_z
        # log L = aD log z (+ const), so the log-loss residual is aD log(pred z / obs z).
        return basis, grid[:, 1].copy(), scale

    def theta_from_vp(self, grid, coef, scale):
        r, aD = grid[:, 0], grid[:, 1]
        ls = np.log(scale) / aD
        lnNc = (np.log(coef[:, 0]) + ls) / r
        lnDc = np.log(coef[:, 1]) + ls
        return np.column_stack([lnNc, lnDc, r * aD, aD])


@dataclass(frozen=True)
class Power(Law):
    """L(x) = E + A x^-alpha with reported names (E, A, alpha) renamed per use."""

    name: str = "power"
    form: str = "E + A*x^-alpha"
    names: tuple[str, ...] = ("E", "A", "alpha")
    n_inputs: int = 1
    grid_size: int = 400

    def _terms(self, theta, logx):
        theta = np.asarray(theta, float)
        lnA, lnE, al = (theta[..., i, None] for i in range(3))
        return np.stack(np.broadcast_arrays(lnA - al * logx[:, 0], lnE), axis=-1)

    def log_pred(self, theta, logx):
        return _logsumexp_softmax(self._terms(theta, logx))[0]

    def log_pred_grad(self, theta, logx):
        lnA, lnE, al = (float(v) for v in theta)
        lx = logx[:, 0]
        t1 = lnA - al * lx
        m = np.maximum(t1, lnE)
        e1, e2 = np.exp(t1 - m), np.exp(lnE - m)
        tot = e1 + e2
        s1 = e1 / tot
        jac = np.empty((len(tot), 3))
        jac[:, 0], jac[:, 1], jac[:, 2] = s1, e2 / tot, -s1 * lx
        return np.log(tot) + m, jac

    def design(self, logx):
        M = np.zeros((2, len(logx), 3))
        M[0, :, 0], M[0, :, 2] = 1.0, -logx[:, 0]  # log A - alpha log x
        M[1, :, 1] = 1.0  # log E
        return M

    def recenter(self, thetas, center):
        t = np.array(thetas, dtype=float, copy=True)
        t[..., 0] += t[..., 2] * center[0]
        return t

    def params_array(self, thetas):
        t = np.asarray(thetas, float)
        return np.stack([np.exp(t[:, 1]), np.exp(t[:, 0]), t[:, 2]], axis=1)

    def theta_from_params(self, E, A, alpha) -> np.ndarray:
        return np.array([np.log(A), np.log(E), alpha], float)

    def bounds(self, logy=None):
        return [(None, None), _floor(logy), (0.0, 10.0)]

    def grid(self):
        g = _geomgrid(0.005, 5.0, self.grid_size)
        return g[:, None], (len(g),)

    def vp_system(self, grid, logx, y):
        basis = np.empty((len(grid), 2, len(y)))
        basis[:, 0] = np.exp(-grid[:, 0:1] * logx[:, 0]) / y
        basis[:, 1] = 1.0 / y
        return basis, np.ones(len(grid)), 1.0

    def theta_from_vp(self, grid, coef, scale):
        return np.column_stack([np.log(coef[:, 0]), np.log(coef[:, 1]), grid[:, 0]])


CHINCHILLA = Chinchilla()
KAPLAN = Kaplan()
L_N = Power(name="L_N", form="E + A/N^alpha", names=("E", "A", "alpha"))
L_D = Power(name="L_D", form="E + B/D^beta", names=("E", "B", "beta"))
L_C = Power(name="L_C", form="E + A_C/C^gamma", names=("E", "A_C", "gamma"))

LAWS = {law.name: law for law in (CHINCHILLA, KAPLAN, L_N, L_D, L_C)}
