"""Capabilities next to loss: per-skill probes against scale.

Every run record carries per-bucket probes (:mod:`harness.probes`): exact-match
accuracy, the log-probability of the right answer and the loss per frequency band of
skills. This module asks how abrupt each skill is (a sigmoid in log10 N per bucket),
in which order skills are learned (Spearman rank correlation with frequency), and
whether the aggregate loss predicts the next skill (the quantization model's linear
threshold, held-out sizes). The method, with its reasons, is in docs/analysis.md.
Pure functions; the figures and report section live in plots.py and report.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from harness.analysis.frontier import group_values

LEARNED = 0.5  # exact-match accuracy at which a bucket counts as learned
SHARP = 2 * math.log(9)  # 10% -> 90% of a logistic rise in log10 N spans SHARP / k decades
K_RANGE = (0.1, 300.0)  # sigmoid steepness per decade searched: widths from 19 to 0.006 decades
M_PAD = 1.5  # decades beyond the sampled sizes searched for a sigmoid's midpoint
N_BOOT = 200  # bootstrap resamples of the runs for the sigmoid's intervals
HOLDOUT_FRACTION = 1 / 3  # share of the largest sizes held out by the prediction check
MIN_TRAIN_SIZES = 4  # L(N) has three parameters
SEED = 0
METRICS = ("accuracy", "logprob", "loss")


# -- the data --------------------------------------------------------------------------

@dataclass
class ProbeData:
    """Probe results of the runs that share the most common bucket set.

    ``final[metric]`` is (runs, buckets); curve points are flattened over runs:
    ``point_run`` (which run), ``point_C``, ``point_loss`` (aggregate validation loss)
    and ``points[metric]`` (points, buckets)."""

    kind: str
    buckets: list[str]
    mass: np.ndarray
    ids: list[str]
    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    final: dict[str, np.ndarray]
    point_run: np.ndarray
    point_C: np.ndarray
    point_loss: np.ndarray
    points: dict[str, np.ndarray]
    skipped: list[str] = field(default_factory=list)


def _metric_rows(entries: list, B: int) -> dict[str, np.ndarray] | None:
    if not isinstance(entries, list) or len(entries) != B:
        return None
    out = {}
    for m in METRICS:
        vals = [e.get(m) if isinstance(e, dict) else None for e in entries]
        out[m] = np.array([np.nan if v is None else float(v) for v in vals])
    return out


def probe_data(table) -> ProbeData | None:
    """The probes of ``table``'s rows, or None when fewer than 3 runs have any."""
    rows = [(i, p) for i, p in enumerate(getattr(table, "probes", []) or []) if p]
    if len(rows) < 3:
        return None
    keys = [(p["kind"], tuple(p["buckets"])) for _, p in rows]
    common = max(set(keys), key=lambda k: (keys.count(k), k[1]))
    kind, buckets = common[0], list(common[1])
    B = len(buckets)
    skipped = [table.ids[i] for i, p in enumerate(table.probes) if not p]
    ids, N, D, L, fin = [], [], [], [], {m: [] for m in METRICS}
    prun, pC, pL, pts = [], [], [], {m: [] for m in METRICS}
    mass = None
    for (i, p), key in zip(rows, keys):
        f = _metric_rows(p["final"], B)
        if key != common or f is None:
            skipped.append(table.ids[i])
            continue
        r = len(ids)
        ids.append(table.ids[i]), N.append(table.N[i]), D.append(table.D[i]), L.append(table.loss[i])
        for m in METRICS:
            fin[m].append(f[m])
        if mass is None and len(p["mass"]) == B:
            mass = np.asarray(p["mass"], float)
        for c in p["curve"]:
            v = _metric_rows(c["probes"], B)
            if v is None or not (c["tokens"] > 0 and c["val_loss"] > 0):
                continue
            prun.append(r), pC.append(6.0 * table.N[i] * c["tokens"]), pL.append(c["val_loss"])
            for m in METRICS:
                pts[m].append(v[m])
    if len(ids) < 3:
        return None
    if mass is None:
        mass = np.full(B, np.nan)
    stack = lambda a: np.array(a, float).reshape(-1, B)  # noqa: E731
    return ProbeData(kind=kind, buckets=buckets, mass=mass, ids=ids, N=np.array(N), D=np.array(D),
                     loss=np.array(L), final={m: stack(v) for m, v in fin.items()},
                     point_run=np.array(prun, int), point_C=np.array(pC, float), point_loss=np.array(pL, float),
                     points={m: stack(v) for m, v in pts.items()}, skipped=skipped)


