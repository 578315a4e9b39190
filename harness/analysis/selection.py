"""Choosing the joint law by held-out error, and the extrapolation check.

Three hold-outs, each a prediction of runs the fit did not see:

- ``largest_N``: every run of the largest model size;
- ``largest_D``: every run of the largest token count;
- ``top_C``: the top 20% of runs by compute (at least one);
- ``most_epochs``: only when runs repeat data at two or more epoch counts, every run
  of the most epochs (D / U_D): how far a law extrapolates in repetitions.

Every candidate form is refitted without the held-out runs and predicts them. Errors:
``reducible_error`` = mean |pred - obs| / (obs - F) (units of the loss still to gain;
with no known floor, mean |pred - obs| / obs, and then it says so), ``nats`` = mean
|pred - obs|, ``gap_units`` = nats over the median loss gap between adjacent sizes at
one D in the training runs, and ``below_floor``: the runs predicted under F.

Two naive baselines predict the same runs: ``best_trained`` (the lowest loss among the
training runs) and ``largest_N_same_D`` (the training run with the largest N at the
held-out run's D; null where no training run shares that D). A law passes a hold-out
only if it beats every baseline that exists there.

Selection: the lowest mean ``reducible_error`` over the hold-outs; forms within
``NEAR_TIE`` of it count as tied, and the one with the fewest parameters wins.
"""
from __future__ import annotations

import math

import numpy as np

from harness.analysis.forms import Form, fit_form, take
from harness.analysis.frontier import group_values

HOLDOUTS = ("largest_N", "largest_D", "top_C")  # and most_epochs, with repeated data
TOP_C_FRACTION = 0.2
NEAR_TIE = 0.10  # relative
MIN_TRAIN = 5


