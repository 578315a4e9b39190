"""IsoFLOP profiles (Hoffmann et al. 2022, approach 2).

Runs sharing a FLOP budget (``config.data.flop_budget`` in a record, the
``data.flop_budget`` column of runs.csv) differ only in how the budget is split
between N and D. Per budget, final loss is fitted by a parabola in ln N and its vertex
is the compute-optimal size N_opt(C); across budgets ln N_opt = ln k + a ln C is a
straight line, giving the compute-optimal exponent a (and b = 1 - a for
D_opt = C / (6 N_opt)).

An optimum outside the budget's sampled range of N is an extrapolation of the
parabola: it is flagged with a warning and left out of the power-law fit whenever at
least two budgets have their optimum inside their range.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from harness.analysis.errors import AnalysisWarning
from harness.analysis.frontier import group_values


def parabola_vertex(logn: np.ndarray, loss: np.ndarray) -> dict:
    """Least squares parabola loss = c2 x^2 + c1 x + c0 in x = ln N and its vertex."""
    c2, c1, c0 = np.polyfit(np.asarray(logn, float), np.asarray(loss, float), 2)
    out = {"coef_lnN": [float(c2), float(c1), float(c0)], "has_minimum": bool(c2 > 0)}
    if c2 > 0:
        x = -c1 / (2 * c2)
        out.update(lnN_opt=float(x), loss_opt=float(c0 - c1 * c1 / (4 * c2)))
    return out


def power_law(C: np.ndarray, n_opt: np.ndarray) -> dict:
    """ln N_opt = ln k + a ln C by least squares; a t-based 95% interval from 3 budgets."""
    x, y = np.log(C), np.log(n_opt)
    m = len(x)
    a, lnk = np.polyfit(x, y, 1)
    out = {"a": float(a), "b": float(1 - a), "k": float(np.exp(lnk)), "a_ci95": None, "b_ci95": None}
    if m >= 3:
        resid = y - (lnk + a * x)
        se = np.sqrt(np.sum(resid ** 2) / (m - 2) / np.sum((x - x.mean()) ** 2))
        t = stats.t.ppf(0.975, m - 2)
        out["a_ci95"] = [float(a - t * se), float(a + t * se)]
        out["b_ci95"] = [float(1 - a - t * se), float(1 - a + t * se)]
    return out


def fit_isoflop(N: np.ndarray, loss: np.ndarray, budget: np.ndarray, ids: list[str] | None = None) -> dict | None:
    """The ``isoflop`` block of fit.json, or None when no row has a FLOP budget."""
    N, loss, budget = (np.asarray(v, float) for v in (N, loss, budget))
    has = np.isfinite(budget) & (budget > 0)
    if not has.any():
        return None
    idx_all = np.flatnonzero(has)
    labels = group_values(budget[idx_all], rtol=1e-6)
    groups, warn = [], []
    for g in range(labels.max() + 1):
        idx = idx_all[labels == g]
        C = float(budget[idx].min())
        row = {"C": C, "n_runs": int(len(idx)), "N": N[idx].tolist(), "loss": loss[idx].tolist(),
               "run_ids": [ids[i] for i in idx] if ids else [int(i) for i in idx],
               "N_range": [float(N[idx].min()), float(N[idx].max())], "N_opt": None, "D_opt": None,
               "loss_opt": None, "in_range": None, "used": False}
        if len(np.unique(N[idx])) < 3:
            warn.append(f"isoflop budget C={C:.3g}: only {len(np.unique(N[idx]))} distinct model sizes, need 3 for a parabola")
            groups.append(row)
            continue
        v = parabola_vertex(np.log(N[idx]), loss[idx])
        row["coef_lnN"] = v["coef_lnN"]
        if not v["has_minimum"]:
            warn.append(f"isoflop budget C={C:.3g}: the parabola opens downward, no optimum")
        else:
            n_opt = float(np.exp(v["lnN_opt"]))
            row.update(N_opt=n_opt, D_opt=C / (6 * n_opt), loss_opt=v["loss_opt"],
                       in_range=bool(row["N_range"][0] <= n_opt <= row["N_range"][1]))
            if not row["in_range"]:
                warn.append(f"isoflop budget C={C:.3g}: optimum N={n_opt:.3g} lies outside the sampled "
                            f"range [{row['N_range'][0]:.3g}, {row['N_range'][1]:.3g}] (extrapolated)")
        groups.append(row)
    inside = [r for r in groups if r["in_range"]]
    valid = [r for r in groups if r["N_opt"] is not None]
    use = inside if len(inside) >= 2 else valid
    if use is valid and len(valid) > len(inside) and len(valid) >= 2:
        warn.append("isoflop power law: fewer than 2 budgets have their optimum inside the sampled range, "
                    "so extrapolated optima are used")
    for r in use:
        r["used"] = True
    out = {"method": "parabola of final loss in ln N per budget (Hoffmann et al. 2022, approach 2)",
           "budgets": groups, "n_budgets_used": len(use), "a": None, "b": None, "k": None,
           "a_ci95": None, "b_ci95": None, "warnings": warn}
    if len(use) >= 2:
        out.update(power_law(np.array([r["C"] for r in use]), np.array([r["N_opt"] for r in use])))
    else:
        warn.append("isoflop power law needs optima for at least 2 budgets")
    for w in warn:
        warnings.warn(w, AnalysisWarning, stacklevel=2)
    return out
