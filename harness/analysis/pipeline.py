"""The analysis step end to end: table -> fits -> fit.json, figures/, report.md.

:func:`fit_results_dir` is what ``harness-fit RESULTS_DIR`` and the end of a sweep
call; :func:`fit_table` does the same for any :class:`~harness.analysis.table.Table`
(``harness-fit --csv``). Everything is deterministic for a given input and seed:
fit.json holds no times or absolute paths and its floats are rounded to 6
significant digits, so refitting the same records reproduces it.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis import compute_optimal as co
from harness.analysis import noise, selection
from harness.analysis._threads import blas_threads
from harness.analysis.errors import AnalysisWarning
from harness.analysis.forms import (DATA_CONSTRAINED, JOINT, LAWS, LSQ, MC_RESAMPLES, MUENNIGHOFF_RD, POWER, REFINE,
                                    Fit, fit_form, residual_bootstrap)
from harness.analysis.data_constrained import summarize as dc_summary
from harness.analysis.frontier import envelope_by, frontier_points, group_values, line_fit
from harness.analysis.isoflop import fit_isoflop
from harness.analysis.probes import analyze_probes
from harness.analysis.result import Analysis
from harness.analysis.skills import analyze_skills
from harness.analysis.table import Table, from_records

N_RESAMPLES = 400
SEED = 0
N_JOBS = 2
SIG_DIGITS = 6
BOOT_KEEP = 200  # bootstrap parameter draws of each joint law kept in fit.json for harness-predict

INPUTS = {
    "joint": "every ok run: final loss at its (N, D)",
    "L_N": "for each distinct N the lowest-loss run (the least data-limited; in a grid sweep the "
           "largest D), then the lower envelope in N",
    "L_D": "for each distinct D the lowest-loss run (the least size-limited; in a grid sweep the "
           "largest N), then the lower envelope in D",
    "L_C": "the end-of-schedule compute frontier: runs' final losses, each kept when no run of less or equal "
           "compute reached a lower loss (mid-schedule curve points are left out: they overstate what a run "
           "ending there reaches)",
}


def _round(v: float) -> float | None:
    if not math.isfinite(v):
        return None
    return float(f"{v:.{SIG_DIGITS}g}")


def jsonable(obj: Any) -> Any:
    """Plain JSON types, floats rounded to SIG_DIGITS significant digits, NaN -> null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _round(float(obj))
    return obj


def _note(msgs: list[str], text: str, warn: bool = True) -> None:
    msgs.append(text)
    if warn:
        warnings.warn(text, AnalysisWarning, stacklevel=3)


def _unidentified(table: Table, msgs: list[str]) -> str | None:
    """Why the joint laws are not identified (fewer than 3 distinct N or D), or None."""
    why = None
    for col, what in ((table.N, "model sizes N"), (table.D, "token counts D")):
        k = int(group_values(col).max()) + 1
        if k < 3:
            _note(msgs, f"only {k} distinct {what}: the joint laws cannot separate that term from E, so their "
                        f"parameters for it are not meaningful; no bootstrap intervals for them")
            why = why or f"only {k} distinct {what}, so the law is not identified"
    return why


def _fit(form, x, y, floor, msgs, name, delta, seed_sd=None, ladders=None) -> Fit | None:
    p = len(form.names) + (floor is None)
    if len(y) < p + 1:
        _note(msgs, f"{name}: only {len(y)} points, need {p + 1}; law not fitted")
        return None
    if seed_sd is not None and ladders is not None:
        return noise.fit_weighted(form, x, y, floor, delta, seed_sd, ladders["family"],
                                  noise.rho_at(ladders["share"], x[:, 0]))
    if seed_sd is not None:
        return noise.fit_weighted(form, x, y, floor, delta, seed_sd)
    return fit_form(form, x, y, floor, delta)


def free_e_diagnostic(fit: Fit | None, floor: float) -> dict | None:
    """The same form with E free, beside a fixed-floor fit: its E and what is wrong with it."""
    if fit is None:
        return None
    free = fit_form(fit.form, fit.x, fit.y, None, fit.delta, sigma=fit.weights)
    E = free.params["E"]
    return {"params": free.params, "rms_log": free.rms_log, "E": E, "E_minus_floor": E - floor,
            "below_floor": bool(E < floor), "above_lowest_loss": bool(E > float(np.min(fit.y)))}


