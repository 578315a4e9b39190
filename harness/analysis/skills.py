"""Two-step skill prediction: (N, D) -> a bucket's loss -> its exact match.

The OLMo ladder (Bhagia et al. 2024, "Establishing task scaling laws via
compute-efficient model ladders") predicts a task's accuracy in two steps fitted on
small runs: the task's loss as a law of (N, D), then accuracy as a sigmoid of that loss.
Here a task is a probe bucket (:mod:`harness.data.probe_sets`).

1. Per bucket, its loss at the end of every run as a law of (N, D): the joint forms of
   :mod:`harness.analysis.forms`, chosen by held-out error as in
   :mod:`harness.analysis.selection`, with residual-bootstrap draws, as for the aggregate
   loss; E is free, since no per-bucket floor is recorded.
2. Per bucket, exact match against that bucket's loss L over every curve point of every
   run: ``acc = lo + (hi - lo) / (1 + exp(k (L - L0)))``
   (:func:`harness.analysis.probes.fit_sigmoid` in x = -L, so L0 = -m), with bootstrap
   refits on runs resampled with replacement (a run's curve points move together).

A prediction at (N, D) is the law's loss there and the sigmoid's exact match at that
loss. Its 95% interval comes from Monte Carlo draws: a law bootstrap draw with the law's
residual noise on log L, a sigmoid bootstrap draw, and the sigmoid's residual noise on
exact match, clipped to [0, 1].

A bucket is flagged unpredictable when its training points have
- no rising part: exact match spans less than MIN_RISE over every evaluation (never or
  always learned: there is no rise to place; nothing is fitted), or
- eval-to-eval noise above NOISY of the sigmoid's rise hi - lo. The noise is measured
  from successive evaluations of one run: with r the residuals about the sigmoid,
  sqrt(mean(diff(r)^2) / 2), which is sigma for independent noise and cancels residuals
  that persist along a run (a run that sits off the curve is not noise).

The held-out check refits both steps, law selection included, without every run of the
largest model size (selection's ``largest_N``) and predicts those runs: per bucket the
mean |predicted - observed| exact match and how many observations fall inside their 95%
intervals; beside it the bucket loss's error, the aggregate loss's (the selected law's
``extrapolation.largest_N``), and a one-step baseline: exact match as a sigmoid of
log10 C over the same training curve points, at the held-out runs' C = 6 N D.
Pure functions; the figure and report section live in plots.py and report.py.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from harness.analysis import selection
from harness.analysis.forms import JOINT, fit_form, residual_bootstrap
from harness.analysis.probes import ProbeData, fit_sigmoid

SKILL_RESAMPLES = 100  # bootstrap draws per bucket, for the law and for the sigmoid (at most the fit's own)
MIN_RISE = 0.2  # exact match must span this much over the training points to have a rising part
NOISY = 0.1  # eval-to-eval noise above this share of the sigmoid's rise: unpredictable
N_DRAWS = 4000  # Monte Carlo draws for a prediction interval
HOLDOUT = "largest_N"
MIN_RUNS = 6
SEED = 0
SIGMOID_FORM = "acc = lo + (hi - lo) / (1 + exp(k (L - L0))), L the bucket's loss (nats)"


# -- step 1: the bucket's loss as a law of (N, D) ----------------------------------------

def loss_law(N, D, y, ids, n_boot: int, seed: int) -> dict:
    """The joint law of a bucket's final loss chosen by held-out error (E free), as a
    fit.json law entry with its ``name`` and every form's held-out score."""
    from harness.analysis.pipeline import law_json  # the pipeline imports this module

    forms = dict(JOINT)
    held, _ = selection.refit_all(forms, N, D, 6.0 * N * D, y, list(ids), None)
    scores = {k: selection.mean_error(held[k]) for k in forms}
    name = selection.select(scores, {k: len(f.names) + 1 for k, f in forms.items()})
    if name is None:
        return {"name": None, "params": None, "skipped": "no joint law could be scored on the hold-outs",
                "heldout_mean_reducible_error": scores}
    fit = fit_form(forms[name], np.column_stack([N, D]), y, None)
    residual_bootstrap(fit, n_boot, seed)
    pts = {"description": "every run with probes: the bucket's final loss at its (N, D)", "ids": list(ids), "loss": y}
    return {"name": name, **law_json(name, fit, pts, None), "heldout_mean_reducible_error": scores}


