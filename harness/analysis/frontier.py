"""Which points feed the one-variable laws: lower envelopes.

- L(N) is fitted to, for each distinct N, the run with the lowest final loss (the run
  least limited by data; in a grid sweep, the one with the largest D), keeping only
  sizes whose best loss beats every smaller size's (the lower envelope in N).
- L(D) likewise: for each distinct D the lowest-loss run (least limited by model
  size; in a grid sweep, the largest N), then the lower envelope in D.
- L(C) is fitted to the compute frontier (Kaplan et al. 2020, figure 1 left) of
  end-of-schedule losses: each run's final loss at C = 6 N D, kept when no run of less
  or equal compute reached a lower final loss. Mid-schedule curve points are not used:
  under a cosine schedule a point halfway overstates the loss a run ending there
  would reach. The frontier starts at the smallest finished run.

Values closer than ``rtol`` (relative) count as one value: tokens actually seen are
rounded to whole batches.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def group_values(x: np.ndarray, rtol: float = 0.01) -> np.ndarray:
    """Group label per point: sorted values within ``rtol`` of their group's smallest."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")
    labels = np.empty(len(x), dtype=int)
    g, start = -1, None
    for i in order:
        if start is None or x[i] > start * (1 + rtol):
            g, start = g + 1, x[i]
        labels[i] = g
    return labels


def best_per_value(x: np.ndarray, y: np.ndarray, rtol: float = 0.01) -> np.ndarray:
    """Indices of the lowest ``y`` within each group of (nearly) equal ``x``."""
    labels = group_values(x, rtol)
    y = np.asarray(y, float)
    best = {}
    for i in np.lexsort((np.arange(len(y)), y)):  # by y, ties by position
        best.setdefault(labels[i], i)
    return np.array(sorted(best.values(), key=lambda i: (x[i], i)), dtype=int)


def lower_envelope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of points with ``y`` strictly below every point at smaller or equal ``x``,
    in increasing ``x`` (a non-increasing staircase, the Pareto frontier)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep, best = [], np.inf
    for i in np.lexsort((np.arange(len(x)), y, x)):
        if y[i] < best:
            keep.append(i)
            best = y[i]
    return np.asarray(keep, dtype=int)


def envelope_by(x: np.ndarray, y: np.ndarray, rtol: float = 0.01) -> np.ndarray:
    """The points that feed L(N) or L(D): best per value, then the lower envelope."""
    idx = best_per_value(x, y, rtol)
    return idx[lower_envelope(np.asarray(x)[idx], np.asarray(y)[idx])]


def frontier_points(C: np.ndarray, loss: np.ndarray, N: np.ndarray) -> dict:
    """The end-of-schedule frontier: arrays ``C``, ``loss``, ``run`` (row index) in
    increasing C, and ``dominant_share``, the largest share of its points from one size.
    Computes within 1% count as one (an IsoFLOP budget's runs differ by rounding)."""
    idx = envelope_by(C, loss)
    sizes = group_values(N)[idx]
    share = float(np.bincount(sizes).max() / len(idx)) if len(idx) else 0.0
    return {"C": np.asarray(C, float)[idx], "loss": np.asarray(loss, float)[idx], "run": idx,
            "dominant_share": share}


def line_fit(C: np.ndarray, loss: np.ndarray, floor: float) -> dict | None:
    """log(L - F) = log A - gamma log C by least squares, with a t-based 95% interval
    on gamma (points at or under the floor are left out)."""
    C, loss = np.asarray(C, float), np.asarray(loss, float)
    ok = loss > floor
    if ok.sum() < 3:
        return None
    x, y = np.log(C[ok]), np.log(loss[ok] - floor)
    r = stats.linregress(x, y)
    t = stats.t.ppf(0.975, ok.sum() - 2)
    resid = y - (r.intercept + r.slope * x)
    return {"form": "log(L - F) = log A - gamma log C", "A": float(np.exp(r.intercept)), "gamma": float(-r.slope),
            "gamma_ci95": [float(-r.slope - t * r.stderr), float(-r.slope + t * r.stderr)],
            "rms_log_reducible": float(np.sqrt(np.mean(resid ** 2))), "n_points": int(ok.sum()),
            "decades_C": float(np.log10(C[ok].max() / C[ok].min())),
            "residual_sign_runs": int(1 + np.sum(np.diff(np.sign(resid)) != 0))}