def _joint_fits(table: Table, msgs: list[str], delta, seed_sd=None, ladders=None) -> dict[str, Fit | None]:
    """The laws of (N, D); with repeated data (some D > U_D) the data-constrained ones too.
    Muennighoff's R_N* is kept only when some run has excess parameters (N > N_opt(U_D))
    on the fitted law; otherwise it has no data and the law is refitted without it.
    ``seed_sd``: each run's seed noise (noise.by_size), for weighted fits; ``ladders``
    (families and their shared-offset share), for generalised ones."""
    fits = {name: _fit(form, table.X, table.loss, table.floor, msgs, name, delta, seed_sd, ladders)
            for name, form in JOINT.items()}
    if not table.repeated.any():
        return fits
    if not table.repetitions_vary:
        ep = float(np.median(table.D[table.repeated] / table.U[table.repeated]))
        _note(msgs, f"{int(table.repeated.sum())} runs repeat data, all at about {ep:.3g} epochs: one repetition count "
                    f"cannot separate R_D* from the other parameters, so no data-constrained law is fitted", warn=False)
        return fits
    for name, form in DATA_CONSTRAINED.items():
        fit = _fit(form, table.XU, table.loss, table.floor, msgs, name, delta, seed_sd, ladders)
        if fit is not None and form.excess and not excess_rows(fit).any():
            _note(msgs, f"{name}: no run has excess parameters (N > N_opt(U_D)), so R_N* is not identified; "
                        f"fitted with N' = N", warn=False)
            fit = _fit(MUENNIGHOFF_RD, table.XU, table.loss, table.floor, msgs, name, delta, seed_sd)
        fits[name] = fit
    return fits


def excess_rows(fit: Fit) -> np.ndarray:
    """Rows whose N exceeds N_opt(U_D) on the fitted muennighoff law (R_N > 0)."""
    full = fit.form._full(fit.theta if fit.floor is not None else fit.theta[:-1])
    lNe, _ = fit.form.effective(full, fit._lx(fit.x))
    return np.asarray(lNe < fit._lx(fit.x)[:, 0] - 1e-9)


def _one_variable(table: Table, msgs: list[str], delta) -> tuple[dict, dict, dict]:
    """L(N) and L(D) (free asymptotes: L(N) tends to L(inf, D), not to the floor) and
    L(C) on the end-of-schedule frontier."""
    fits, points = {}, {}
    for name, col, other, oname in (("L_N", table.N, table.D, "D"), ("L_D", table.D, table.N, "N")):
        idx = envelope_by(col, table.loss)
        at = float(np.median(other[idx]))
        fit = _fit(POWER, col[idx], table.loss[idx], None, msgs, name, delta)
        if fit is not None:
            fit.extra["asymptote"] = f"L_inf({oname} = {at:.3g})"
        fits[name] = fit
        points[name] = {"description": INPUTS[name], "ids": [table.ids[i] for i in idx], "x": col[idx],
                        "loss": table.loss[idx]}
    fr = frontier_points(table.C, table.loss, table.N)
    points["L_C"] = {"description": INPUTS["L_C"], "ids": [table.ids[i] for i in fr["run"]], "x": fr["C"],
                     "loss": fr["loss"]}
    if fr["dominant_share"] > 1 / 3:
        _note(msgs, f"L_C: one model supplies {fr['dominant_share']:.0%} of the frontier's {len(fr['C'])} points "
                    f"(more than a third), so L(C) mostly describes that model")
    fits["L_C"] = _fit(POWER, fr["C"], fr["loss"], None, msgs, "L_C", delta)
    return fits, points, fr


def replicate_noise(table: Table) -> dict | None:
    """The run-to-run spread of log loss, measured by runs that share (N, D, U_D) (seeds):
    the pooled within-group standard deviation, sum of squared deviations from each
    group's mean over sum(n_g - 1). None without replicates."""
    reps = noise.groups(table.XU)
    if not reps:
        return None
    logs = [np.log(table.loss[g]) for g in reps]
    ss = float(sum(((v - v.mean()) ** 2).sum() for v in logs))
    dof = sum(len(g) - 1 for g in reps)
    spread = [float(v.max() - v.min()) for v in logs]
    return {"sigma_log": math.sqrt(ss / dof), "dof": dof, "groups": len(reps), "runs": sum(map(len, reps)),
            "max_range_log": max(spread), "method": "pooled within-group standard deviation of log loss over "
            "runs with the same (N, D, U_D)"}