# -- step 2: exact match as a sigmoid of the bucket's loss ------------------------------

def accuracy_of_loss(p, L):
    """Exact match at bucket loss ``L`` for sigmoid parameters ``p`` (a dict, or rows
    ``[lo, hi, k, L0]`` broadcasting against L)."""
    if isinstance(p, dict):
        p = np.array([p["lo"], p["hi"], p["k"], p["L0"]], float)
    p = np.asarray(p, float)
    lo, hi, k, L0 = (p[..., i] for i in range(4))
    return lo + (hi - lo) * expit(-k * (np.asarray(L, float) - L0))


def eval_noise(resid: np.ndarray, run: np.ndarray) -> float | None:
    """sqrt(mean(diff(r)^2) / 2) over successive evaluations within each run."""
    d = np.concatenate([np.diff(resid[run == r]) for r in np.unique(run)]) if len(resid) else np.zeros(0)
    return float(np.sqrt(np.mean(d ** 2) / 2)) if len(d) else None


def accuracy_law(L, acc, run, n_boot: int, seed: int) -> dict:
    """The sigmoid of exact match in bucket loss over curve points (``run``: which run
    each point is from, points in curve order), with run-resampling bootstrap refits."""
    p = fit_sigmoid(-L, acc)
    params = {"lo": p["lo"], "hi": p["hi"], "k": p["k"], "L0": -p["m"]}
    resid = acc - accuracy_of_loss(params, L)
    n = len(acc)
    out = {"form": SIGMOID_FORM, "params": params, "at_bound": p["at_bound"], "n_points": n,
           "n_runs": int(len(np.unique(run))), "resid_sd": float(np.sqrt(p["sse"] / max(1, n - 4))),
           "eval_noise": eval_noise(resid, run), "ci95": None}
    if n_boot > 0:
        rng = np.random.default_rng([seed, 7])
        runs = np.unique(run)
        members = [np.flatnonzero(run == r) for r in runs]
        draws = []
        for _ in range(n_boot):
            idx = np.concatenate([members[i] for i in rng.integers(0, len(runs), len(runs))])
            q = fit_sigmoid(-L[idx], acc[idx], start=p)
            draws.append([q["lo"], q["hi"], q["k"], -q["m"]])
        draws = np.array(draws)
        lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
        out["ci95"] = {k: [float(a), float(b)] for k, a, b in zip(params, lo, hi)}
        out["bootstrap_params"] = draws
    return out


# -- one bucket, both steps --------------------------------------------------------------

