"""The analysis step end to end: table -> fits -> fit.json, figures/, report.md.

:func:`fit_results_dir` is what ``harness-fit RESULTS_DIR`` and the end of a sweep
call; :func:`fit_table` does the same for any :class:`~harness.analysis.table.Table`
(``harness-fit --csv``). Everything is deterministic for a given input and seed:
fit.json holds no times or absolute paths and its floats are rounded to 6
significant digits, so refitting the same records reproduces it byte for byte.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis import compute_optimal as co
from harness.analysis.context import Analysis
from harness.analysis.errors import AnalysisWarning
from harness.analysis.extrapolation import holdout_check
from harness.analysis.fit import (HUBER_DELTA, IRLS_STEPS, LBFGSB_OPTIONS, N_STARTS,
                                  FitResult, bootstrap_all, fit_law)
from harness.analysis.frontier import (BINS_PER_DECADE, CURVE_MIN_FRACTION, compute_frontier, envelope_by,
                                       group_values)
from harness.analysis.isoflop import fit_isoflop
from harness.analysis.laws import CHINCHILLA, KAPLAN, L_C, L_D, L_N, LAWS, Law
from harness.analysis.probes import analyze_probes
from harness.analysis.table import Table, from_records

N_RESAMPLES = 1000
SEED = 0
N_JOBS = 2
SIG_DIGITS = 6

INPUTS = {
    "chinchilla": "every ok run: final loss at its (N, D)",
    "kaplan": "every ok run: final loss at its (N, D)",
    "L_N": "for each distinct N the lowest-loss run (the least data-limited; in a grid sweep the "
           "largest D), then the lower envelope in N",
    "L_D": "for each distinct D the lowest-loss run (the least size-limited; in a grid sweep the "
           "largest N), then the lower envelope in D",
    "L_C": f"the compute frontier: lower envelope of every run's curve points (C = 6 N tokens), points in "
           f"the first {CURVE_MIN_FRACTION:.0%} of a run's tokens left out, lowest point per "
           f"1/{BINS_PER_DECADE} decade of C",
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


def _fit_one(law: Law, x: np.ndarray, y: np.ndarray, msgs: list[str]) -> FitResult | None:
    need = len(law.bounds()) + 1
    if len(y) < need:
        _note(msgs, f"{law.name}: only {len(y)} points, need {need}; law not fitted")
        return None
    return fit_law(law, x, y)


def _bootstrap(fits: dict[str, FitResult | None], unidentified: dict[str, str], n_resamples: int, seed: int,
               n_jobs: int, msgs: list[str]) -> None:
    """Bootstrap every fitted law through one worker pool, except laws the data cannot
    identify: their refits wander along flat directions for thousands of iterations
    (a one-D sweep's Kaplan fit took minutes) to give intervals that mean nothing."""
    todo = []
    for name, fr in fits.items():
        if fr is None:
            continue
        if name in unidentified:
            fr.extra["bootstrap_skipped"] = unidentified[name]
            _note(msgs, f"{name}: no bootstrap intervals: {unidentified[name]}")
        else:
            todo.append(fr)
    bootstrap_all(todo, n_resamples, seed, n_jobs)
    for fr in todo:
        bp = fr.boot_params()
        if bp is not None and len(bp) < n_resamples:
            _note(msgs, f"{fr.law.name}: {n_resamples - len(bp)} of {n_resamples} bootstrap refits failed")


def analyze(table: Table, n_resamples: int = N_RESAMPLES, seed: int = SEED, n_jobs: int = N_JOBS) -> Analysis:
    """Fit every law to ``table`` (pure computation, no files)."""
    msgs: list[str] = []
    for s in table.skipped_files:
        _note(msgs, f"skipped unreadable record {s['file']}: {s['reason']}", warn=False)  # the loader warned
    if table.excluded:
        _note(msgs, f"excluded {len(table.excluded)} runs that are not usable: "
                    + ", ".join(f"{e['run_id']} ({e.get('reason', e['status'])})" for e in table.excluded))
    unidentified: dict[str, str] = {}
    for col, what in ((table.N, "model sizes N"), (table.D, "token counts D")):
        k = int(group_values(col).max()) + 1
        if k < 3:
            _note(msgs, f"only {k} distinct {what}: the two-variable laws cannot separate that term "
                        f"from E, so their parameters for it are not meaningful")
            for law in (CHINCHILLA, KAPLAN):
                unidentified.setdefault(law.name, f"only {k} distinct {what}, so the law is not identified")
    fits: dict[str, FitResult | None] = {}
    points: dict[str, dict] = {}
    X = table.X
    for law in (CHINCHILLA, KAPLAN):
        points[law.name] = {"description": INPUTS[law.name], "ids": list(table.ids), "x": X, "loss": table.loss}
        fits[law.name] = _fit_one(law, X, table.loss, msgs)
    for law, col in ((L_N, table.N), (L_D, table.D)):
        idx = envelope_by(col, table.loss)
        points[law.name] = {"description": INPUTS[law.name], "ids": [table.ids[i] for i in idx],
                            "x": col[idx], "loss": table.loss[idx]}
        fits[law.name] = _fit_one(law, col[idx], table.loss[idx], msgs)
    frontier = compute_frontier(table.curves)
    fids = []
    for c, r in zip(frontier["C"], frontier["run"]):
        cv = table.curves[r]
        fids.append(f"{cv['id']}@{c / (6 * cv['N']):.6g}" if table.source["kind"] == "records" else cv["id"])
    desc = INPUTS["L_C"] if table.source["kind"] == "records" else \
        f"the compute frontier: lower envelope of the rows' (C, loss), lowest point per 1/{BINS_PER_DECADE} decade of C"
    points["L_C"] = {"description": desc, "ids": fids, "x": frontier["C"], "loss": frontier["loss"]}
    fits["L_C"] = _fit_one(L_C, frontier["C"], frontier["loss"], msgs)
    _bootstrap(fits, unidentified, n_resamples, seed, n_jobs, msgs)

    copt = None
    ch = fits["chinchilla"]
    if ch is not None:
        copt = co.summarize(ch.params, ch.boot_params(), co.budgets(float(table.C.min()), float(table.C.max())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)  # re-emitted below, once, through _note
        iso = fit_isoflop(table.N, table.loss, table.budget, table.ids)
    for w in (iso or {}).get("warnings", []):
        _note(msgs, w)
    extra = holdout_check(table.N, table.D, table.C, table.loss, table.ids)
    if extra.get("skipped"):
        _note(msgs, f"extrapolation check skipped: {extra['skipped']}")
    settings = {
        "objective": f"sum over points of Huber(delta={HUBER_DELTA:g}) of log L_pred - log L_obs (summed, not averaged)",
        "huber_delta": HUBER_DELTA,
        "optimizer": {"method": "L-BFGS-B", **LBFGSB_OPTIONS},
        "starts": f"geometric grid over the exponents, coefficients by non-negative least squares "
                  f"(variable projection) reweighted {IRLS_STEPS} times for the Huber loss (IRLS); "
                  f"best {N_STARTS} grid local minima refined",
        "bootstrap": {"resamples": n_resamples, "seed": seed, "method": "rows resampled with replacement "
                      "(as row weights), each refit from its own grid: its best grid local minima refined, "
                      + ", ".join(f"{law.name} at most {law.boot_starts} within {law.boot_ratio:g}x of its best "
                                  f"grid objective" for law in LAWS.values())
                      + "; percentile 95% intervals; laws the data cannot identify are not bootstrapped"},
    }
    probes, pdata = analyze_probes(table, seed=seed)
    if pdata is not None and pdata.skipped:
        _note(msgs, f"probes: {len(pdata.skipped)} runs without probes (or with other buckets) left out of the "
                    f"per-skill analysis", warn=False)
    return Analysis(table=table, fits=fits, law_points=points, frontier=frontier, isoflop=iso,
                    compute_optimal=copt, extrapolation=extra, warnings=msgs, settings=settings,
                    probes=probes, probe_data=pdata)


def law_json(law: Law, fr: FitResult | None, pts: dict) -> dict:
    out = {"form": law.form, "inputs": pts["description"], "n_points": len(pts["loss"])}
    if fr is None:
        out.update(params=None, ci95=None, skipped="too few points")
        return out
    bp = fr.boot_params()
    out.update(params=fr.params, ci95=fr.ci95(), r2_log=fr.r2_log, objective=fr.objective,
               starts_agreeing=fr.starts_agreeing, n_starts=fr.n_starts, optimizer=fr.message,
               bootstrap_resamples=0 if bp is None else len(bp),
               **({"bootstrap_skipped": fr.extra["bootstrap_skipped"]} if "bootstrap_skipped" in fr.extra else {}),
               residuals=fr.log_residuals, point_ids=pts["ids"])
    return out


def to_json(a: Analysis) -> dict:
    t = a.table
    laws = {name: law_json(law, a.fits[name], a.law_points[name])
            for name, law in (("chinchilla", CHINCHILLA), ("kaplan", KAPLAN), ("L_N", L_N), ("L_D", L_D), ("L_C", L_C))}
    out = {
        "conventions": t.conventions,
        "source": t.source,
        "n_points": len(t),
        "entropy_floor": t.entropy_floor[0] if len(t.entropy_floor) == 1 else (t.entropy_floor or None),
        "laws": laws,
        "compute_optimal": a.compute_optimal,
        "isoflop": a.isoflop,
        "extrapolation": a.extrapolation,
        "probes": a.probes,
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


def fit_table(table: Table, out_dir: str | Path, n_resamples: int = N_RESAMPLES, seed: int = SEED,
              n_jobs: int = N_JOBS, figures: bool = True) -> dict:
    """Analyse ``table`` and write the outputs. Returns ``{"fit", "fit_json", "report", "figures"}``."""
    a = analyze(table, n_resamples, seed, n_jobs)
    paths = write_outputs(a, out_dir, figures)
    return {"fit": a.fit, **paths, "analysis": a}


def fit_results_dir(results_dir: str | Path, out_dir: str | Path | None = None, n_resamples: int = N_RESAMPLES,
                    seed: int = SEED, n_jobs: int = N_JOBS, figures: bool = True) -> dict:
    """Fit a sweep's records (``results_dir/runs/*.json``) and write runs.csv, fit.json,
    figures/ and report.md into ``out_dir`` (default ``results_dir``).

    Returns ``{"fit": <fit.json dict>, "fit_json", "report", "runs_csv": Path,
    "figures": [Path, ...], "analysis": Analysis}``. Raises
    :class:`~harness.analysis.errors.TableError` when fewer than 6 usable runs exist.
    """
    from harness.records import load_records, write_runs_csv

    records, problems = load_records(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir)
    runs_csv = write_runs_csv(records, out / "runs.csv")
    table = from_records(records, problems, source=str(results_dir))
    res = fit_table(table, out, n_resamples, seed, n_jobs, figures)
    res["runs_csv"] = runs_csv
    return res
