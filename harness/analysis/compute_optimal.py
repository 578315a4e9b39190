"""Compute-optimal allocation from a Chinchilla fit (Hoffmann et al. 2022, eq. 4).

Minimising L(N, D) = E + A/N^alpha + B/D^beta subject to C = 6 N D gives

    N_opt(C) = G (C/6)^a,   D_opt(C) = G^-1 (C/6)^b,
    a = beta/(alpha+beta),  b = alpha/(alpha+beta),  G = (alpha A / (beta B))^(1/(alpha+beta)),

and D_opt/N_opt = G^-2 (C/6)^(b-a) tokens per parameter. C is in FLOPs under the 6ND
convention (``flops_6nd``), with N the parameter count the fit used. For reference:
Kaplan et al. (2020) found N_opt ~ C^0.73, Hoffmann et al. (2022) a ~ 0.5.
"""
from __future__ import annotations

import numpy as np

KAPLAN_A = 0.73
CHINCHILLA_A = 0.5
CHINCHILLA_BUDGET = 5.76e23  # Chinchilla's own training compute, a reference point


def allocation(A, B, alpha, beta):
    """(a, b, G) for Chinchilla parameters (scalars or arrays)."""
    A, B, alpha, beta = (np.asarray(v, float) for v in (A, B, alpha, beta))
    s = alpha + beta
    return beta / s, alpha / s, (alpha * A / (beta * B)) ** (1.0 / s)


def optimal_nd(C, A, B, alpha, beta):
    """(N_opt, D_opt) at compute C; broadcasts over C and the parameters."""
    a, b, G = allocation(A, B, alpha, beta)
    c6 = np.asarray(C, float) / 6.0
    return G * c6 ** a, c6 ** b / G


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
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return None
    lo, hi = np.percentile(v, [2.5, 97.5])
    return [float(lo), float(hi)]


def summarize(params: dict, boot: np.ndarray | None, c_values: list[tuple[str, float]]) -> dict:
    """The ``compute_optimal`` block of fit.json.

    ``params``: the Chinchilla point estimate; ``boot``: bootstrap parameters
    (R, 5) in the order E, A, B, alpha, beta, or None.
    """
    a, b, G = (float(v) for v in allocation(params["A"], params["B"], params["alpha"], params["beta"]))
    out = {"from": "chinchilla", "formula": "N_opt = G (C/6)^a, D_opt = (C/6)^b / G",
           "a": a, "b": b, "G": G, "ci95": {}, "at_compute": [],
           "reference_a": {"kaplan_2020": KAPLAN_A, "chinchilla_2022": CHINCHILLA_A}}
    if boot is not None and len(boot):
        ba, bb, bG = allocation(boot[:, 1], boot[:, 2], boot[:, 3], boot[:, 4])
        out["ci95"] = {"a": _ci(ba), "b": _ci(bb), "G": _ci(bG)}
    for label, C in c_values:
        n, d = (float(v) for v in optimal_nd(C, params["A"], params["B"], params["alpha"], params["beta"]))
        row = {"label": label, "C": C, "N_opt": n, "D_opt": d, "tokens_per_param": d / n, "ci95": {}}
        if boot is not None and len(boot):
            bn, bd = optimal_nd(C, boot[:, 1], boot[:, 2], boot[:, 3], boot[:, 4])
            row["ci95"] = {"N_opt": _ci(bn), "D_opt": _ci(bd), "tokens_per_param": _ci(bd / bn)}
        out["at_compute"].append(row)
    return out