def holdouts(N: np.ndarray, D: np.ndarray, C: np.ndarray, U: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Boolean masks of the held-out rows, by hold-out name (``most_epochs`` when some
    row has D > U_D)."""
    n = len(C)
    nl, dl = group_values(N), group_values(D)
    m = max(1, math.ceil(TOP_C_FRACTION * n))
    top = np.zeros(n, bool)
    top[np.lexsort((np.arange(n), -C))[:m]] = True
    out = {"largest_N": nl == nl.max(), "largest_D": dl == dl.max(), "top_C": top}
    if U is not None and np.any(D > U * (1 + 1e-9)):
        el = group_values(np.maximum(D / U, 1.0))
        out["most_epochs"] = el == el.max()
    return out


def baselines(N, D, loss, held: np.ndarray) -> dict[str, np.ndarray]:
    """Naive predictions of the held-out rows (NaN where a baseline has none)."""
    train = ~held
    best = np.full(held.sum(), loss[train].min())
    dl = group_values(D)
    same = np.full(held.sum(), np.nan)
    for j, i in enumerate(np.flatnonzero(held)):
        cand = np.flatnonzero(train & (dl == dl[i]))
        if len(cand):
            same[j] = loss[cand[np.lexsort((loss[cand], -N[cand]))[0]]]
    return {"best_trained": best, "largest_N_same_D": same}


def size_gap(N, D, loss, mask: np.ndarray) -> float | None:
    """Median loss difference between adjacent model sizes at one D, over ``mask`` rows."""
    nl, dl = group_values(N), group_values(D)
    gaps = []
    for d in np.unique(dl[mask]):
        idx = np.flatnonzero(mask & (dl == d))
        idx = idx[np.argsort(nl[idx], kind="stable")]
        gaps += list(np.abs(np.diff(loss[idx])))
    return float(np.median(gaps)) if gaps else None


def errors(pred: np.ndarray, obs: np.ndarray, floor: float | None, gap: float | None) -> dict:
    ok = np.isfinite(pred)
    if not ok.any():
        return {"reducible_error": None, "nats": None, "gap_units": None}
    diff = np.abs(pred[ok] - obs[ok])
    denom = obs[ok] - floor if floor is not None else obs[ok]
    nats = float(diff.mean())
    return {"reducible_error": float(np.mean(diff / denom)), "nats": nats,
            "gap_units": nats / gap if gap else None}


def heldout_check(form: Form, N, D, loss, ids, floor: float | None, masks: dict, delta=None, U=None,
                  sigma=None) -> dict:
    """One form's prediction of every hold-out (refitted without the held-out rows); a
    form of (N, D, U_D) reads ``U`` (D when None); ``sigma``: the full fit's per-run
    noise, for a weighted refit."""
    out = {}
    X = np.column_stack([N, D] + ([D if U is None else U] if form.n_inputs == 3 else []))
    for name, held in masks.items():
        train = ~held
        if train.sum() < max(MIN_TRAIN, len(form.names) + 2):
            out[name] = {"skipped": f"only {int(train.sum())} runs left to fit"}
            continue
        fit = fit_form(form, X[train], loss[train], floor, delta, sigma=take(sigma, train))
        pred = fit.predict(X[held])
        row = errors(pred, loss[held], floor, size_gap(N, D, loss, train))
        row["below_floor"] = [ids[i] for i, p in zip(np.flatnonzero(held), pred) if floor is not None and p < floor]
        row["runs"] = [{"id": ids[i], "N": float(N[i]), "D": float(D[i]), "observed": float(loss[i]),
                        "predicted": float(p)} for i, p in zip(np.flatnonzero(held), pred)]
        out[name] = row
    return out


def baseline_check(N, D, loss, floor: float | None, masks: dict) -> dict:
    out = {}
    for name, held in masks.items():
        if (~held).sum() < MIN_TRAIN:
            out[name] = {}
            continue
        gap = size_gap(N, D, loss, ~held)
        out[name] = {k: errors(p, loss[held], floor, gap) for k, p in baselines(N, D, loss, held).items()}
    return out


def mean_error(heldout: dict) -> float | None:
    v = [h.get("reducible_error") for h in heldout.values()]
    return None if not v or any(x is None for x in v) else float(np.mean(v))


def select(scores: dict[str, float | None], n_params: dict[str, int]) -> str | None:
    """The form with the lowest score, near-ties broken by fewer parameters."""
    ok = {k: v for k, v in scores.items() if v is not None and math.isfinite(v)}
    if not ok:
        return None
    best = min(ok.values())
    tied = [k for k, v in ok.items() if v <= best * (1 + NEAR_TIE)]
    return min(tied, key=lambda k: (n_params[k], ok[k]))


def extrapolation(selected: str, law_heldout: dict, base: dict, floor: float | None) -> dict:
    """The ``extrapolation`` block: the selected law against both baselines, per hold-out."""
    out = {}
    for name in base:
        h = law_heldout.get(name, {})
        if h.get("reducible_error") is None:
            out[name] = {"law": selected, "skipped": h.get("skipped", "not predicted")}
            continue
        b = {k: v["reducible_error"] for k, v in base[name].items()}
        beats = [h["reducible_error"] < v for v in b.values() if v is not None]
        out[name] = {"law": selected, "reducible_error": h["reducible_error"], "nats": h["nats"],
                     "gap_units": h["gap_units"], "baselines": b,
                     "baselines_nats": {k: v["nats"] for k, v in base[name].items()},
                     "passes": bool(beats) and all(beats), "below_floor": h["below_floor"],
                     "units": "|pred - obs| / (obs - F)" if floor is not None
                     else "|pred - obs| / obs (no known floor)", "runs": h["runs"]}
    return out


def refit_all(forms: dict[str, Form], N, D, C, loss, ids, floor, delta=None, U=None,
              sigma: dict | None = None) -> tuple[dict, dict]:
    """Every form's held-out errors and the baselines' (the selection's inputs);
    ``sigma``: per form, the per-run noise of a weighted fit (or None)."""
    masks = holdouts(N, D, C, U)
    sigma = sigma or {}
    return ({k: heldout_check(f, N, D, loss, ids, floor, masks, delta, U, sigma.get(k)) for k, f in forms.items()},
            baseline_check(N, D, loss, floor, masks))