def fixed_d_series(pdata: ProbeData) -> np.ndarray:
    """Run indices, one per model size in increasing N, all at one D: the D that the
    most sizes share (the largest on a tie); per size the run with the lowest loss."""
    dl = group_values(pdata.D)
    best = None
    for g in range(dl.max() + 1):
        idx = np.flatnonzero(dl == g)
        key = (len(np.unique(group_values(pdata.N[idx]))), float(pdata.D[idx].max()))
        if best is None or key > best[0]:
            best = (key, idx)
    idx = best[1]
    nl = group_values(pdata.N[idx])
    out = []
    for g in range(nl.max() + 1):
        j = idx[nl == g]
        out.append(j[np.lexsort((j, pdata.loss[j]))[0]])
    return np.array(sorted(out, key=lambda i: pdata.N[i]), dtype=int)


# -- sigmoid ---------------------------------------------------------------------------

def sigmoid(x, lo, hi, k, m):
    """lo + (hi - lo) * logistic(k (x - m))."""
    return lo + (hi - lo) * expit(k * (np.asarray(x, float) - m))


def sharpness(k):
    """Decades of N from 10% to 90% of a sigmoid's rise, k per decade: 2 ln 9 / k."""
    return SHARP / np.asarray(k, float)


def _grid(x: np.ndarray):
    lo, hi = float(np.min(x)) - M_PAD, float(np.max(x)) + M_PAD
    ms = np.linspace(lo, hi, max(2, int(round((hi - lo) / 0.02)) + 1))
    ks = np.geomspace(*K_RANGE, 70)
    mm, kk = np.meshgrid(ms, ks, indexing="ij")
    return mm.ravel(), kk.ravel(), (lo, hi)


def _levels(s: np.ndarray, y: np.ndarray):
    """Least squares a + d s ~ y over 0 <= a, 0 <= d, a + d <= 1 (lo = a, hi = a + d),
    for every row of s (G, n) at once: the unconstrained solution when feasible, else
    the best point on the triangle's edges. Returns (lo, hi, sse), each (G,)."""
    n = y.shape[-1]
    S1, Sy, SS, Ssy, Syy = s.sum(-1), y.sum(-1), (s * s).sum(-1), (s * y).sum(-1), (y * y).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        det = n * SS - S1 * S1
        a = (SS * Sy - S1 * Ssy) / det
        d = (n * Ssy - S1 * Sy) / det
    cands = [(a, d)]
    cands.append((np.zeros_like(S1), np.clip(np.where(SS > 0, Ssy / np.where(SS > 0, SS, 1), 0), 0, 1)))  # a = 0
    cands.append((np.clip(Sy / n, 0, 1) * np.ones_like(S1), np.zeros_like(S1)))  # d = 0
    u = 1 - s  # a + d = 1: y - s ~ a (1 - s)
    Suu, Suy = (u * u).sum(-1), (u * (y - s)).sum(-1)
    a1 = np.clip(np.where(Suu > 0, Suy / np.where(Suu > 0, Suu, 1), 0), 0, 1)
    cands.append((a1, 1 - a1))
    best_sse = np.full(S1.shape, np.inf)
    best = (np.zeros_like(S1), np.zeros_like(S1))
    for a_, d_ in cands:
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(a_) & np.isfinite(d_) & (a_ >= -1e-12) & (d_ >= -1e-12) & (a_ + d_ <= 1 + 1e-12)
        a_, d_ = np.where(ok, a_, 0.0), np.where(ok, d_, 0.0)
        sse = Syy - 2 * (a_ * Sy + d_ * Ssy) + n * a_ * a_ + 2 * a_ * d_ * S1 + d_ * d_ * SS
        take = ok & (sse < best_sse)
        best_sse = np.where(take, sse, best_sse)
        best = (np.where(take, a_, best[0]), np.where(take, d_, best[1]))
    return best[0], best[0] + best[1], best_sse