def _bootstrap(fits: dict[str, Fit | None], n_resamples: int, seed: int, n_jobs: int, skip: dict,
               noise: tuple[float, int] | None = None, ladders: dict | None = None) -> None:
    """Residual-bootstrap every fit except those in ``skip`` (name -> why), through one
    pool of ``n_jobs`` workers (each law has its own seeded stream, so the numbers do
    not depend on ``n_jobs``). ``noise``: the replicates' (sigma, dof) for the joint laws;
    ``ladders``: their family structure for weighted laws (forms.residual_bootstrap)."""
    for k in skip:
        if fits.get(k) is not None:
            fits[k].extra["bootstrap_skipped"] = skip[k]
    todo = [k for k, f in fits.items() if f is not None and k not in skip]
    if n_jobs > 1 and len(todo) > 1 and n_resamples > 0:
        from joblib import Parallel, delayed

        done = Parallel(n_jobs=n_jobs)(delayed(_boot_one)(fits[k], n_resamples, seed, *((noise, ladders) if k in LAWS
                                                                                      else (None, None)))
                                       for k in todo)
    else:
        done = [_boot_one(fits[k], n_resamples, seed, *((noise, ladders) if k in LAWS else (None, None))) for k in todo]
    for k, (boot, extra) in zip(todo, done):
        fits[k].boot = boot
        fits[k].extra.update(extra)


def _boot_one(fit: Fit, n_resamples: int, seed: int, noise_floor: tuple[float, int] | None = None,
              ladders: dict | None = None):
    with blas_threads(1):
        if fit.sigma is not None and ladders is not None:
            noise.ladder_bootstrap(fit, n_resamples, seed, ladders["X"], ladders["family"], ladders["share"])
        else:
            residual_bootstrap(fit, n_resamples, seed, noise_floor)
    return fit.boot, {k: v for k, v in fit.extra.items() if k in ("bootstrap_skipped", "bootstrap")}


def residual_pattern_r2(X: np.ndarray, resid: np.ndarray, sigma: np.ndarray | None = None) -> float | None:
    """The share of the log residuals' variance that a quadratic surface in (ln N, ln D)
    explains: near 0 when the residual heatmap has no sign pattern, near 1 when the law
    misses a trend (a twist or a bend) over the grid. None with fewer than 7 points.
    For a weighted fit (``sigma``, each run's noise) the regression and the variance are
    weighted by 1 / sigma^2, as the fit was: a pattern among the quiet runs counts, the
    scatter of the noisy ones does not pass for one."""
    resid = np.asarray(resid, float)
    if len(resid) < 7 or np.allclose(resid, resid.mean()):
        return None
    w = np.ones_like(resid) if sigma is None else 1.0 / np.asarray(sigma, float)
    a, b = np.log(X[:, 0]), np.log(X[:, 1])
    a, b = a - a.mean(), b - b.mean()
    M = np.column_stack([np.ones_like(a), a, b, a * b, a * a, b * b]) * w[:, None]
    rw = resid * w
    c = np.linalg.lstsq(M, rw, rcond=None)[0]
    mean = np.sum(rw * w) / np.sum(w * w)  # the weighted mean residual
    return 1 - float(np.sum((rw - M @ c) ** 2) / np.sum((rw - mean * w) ** 2))


