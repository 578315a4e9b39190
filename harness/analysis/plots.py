"""Figures (PNG, log-log, matplotlib's Agg canvas through the object API, so nothing
touches pyplot's global state).

Each figure is a function ``Analysis -> (file name, Figure) | None`` registered in
``FIGURES`` with :func:`figure`; returning None skips it (e.g. no iso-FLOP groups, or
records without per-skill probes). To add one, write the function and decorate it. The figures show
the data as measured and the fits as fitted: no smoothing, no points dropped that the
fit used, the same axes conventions everywhere (loss in nats per token, N =
params_nonembedding, C = 6ND FLOPs).
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib import cm, colors
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from harness.analysis.data_constrained import value_per_repeat
from harness.analysis.result import Analysis
from harness.analysis.frontier import group_values

FigureFn = Callable[[Analysis], "tuple[str, Figure] | None"]
FIGURES: list[FigureFn] = []
DPI = 120


def figure(fn: FigureFn) -> FigureFn:
    """Register a figure function (kept in definition order)."""
    FIGURES.append(fn)
    return fn


def make_figures(a: Analysis, folder: Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fn in FIGURES:
        made = fn(a)
        if made is None:
            continue
        name, fig = made
        for ax in fig.axes:
            if ax.yaxis.get_major_formatter() is _PLAIN and ax.get_yscale() == "log":
                _loss_ticks(ax)
        path = folder / name
        fig.savefig(path, dpi=DPI, metadata={"Software": None})
        paths.append(path)
    return paths


# -- helpers -------------------------------------------------------------------------

def _size_colors(N: np.ndarray):
    norm = colors.LogNorm(vmin=float(np.min(N)), vmax=float(np.max(N)) * (1 + 1e-9))
    return norm, cm.ScalarMappable(norm=norm, cmap="viridis")


def _floor(ax, a: Analysis) -> None:
    if a.table.floor is not None:
        ax.axhline(a.table.floor, color="0.3", ls="--", lw=1, label=f"floor F = {a.table.floor:.4f} nats")


def _span(x: np.ndarray, pad: float = 1.3) -> np.ndarray:
    return np.geomspace(float(np.min(x)) / pad, float(np.max(x)) * pad, 200)


def _fmt(p: dict, names: tuple[str, ...]) -> str:
    return ", ".join(f"{k}={p[k]:.3g}" for k in names)


_PLAIN = FuncFormatter(lambda v, _: f"{v:g}")


def _loss_ticks(ax, n: int = 7) -> None:
    """About ``n`` plainly labelled ticks on a log loss axis (a log axis spanning less
    than a decade otherwise gets one or two labels)."""
    lo, hi = ax.get_ylim()
    ticks = sorted({float(f"{v:.2g}") for v in np.geomspace(lo, hi, n + 2)[1:-1]})
    ax.set_yticks(ticks)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_ylim(lo, hi)


def _loglog(ax, xlabel: str, ylabel: str = "loss (nats/token)") -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    if ylabel.startswith("loss"):  # ticks placed by _loss_ticks once the data are drawn
        ax.yaxis.set_major_formatter(_PLAIN)
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges ("3x10^4x10^5")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.2)


# -- figures -------------------------------------------------------------------------

def _selected(a: Analysis):
    return a.selected, (a.fits.get(a.selected) if a.selected else None)


def _law_label(name: str, f) -> str:
    return f"{name}: " + _fmt(f.params, tuple(f.params))


@figure
def scaling_laws(a: Analysis):
    """Kaplan et al. (2020) figure 1: loss against compute (every run's curve and the
    end-of-schedule frontier), against data and against parameters, each with its
    one-variable law."""
    t = a.table
    fig = Figure(figsize=(17, 4.8), layout="constrained")
    axs = fig.subplots(1, 3)
    norm, sm = _size_colors(t.N)
    ax = axs[0]
    for cv in t.curves:
        ax.plot(cv["C"], cv["loss"], "-" if len(cv["C"]) > 1 else "o", lw=0.9, ms=3, alpha=0.6,
                color=sm.to_rgba(cv["N"]))
    fr = a.frontier
    ax.plot(fr["C"], fr["loss"], "o", mfc="none", mec="k", ms=6, label="end-of-schedule frontier (fitted)")
    line = a.laws_json["L_C"].get("fixed_floor_line")
    if line and t.floor is not None:
        c = _span(fr["C"])
        ax.plot(c, t.floor + line["A"] * c ** -line["gamma"], "r-", lw=1.6,
                label=f"L(C) = F + A C^-gamma, gamma={line['gamma']:.3g}")
    elif a.fits.get("L_C") is not None:
        c = _span(fr["C"])
        ax.plot(c, a.fits["L_C"].predict(c), "r-", lw=1.6, label=_law_label("L(C)", a.fits["L_C"]))
    _floor(ax, a)
    _loglog(ax, "compute C = 6 N D (FLOPs)")
    ax.set_title("loss vs compute (curves: every evaluation)")
    ax.legend(fontsize=7)
    fig.colorbar(sm, ax=ax, label="N (non-embedding params)")
    for ax, name, x, xlabel in ((axs[1], "L_D", t.D, "tokens D"), (axs[2], "L_N", t.N, "parameters N (non-embedding)")):
        pts = a.law_points[name]
        ax.plot(x, t.loss, ".", color="0.7", ms=5, label="all runs (final)")
        ax.plot(pts["x"], pts["loss"], "o", color="C0", ms=5, label="points fitted")
        f = a.fits.get(name)
        if f is not None:
            xs = _span(x)
            p = a.laws_json[name]["params"]
            ax.plot(xs, f.predict(xs), "r-", lw=1.6, label=f"{f.extra.get('asymptote', 'L_inf')} = "
                    f"{p['L_inf']:.4g}, A={p['A']:.3g}, alpha={p['alpha']:.3g}")
        _floor(ax, a)
        _loglog(ax, xlabel)
        ax.set_title(f"loss vs {'data' if name == 'L_D' else 'parameters'} (asymptote: the other input fixed)")
        ax.legend(fontsize=7)
    return "scaling_laws.png", fig


@figure
def reducible_loss(a: Analysis):
    """Kaplan-style panels of the reducible loss L - F on log-log axes, where a power law
    is a straight line: against C (frontier), D (one line per size) and N (one per D),
    with the selected law."""
    t = a.table
    name, f = _selected(a)
    if t.floor is None or f is None:
        return None
    F = t.floor
    fig = Figure(figsize=(17, 4.8), layout="constrained")
    axs = fig.subplots(1, 3)
    norm, sm = _size_colors(t.N)
    fr = a.frontier
    ax = axs[0]
    ax.plot(t.C, t.loss - F, ".", color="0.7", ms=5, label="all runs (final)")
    ax.plot(fr["C"], fr["loss"] - F, "ko", mfc="none", ms=6, label="end-of-schedule frontier")
    line = a.laws_json["L_C"].get("fixed_floor_line")
    if line:
        c = _span(fr["C"])
        ax.plot(c, line["A"] * c ** -line["gamma"], "r-", lw=1.4,
                label=f"A C^-gamma, gamma = {line['gamma']:.3f} {_ci_txt(line['gamma_ci95'])}")
    _loglog(ax, "compute C = 6 N D (FLOPs)", "reducible loss L - F (nats/token)")
    ax.legend(fontsize=7)
    ax.set_title("reducible loss vs compute")
    nl, dl = group_values(t.N), group_values(t.D)
    for ax, lab, other, xcol, xlabel, cmap_by in ((axs[1], nl, t.N, t.D, "tokens D", "N"),
                                                    (axs[2], dl, t.D, t.N, "parameters N (non-embedding)", "D")):
        dn, dsm = _size_colors(other)
        for g in np.unique(lab):
            idx = np.flatnonzero(lab == g)
            idx = idx[np.argsort(xcol[idx])]
            col = dsm.to_rgba(float(np.median(other[idx])))
            ax.plot(xcol[idx], t.loss[idx] - F, "o", color=col, ms=4)
            xs = _span(xcol[idx], 1.1)
            X = np.column_stack([np.full_like(xs, np.median(other[idx])), xs]) if cmap_by == "N" else \
                np.column_stack([xs, np.full_like(xs, np.median(other[idx]))])
            ax.plot(xs, f.predict(X) - F, "-", color=col, lw=1)
        ax.plot([], [], "k-", lw=1, label=f"selected law ({name}), one line per {cmap_by}")
        _loglog(ax, xlabel, "reducible loss L - F (nats/token)")
        ax.legend(fontsize=7)
        ax.set_title(f"reducible loss vs {'data' if cmap_by == 'N' else 'parameters'}, by {cmap_by}")
        fig.colorbar(dsm, ax=ax, label=cmap_by)
    return "reducible_loss.png", fig


def _ci_txt(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


@figure
def loss_vs_data_by_size(a: Analysis):
    """L(N, D): final loss against D for each model size, with the selected law (solid)
    and Chinchilla's additive form (dashed)."""
    t = a.table
    name, f = _selected(a)
    ch = a.fits.get("chinchilla")
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    norm, sm = _size_colors(t.N)
    labels = group_values(t.N, rtol=0.01)
    sizes = np.array([float(np.median(t.N[labels == g])) for g in range(labels.max() + 1)])
    ax.scatter(t.D, t.loss, c=t.N, cmap="viridis", norm=norm, s=16)
    lines = sizes if len(sizes) <= 12 else np.unique(sizes[np.abs(np.log(sizes)[:, None] - np.linspace(
        np.log(sizes.min()), np.log(sizes.max()), 8)[None, :]).argmin(axis=0)])
    ds = _span(t.D)
    for fit, ls, lab in ((f, "-", f"selected: {name}"), (ch if name != "chinchilla" else None, "--", "chinchilla")):
        if fit is None:
            continue
        for n in lines:
            ax.plot(ds, fit.predict(np.column_stack([np.full_like(ds, n), ds])), ls, color=sm.to_rgba(n), lw=1)
        ax.plot([], [], "k" + ls, lw=1, label=f"{lab} (RMS log {fit.rms_log:.4f})")
    _floor(ax, a)
    _loglog(ax, "tokens D")
    ax.set_title("L(N, D): final loss by model size")
    ax.legend(fontsize=7)
    fig.colorbar(sm, ax=ax, label="N (non-embedding params)")
    return "loss_vs_data_by_size.png", fig