def fit_sigmoid(x, y, refine: bool = True, start: dict | None = None) -> dict:
    """Least-squares sigmoid of ``y`` (in [0, 1]) in ``x`` with 0 <= lo <= hi <= 1 and
    k in K_RANGE: a grid over (m, k) with (lo, hi) solved exactly at each point, then
    scipy's bounded least squares from the best grid point (or, with ``start``, from
    those parameters, skipping the grid: a bootstrap refit). Returns lo, hi, k, m, sse
    and ``at_bound`` (k or m at the edge of its search range)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    mlo, mhi = float(np.min(x)) - M_PAD, float(np.max(x)) + M_PAD
    if start is None:
        mm, kk, _ = _grid(x)
        s = expit(kk[:, None] * (x[None, :] - mm[:, None]))
        lo, hi, sse = _levels(s, y[None, :])
        g = int(np.argmin(sse))
        p = dict(lo=float(lo[g]), hi=float(hi[g]), k=float(kk[g]), m=float(mm[g]), sse=float(sse[g]))
    else:
        p = {k: float(start[k]) for k in ("lo", "hi", "k", "m")}
        p["sse"] = float(np.sum((sigmoid(x, p["lo"], p["hi"], p["k"], p["m"]) - y) ** 2))
    if refine and len(x) >= 4:
        from scipy.optimize import least_squares

        def res(t):
            return sigmoid(x, t[0], t[1], 10 ** t[2], t[3]) - y

        lb = [0.0, 0.0, math.log10(K_RANGE[0]), mlo]
        ub = [1.0, 1.0, math.log10(K_RANGE[1]), mhi]
        t0 = np.clip([p["lo"], p["hi"], math.log10(p["k"]), p["m"]], lb, ub)
        r = least_squares(res, t0, bounds=(lb, ub), method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12)
        sse_r = float(np.sum(r.fun ** 2))
        if r.success and sse_r <= p["sse"] and r.x[1] >= r.x[0]:
            p = dict(lo=float(r.x[0]), hi=float(r.x[1]), k=float(10 ** r.x[2]), m=float(r.x[3]), sse=sse_r)
    p["at_bound"] = bool(p["k"] >= K_RANGE[1] * 0.999 or p["k"] <= K_RANGE[0] * 1.001
                         or p["m"] <= mlo + 1e-9 or p["m"] >= mhi - 1e-9)
    return p


def crossing_level(p: dict, level: float = LEARNED) -> float | None:
    """x at which a fitted sigmoid equals ``level`` (None when it never does)."""
    lo, hi, k, m = p["lo"], p["hi"], p["k"], p["m"]
    if not lo < level < hi:
        return None
    return m + math.log((level - lo) / (hi - level)) / k


def envelope_crossing(x: np.ndarray, y: np.ndarray, level: float = LEARNED) -> dict:
    """Where the running maximum of ``y`` (in increasing ``x``) first reaches ``level``,
    interpolated linearly in ``x`` (log10 N or log10 C). Returns ``{"x", "bound"}``:
    bound is "below" when already there at the first point, "above" when never."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) == 0:
        return {"x": None, "bound": None}
    order = np.lexsort((np.arange(len(x)), x))
    x, env = x[order], np.maximum.accumulate(y[order])
    hit = np.flatnonzero(env >= level)
    if len(hit) == 0:
        return {"x": None, "bound": "above"}
    i = int(hit[0])
    if i == 0:
        return {"x": None, "bound": "below"}
    x0, x1, y0, y1 = x[i - 1], x[i], env[i - 1], env[i]
    return {"x": float(x0 + (level - y0) / (y1 - y0) * (x1 - x0)), "bound": None}