def law_json(name: str, fit: Fit | None, pts: dict, floor: float | None) -> dict:
    form = fit.form if fit is not None and name in LAWS else LAWS.get(name, POWER)
    out = {"form": form.form if name in LAWS else {"L_N": "L_inf + A N^-alpha", "L_D": "L_inf + A D^-alpha",
                                                    "L_C": "E + A C^-alpha"}[name],
           "inputs": pts["description"], "n_points": len(pts["loss"])}
    if fit is None:
        return {**out, "params": None, "ci95": None, "skipped": "too few points"}
    rename = (lambda k: "L_inf" if k == "E" else k) if name in ("L_N", "L_D") else (lambda k: k)
    bp = fit.boot_params()
    out.update(params={rename(k): v for k, v in fit.params.items()},
               ci95={rename(k): v for k, v in (fit.ci95() or {}).items()} or None,
               r2_log=fit.r2_log, rms_log=fit.rms_log, objective=fit.objective, n_params=fit.n_params,
               starts_agreeing=fit.starts_agreeing, n_starts=fit.n_starts,
               bootstrap_resamples=0 if bp is None else len(bp), residuals=fit.log_residuals, point_ids=pts["ids"])
    mc = fit.ci95_mc_sd() if out["ci95"] else None
    if mc:
        out["ci95_mc_sd"] = {rename(k): v for k, v in mc.items()}
    if fit.floor is not None:
        out["fixed"] = {"E": fit.floor}
    if fit.at_bound():
        out["ci95_at_bound"] = fit.at_bound()
    for k in ("bootstrap_skipped", "asymptote", "bootstrap"):
        if k in fit.extra:
            out[k] = fit.extra[k]
    if name in LAWS:
        out["residual_pattern_r2"] = residual_pattern_r2(fit.x, fit.log_residuals, fit.sigma)
    if name in LAWS and bp is not None and len(bp):
        out["noise_log"] = float(np.std(fit.log_residuals) * np.sqrt(len(fit.y) / max(1, len(fit.y) - fit.n_params)))
        out["bootstrap_params"] = bp[:BOOT_KEEP]
    return out


def analyze(table: Table, n_resamples: int = N_RESAMPLES, seed: int = SEED, n_jobs: int = N_JOBS,
            huber_delta: float | None = None, skills: bool = True) -> Analysis:
    """Fit every law to ``table`` (pure computation, no files); least squares in log L,
    or Huber with ``huber_delta``. ``skills=False`` leaves out the two-step skill
    prediction (its per-bucket law selection is most of the time of a fit with probes)."""
    with blas_threads(1):
        return _analyze(table, n_resamples, seed, n_jobs, huber_delta, skills)


def _analyze(table, n_resamples, seed, n_jobs, delta, with_skills=True):
    msgs: list[str] = []
    for s in table.skipped_files:
        _note(msgs, f"skipped unreadable record {s['file']}: {s['reason']}", warn=False)  # the loader warned
    if table.excluded:
        _note(msgs, f"excluded {len(table.excluded)} runs that are not usable: "
                    + ", ".join(f"{e['run_id']} ({e.get('reason', e['status'])})" for e in table.excluded))
    F = table.floor
    if F is None:
        _note(msgs, "no known floor: every law fits E freely and errors are relative to the loss, not to the "
                    "reducible loss", warn=False)
    why = _unidentified(table, msgs)
    reps = replicate_noise(table)
    sizes = noise.by_size(table.XU, table.loss) if reps is not None else None
    seed_sd = noise.seed_sigma(sizes, table.N) if sizes is not None else None
    share = noise.ladder_share(table.XU, table.loss, table.family, sizes) if sizes and table.family else None
    ladders = {"X": table.XU, "family": table.family, "share": share} if share is not None else None
    if reps is not None:
        reps["by_size"] = sizes
        reps["weighted_fit"] = sizes is not None
        if sizes is not None:
            reps["ladder_share"] = share
    fits = _joint_fits(table, msgs, delta, seed_sd, ladders)
    one, points, fr = _one_variable(table, msgs, delta)
    fits.update(one)
    joint = [k for k in LAWS if k in fits]  # the data-constrained laws only with repeated data
    points.update({k: {"description": INPUTS["joint"], "ids": list(table.ids),
                       "x": table.XU if k in DATA_CONSTRAINED else table.X, "loss": table.loss} for k in joint})
    if reps is not None and reps["dof"] < 2:
        _note(msgs, f"replicates: only {reps['dof']} degree of freedom of run-to-run spread; not used", warn=False)
        reps["used"] = False
    elif reps is not None:
        reps["used"] = True
    _bootstrap(fits, n_resamples, seed, n_jobs, skip={k: why for k in joint} if why else {},
               noise=(reps["sigma_log"], reps["dof"]) if reps and reps["used"] else None, ladders=ladders)
    laws = {k: law_json(k, fits[k], points[k], F) for k in (*joint, "L_N", "L_D", "L_C")}
    if F is not None:
        laws["L_C"]["fixed_floor_line"] = line_fit(fr["C"], fr["loss"], F)
        for k in joint:
            diag = free_e_diagnostic(fits[k], F)
            laws[k]["free_E"] = diag
            if diag and (diag["below_floor"] or diag["above_lowest_loss"]):
                _note(msgs, f"{k}: with E free the fit puts E = {diag['E']:.4g}, "
                            + ("below the floor" if diag["below_floor"] else "above the lowest observed loss")
                            + f" (floor {F:.4g}); the primary fit fixes E at the floor", warn=False)
    selected, extra = _select(table, fits, laws, msgs, delta)
    for k in joint:
        if fits.get(k) is not None and "noise_model" in fits[k].extra:
            laws[k]["noise_model"] = fits[k].extra["noise_model"]
    copt = _compute_optimal(table, selected, fits, msgs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)  # re-emitted below, once, through _note
        iso = fit_isoflop(table.N, table.loss, table.budget, table.ids)
    for w in (iso or {}).get("warnings", []):
        _note(msgs, w)
    if copt is not None:
        copt["isoflop_agreement"] = co.agreement(copt, iso)
    dc = _data_constrained(table, fits, laws, selected, n_resamples, seed)
    conv = counting_conventions(table, fits.get(selected) if selected else None, delta)
    probes, pdata = analyze_probes(table, seed=seed)
    if pdata is not None and pdata.skipped:
        _note(msgs, f"probes: {len(pdata.skipped)} runs without probes (or with other buckets) left out of the "
                    f"per-skill analysis", warn=False)
    skills = analyze_skills(pdata, extra, n_resamples, seed, n_jobs) if with_skills else False
    return Analysis(table=table, fits=fits, law_points=points, frontier=fr, isoflop=iso, compute_optimal=copt,
                    replicate_noise=reps,
                    extrapolation=extra, selected=selected, laws_json=laws, warnings=msgs, conventions=conv,
                    settings=_settings(n_resamples, seed, delta, seed_sd is not None), probes=probes, probe_data=pdata,
                    data_constrained=dc, skills=skills)