def fit_bucket(pdata: ProbeData, b: int, runs: np.ndarray, n_boot: int, seed: int) -> dict:
    """Both steps for bucket ``b`` on the runs ``runs`` (boolean over pdata's runs)."""
    row = {"bucket": pdata.buckets[b], "mass": float(pdata.mass[b]), "flags": [], "predictable": False,
           "why": None}
    pts = runs[pdata.point_run] & np.isfinite(pdata.points["loss"][:, b]) & np.isfinite(
        pdata.points["accuracy"][:, b]) & (pdata.points["loss"][:, b] > 0)
    acc, L = pdata.points["accuracy"][pts, b], pdata.points["loss"][pts, b]
    if len(acc) < 5:
        row.update(flags=["too few points"], why=f"{len(acc)} curve points with this bucket's probes")
        return row
    row["observed_range"] = [float(acc.min()), float(acc.max())]
    if acc.max() - acc.min() < MIN_RISE:
        row["flags"].append("no rising part")
        row["why"] = (f"no rising part: exact match stays within [{acc.min():.3f}, {acc.max():.3f}] at every "
                      f"evaluation of the training runs (a rise needs a span of {MIN_RISE:g})")
        return row
    sig = accuracy_law(L, acc, pdata.point_run[pts], n_boot, seed)
    row["sigmoid"] = sig
    rise = max(sig["params"]["hi"] - sig["params"]["lo"], 1e-9)
    if sig["eval_noise"] is not None and sig["eval_noise"] > NOISY * rise:
        row["flags"].append("noisy")
        row["why"] = (f"noisy: exact match moves by {sig['eval_noise']:.3f} (sd) from one evaluation to the next, "
                      f"{sig['eval_noise'] / rise:.0%} of its rise (more than {NOISY:.0%})")
    fin = runs & np.isfinite(pdata.final["loss"][:, b]) & (pdata.final["loss"][:, b] > 0)
    row["law"] = loss_law(pdata.N[fin], pdata.D[fin], pdata.final["loss"][fin, b],
                          [pdata.ids[i] for i in np.flatnonzero(fin)], n_boot, seed)
    if row["law"]["params"] is None:
        row["flags"].append("no loss law")
        row["why"] = row["why"] or row["law"]["skipped"]
    row["predictable"] = not row["flags"]
    return row


def predict_bucket(row: dict, N: float, D: float, seed: int = SEED) -> dict:
    """A bucket's loss and exact match at (N, D), each with its 95% interval (None
    without bootstrap draws), from its fit.json entry. ``loss`` is None when the bucket
    has no fitted law (``why`` says why)."""
    from harness.analysis.predict import _split, law_prediction

    out = {"bucket": row["bucket"], "flags": row["flags"], "predictable": row["predictable"], "loss": None,
           "loss_interval": None, "accuracy": None, "accuracy_interval": None}
    law = row.get("law") or {}
    if not law.get("params"):
        out["why"] = row.get("why")
        return out
    name = law["name"]
    lp = law_prediction(name, law, N, D)
    s = row["sigmoid"]
    out.update(loss=lp["loss"], loss_interval=lp["interval"], accuracy=float(accuracy_of_loss(s["params"], lp["loss"])))
    if row["why"]:
        out["why"] = row["why"]
    bl, bs = law.get("bootstrap_params"), s.get("bootstrap_params")
    if bl is not None and len(bl) and bs is not None and len(bs):
        rng = np.random.default_rng(seed)
        pb, eb = _split(name, law, np.array(bl, float))
        lb = np.log(JOINT[name].loss(pb, eb, np.array([[float(N), float(D)]]))[:, 0])
        noise = float(law.get("noise_log") or 0.0)
        Ld = np.exp(lb[rng.integers(0, len(lb), N_DRAWS)] + noise * rng.standard_normal(N_DRAWS))
        S = np.asarray(bs, float)[rng.integers(0, len(bs), N_DRAWS)]
        a = accuracy_of_loss(S, Ld) + s["resid_sd"] * rng.standard_normal(N_DRAWS)
        out["accuracy_interval"] = [float(v) for v in np.clip(np.percentile(a, [2.5, 97.5]), 0, 1)]
    return out


def predict_all(skills: dict, N: float, D: float) -> list[dict]:
    """Every bucket's prediction at (N, D) from fit.json's ``skills`` block."""
    return [predict_bucket(r, N, D) for r in skills["buckets"]]


# -- the held-out check ------------------------------------------------------------------

def one_step(pdata: ProbeData, b: int, train: np.ndarray, held: np.ndarray) -> np.ndarray | None:
    """The baseline: exact match as a sigmoid of log10 C over the training curve points,
    at the held-out runs' C = 6 N D (``held``: their indices, in the order returned)."""
    pts = train[pdata.point_run] & np.isfinite(pdata.points["accuracy"][:, b])
    if pts.sum() < 5:
        return None
    p = fit_sigmoid(np.log10(pdata.point_C[pts]), pdata.points["accuracy"][pts, b])
    x = np.log10(6.0 * pdata.N[held] * pdata.D[held])
    return p["lo"] + (p["hi"] - p["lo"]) * expit(p["k"] * (x - p["m"]))