def largest_step_share(y: np.ndarray) -> float | None:
    """The largest change between adjacent sizes as a share of the total range: near 1
    when a metric jumps between two sizes, near 1/(sizes - 1) when it climbs evenly.
    Comparing exact match with log-probability on the same buckets separates abrupt
    skills from an abrupt metric (Schaeffer et al. 2023)."""
    y = np.asarray(y, float)
    y = y[np.isfinite(y)]
    if len(y) < 3 or np.ptp(y) <= 1e-12:
        return None
    return float(np.max(np.abs(np.diff(y))) / np.ptp(y))


def _order_key(c: dict) -> float:
    return {"below": -math.inf, "above": math.inf}.get(c["bound"], c["x"] if c["x"] is not None else math.nan)


def bucket_fits(x: np.ndarray, acc: np.ndarray, n_boot: int = N_BOOT, seed: int = SEED) -> dict:
    """Sigmoid fit of one bucket's accuracy against x = log10 N, its status and flags,
    and bootstrap intervals (runs resampled) for its midpoint and sharpness."""
    ok = np.isfinite(acc)
    x, acc = x[ok], acc[ok]
    out = {"status": None, "identified": False, "why": None, "sigmoid": None, "midpoint_log10N": None,
           "sharpness_decades": None, "ci95": None, "sharpness_bound": None}
    if len(x) < 3:
        out.update(status="too few sizes", why=f"{len(x)} sizes; a sigmoid needs at least 3")
        return out
    out["status"] = ("learned at every size" if acc.min() >= LEARNED else
                     "not learned in range" if acc.max() < LEARNED else "learned in range")
    p = fit_sigmoid(x, acc)
    out["sigmoid"] = {k: p[k] for k in ("lo", "hi", "k", "m")}
    s = float(sharpness(p["k"]))
    out.update(midpoint_log10N=p["m"], sharpness_decades=s)
    if out["status"] != "learned in range":
        out["why"] = f"{out['status']}: no rise to locate"
        return out
    frac = expit(p["k"] * (x - p["m"]))
    below, above, inside = np.any(frac <= 0.1), np.any(frac >= 0.9), np.any((frac > 0.1) & (frac < 0.9))
    if not (below and above):
        out["why"] = "the sizes do not reach both ends of the rise (10% and 90% of the way)"
        out["sharpness_bound"] = "lower"
    elif not inside:
        xs = np.sort(x)
        gap = float(np.max(xs[xs > p["m"]].min() - xs[xs < p["m"]].max())) if np.any(xs > p["m"]) and np.any(
            xs < p["m"]) else None
        out["why"] = ("no size inside the rise: it is sharper than the spacing of the sizes"
                      + (f" ({gap:.2f} decades)" if gap else ""))
        out["sharpness_bound"] = "upper"
        out["sharpness_upper_decades"] = gap
    else:
        out["identified"] = True
    if n_boot > 0:
        rng = np.random.default_rng([seed, len(x)])
        idx = rng.integers(0, len(x), size=(n_boot, len(x)))
        mm, kk, _ = _grid(x)
        s_grid = expit(kk[:, None] * (x[None, :] - mm[:, None]))
        ms, ss = [], []
        for r in idx:
            _, _, sse = _levels(s_grid[:, r], acc[r][None, :])
            g = int(np.argmin(sse))
            ms.append(mm[g]), ss.append(SHARP / kk[g])
        out["ci95"] = {"midpoint_log10N": [float(v) for v in np.percentile(ms, [2.5, 97.5])],
                       "sharpness_decades": [float(v) for v in np.percentile(ss, [2.5, 97.5])],
                       "resamples": int(n_boot), "method": "runs resampled with replacement, grid fit"}
    return out


