"""Compute-optimal allocation on a fitted surface L(N, D) at C = 6 N D.

For the additive form (Hoffmann et al. 2022, eq. 4) it is closed:

    N_opt(C) = G (C/6)^a,   D_opt(C) = G^-1 (C/6)^b,
    a = beta/(alpha+beta),  b = alpha/(alpha+beta),  G = (alpha A / (beta B))^(1/(alpha+beta)).

For any other form N_opt(C) is found numerically: the loss along C = 6 N D on a fine
grid of ln N, refined by a parabola through the lowest grid point and its neighbours.
``a`` is then the local slope d ln N_opt / d ln C over the sweep's compute range (the
secant from its smallest to its largest C). When the minimum lies at the edge of the
searched sizes (the loss keeps falling toward smaller or larger N at fixed C) there is
no optimum and none is reported. C is in FLOPs under the 6ND convention, with N the
parameter count the fit used. Kaplan et al. (2020) found N_opt ~ C^0.73, Hoffmann et
al. (2022) a ~ 0.5.
"""
from __future__ import annotations

import numpy as np

from harness.analysis.forms import Form

KAPLAN_A = 0.73
CHINCHILLA_A = 0.5
CHINCHILLA_BUDGET = 5.76e23  # Chinchilla's own training compute, a reference point
SEARCH_DECADES = 8.0  # sizes searched: this many decades beyond the sweep's N on each side
GRID = 1601


def allocation(A, B, alpha, beta):
    """(a, b, G) for additive-law parameters (scalars or arrays)."""
    A, B, alpha, beta = (np.asarray(v, float) for v in (A, B, alpha, beta))
    s = alpha + beta
    return beta / s, alpha / s, (alpha * A / (beta * B)) ** (1.0 / s)


def optimal_nd(C, A, B, alpha, beta):
    """(N_opt, D_opt) at compute C for the additive law; broadcasts."""
    a, b, G = allocation(A, B, alpha, beta)
    c6 = np.asarray(C, float) / 6.0
    return G * c6 ** a, c6 ** b / G


def numeric_n_opt(form: Form, P: np.ndarray, C: float, n_range: tuple[float, float],
                  ln_cost=None, unique: float | None = None) -> np.ndarray:
    """N_opt at compute C for reported parameters P (m, k) (E does not move it); NaN
    where the minimum sits at the edge of ``n_range`` widened by SEARCH_DECADES.

    ``ln_cost(lnN)`` is the log of the FLOPs per training token (default 6 N, so that
    C = 6 N D); another counting convention passes its own. ``unique``: a pool of U_D
    unique tokens for a data-constrained form (inputs N, D, U_D): D = C / 6N of them
    seen in D / U_D epochs."""
    ln_cost = ln_cost or (lambda ln_n: np.log(6.0) + ln_n)
    lo, hi = np.log(n_range[0]) - SEARCH_DECADES * np.log(10), np.log(n_range[1]) + SEARCH_DECADES * np.log(10)
    lnN = np.linspace(lo, hi, GRID)
    lnD = np.log(C) - ln_cost(lnN)
    lnN, lnD = lnN[lnD >= 0], lnD[lnD >= 0]  # D >= 1 token
    x = np.column_stack([lnN, lnD] + ([np.full(len(lnN), np.log(unique))] if unique is not None else []))
    lr = form.log_r(form.theta(np.atleast_2d(P)), x)  # (m, GRID)
    i = np.argmin(lr, axis=1)
    edge = (i == 0) | (i == len(lnN) - 1)
    j = np.clip(i, 1, len(lnN) - 2)
    rows = np.arange(len(i))
    y0, y1, y2 = lr[rows, j - 1], lr[rows, j], lr[rows, j + 1]
    den = y0 - 2 * y1 + y2
    shift = np.where(den > 0, 0.5 * (y0 - y2) / np.where(den > 0, den, 1), 0.0)
    out = np.exp(np.where(edge, 0.0, lnN[j] + shift * (lnN[1] - lnN[0])))
    out[edge] = np.nan
    return out


def budgets(c_min: float, c_max: float) -> list[tuple[str, float]]:
    """The compute values the report tabulates: the sweep's range, 10x and 100x beyond
    its largest budget, and Chinchilla's training compute."""
    out = [("sweep min", c_min), ("sweep max", c_max), ("10x sweep max", 10 * c_max),
           ("100x sweep max", 100 * c_max), ("Chinchilla (5.76e23)", CHINCHILLA_BUDGET)]
    seen, uniq = set(), []
    for label, c in out:
        if c not in seen:
            seen.add(c)
            uniq.append((label, float(c)))
    return uniq