def _mean_abs(pred, obs) -> float | None:
    pred, obs = np.asarray(pred, float), np.asarray(obs, float)
    ok = np.isfinite(pred) & np.isfinite(obs)
    return float(np.mean(np.abs(pred[ok] - obs[ok]))) if ok.any() else None


def heldout_check(pdata: ProbeData, fits: list[dict] | None, held: np.ndarray, aggregate: dict | None) -> dict:
    """The check of the module docstring: ``fits`` are the buckets fitted without the
    ``held`` runs (None when too few runs are left); ``aggregate`` is the aggregate
    loss's extrapolation block."""
    train = ~held
    hid = np.flatnonzero(held)
    hid = hid[np.lexsort((pdata.D[hid], pdata.N[hid]))]
    out = {"holdout": HOLDOUT, "criterion": f"every run of the largest model size, N = {pdata.N[held].max():.4g}",
           "held_out_runs": [pdata.ids[i] for i in hid], "n_train_runs": int(train.sum())}
    if fits is None:
        out["skipped"] = (f"{int(train.sum())} training runs of {len(np.unique(pdata.N[train]))} sizes; the check "
                          f"needs {MIN_RUNS} runs of at least 3 sizes")
        return out
    agg = (aggregate or {}).get(HOLDOUT) or {}
    ar = agg.get("runs") or []
    out["aggregate_loss"] = {"law": agg.get("law"), "reducible_error": agg.get("reducible_error"),
                             "nats": agg.get("nats"), "units": agg.get("units"),
                             "relative_error": (float(np.mean([abs(r["predicted"] - r["observed"]) / r["observed"]
                                                               for r in ar])) if ar else None)}
    rows = []
    for b, fb in enumerate(fits):
        obs_acc, obs_loss = pdata.final["accuracy"][hid, b], pdata.final["loss"][hid, b]
        row = {"bucket": fb["bucket"], "flags": fb["flags"], "predictable": fb["predictable"], "why": fb["why"],
               "law": (fb.get("law") or {}).get("name"), "two_step_error": None, "one_step_error": None,
               "loss_error": None, "inside": None}
        preds = [predict_bucket(fb, pdata.N[i], pdata.D[i]) for i in hid] if fb.get("law") else None
        base = one_step(pdata, b, train, hid) if fb.get("sigmoid") else None
        runs = []
        for j, i in enumerate(hid):
            r = {"id": pdata.ids[i], "N": float(pdata.N[i]), "D": float(pdata.D[i]),
                 "observed": float(obs_acc[j]), "observed_loss": float(obs_loss[j])}
            if preds and preds[j]["loss"] is not None:
                r.update(two_step=preds[j]["accuracy"], interval=preds[j]["accuracy_interval"],
                         predicted_loss=preds[j]["loss"], loss_interval=preds[j]["loss_interval"])
            if base is not None:
                r["one_step"] = float(base[j])
            runs.append(r)
        row["runs"] = runs
        if preds and preds[0]["loss"] is not None:
            pa = [r["two_step"] for r in runs]
            pl = [r["predicted_loss"] for r in runs]
            row["two_step_error"] = _mean_abs(pa, obs_acc)
            row["loss_error"] = {"relative": float(np.nanmean(np.abs(np.array(pl) - obs_loss) / obs_loss)),
                                 "nats": _mean_abs(pl, obs_loss)}
            if all(r["interval"] for r in runs):
                row["inside"] = int(sum(r["interval"][0] <= r["observed"] <= r["interval"][1] for r in runs))
        if base is not None:
            row["one_step_error"] = _mean_abs(base, obs_acc)
        rows.append(row)
    out["per_bucket"] = rows
    out["summary"] = _summary(rows, len(hid))
    return out