# -- learning order --------------------------------------------------------------------

def learning_order(mass: np.ndarray, crossings: list[dict]) -> dict:
    """Spearman correlation of frequency rank (1 = most frequent) with learning point
    (positive: frequent skills first, as Michaud et al. predict)."""
    from scipy.stats import spearmanr

    keys = np.array([_order_key(c) for c in crossings])
    mass = np.asarray(mass, float)
    # records list buckets most frequent first; that order stands in for missing masses
    rank = (np.argsort(np.argsort(-mass, kind="stable"), kind="stable") + 1 if np.all(np.isfinite(mass))
            else np.arange(1, len(mass) + 1))
    ok = ~np.isnan(keys)
    out = {"n_buckets": int(ok.sum()), "n_learned_in_range": int(sum(c["bound"] is None for c in crossings)),
           "spearman_rho": None, "p_value": None}
    if ok.sum() < 3 or len(np.unique(keys[ok])) < 2:
        out["note"] = "not testable: fewer than 3 buckets or every bucket learned at the same point"
        return out
    rho, pv = spearmanr(rank[ok], keys[ok])
    out.update(spearman_rho=float(rho), p_value=float(pv))
    return out


# -- does the aggregate loss predict the next skill? ------------------------------------

def tail_mass(mass: np.ndarray) -> np.ndarray:
    """Per bucket, the mass of the rarer buckets plus half its own (buckets in any order)."""
    mass = np.asarray(mass, float)
    order = np.argsort(-mass, kind="stable")
    out = np.empty(len(mass))
    rarer = 0.0
    for b in order[::-1]:
        out[b] = rarer + mass[b] / 2
        rarer += mass[b]
    return out


def loss_threshold(agg_loss: np.ndarray, acc: np.ndarray) -> float | None:
    """Aggregate loss at which a bucket's accuracy crosses LEARNED, from scattered
    (loss, accuracy) points: a sigmoid in -ln L, inverted. None unless the points
    bracket the crossing."""
    ok = np.isfinite(agg_loss) & np.isfinite(acc) & (agg_loss > 0)
    L, a = agg_loss[ok], acc[ok]
    if len(L) < 4 or not (a.min() < LEARNED <= a.max()):
        return None
    x50 = crossing_level(fit_sigmoid(-np.log(L), a))
    return None if x50 is None else float(math.exp(-x50))


def _observed(out: dict, pdata: ProbeData, tail_runs: np.ndarray, nxt: int, L_next: float) -> None:
    """Where the predicted bucket is learned, from the largest training size (not
    learned there, by the choice of the bucket) through the held-out sizes; and the
    prediction's error. Fills ``out``."""
    x = np.log10(pdata.N[tail_runs])
    obs = envelope_crossing(x, pdata.final["accuracy"][tail_runs, nxt])
    if obs["bound"] == "above":
        out["observed_N"] = None
        out["observed"] = f"not learned by the largest size, N = {pdata.N[tail_runs[-1]]:.4g}"
        p = out["predicted_N"]
        out["consistent"] = p is None or p > pdata.N[tail_runs[-1]]
    else:
        n_obs = 10 ** obs["x"] if obs["x"] is not None else None
        out["observed_N"] = n_obs
        # aggregate loss where it is learned, interpolated in log N like the crossing
        out["observed_L"] = float(np.interp(obs["x"], x, pdata.loss[tail_runs])) if obs["x"] is not None else None
        out["observed"] = f"learned at N = {n_obs:.4g} (interpolated between sizes)"
        if out["predicted_N"] is not None and n_obs:
            out["error_decades"] = float(math.log10(out["predicted_N"] / n_obs))
        pa = out["all_buckets_line"]["predicted_N"]
        if pa is not None and n_obs:
            out["all_buckets_line"]["error_decades"] = float(math.log10(pa / n_obs))
        if out.get("observed_L") is not None:
            out["error_L_star"] = L_next - out["observed_L"]