def _ci(v: np.ndarray) -> list[float] | None:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return None
    lo, hi = np.percentile(v, [2.5, 97.5])
    return [float(lo), float(hi)]


def summarize(law: str, form: Form, params: dict, boot: np.ndarray | None, c_range: tuple[float, float],
              n_range: tuple[float, float]) -> dict:
    """The ``compute_optimal`` block of fit.json for the law ``law``.

    ``params``: reported parameters (E, if present, is ignored); ``boot``: bootstrap
    parameters (R, len(form.names)) in the form's order, or None."""
    P = np.array([[params[k] for k in form.names]])
    closed = form.name == "chinchilla"
    n_at = (lambda PP, C: optimal_nd(C, PP[:, 0], PP[:, 1], PP[:, 2], PP[:, 3])[0]) if closed else \
        (lambda PP, C: numeric_n_opt(form, PP, C, n_range))
    out = {"law": law, "method": "closed form (Hoffmann et al. 2022, eq. 4)" if closed else
           "numerical minimum of the fitted surface along C = 6 N D; a = slope of ln N_opt over the sweep's C range",
           "a": None, "b": None, "ci95": {}, "at_compute": [], "n_range": list(n_range),
           "reference_a": {"kaplan_2020": KAPLAN_A, "chinchilla_2022": CHINCHILLA_A}}
    n_lo, n_hi = n_at(P, c_range[0])[0], n_at(P, c_range[1])[0]
    if not (np.isfinite(n_lo) and np.isfinite(n_hi)):
        out["reason"] = (f"{law} has no compute-optimal size in range: at fixed C its loss keeps falling toward "
                         f"{'larger' if _falls_to_larger(form, P, c_range[1], n_range) else 'smaller'} N "
                         f"(searched {SEARCH_DECADES:g} decades beyond the sweep's sizes)")
        return out
    span = np.log(c_range[1] / c_range[0])
    a = float(np.log(n_hi / n_lo) / span)
    out.update(a=a, b=1 - a)
    if boot is not None and len(boot):
        ba = np.log(n_at(boot, c_range[1]) / n_at(boot, c_range[0])) / span
        out["ci95"] = {"a": _ci(ba), "b": _ci(1 - ba), "no_optimum_share": float(np.mean(~np.isfinite(ba)))}
    for label, C in budgets(*c_range):
        n = float(n_at(P, C)[0])
        row = {"label": label, "C": C, "N_opt": n, "D_opt": C / (6 * n), "tokens_per_param": C / (6 * n * n),
               "ci95": {}}
        if boot is not None and len(boot):
            bn = n_at(boot, C)
            row["ci95"] = {"N_opt": _ci(bn), "D_opt": _ci(C / (6 * bn)), "tokens_per_param": _ci(C / (6 * bn * bn))}
        out["at_compute"].append(row)
    return out


def _falls_to_larger(form: Form, P: np.ndarray, C: float, n_range) -> bool:
    x = np.log(np.array([[n_range[0], C / (6 * n_range[0])], [n_range[1], C / (6 * n_range[1])]]))
    lr = form.log_r(form.theta(P), x)[0]
    return bool(lr[1] < lr[0])


def agreement(co: dict | None, iso: dict | None) -> dict | None:
    """Whether the surface's a and the IsoFLOP a agree within their 95% intervals."""
    if not co or not iso or co.get("a") is None or iso.get("a") is None:
        return None
    c1, c2 = (co.get("ci95") or {}).get("a"), iso.get("a_ci95")
    out = {"surface_a": co["a"], "surface_ci95": c1, "isoflop_a": iso["a"], "isoflop_ci95": c2}
    out["agree"] = None if not (c1 and c2) else bool(c1[0] <= c2[1] and c2[0] <= c1[1])
    return out


def local_slope(form: Form, P: np.ndarray, c_range: tuple[float, float], n_range: tuple[float, float],
                ln_cost=None) -> float | None:
    """a = d ln N_opt / d ln C between the ends of ``c_range`` (None without an optimum)."""
    n0, n1 = (numeric_n_opt(form, P, c, n_range, ln_cost)[0] for c in c_range)
    return float(np.log(n1 / n0) / np.log(c_range[1] / c_range[0])) if np.isfinite(n0 * n1) else None