def _summary(rows: list[dict], n_held: int) -> dict:
    """Mean errors over the predictable buckets (and over every bucket with a two-step
    prediction), with the one-step baseline on the same buckets."""
    out = {}
    for key, keep in (("predictable", lambda r: r["predictable"]),
                      ("fitted", lambda r: r["two_step_error"] is not None)):
        sel = [r for r in rows if keep(r) and r["two_step_error"] is not None]
        ins = [r["inside"] for r in sel]
        out[key] = {"buckets": [r["bucket"] for r in sel],
                    "two_step_error": float(np.mean([r["two_step_error"] for r in sel])) if sel else None,
                    "one_step_error": (float(np.mean([r["one_step_error"] for r in sel]))
                                       if sel and all(r["one_step_error"] is not None for r in sel) else None),
                    "loss_relative_error": float(np.mean([r["loss_error"]["relative"] for r in sel])) if sel else None,
                    "inside": int(sum(ins)) if sel and all(i is not None for i in ins) else None,
                    "n": len(sel) * n_held}
    return out


# -- all of it -----------------------------------------------------------------------------

def _fit_one(pdata: ProbeData, b: int, runs: np.ndarray, n_boot: int, seed: int) -> dict:
    from harness.analysis._threads import blas_threads

    with blas_threads(1):
        return fit_bucket(pdata, b, runs, n_boot, seed)


def analyze_skills(pdata: ProbeData | None, aggregate: dict | None, n_resamples: int, seed: int = SEED,
                   n_jobs: int = 1) -> dict | None:
    """The ``skills`` block of fit.json: every bucket fitted on every run with probes
    (what ``harness-predict --skills`` reads) and the held-out check. None without
    probes. The buckets' fits run in ``n_jobs`` processes; each has its own seed, so
    the numbers do not depend on ``n_jobs``."""
    if pdata is None:
        return None
    n_boot = min(n_resamples, SKILL_RESAMPLES)
    B = len(pdata.buckets)
    held = selection.holdouts(pdata.N, pdata.D, 6.0 * pdata.N * pdata.D)[HOLDOUT]
    testable = (~held).sum() >= MIN_RUNS and len(np.unique(pdata.N[~held])) >= 3
    tasks = [(b, np.ones(len(pdata.ids), bool)) for b in range(B)]
    tasks += [(b, ~held) for b in range(B)] if testable else []
    if n_jobs > 1:
        from joblib import Parallel, delayed

        done = Parallel(n_jobs=n_jobs)(delayed(_fit_one)(pdata, b, m, n_boot, seed + b) for b, m in tasks)
    else:
        done = [_fit_one(pdata, b, m, n_boot, seed + b) for b, m in tasks]
    return {
        "kind": pdata.kind, "runs": len(pdata.ids),
        "method": {
            "loss_law": "the bucket's final loss at each run's (N, D): the joint forms chosen by held-out error "
                        "(as for the aggregate loss), E free (no per-bucket floor is known), residual bootstrap",
            "sigmoid": SIGMOID_FORM + "; least squares over every curve point of every run; bootstrap over runs "
                                      "resampled with replacement",
            "interval": f"95% of {N_DRAWS} Monte Carlo draws: law bootstrap draw with its noise on log L, sigmoid "
                        "bootstrap draw, the sigmoid's residual sd on exact match; clipped to [0, 1]",
            "resamples": n_boot,
            "flags": {"no rising part": f"exact match spans less than {MIN_RISE:g} over the training points",
                      "noisy": f"eval-to-eval sd of exact match above {NOISY:.0%} of the sigmoid's rise"},
            "one_step": "exact match as a sigmoid of log10 C over the same curve points (the baseline)"},
        "buckets": done[:B],
        "heldout": heldout_check(pdata, done[B:] if testable else None, held, aggregate),
    }
