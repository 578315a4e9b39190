"""Run-to-run noise as a function of model size, and the weighted fit it calls for.

Seeds that repeat an (N, D) measure how much a final loss moves from one run to the
next. On the toy data that spread falls steeply with size (results/cpu: about 10x
from N = 4e3 to 1e5), so one pooled number overstates the noise of the large runs and
understates that of the small ones, and an unweighted fit lets the noisiest runs
steer the exponents.

When replicates exist at two or more sizes, :func:`by_size` fits
``log sigma_seed = a + b log N`` to the per-size pooled spreads (weighted by their
degrees of freedom). Below the smallest replicated size the line is extended (more
noise); above the largest, that size's value holds: the fall is never extrapolated,
so no run is assumed quieter than a measured one.

A law's residuals also hold what the law gets wrong, which seeds do not show. Each
point's noise is modelled as ``sigma_i^2 = sigma_seed(N_i)^2 + tau^2``, ``tau`` the
law's own misfit, set so that the weighted residuals have chi2 / (n - p) = 1
(:func:`fit_weighted`; tau = 0 when the seeds explain the residuals). The fit is
then weighted least squares in log L with those sigma_i.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from harness.analysis.forms import Fit, Form, fit_form

MIN_SIZE_DOF = 2  # a size's replicates need this many degrees of freedom to enter the model
TAU_ITERATIONS = 5


def groups(X: np.ndarray) -> list[list[int]]:
    """Row indices of the runs that share an (N, D, U_D) row of ``X``, two or more each."""
    out: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*(c.tolist() for c in np.asarray(X).T))):
        out.setdefault(key, []).append(i)
    return [g for g in out.values() if len(g) > 1]


def by_size(X: np.ndarray, loss: np.ndarray) -> dict | None:
    """The replicates' spread of log loss per model size and a power law in N through
    it; None unless two or more sizes have MIN_SIZE_DOF degrees of freedom."""
    per: dict[float, list[float]] = {}
    for g in groups(X):
        v = np.log(loss[g])
        ss, dof = per.setdefault(float(X[g[0], 0]), [0.0, 0])
        per[float(X[g[0], 0])] = [ss + float(((v - v.mean()) ** 2).sum()), dof + len(g) - 1]
    rows = [{"N": n, "sigma_log": math.sqrt(ss / dof), "dof": dof} for n, (ss, dof) in sorted(per.items())
            if dof >= MIN_SIZE_DOF]
    if len(rows) < 2:
        return None
    ln_n = np.log([r["N"] for r in rows])
    ln_s = np.log([max(r["sigma_log"], 1e-12) for r in rows])
    b, a = np.polyfit(ln_n, ln_s, 1, w=np.sqrt([r["dof"] for r in rows]))
    return {"per_size": rows, "form": "log sigma_seed = a + b log min(N, N_range[1])",
            "a": float(a), "b": float(b), "N_range": [rows[0]["N"], rows[-1]["N"]],
            "fit": "least squares over the sizes, weighted by sqrt(dof)"}


def seed_sigma(model: dict, N) -> np.ndarray:
    """sigma_seed at each N (log L): the line, held above the largest replicated size."""
    n = np.minimum(np.asarray(N, float), model["N_range"][1])
    return np.exp(model["a"] + model["b"] * np.log(n))


def _tau2(r: np.ndarray, s2: np.ndarray, dof: int) -> float:
    """tau^2 >= 0 with sum r^2 / (s2 + tau^2) = dof (0 when the seeds already explain r)."""
    g = lambda t: float(np.sum(r * r / (s2 + t))) - dof  # noqa: E731
    if g(0.0) <= 0:
        return 0.0
    return brentq(g, 0.0, float(np.sum(r * r)) / dof, xtol=1e-16, rtol=1e-10)


def fit_weighted(form: Form, x, y, floor, delta, seed_sd: np.ndarray) -> Fit:
    """Weighted least squares with sigma_i^2 = seed_sd_i^2 + tau^2, tau re-estimated from
    the residuals until it settles; the fit keeps the last sigma and records tau."""
    seed_sd = np.asarray(seed_sd, float)
    s2, tau2 = seed_sd ** 2, 0.0
    fit = fit_form(form, x, y, floor, delta, sigma=seed_sd)
    dof = len(fit.y) - fit.n_params
    for _ in range(TAU_ITERATIONS if dof > 0 else 0):
        new = _tau2(fit.log_residuals, s2, dof)
        if abs(new - tau2) <= 1e-4 * max(new, tau2, 1e-30):
            break
        tau2 = new
        fit = fit_form(form, x, y, floor, delta, sigma=np.sqrt(s2 + tau2))
    fit.extra["noise_model"] = {"tau_log": math.sqrt(tau2), "chi2_dof": fit.chi2_dof}
    return fit