@figure
def residual_heatmap(a: Analysis):
    """log(pred) - log(obs) over the (N, D) grid for the selected law and Chinchilla (a
    cell that several seeds repeat shows their mean): a missing N x D interaction shows
    as a twist (opposite signs at opposite corners)."""
    t = a.table
    name, f = _selected(a)
    fits = [(name, f)] + ([("chinchilla", a.fits.get("chinchilla"))] if name != "chinchilla" else [])
    fits = [(k, v) for k, v in fits if v is not None]
    if not fits:
        return None
    nl, dl = group_values(t.N), group_values(t.D)
    Ns = [float(np.median(t.N[nl == g])) for g in range(nl.max() + 1)]
    Ds = [float(np.median(t.D[dl == g])) for g in range(dl.max() + 1)]
    fig = Figure(figsize=(6 * len(fits) + 1, 4.8), layout="constrained")
    axs = np.atleast_1d(fig.subplots(1, len(fits)))
    vmax = max(float(np.max(np.abs(v.log_residuals))) for _, v in fits)
    fresh = ~t.repeated  # one cell per (N, D): runs that repeat data share their cell with the fresh run
    nl, dl = nl[fresh], dl[fresh]
    count = np.zeros((len(Ns), len(Ds)))
    np.add.at(count, (nl, dl), 1)
    seeds = count.max() > 1  # runs repeating a cell with other seeds: the cell shows their mean
    for ax, (k, v) in zip(axs, fits):
        M = np.zeros((len(Ns), len(Ds)))
        np.add.at(M, (nl, dl), v.log_residuals[fresh])
        M = np.where(count > 0, M / np.maximum(count, 1), np.nan)
        im = ax.imshow(M.T, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        for i, j in zip(*np.nonzero(count)):  # one label a cell
            ax.text(i, j, f"{M[i, j]:+.3f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(Ns)), [f"{n:.2g}" for n in Ns], fontsize=8)
        ax.set_yticks(range(len(Ds)), [f"{d:.2g}" for d in Ds], fontsize=8)
        ax.set_xlabel("parameters N (non-embedding)")
        ax.set_ylabel("tokens D")
        notes = [n for n, on in (("fresh runs shown", t.repeated.any()), ("a cell: mean over its seeds", seeds)) if on]
        ax.set_title(f"{k}{' (selected)' if k == name else ''}: log residuals, RMS {v.rms_log:.4f}"
                     + (f" ({'; '.join(notes)})" if notes else ""), fontsize=9 if notes else None)
    fig.colorbar(im, ax=axs[-1], label="log(predicted) - log(observed)")
    return "residual_heatmap.png", fig


@figure
def isoflop_profiles(a: Analysis):
    """Hoffmann et al. (2022) figure 3: loss against N per FLOP budget with the fitted
    parabolas, and the optima against compute."""
    iso = a.isoflop
    if not iso:
        return None
    fig = Figure(figsize=(13, 5), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    Cs = [b["C"] for b in iso["budgets"]]
    norm = colors.LogNorm(vmin=min(Cs), vmax=max(Cs) * (1 + 1e-9))
    sm = cm.ScalarMappable(norm=norm, cmap="plasma")
    for b in iso["budgets"]:
        col = sm.to_rgba(b["C"])
        ax.plot(b["N"], b["loss"], "o", color=col, ms=4)
        if b.get("coef_lnN"):
            ns = _span(np.array(b["N_range"]), pad=1.5)
            ax.plot(ns, np.polyval(b["coef_lnN"], np.log(ns)), "-", color=col, lw=1)
        if b["N_opt"] is not None:
            ax.plot(b["N_opt"], b["loss_opt"], "*", ms=11, color=col, mec="k",
                    mfc=col if b["in_range"] else "none")
    ax.plot([], [], "k*", mfc="none", label="optimum outside the sampled sizes")
    ax.plot([], [], "k*", label="optimum inside")
    _floor(ax, a)
    _loglog(ax, "parameters N (non-embedding)")
    ax.set_yscale("linear")  # the parabola is in loss, not log loss
    ax.set_title("IsoFLOP profiles")
    ax.legend(fontsize=7)
    fig.colorbar(sm, ax=ax, label="FLOP budget C")
    used = [b for b in iso["budgets"] if b["used"]]
    other = [b for b in iso["budgets"] if b["N_opt"] is not None and not b["used"]]
    ax2.plot([b["C"] for b in used], [b["N_opt"] for b in used], "ko", label="parabola optima (fitted)")
    if other:
        ax2.plot([b["C"] for b in other], [b["N_opt"] for b in other], "ko", mfc="none", label="not used")
    cs = _span(np.array(Cs), pad=3)
    if iso["a"] is not None:
        ax2.plot(cs, iso["k"] * cs ** iso["a"], "r-", label=f"IsoFLOP: N_opt ~ C^{iso['a']:.3f}")
    copt = a.compute_optimal
    if copt and copt.get("a") is not None:
        rows = copt["at_compute"]
        ax2.plot([r["C"] for r in rows[:2]], [r["N_opt"] for r in rows[:2]], "b--",
                 label=f"{copt['law']} surface: a = {copt['a']:.3f}")
    _loglog(ax2, "compute C = 6 N D (FLOPs)", "N_opt")
    ax2.set_title("compute-optimal model size")
    ax2.legend(fontsize=7)
    return "isoflop.png", fig


@figure
def compute_optimal(a: Analysis):
    """N_opt(C) and D_opt(C) on the selected surface with bootstrap 95% bands."""
    copt = a.compute_optimal
    if not copt or copt.get("a") is None:
        return None
    t = a.table
    rows = copt["at_compute"]
    C = np.array([r["C"] for r in rows])
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    for key, col in (("N_opt", "C0"), ("D_opt", "C1")):
        v = np.array([r[key] for r in rows])
        ax.plot(C, v, col + "o-", label=f"{key} ({copt['law']})")
        ci = [r["ci95"].get(key) for r in rows]
        if all(ci):
            ax.fill_between(C, [c[0] for c in ci], [c[1] for c in ci], color=col, alpha=0.2, lw=0)
    ax.plot(t.C, t.N, "C0.", alpha=0.5, label="runs: N")
    ax.plot(t.C, t.D, "C1.", alpha=0.5, label="runs: D")
    ax.axvspan(float(t.C.min()), float(t.C.max()), color="0.9", zorder=0, label="sweep's compute range")
    _loglog(ax, "compute C = 6 N D (FLOPs)", "N (params) or D (tokens)")
    ax.set_title(f"compute-optimal allocation ({copt['law']}): a = {copt['a']:.3f} {_ci_txt(copt['ci95'].get('a'))}")
    ax.legend(fontsize=7)
    return "compute_optimal.png", fig


# -- per-skill probes (harness.analysis.probes) ---------------------------------------

_PROBE_PANELS = (("accuracy", "exact-match accuracy", "linear"),
                 ("logprob", "log p(right answer) (nats)", "linear"),
                 ("loss", "loss (nats/token)", "log"))


def _bucket_colors(n: int):
    return [cm.viridis(v) for v in np.linspace(0.0, 0.92, n)]


def _bucket_label(pr: dict, b: int) -> str:
    return f"{pr['buckets'][b]} ({pr['mass'][b]:.1%} of mass)"


@figure
def probes_vs_size(a: Analysis):
    """Per-bucket exact match, answer log-probability and loss against N (one run per
    size at one D) next to the aggregate loss: the same skills under a discontinuous
    and a continuous metric (Schaeffer et al. 2023), with the fitted sigmoids."""
    pr, pdata = a.probes, a.probe_data
    if not pr:
        return None
    from harness.analysis.probes import sigmoid

    ser = np.array([pdata.ids.index(i) for i in pr["series"]["runs"]])
    if len(ser) < 2:  # e.g. an IsoFLOP sweep: no two sizes share a D
        return None
    N = pdata.N[ser]
    cols = _bucket_colors(len(pdata.buckets))
    fig = Figure(figsize=(19, 5), layout="constrained")
    axs = fig.subplots(1, 3)
    xs = _span(N)
    handles = []
    for ax, (metric, ylabel, yscale) in zip(axs, _PROBE_PANELS):
        for b in range(len(pdata.buckets)):
            ln, = ax.plot(N, pdata.final[metric][ser, b], "o-", color=cols[b], ms=4, lw=1, label=_bucket_label(pr, b))
            if metric == "accuracy":
                handles.append(ln)
            if metric == "accuracy":
                row = pr["per_bucket"][b]
                if row["status"] == "learned in range" and row["sigmoid"]:
                    s = row["sigmoid"]
                    ax.plot(xs, sigmoid(np.log10(xs), s["lo"], s["hi"], s["k"], s["m"]), "-" if row["identified"]
                            else ":", color=cols[b], lw=1.6, alpha=0.8)
        ax.set_xscale("log")
        ax.set_yscale(yscale)
        ax.set_xlabel("parameters N (non-embedding)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.2)
    axs[0].axhline(pr["learned_threshold"], color="0.4", ls="--", lw=0.8)
    handles += axs[0].plot([], [], "k-", lw=1.6, label="sigmoid fit (dotted: rise not resolved)")
    axs[2].plot(N, pdata.loss[ser], "ks-", lw=2.2, ms=5, label="aggregate validation loss")
    axs[2].yaxis.set_major_formatter(_PLAIN)
    axs[0].set_title(f"exact match, one run per size at D = {pr['series']['D']:.3g} tokens")
    axs[1].set_title("log-probability of the same answers")
    axs[2].set_title("per-bucket loss next to the aggregate loss")
    fig.legend(handles=handles, fontsize=8, loc="outside right upper")
    axs[2].legend(handles=axs[2].get_lines()[-1:], fontsize=7)
    return "probes_vs_size.png", fig


@figure
def probes_vs_compute(a: Analysis):
    """The same metrics against compute C = 6 N tokens over every run's curve: faint
    points, and per bucket the best any run has reached by that compute (for the loss,
    the compute frontier of the aggregate loss in black)."""
    pr, pdata = a.probes, a.probe_data
    if not pr or len(pdata.point_C) == 0:
        return None
    cols = _bucket_colors(len(pdata.buckets))
    order = np.argsort(pdata.point_C, kind="stable")
    C = pdata.point_C[order]
    fig = Figure(figsize=(19, 5), layout="constrained")
    axs = fig.subplots(1, 3)
    for ax, (metric, ylabel, yscale) in zip(axs, _PROBE_PANELS):
        for b in range(len(pdata.buckets)):
            v = pdata.points[metric][order, b]
            ax.plot(C, v, ".", color=cols[b], ms=2, alpha=0.25)
            env = np.fmin.accumulate(v) if metric == "loss" else np.fmax.accumulate(v)
            ax.plot(C, env, "-", color=cols[b], lw=1.4, label=_bucket_label(pr, b))
        ax.set_xscale("log")
        ax.set_yscale(yscale)
        ax.set_xlabel("compute C = 6 N tokens (FLOPs)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.2)
    for row, col in zip(pr["per_bucket"], cols):
        if row["learned_at_C"]:
            axs[0].plot(row["learned_at_C"], pr["learned_threshold"], "D", color=col, mec="k", ms=6)
    axs[0].axhline(pr["learned_threshold"], color="0.4", ls="--", lw=0.8)
    axs[2].plot(a.frontier["C"], a.frontier["loss"], "k-", lw=2.2, label="aggregate loss: compute frontier")
    axs[2].yaxis.set_major_formatter(_PLAIN)
    axs[0].set_title("exact match (line: best so far; diamond: learned)")
    axs[1].set_title("log-probability of the same answers")
    axs[2].set_title("per-bucket loss and the aggregate loss")
    fig.legend(handles=[ln for ln in axs[0].get_lines() if ln.get_label() and not ln.get_label().startswith("_")],
               fontsize=8, loc="outside right upper")
    axs[2].legend(handles=axs[2].get_lines()[-1:], fontsize=7)
    return "probes_vs_compute.png", fig


@figure
def probes_order(a: Analysis):
    """Left: the compute at which each bucket is learned against its frequency
    (Michaud et al. 2023 predict frequent first). Right: the aggregate loss at which
    buckets are learned against the mass of rarer buckets, the line extrapolated to
    the next bucket, and what the held-out runs show."""
    pr = a.probes
    if not pr:
        return None
    cols = _bucket_colors(len(pr["buckets"]))
    fig = Figure(figsize=(13, 5), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    rows = pr["per_bucket"]
    Cs = [r["learned_at_C"] for r in rows if r["learned_at_C"]]
    lo, hi = (min(Cs) / 3, max(Cs) * 3) if Cs else (1.0, 10.0)
    for r, col in zip(rows, cols):
        if r["learned_at_C"]:
            ax.plot(r["mass"], r["learned_at_C"], "o", color=col, ms=8, mec="k")
        elif r["learned_at_C_bound"] == "above":
            ax.plot(r["mass"], hi, "^", color=col, ms=9, mec="k")
        elif r["learned_at_C_bound"] == "below":
            ax.plot(r["mass"], lo, "v", color=col, ms=9, mec="k")
    lo_ = pr["learning_order"]["by_C"]
    rho = lo_.get("spearman_rho")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bucket probability mass")
    ax.set_ylabel(f"compute at which a run first reaches {pr['learned_threshold']:.0%} exact match")
    ax.set_title("learning order" + (f": Spearman rho (frequency rank, C) = {rho:.2f}" if rho is not None else ""))
    ax.plot([], [], "k^", label="not learned in the sweep (drawn at the top)")
    ax.plot([], [], "kv", label="learned before the first evaluation")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.2)
    p = pr["prediction"]
    ax2.set_xlabel("mass of rarer buckets + half its own")
    ax2.set_ylabel("aggregate loss when learned, L* (nats/token)")
    ax2.grid(True, which="both", alpha=0.2)
    if not p.get("thresholds"):
        ax2.text(0.5, 0.5, p.get("reason", "not testable"), ha="center", va="center", wrap=True, fontsize=9,
                 transform=ax2.transAxes)
        ax2.set_title("prediction check")
        return "probes_order.png", fig
    T = np.array([t["tail_mass"] for t in p["thresholds"]])
    L = np.array([t["L_star"] for t in p["thresholds"]])
    ax2.plot(T, L, "ko", label="buckets learned by the training runs")
    if p.get("testable"):
        tn = p["next_tail_mass"]
        ts = np.linspace(0, max(T.max(), tn) * 1.05, 50)
        ln = p["threshold_line"]
        ax2.plot(ts, ln["a"] + ln["c"] * ts, "r-", lw=1.2, label="line through the two rarest, extrapolated")
        la = p["all_buckets_line"]
        ax2.plot(ts, la["a"] + la["c"] * ts, "r:", lw=1, label="line through all of them")
        ax2.plot(tn, p["predicted_L_star"], "r*", ms=14, label=f"predicted for {p['next_bucket']}")
        if p.get("observed_L") is not None:
            ax2.plot(tn, p["observed_L"], "b*", ms=14, mfc="none", label="observed in the held-out runs")
        err = p.get("error_decades")
        ax2.set_title("does the aggregate loss predict the next skill?"
                      + (f" N error {err:+.2f} decades" if err is not None else ""))
    else:  # the reason is a sentence or two: wrapped to the panel's width, not clipped at the figure's edge
        ax2.set_title(textwrap.fill(p.get("reason", "not testable"), 95), fontsize=8)
    ax2.legend(fontsize=7)
    return "probes_order.png", fig


# -- repeated data (harness.analysis.data_constrained) --------------------------------

def _dc(a: Analysis):
    dc = a.data_constrained
    return (dc, a.fits.get(dc["law"])) if dc else (None, None)


@figure
def loss_vs_epochs(a: Analysis):
    """Loss against epochs at fixed compute: one line per (N, D) budget whose runs differ
    only in U_D (Muennighoff et al. 2023, fig. 3), with the data-constrained law."""
    dc, f = _dc(a)
    if f is None:
        return None
    t = a.table
    U = np.minimum(t.XU[:, 2], t.D)
    ep = t.D / U
    nl, dl = group_values(t.N), group_values(t.D)
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    norm, sm = _size_colors(t.N)
    markers = "osD^v<>p"
    for gn in np.unique(nl):
        for gd in np.unique(dl):
            idx = np.flatnonzero((nl == gn) & (dl == gd))
            if len(np.unique(np.round(ep[idx], 6))) < 3:
                continue
            idx = idx[np.argsort(ep[idx])]
            n, d = float(np.median(t.N[idx])), float(np.median(t.D[idx]))
            c = sm.to_rgba(n)
            mk = markers[int(gd) % len(markers)]
            ax.plot(ep[idx], t.loss[idx], mk, color=c, ms=5, label=f"N={n:.2g}, D={d:.2g} (C={6 * n * d:.2g})")
            es = np.geomspace(1.0, float(ep[idx].max()) * 1.3, 100)
            ax.plot(es, f.predict(np.column_stack([np.full_like(es, n), np.full_like(es, d), d / es])), "-",
                    color=c, lw=1)
    _floor(ax, a)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PLAIN)
    ax.set_xlabel("epochs D / U_D (same N and D: fixed compute)")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(True, which="both", alpha=0.2)
    ci = dc.get("R_D*_ci95")
    ax.set_title(f"Repeating data at fixed compute; lines: {dc['law']}, R_D* = {dc['R_D*']:.3g}"
                 + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""), fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.colorbar(sm, ax=ax, label="N (non-embedding params)")
    return "loss_vs_epochs.png", fig


@figure
def repeated_token_value(a: Analysis):
    """What a repeated token is worth in fresh ones, (D' - U_D) / (D - U_D), against
    epochs: the law's curve (with its 95% band from the R_D* bootstrap) and each run's
    observed value (the fresh-data D at which the law predicts its loss)."""
    dc, f = _dc(a)
    if f is None:
        return None
    runs = dc["runs"]
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    es = np.geomspace(1.01, max(64.0, max(r["epochs"] for r in runs) * 1.3), 200)
    ax.plot(es, value_per_repeat(es - 1, dc["R_D*"]), "k-", lw=1.5, label=f"{dc['law']} (joint fit): R_D* = {dc['R_D*']:.3g}")
    bp = f.boot_params()
    if bp is not None and len(bp):
        k = f.names.index("R_D*")
        v = value_per_repeat(es[None, :] - 1, bp[:, k, None])
        lo, hi = np.percentile(v, [2.5, 97.5], axis=0)
        ax.fill_between(es, lo, hi, color="0.6", alpha=0.3, lw=0, label="95% band (bootstrap)")
    ts = dc.get("two_stage")
    if ts:
        ci = (ts.get("ci95") or {}).get("R_D*")
        ax.plot(es, value_per_repeat(es - 1, ts["params"]["R_D*"]), "--", color="C0", lw=1.3,
                label=f"two-stage (fresh law fixed): R_D* = {ts['params']['R_D*']:.3g}"
                      + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""))
    ax.plot(es, value_per_repeat(es - 1, 15.4), ":", color="C3", lw=1.2,
            label="Muennighoff et al. 2023 (C4): R_D* = 15.4")
    N = np.array([r["N"] for r in runs])
    norm, sm = _size_colors(N)
    obs = [(r["epochs"], r["value_observed"], r["N"]) for r in runs if r["value_observed"] is not None]
    if obs:
        e, v, n = map(np.array, zip(*obs))
        ax.scatter(e, v, c=n, cmap="viridis", norm=norm, s=22, zorder=3, label="runs: observed, against the fresh-data law")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.set_xlabel("epochs D / U_D")
    ax.set_ylabel("value of a repeated token (fresh tokens)")
    ax.grid(True, which="both", alpha=0.2)
    ax.set_title("A repeated token against a fresh one", fontsize=10)
    ax.legend(fontsize=7)
    fig.colorbar(sm, ax=ax, label="N (non-embedding params)")
    return "repeated_token_value.png", fig


@figure
def skills_heldout(a: Analysis):
    """Left: exact match against each bucket's own loss over every curve point, with the
    fitted sigmoids (step 2). Right: the held-out largest runs' exact match, predicted in
    two steps (with 95% intervals) and by the one-step baseline, against what they got."""
    sk, pdata = a.skills, a.probe_data
    if not sk:
        return None
    from harness.analysis.skills import accuracy_of_loss

    cols = _bucket_colors(len(pdata.buckets))
    fig = Figure(figsize=(14, 5.5), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    for b, (row, col) in enumerate(zip(sk["buckets"], cols)):
        L, acc = pdata.points["loss"][:, b], pdata.points["accuracy"][:, b]
        ax.plot(L, acc, ".", color=col, ms=2.5, alpha=0.35)
        if row.get("sigmoid"):
            xs = np.linspace(np.nanmin(L), np.nanmax(L), 200)
            ax.plot(xs, accuracy_of_loss(row["sigmoid"]["params"], xs), "-" if row["predictable"] else ":",
                    color=col, lw=1.8, label=f"{row['bucket']}" + ("" if row["predictable"] else
                                                                    f" ({', '.join(row['flags'])})"))
        else:
            ax.plot([], [], ".", color=col, label=f"{row['bucket']} ({', '.join(row['flags'])}: not fitted)")
    ax.set_xlabel("bucket loss (nats)")
    ax.set_ylabel("exact match")
    ax.set_title("step 2: exact match against the bucket's loss, every curve point")
    ax.grid(True, alpha=0.2)
    ax.legend(fontsize=7)
    h = sk["heldout"]
    ax2.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
    ax2.set_xlabel("observed exact match (held-out runs)")
    ax2.set_ylabel("predicted exact match")
    ax2.grid(True, alpha=0.2)
    if h.get("skipped"):
        ax2.text(0.5, 0.5, h["skipped"], ha="center", va="center", wrap=True, fontsize=9, transform=ax2.transAxes)
        ax2.set_title("held-out check")
        return "skills_heldout.png", fig
    for row, col in zip(h["per_bucket"], cols):
        for x in row["runs"]:
            if x.get("two_step") is not None:
                iv = x.get("interval")
                yerr = None if not iv else [[x["two_step"] - iv[0]], [iv[1] - x["two_step"]]]
                ax2.errorbar(x["observed"], x["two_step"], yerr=yerr, fmt="o", color=col, ms=6, mec="k",
                             capsize=2, lw=1, alpha=1.0 if row["predictable"] else 0.4)
            if x.get("one_step") is not None:
                ax2.plot(x["observed"], x["one_step"], "x", color=col, ms=7, mew=1.6)
    ax2.plot([], [], "ko", label="two steps, 95% interval")
    ax2.plot([], [], "kx", label="one step: sigmoid in log C")
    s = h["summary"]["predictable"]
    ax2.set_title(f"held out: {h['criterion']}"
                  + (f"\nmean error {s['two_step_error']:.3f} (two steps), {s['one_step_error']:.3f} (one step)"
                     if s["two_step_error"] is not None and s["one_step_error"] is not None else ""), fontsize=10)
    ax2.set_xlim(-0.03, 1.03)
    ax2.set_ylim(-0.03, 1.03)
    ax2.legend(fontsize=8, loc="upper left")
    return "skills_heldout.png", fig
