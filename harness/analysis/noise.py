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
(:func:`fit_weighted`; tau = 0 when the seeds explain the residuals). Without ladders
the fit is then weighted least squares in log L with those sigma_i.

Seeds shift a whole ladder. Runs of one family (records.family_id: same size and
seed, only D differs) share their init and data order, and on the toy data most of a
seed's effect is one offset along its ladder. :func:`ladder_share` splits each
replicated size's spread into that shared offset and the run's own part (a two-way
analysis of variance over seeds x D). The joint fit is then generalised least squares
on that covariance (:func:`ladder_cov`): weighted least squares would count a ladder's
5 runs as 5 independent measurements of its level, and let a lucky seed's offset
steer the exponents. The bootstrap draws the seed noise with that share common to the
family's runs and repeats the whole estimate on each simulated sweep: the seeds'
spread and its ladder share are measured again from the simulated replicates and the
fit redone with them (:func:`ladder_bootstrap`), so the intervals also carry the
uncertainty of a noise model that rests on 3 seeds. How often these intervals cover,
against weighted least squares with the same bootstrap and with independent draws, is
measured by scripts/noise_coverage.py (results/noise_coverage) on results/cpu's design.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from harness.analysis.forms import Fit, Form, bootstrap_rng, fit_form, refit_draws

MIN_SIZE_DOF = 2  # a size's replicates need this many degrees of freedom to enter the model
RHO_MAX = 0.99  # a ladder's runs keep at least 1% of their seed variance their own: at rho = 1
# (no within-ladder noise measured, as 3 seeds can show by chance) the covariance is singular
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


def ladder_share(X: np.ndarray, loss: np.ndarray, family: list, model: dict) -> dict | None:
    """Per replicated size, the share rho of the seed variance that is one offset per
    family: sigma_u^2 / (sigma_u^2 + sigma_e^2) from seeds x D (the D values every
    family of that size has; two or more of each). None when no size allows it."""
    rows = []
    for n in [r["N"] for r in model["per_size"]]:
        fams = sorted({f for f, x in zip(family, X[:, 0]) if x == n})
        by = {f: {float(d): float(np.log(v)) for f2, x, d, v in zip(family, X[:, 0], X[:, 1], loss)
                  if f2 == f and x == n} for f in fams}
        ds = sorted(set.intersection(*(set(v) for v in by.values()))) if fams else []
        S, k = len(fams), len(ds)
        if S < 2 or k < 2:
            continue
        M = np.array([[by[f][d] for d in ds] for f in fams])
        row, col, grand = M.mean(1, keepdims=True), M.mean(0, keepdims=True), M.mean()
        se2 = float(((M - row - col + grand) ** 2).sum()) / ((S - 1) * (k - 1))
        su2 = max(0.0, (k * float(((row - grand) ** 2).sum()) / (S - 1) - se2) / k)
        rows.append({"N": n, "rho": su2 / (su2 + se2) if su2 + se2 > 0 else 0.0, "families": S, "D_shared": k})
    if not rows:
        return None
    return {"per_size": rows, "method": "two-way ANOVA of log loss over families (seeds) x D per replicated size: "
            "rho = sigma_offset^2 / (sigma_offset^2 + sigma_within^2); linear in log N between sizes, the end "
            "values outside"}


def rho_at(share: dict, N) -> np.ndarray:
    """The shared-offset share at each N (interpolated in log N, held at the ends)."""
    n = [r["N"] for r in share["per_size"]]
    return np.interp(np.log(np.asarray(N, float)), np.log(n), [r["rho"] for r in share["per_size"]])


def _tau2(r: np.ndarray, s2: np.ndarray, dof: int) -> float:
    """tau^2 >= 0 with sum r^2 / (s2 + tau^2) = dof (0 when the seeds already explain r)."""
    g = lambda t: float(np.sum(r * r / (s2 + t))) - dof  # noqa: E731
    if g(0.0) <= 0:
        return 0.0
    return brentq(g, 0.0, float(np.sum(r * r)) / dof, xtol=1e-16, rtol=1e-10)


def ladder_cov(seed_sd: np.ndarray, rho: np.ndarray, family: list, tau: float = 0.0) -> np.ndarray:
    """The noise covariance of log L under the ladder model: seed_sd_i^2 + tau^2 on the
    diagonal, rho seed_sd_i seed_sd_j between two runs of one family (the shared offset;
    a family has one size, so one rho; at most RHO_MAX), 0 across families."""
    sd, rho = np.asarray(seed_sd, float), np.clip(np.asarray(rho, float), 0.0, RHO_MAX)
    _, fam = np.unique(np.asarray(family, dtype=str), return_inverse=True)
    same = fam[:, None] == fam[None, :]
    cov = np.where(same, np.sqrt(rho[:, None] * rho[None, :]) * np.outer(sd, sd), 0.0)
    np.fill_diagonal(cov, sd ** 2 + tau ** 2)
    return cov