def _data_constrained(table: Table, fits: dict, laws: dict, selected: str | None, n_resamples: int,
                      seed: int) -> dict | None:
    """The repeated-data block, on the selected law when it is a data-constrained one,
    else on the data-constrained law with the lowest held-out error."""
    cand = [k for k in DATA_CONSTRAINED if fits.get(k) is not None]
    if not cand:
        return None
    score = {k: laws[k].get("heldout_mean_reducible_error") for k in cand}
    name = selected if selected in cand else min(cand, key=lambda k: (score[k] is None, score[k] or 0.0))
    with blas_threads(1):
        out = dc_summary(name, fits[name], table.ids, (float(table.C.min()), float(table.C.max())),
                         (float(table.N.min()), float(table.N.max())), n_resamples, seed)
    out["selected_overall"] = name == selected
    return out


def _select(table: Table, fits: dict, laws: dict, msgs: list[str], delta) -> tuple[str | None, dict | None]:
    forms = {k: fits[k].form for k in LAWS if fits.get(k) is not None}
    held, base = selection.refit_all(forms, table.N, table.D, table.C, table.loss, table.ids, table.floor, delta,
                                     table.U if table.repetitions_vary else None,
                                     sigma={k: fits[k].weights for k in forms})
    scores = {}
    for k in forms:
        laws[k]["heldout"] = held[k]
        scores[k] = laws[k]["heldout_mean_reducible_error"] = selection.mean_error(held[k])
    selected = selection.select(scores, {k: fits[k].n_params for k in forms})
    if selected is None:
        _note(msgs, "no joint law could be scored on the hold-outs; none selected")
        return None, None
    extra = selection.extrapolation(selected, held[selected], base, table.floor)
    for h, e in extra.items():
        if e.get("below_floor"):
            _note(msgs, f"extrapolation {h}: {selected} predicts {len(e['below_floor'])} runs below the floor")
        if e.get("passes") is False:
            _note(msgs, f"extrapolation {h}: {selected} does not beat the naive baselines", warn=False)
    return selected, extra


def _compute_optimal(table: Table, selected: str | None, fits: dict, msgs: list[str]) -> dict | None:
    if selected is None:
        return None
    f = fits[selected]
    bp = f.boot_params()
    k = len(f.form.names)
    out = co.summarize(selected, f.form, f.params, None if bp is None else bp[:, -k:],
                       (float(table.C.min()), float(table.C.max())), (float(table.N.min()), float(table.N.max())))
    if out.get("reason"):
        _note(msgs, out["reason"], warn=False)
    return out