def predict_next(pdata: ProbeData, series: np.ndarray, fraction: float = HOLDOUT_FRACTION) -> dict:
    """The held-out check described in the module docstring."""
    from harness.analysis.forms import POWER, fit_form

    S = len(series)
    h = max(1, int(round(fraction * S)))
    out = {"testable": False, "criterion": f"largest {h} of {S} sizes at D = {pdata.D[series[0]]:.4g} held out",
           "held_out_runs": [pdata.ids[i] for i in series[S - h:]], "train_runs_series": [pdata.ids[i] for i in series[:S - h]]}
    if not np.all(np.isfinite(pdata.mass)):
        out["reason"] = "not testable on this sweep: the records do not give the buckets' probability masses"
        return out
    if S - h < MIN_TRAIN_SIZES:
        out["reason"] = (f"not testable on this sweep: {S} model size{'s' if S != 1 else ''} at one D; the check needs "
                         f"{MIN_TRAIN_SIZES} to fit L(N) plus at least 1 held out")
        return out
    train = series[:S - h]
    n_max = pdata.N[train].max()
    acc_last = pdata.final["accuracy"][train[-1]]
    order = np.argsort(-pdata.mass, kind="stable")
    nxt = next((int(b) for b in order if np.isfinite(acc_last[b]) and acc_last[b] < LEARNED), None)
    if nxt is None:
        out["reason"] = "not testable on this sweep: the largest training size has already learned every bucket"
        return out
    pts = np.isin(pdata.point_run, np.flatnonzero(pdata.N <= n_max * (1 + 1e-9)))
    tail = tail_mass(pdata.mass)
    thr = []
    for b in order:
        if pdata.mass[b] <= pdata.mass[nxt] or b == nxt:
            continue
        Ls = loss_threshold(pdata.point_loss[pts], pdata.points["accuracy"][pts, b])
        if Ls is not None:
            thr.append({"bucket": pdata.buckets[b], "tail_mass": float(tail[b]), "L_star": Ls})
    out["thresholds"] = thr
    out["next_bucket"] = pdata.buckets[nxt]
    out["next_tail_mass"] = float(tail[nxt])
    if len(thr) < 2:
        out["reason"] = (f"not testable on this sweep: the training runs learn {len(thr)} bucket(s) more frequent "
                         f"than {pdata.buckets[nxt]!r} inside their range; the threshold line needs 2")
        return out
    # The line goes through the two rarest buckets learned: the quantization model's
    # linear relation holds once the loss not due to these skills (token statistics,
    # the record format) is learned, which the first buckets' thresholds, met early in
    # training, predate. The line through every learned bucket is reported too.
    T = np.array([t["tail_mass"] for t in thr])
    Lst = np.array([t["L_star"] for t in thr])
    c, a = np.polyfit(T[-2:], Lst[-2:], 1)
    L_next = float(a + c * tail[nxt])
    c_all, a_all = np.polyfit(T, Lst, 1)
    out["all_buckets_line"] = {"a": float(a_all), "c": float(c_all), "predicted_L_star": float(a_all + c_all * tail[nxt])}
    fit = fit_form(POWER, pdata.N[train], pdata.loss[train])
    E, A, al = fit.params["E"], fit.params["A"], fit.params["alpha"]
    out.update(testable=True, threshold_line={"a": float(a), "c": float(c), "through": [t["bucket"] for t in thr[-2:]]},
               predicted_L_star=L_next, law={"form": "E + A N^-alpha", "params": fit.params, "n_points": int(len(train))})
    to_n = lambda L: float((A / (L - E)) ** (1 / al)) if L > E else None  # noqa: E731
    out["predicted_N"] = to_n(L_next)
    out["all_buckets_line"]["predicted_N"] = to_n(out["all_buckets_line"]["predicted_L_star"])
    if out["predicted_N"] is None:
        out["predicted"] = f"never at this D: the predicted threshold {L_next:.4g} is below the fitted E {E:.4g}"
    _observed(out, pdata, series[S - h - 1:], nxt, L_next)
    return out