def ladder_noise(rng: np.random.Generator, seed_sd: np.ndarray, rho: np.ndarray, family_index: np.ndarray) -> np.ndarray:
    """One draw of the seed noise in log L under the ladder model: sigma_seed_i (sqrt(rho_i)
    u_f + sqrt(1 - rho_i) e_i), u one offset per family (``family_index``: 0 .. F-1 per
    run), e per run; both standard normal, drawn in that order."""
    u = rng.standard_normal(int(family_index.max()) + 1)[family_index]
    return seed_sd * (np.sqrt(rho) * u + np.sqrt(1 - rho) * rng.standard_normal(len(family_index)))


def fit_weighted(form: Form, x, y, floor, delta, seed_sd: np.ndarray, family: list | None = None,
                 rho: np.ndarray | None = None) -> Fit:
    """Weighted least squares with sigma_i^2 = seed_sd_i^2 + tau^2, tau re-estimated from
    the residuals until it settles; the fit keeps the last sigma and records tau.
    With ``family`` and ``rho`` (each run's shared-offset share, :func:`rho_at`) it is
    generalised least squares on :func:`ladder_cov`: a ladder's runs share a seed offset,
    so the fit reads the D-dependence from differences within a ladder, where the offset
    cancels, and the N-dependence from the ladders' levels, each counted once."""
    seed_sd = np.asarray(seed_sd, float)
    s2, tau2 = seed_sd ** 2, 0.0
    gls = family is not None and rho is not None
    weights = (lambda t2: ladder_cov(seed_sd, rho, family, math.sqrt(t2))) if gls else \
        (lambda t2: np.sqrt(s2 + t2))
    if gls:  # chi2(tau^2) = r' (C0 + tau^2 I)^-1 r = sum z_k^2 / (lambda_k + tau^2) in C0's eigenbasis
        lam, Q = np.linalg.eigh(ladder_cov(seed_sd, rho, family))
    fit = fit_form(form, x, y, floor, delta, sigma=weights(0.0))
    dof = len(fit.y) - fit.n_params
    for _ in range(TAU_ITERATIONS if dof > 0 else 0):
        r = fit.log_residuals
        new = _tau2(Q.T @ r, lam, dof) if gls else _tau2(r, s2, dof)
        if abs(new - tau2) <= 1e-4 * max(new, tau2, 1e-30):
            break
        tau2 = new
        fit = fit_form(form, x, y, floor, delta, sigma=weights(tau2))
    fit.extra["noise_model"] = {"tau_log": math.sqrt(tau2), "chi2_dof": fit.chi2_dof,
                                "fit": "generalised least squares (ladder covariance)" if gls else "weighted least squares"}
    return fit


def ladder_bootstrap(fit: Fit, n_resamples: int, seed: int, X_replicates: np.ndarray, family: list,
                     share: dict) -> Fit:
    """Parametric bootstrap of a weighted fit under the ladder noise model: per
    resample, a noise level s = sqrt(dof / X), X ~ chi2(dof), dof = n_eff - p with
    n_eff = sum over families of k / (1 + (k - 1) rho) (a ladder's k runs are not k
    measurements); log L* = fitted + s [sigma_seed(N_i) (sqrt(rho) u_family +
    sqrt(1 - rho) e_i) + tau e'_i]; sigma_seed re-measured from the simulated
    replicates (:func:`by_size` on ``X_replicates``, the (N, D, U_D) rows) and the law
    refitted with sigma_i^2 = sigma_seed*(N_i)^2 + tau^2 from the point estimate; a
    generalised fit (``fit.cov``) also re-measures rho (:func:`ladder_share`) and refits
    on the covariance they give.
    Seeded by (seed, crc32(form name, "ladder", n))."""
    rng = bootstrap_rng(fit, n_resamples, seed, "ladder")
    if rng is None:
        return fit
    n, p = len(fit.y), fit.n_params
    tau = float(fit.extra["noise_model"]["tau_log"])
    sd = seed_sigma(by_size(X_replicates, fit.y), fit.x[:, 0])
    rho = np.clip(rho_at(share, fit.x[:, 0]), 0.0, 1.0)
    _, fam = np.unique(np.asarray(family, dtype=str), return_inverse=True)
    k_f = np.bincount(fam)
    n_eff = float(np.sum(k_f / (1 + (k_f - 1) * (np.bincount(fam, weights=rho) / k_f))))
    dof = max(1, int(round(n_eff)) - p)
    base = fit.log_pred_at(fit.theta, fit.x)

    def draw(rng):
        s = np.sqrt(dof / rng.chisquare(dof))
        logy = base + s * (ladder_noise(rng, sd, rho, fam) + tau * rng.standard_normal(n))
        again = by_size(X_replicates, np.exp(logy))
        sd_star = seed_sigma(again, fit.x[:, 0]) if again is not None else sd
        if fit.cov is None:
            return logy, np.sqrt(sd_star ** 2 + tau ** 2)
        share_star = ladder_share(X_replicates, np.exp(logy), family, again) if again is not None else None
        rho_star = np.clip(rho_at(share_star, fit.x[:, 0]), 0.0, 1.0) if share_star is not None else rho
        return logy, ladder_cov(sd_star, rho_star, family, tau)

    fit.boot = refit_draws(fit, n_resamples, rng, draw)
    fit.extra["bootstrap"] = {"method": "ladder", "dof": dof, "n_effective": n_eff}
    return fit