def counting_conventions(table: Table, fit: Fit | None, delta) -> dict | None:
    """The selected law's exponents and compute-optimal a under the other conventions
    (Porian et al. 2024, Pearce & Song 2024: at small N the convention moves a by more
    than 0.1): N = total parameters (refitted, C = 6 N_total D), and C = the detailed
    FLOP count with the law unchanged (FLOPs per token as a power of N, fitted to the runs)."""
    if fit is None or table.N_total is None:
        return None
    form, keys = fit.form, [k for k in fit.params if k.startswith(("alpha", "beta", "gamma"))]
    P = np.array([[fit.params[k] for k in form.names]])
    n_range = (float(table.N.min()), float(table.N.max()))
    base = {"N": "params_nonembedding", "C": "6 N D", **{k: fit.params[k] for k in keys},
            "a": co.local_slope(form, P, (float(table.C.min()), float(table.C.max())), n_range)}
    ft = fit_form(form, np.column_stack([table.N_total, table.D] + ([table.XU[:, 2]] if form.n_inputs == 3 else [])),
                  table.loss, table.floor, delta, sigma=fit.weights)
    Pt = np.array([[ft.params[k] for k in form.names]])
    Ct = 6 * table.N_total * table.D
    total = {"N": "params_total", "C": "6 N_total D", **{k: ft.params[k] for k in keys}, "rms_log": ft.rms_log,
             "a": co.local_slope(form, Pt, (float(Ct.min()), float(Ct.max())),
                                 (float(table.N_total.min()), float(table.N_total.max())))}
    k = np.polyfit(np.log(table.N), np.log(table.C_detailed / table.D), 1)
    detailed = {"N": "params_nonembedding", "C": f"flops (detailed count; per token ~ {np.exp(k[1]):.3g} N^{k[0]:.3f})",
                "a": co.local_slope(form, P, (float(table.C_detailed.min()), float(table.C_detailed.max())),
                                    n_range, lambda ln_n: np.polyval(k, ln_n))}
    return {"law": form.name, "intervals": "point estimates only", "default": base, "total_params": total,
            "detailed_flops": detailed}


def _settings(n_resamples: int, seed: int, delta: float | None, weighted: bool = False) -> dict:
    w = (" (joint laws: each residual over its run's sigma_i, sigma_i^2 = sigma_seed(N_i)^2 + tau^2, and with "
         "families of runs (ladders) whitened by their covariance, rho sigma_i sigma_j between two runs of one "
         "family (generalised least squares, noise.ladder_cov): see replicate_noise.by_size, "
         "replicate_noise.ladder_share and each law's noise_model)") if weighted else ""
    return {
        "objective": ("sum over points of (log L_pred - log L_obs)^2" if delta is None else
                      f"sum over points of Huber(delta={delta:g}) of log L_pred - log L_obs (summed, not averaged)") + w,
        "huber_delta": delta,
        "optimizer": {"method": "scipy least_squares (trust-region reflective, Huber loss)",
                      **{k: v for k, v in LSQ.items() if k in ("xtol", "ftol", "gtol", "max_nfev")}},
        "starts": f"a grid of exponents per form, coefficients by non-negative least squares; the best {REFINE} "
                  f"starts by Huber objective refined; with a free E the grid is repeated at 4 values of E",
        "bootstrap": {"resamples": n_resamples, "seed": seed, "method": "parametric bootstrap from the residuals: "
                      "normal noise on the fitted log losses with a noise level drawn as sigma sqrt((n-p)/chi2(n-p)), "
                      "sigma^2 = RSS/(n-p) (for the joint laws, when runs repeat an (N, D) with other seeds, at least the "
                      "replicates' spread, drawn the same way: see replicate_noise; for weighted laws the noise of "
                      "point i is that level times sigma_i, the level from chi2/(n-p); with families of runs "
                      "(ladders), noise.ladder_bootstrap: the seed part shared by a family's runs in the share "
                      "replicate_noise.ladder_share measures, the seeds' spread and that share re-measured and the "
                      "weights redone on each resample); refitted from the point estimate; "
                      "percentile 95% intervals; laws the data cannot identify are not bootstrapped; each law's "
                      "ci95_mc_sd: the Monte Carlo standard deviation of each interval endpoint (the percentile over "
                      f"{MC_RESAMPLES} resamples of the draws), the digits a finite bootstrap can claim"},
        "selection": f"lowest mean reducible_error over the hold-outs {', '.join(selection.HOLDOUTS)}; forms within "
                     f"{selection.NEAR_TIE:.0%} of it are tied and the fewest parameters wins",
    }


