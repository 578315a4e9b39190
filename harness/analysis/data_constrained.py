"""Repeated data on a fitted data-constrained law (Muennighoff et al. 2023).

A law of :class:`~harness.analysis.forms.EffectiveData` turns a run of D tokens from a
pool of U_D unique ones into effective data D' (and effective parameters N'). From it:

- ``value``: what a repeated token is worth against a fresh one. By the law, a run of
  R_D = D / U_D - 1 repetitions gets (D' - U_D) / (D - U_D) = R_D* (1 - exp(-R_D / R_D*)) / R_D
  of a fresh token per repeated token (1 at R_D -> 0, 1/2 at R_D = 1.59 R_D*). Measured,
  per run: the D_fresh at which a fresh-data law predicts the run's observed loss, so
  (D_fresh - U_D) / (D - U_D) is the observed value (None where the observed loss is
  below what infinite fresh data would give that N). The fresh-data law is the law's
  base form (E as in the fit) fitted on the fresh runs alone, when there are enough of
  them (its parameters plus two), else the law itself at U_D = D.
- ``allocation``: for a pool U_D and compute C, the N (and so D = C / 6N and the epochs
  D / U_D) that minimise the law's loss; no closed form, so the law is minimised on a
  grid of N (:func:`harness.analysis.compute_optimal.numeric_n_opt`). Beside it the
  fresh-data optimum at the same C, to show what the pool costs.

- ``two_stage``: R_D* the way Muennighoff et al. fitted it: the base form's parameters
  fixed at the fresh-data law, only R_D* fitted on every run (N' = N), with residual-bootstrap intervals that hold the fresh law fixed (so they leave
  out its own uncertainty). The joint law's R_D* moves with its other parameters; this
  one reads R_D* off the repeated runs against a fixed fresh-data law.

Pure functions except :func:`summarize`, which builds the fit.json block.
"""
from __future__ import annotations

import numpy as np

from harness.analysis.compute_optimal import numeric_n_opt
from harness.analysis.forms import EffectiveData, Fit, fit_form, residual_bootstrap, take

EPOCHS_SHOWN = (2, 4, 8, 16, 32, 64)
FRESH_GRID = 4001  # log-spaced D of the fresh-law inversion, from U_D / 1e3 to 1e4 D


def value_per_repeat(R: np.ndarray, r_star: np.ndarray) -> np.ndarray:
    """(D' - U_D) / (D - U_D) at R repetitions beyond the first epoch (1 at R = 0)."""
    R, r_star = np.asarray(R, float), np.asarray(r_star, float)
    safe = np.where(R > 0, R, 1.0)
    return np.where(R > 0, r_star * -np.expm1(-safe / r_star) / safe, 1.0)


def fresh_law(fit: Fit) -> tuple[Fit, str]:
    """The fresh-data law the observed values are read against, and what it is."""
    fresh = fit.x[:, 1] <= np.minimum(fit.x[:, 2], fit.x[:, 1]) * (1 + 1e-9)
    base = fit.form.base
    if fresh.sum() >= len(base.names) + (fit.floor is None) + 2:
        f = fit_form(base, fit.x[fresh, :2], fit.y[fresh], fit.floor, fit.delta,
                     sigma=take(fit.weights, fresh))
        return f, f"{base.name} fitted on the {int(fresh.sum())} fresh runs (RMS log {f.rms_log:.4f})"
    return fit, f"{fit.form.name} at U_D = D (only {int(fresh.sum())} fresh runs)"


def fresh_equivalent(fit: Fit, N: float, loss: float, D_max: float, U: float) -> float | None:
    """The D at which ``fit`` (a law of (N, D), or a data-constrained one read at U_D = D:
    every token fresh) predicts ``loss`` at N."""
    D = np.exp(np.linspace(np.log(U / 1e3), np.log(1e4 * D_max), FRESH_GRID))
    pred = fit.predict(np.column_stack([np.full(len(D), N), D]))
    below = np.flatnonzero(pred <= loss)
    if len(below) == 0:
        return None  # lower than infinite fresh data gives this N (or beyond the grid)
    i = below[0]
    if i == 0:
        return float(D[0])
    # interpolate in log D between the grid points that bracket the crossing
    t = (np.log(pred[i - 1]) - np.log(loss)) / (np.log(pred[i - 1]) - np.log(pred[i]))
    return float(np.exp(np.log(D[i - 1]) + t * (np.log(D[i]) - np.log(D[i - 1]))))


def effective_data(fit: Fit) -> np.ndarray:
    """D' of every row of the fit (tokens)."""
    full = fit.form._full(fit.theta if fit.floor is not None else fit.theta[:-1])
    _, lDe = fit.form.effective(full, fit._lx(fit.x))
    return np.exp(lDe + fit.center[1])