# -- all of it -------------------------------------------------------------------------

def analyze_probes(table, n_boot: int = N_BOOT, seed: int = SEED) -> tuple[dict | None, ProbeData | None]:
    """The ``probes`` block of fit.json (None without probes) and the data behind it."""
    pdata = probe_data(table)
    if pdata is None:
        return None, None
    series = fixed_d_series(pdata)
    x = np.log10(pdata.N[series])
    per_bucket, cN, cC = [], [], []
    lc = np.log10(pdata.point_C) if len(pdata.point_C) else np.zeros(0)
    for b, name in enumerate(pdata.buckets):
        fb = bucket_fits(x, pdata.final["accuracy"][series, b], n_boot, seed + b)
        byN = envelope_crossing(x, pdata.final["accuracy"][series, b])
        byC = envelope_crossing(lc, pdata.points["accuracy"][:, b]) if len(lc) else {"x": None, "bound": None}
        cN.append(byN), cC.append(byC)
        to_n = lambda v: None if v is None else 10 ** v  # noqa: E731
        steps = ({m: largest_step_share(pdata.final[m][series, b]) for m in ("accuracy", "logprob")}
                 if fb["status"] == "learned in range" else None)
        row = {"bucket": name, "mass": float(pdata.mass[b]), **fb, "largest_step_share": steps,
               "midpoint_N": to_n(fb["midpoint_log10N"]),
               "learned_at_N": to_n(byN["x"]), "learned_at_N_bound": byN["bound"],
               "learned_at_C": to_n(byC["x"]), "learned_at_C_bound": byC["bound"]}
        if fb["ci95"]:
            row["ci95"]["midpoint_N"] = [10 ** v for v in fb["ci95"]["midpoint_log10N"]]
        per_bucket.append(row)
    by_C = learning_order(pdata.mass, cC) if len(lc) else {"note": "no curve points with probes"}
    by_C["by"] = f"compute C at which the first run's curve reaches {LEARNED:.0%} exact match"
    by_N = (learning_order(pdata.mass, cN) if len(series) >= 3 else
            {"note": f"not testable: {len(series)} model size{'s' if len(series) != 1 else ''} at one D",
             "spearman_rho": None})
    by_N["by"] = f"model size N at which the fixed-D series reaches {LEARNED:.0%} exact match"
    out = {
        "kind": pdata.kind, "buckets": pdata.buckets, "mass": pdata.mass, "learned_threshold": LEARNED,
        "runs": len(pdata.ids), "skipped_runs": pdata.skipped,
        "series": {"D": float(pdata.D[series[0]]), "N": pdata.N[series], "runs": [pdata.ids[i] for i in series],
                   "description": "one run per model size at the D most sizes share (the largest on a tie); "
                                  "per size the lowest-loss run"},
        "sigmoid": {"form": "acc = lo + (hi - lo) / (1 + exp(-k (log10 N - m)))",
                    "sharpness": "decades of N from 10% to 90% of the rise = 2 ln 9 / k (k per decade; "
                                 "= 2 ln 9 / (k' ln 10) with k' = k / ln 10 per unit of ln N)",
                    "fit": "least squares, 0 <= lo <= hi <= 1, on the fixed-D series' final accuracies",
                    "bootstrap_resamples": n_boot},
        "per_bucket": per_bucket,
        "learning_order": {"by_C": by_C, "by_N": by_N,
                           "expected": "positive rho: frequent buckets learned first (Michaud et al. 2023)"},
        "prediction": predict_next(pdata, series),
    }
    return out, pdata