def to_json(a: Analysis) -> dict:
    t = a.table
    out = {
        "conventions": t.conventions,
        "source": t.source,
        "n_points": len(t),
        "floor": {"value": t.floor, "source": t.floor_source},
        "entropy_floor": t.entropy_floor[0] if len(t.entropy_floor) == 1 else (t.entropy_floor or None),
        "selected": a.selected,
        "replicate_noise": a.replicate_noise,
        "laws": a.laws_json,
        "compute_optimal": a.compute_optimal,
        "isoflop": a.isoflop,
        "extrapolation": a.extrapolation,
        "counting_conventions": a.conventions,
        "probes": a.probes,
        **({"data_constrained": a.data_constrained} if a.data_constrained else {}),
        **({} if a.skills is False else {"skills": a.skills}),  # absent when not asked for
        "excluded_runs": t.excluded,
        "skipped_files": t.skipped_files,
        "dropped_rows": t.dropped,
        "warnings": a.warnings,
        "settings": a.settings,
        "figures": a.figures,
    }
    return jsonable(out)


def write_outputs(a: Analysis, out_dir: str | Path, figures: bool = True) -> dict:
    """Write figures/, fit.json and report.md into ``out_dir``; return their paths."""
    from harness.analysis import plots, report
    from harness.records import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig_paths = plots.make_figures(a, out / "figures") if figures else []
    a.figures = [str(p.relative_to(out)) for p in fig_paths]
    a.fit = to_json(a)
    fit_path = out / "fit.json"
    atomic_write_text(fit_path, json.dumps(a.fit, indent=1, allow_nan=False) + "\n")
    rep_path = report.write_report(a, out / "report.md")
    return {"fit_json": fit_path, "report": rep_path, "figures": fig_paths}


def fit_dict(table: Table, n_resamples: int = N_RESAMPLES, seed: int = SEED, n_jobs: int = N_JOBS,
             huber_delta: float | None = None, skills: bool = True) -> dict:
    """fit.json's content for ``table``, with nothing written (for studies that refit
    subsets of a sweep): what :func:`fit_table` returns as ``"fit"`` without figures."""
    return to_json(analyze(table, n_resamples, seed, n_jobs, huber_delta, skills))


def fit_table(table: Table, out_dir: str | Path, n_resamples: int = N_RESAMPLES, seed: int = SEED,
              n_jobs: int = N_JOBS, figures: bool = True, huber_delta: float | None = None,
              skills: bool = True) -> dict:
    """Analyse ``table`` and write the outputs. Returns ``{"fit", "fit_json", "report", "figures"}``."""
    a = analyze(table, n_resamples, seed, n_jobs, huber_delta, skills)
    paths = write_outputs(a, out_dir, figures)
    return {"fit": a.fit, **paths, "analysis": a}


def fit_results_dir(results_dir: str | Path, out_dir: str | Path | None = None, n_resamples: int = N_RESAMPLES,
                    seed: int = SEED, n_jobs: int = N_JOBS, figures: bool = True,
                    huber_delta: float | None = None, skills: bool = True) -> dict:
    """Fit a sweep's records (``results_dir/runs/*.json``) and write runs.csv, fit.json,
    figures/ and report.md into ``out_dir`` (default ``results_dir``).

    Returns ``{"fit": <fit.json dict>, "fit_json", "report", "runs_csv": Path,
    "figures": [Path, ...], "analysis": Analysis}``. Raises
    :class:`~harness.analysis.errors.TableError` when fewer than 6 usable runs exist.
    """
    from harness.records import load_records, write_runs_csv

    records, problems = load_records(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir)
    table = from_records(records, problems, source=str(results_dir))  # refuses before anything is written
    runs_csv = write_runs_csv(records, out / "runs.csv")
    res = fit_table(table, out, n_resamples, seed, n_jobs, figures, huber_delta, skills)
    res["runs_csv"] = runs_csv
    return res