def runs(fit: Fit, ids: list, fresh: Fit) -> list[dict]:
    """Per repeated run (D > U_D): epochs, D', and the value of a repeated token by the
    law and as observed (against the fresh-data law ``fresh``)."""
    N, D, U = fit.x[:, 0], fit.x[:, 1], np.minimum(fit.x[:, 2], fit.x[:, 1])
    De = effective_data(fit)
    out = []
    for i in np.flatnonzero(D > U * (1 + 1e-9)):
        df = fresh_equivalent(fresh, N[i], fit.y[i], D[i], U[i])
        out.append({"id": ids[i], "N": N[i], "D": D[i], "unique_tokens": U[i], "epochs": D[i] / U[i],
                    "observed": fit.y[i], "predicted": float(fit.predict(fit.x[i:i + 1])[0]),
                    "D_effective_law": De[i], "value_law": (De[i] - U[i]) / (D[i] - U[i]),
                    "D_fresh_equivalent": df, "value_observed": None if df is None else (df - U[i]) / (D[i] - U[i])})
    return out


def allocation(fit: Fit, C: float, U: float, n_range: tuple[float, float]) -> dict:
    """The loss-minimising N at compute C from a pool of U unique tokens, and the fresh-data one."""
    P = np.array([fit.params_array(fit.theta)[-len(fit.form.names):]])
    row = {"C": C, "unique_tokens": U}
    for key, unique in (("constrained", U), ("fresh", None)):
        n = float(numeric_n_opt(fit.form, P, C, n_range, unique=unique)[0])
        if not np.isfinite(n):
            row[key] = None
            continue
        d = C / (6 * n)
        u = d if unique is None else unique
        row[key] = {"N_opt": n, "D_opt": d, "epochs": d / u if unique is not None else 1.0,
                    "loss": float(fit.predict(np.array([[n, d, u]]))[0])}
    return row


def two_stage(fit: Fit, fresh: Fit, n_resamples: int, seed: int) -> dict | None:
    """R_D* with the base form fixed at the fresh-data law ``fresh``."""
    if fresh is fit:
        return None
    # R_D* only: N_opt(U_D) comes from the fresh law's own exponents, which at these sizes
    # can put it orders of magnitude off (on zipf_facts below one parameter), so R_N* is
    # left to the joint fit
    law = EffectiveData(fit.form.name, fit.form.form, fit.form.base, False,
                        tuple((k, v) for k, v in fresh.params.items() if k != "E"))
    f = fit_form(law, fit.x, fit.y, fresh.params.get("E", fit.floor) if fit.floor is None else fit.floor, fit.delta,
                 sigma=fit.weights)
    residual_bootstrap(f, n_resamples, seed)
    ci = f.ci95() or {}
    return {"fixed": {k: v for k, v in fresh.params.items()}, "params": f.params, "ci95": ci or None,
            "rms_log": f.rms_log, "ci95_at_bound": f.at_bound() or None,
            "value_of_a_repeated_token": [{"epochs": e, "value_law": float(value_per_repeat(e - 1, f.params["R_D*"]))}
                                          for e in EPOCHS_SHOWN]}


def summarize(name: str, fit: Fit, ids: list, c_range: tuple[float, float], n_range: tuple[float, float],
              n_resamples: int = 0, seed: int = 0) -> dict:
    """The ``data_constrained`` block of fit.json for the law ``name``."""
    ci = fit.ci95() or {}
    bp = fit.boot_params()
    fresh, fresh_what = fresh_law(fit)
    k = fit.names.index("R_D*")
    rd = fit.params["R_D*"]
    curve = []
    for e in EPOCHS_SHOWN:
        v = float(value_per_repeat(e - 1, rd))
        row = {"epochs": e, "value_law": v}
        if bp is not None and len(bp):
            row["ci95"] = [float(x) for x in np.percentile(value_per_repeat(e - 1, bp[:, k]), [2.5, 97.5])]
        curve.append(row)
    U = np.minimum(fit.x[:, 2], fit.x[:, 1])
    pools = sorted({float(np.min(U)), float(np.median(U)), float(np.max(U))})
    alloc = [allocation(fit, C, u, n_range) for u in pools for C in (c_range[0], c_range[1], 10 * c_range[1])]
    return {"law": name, "form": fit.form.form,
            "R_D*": rd, "R_D*_ci95": ci.get("R_D*"), "R_N*": fit.params.get("R_N*"), "R_N*_ci95": ci.get("R_N*"),
            "value_of_a_repeated_token": curve,
            "value_definition": "(D' - U_D) / (D - U_D): a repeated token's worth in fresh tokens, "
                                "R_D* (1 - exp(-R_D / R_D*)) / R_D at R_D = epochs - 1",
            "fresh_law": {"what": fresh_what, "params": fresh.params, "rms_log": fresh.rms_log},
            "runs": runs(fit, ids, fresh),
            "observed_definition": "D_fresh_equivalent: the D at which the fresh-data law predicts the run's "
                                   "observed loss; value_observed = (D_fresh_equivalent - U_D) / (D - U_D)",
            "two_stage": two_stage(fit, fresh, n_resamples, seed),
            "two_stage_definition": "Muennighoff et al.'s procedure: the base form fixed at the fresh-data law, "
                                    "only R_D* fitted on every run (N' = N); intervals hold the fresh law fixed",
            "allocation": alloc,
            "allocation_method": "numerical minimum over N of the law at C = 6 N D from a pool of U_D unique tokens "
                                 "(D / U_D epochs), beside the fresh-data minimum at the same C"}
