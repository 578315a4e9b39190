"""Which points feed the one-variable laws: lower envelopes.

- L(N) is fitted to, for each distinct N, the run with the lowest final loss (the run
  least limited by data; in a grid sweep, the one with the largest D), keeping only
  sizes whose best loss beats every smaller size's (the lower envelope in N).
- L(D) likewise: for each distinct D the lowest-loss run (least limited by model
  size; in a grid sweep, the largest N), then the lower envelope in D.
- L(C) is fitted to the compute frontier (Kaplan et al. 2020, figure 1 left): the
  lower envelope over every point of every run's loss curve, with
  C = 6 * N * tokens-so-far (the ``flops_6nd`` convention), so a point is on the
  frontier when no point at less or equal compute has a lower loss. Points from the
  first 10% of a run's tokens are left out (warmup transients, not a model's
  trade-off), and the envelope is thinned to its lowest point per 1/10 decade of
  compute so densely evaluated runs do not dominate the fit.

Values closer than ``rtol`` (relative) count as one value: tokens actually seen are
rounded to whole batches.
"""
from __future__ import annotations

import numpy as np

CURVE_MIN_FRACTION = 0.1
BINS_PER_DECADE = 10


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


def thin_log(x: np.ndarray, y: np.ndarray, per_decade: int = BINS_PER_DECADE) -> np.ndarray:
    """Indices of the lowest ``y`` in each log-spaced bin of ``x``, in increasing ``x``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    bins = np.floor(np.log10(x) * per_decade).astype(int)
    best = {}
    for i in np.lexsort((np.arange(len(y)), y)):
        best.setdefault(bins[i], i)
    return np.array(sorted(best.values(), key=lambda i: x[i]), dtype=int)


def compute_frontier(curves: list[dict], min_fraction: float = CURVE_MIN_FRACTION,
                     per_decade: int | None = BINS_PER_DECADE) -> dict[str, np.ndarray]:
    """The compute frontier over run curves.

    ``curves``: dicts with ``C`` (compute at each point), ``loss``, ``tokens`` and
    ``D`` (the run's total tokens), as built by :mod:`harness.analysis.table`.
    Returns arrays ``C``, ``loss``, ``run`` (index into ``curves``) of the frontier
    points, in increasing C.
    """
    C, L, run = [], [], []
    for k, cv in enumerate(curves):
        c, loss = np.asarray(cv["C"], float), np.asarray(cv["loss"], float)
        keep = np.isfinite(c) & np.isfinite(loss) & (c > 0) & (loss > 0)
        if "tokens" in cv and cv.get("D"):
            keep &= np.asarray(cv["tokens"], float) >= min_fraction * float(cv["D"])
        C.append(c[keep]), L.append(loss[keep]), run.append(np.full(int(keep.sum()), k))
    C, L, run = (np.concatenate(a) if a else np.zeros(0) for a in (C, L, run))
    idx = lower_envelope(C, L)
    if per_decade and len(idx):
        idx = idx[thin_log(C[idx], L[idx], per_decade)]
    return {"C": C[idx], "loss": L[idx], "run": run[idx].astype(int)}
