"""Figures (PNG, log-log, matplotlib's Agg canvas through the object API, so nothing
touches pyplot's global state).

Each figure is a function ``Analysis -> (file name, Figure) | None`` registered in
``FIGURES`` with :func:`figure`; returning None skips it (e.g. no iso-FLOP groups). To
add one (per-skill probes, say), write the function and decorate it. The figures show
the data as measured and the fits as fitted: no smoothing, no points dropped that the
fit used, the same axes conventions everywhere (loss in nats per token, N =
params_nonembedding, C = 6ND FLOPs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib import cm, colors
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from harness.analysis.compute_optimal import optimal_nd
from harness.analysis.context import Analysis
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
            if ax.yaxis.get_major_formatter() is _PLAIN:
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
    for v in a.table.entropy_floor:
        ax.axhline(v, color="0.3", ls="--", lw=1, label=f"entropy floor {v:.3f} nats")


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
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.2)


# -- figures -------------------------------------------------------------------------

@figure
def scaling_laws(a: Analysis):
    """Kaplan et al. (2020) figure 1: loss against compute (every run's curve and the
    frontier), against data and against parameters, each with its fitted law."""
    t = a.table
    fig = Figure(figsize=(16, 4.8), layout="constrained")
    axs = fig.subplots(1, 3)
    norm, sm = _size_colors(t.N)
    ax = axs[0]
    for cv in t.curves:
        style = dict(lw=0.9, alpha=0.75, color=sm.to_rgba(cv["N"]))
        if len(cv["C"]) > 1:
            ax.plot(cv["C"], cv["loss"], **style)
        else:
            ax.plot(cv["C"], cv["loss"], "o", ms=3, **style)
    fr = a.frontier
    ax.plot(fr["C"], fr["loss"], "o", mfc="none", mec="k", ms=5, label="frontier (fitted)")
    f = a.fits.get("L_C")
    if f is not None:
        c = _span(fr["C"])
        ax.plot(c, f.predict(c), "r-", lw=1.6, label="L(C): " + _fmt(f.params, f.law.names))
    _floor(ax, a)
    _loglog(ax, "compute C = 6 N D (FLOPs)")
    ax.set_title("loss vs compute")
    ax.legend(fontsize=7)
    fig.colorbar(sm, ax=ax, label="N (non-embedding params)")
    for ax, name, x, xlabel in ((axs[1], "L_D", t.D, "tokens D"), (axs[2], "L_N", t.N, "parameters N (non-embedding)")):
        pts = a.law_points[name]
        ax.plot(x, t.loss, ".", color="0.75", ms=5, label="all runs (final)")
        ax.plot(pts["x"], pts["loss"], "o", color="C0", ms=5, label="points fitted")
        f = a.fits.get(name)
        if f is not None:
            xs = _span(x)
            ax.plot(xs, f.predict(xs), "r-", lw=1.6, label=f"{f.law.form}: " + _fmt(f.params, f.law.names))
        _floor(ax, a)
        _loglog(ax, xlabel)
        ax.set_title(f"loss vs {'data' if name == 'L_D' else 'parameters'}")
        ax.legend(fontsize=7)
    return "scaling_laws.png", fig


@figure
def loss_vs_data_by_size(a: Analysis):
    """L(N, D): final loss against D for each model size, with the Chinchilla fit."""
    t = a.table
    f = a.fits.get("chinchilla")
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.subplots()
    norm, sm = _size_colors(t.N)
    labels = group_values(t.N, rtol=0.01)
    sizes = np.array([float(np.median(t.N[labels == g])) for g in range(labels.max() + 1)])
    ax.scatter(t.D, t.loss, c=t.N, cmap="viridis", norm=norm, s=16)
    # One fitted line per model size while that stays readable, else at 8 sizes
    # spread evenly in log N (the legend says which).
    lines = sizes if len(sizes) <= 12 else np.unique(sizes[np.abs(np.log(sizes)[:, None] - np.linspace(
        np.log(sizes.min()), np.log(sizes.max()), 8)[None, :]).argmin(axis=0)])
    ds = _span(t.D)
    if f is not None:
        for n in lines:
            ax.plot(ds, f.predict(np.column_stack([np.full_like(ds, n), ds])), "-", color=sm.to_rgba(n), lw=1)
        which = "every size" if len(lines) == len(sizes) else f"{len(lines)} of {len(sizes)} sizes"
        ax.plot([], [], "k-", lw=1, label=f"Chinchilla fit ({which}): " + _fmt(f.params, f.law.names))
    _floor(ax, a)
    _loglog(ax, "tokens D")
    ax.set_title("L(N, D): final loss by model size")
    ax.legend(fontsize=7)
    fig.colorbar(sm, ax=ax, label="N (non-embedding params)")
    return "loss_vs_data_by_size.png", fig


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
    f = a.fits.get("chinchilla")
    if f is not None:
        p = f.params
        ax2.plot(cs, optimal_nd(cs, p["A"], p["B"], p["alpha"], p["beta"])[0], "b--",
                 label=f"Chinchilla fit: N_opt ~ C^{p['beta'] / (p['alpha'] + p['beta']):.3f}")
    _loglog(ax2, "compute C = 6 N D (FLOPs)", "N_opt")
    ax2.set_title("compute-optimal model size")
    ax2.legend(fontsize=7)
    return "isoflop.png", fig


@figure
def compute_optimal(a: Analysis):
    """N_opt(C) and D_opt(C) from the Chinchilla fit with bootstrap 95% bands."""
    f = a.fits.get("chinchilla")
    if f is None:
        return None
    t = a.table
    cs = np.geomspace(float(t.C.min()) / 10, float(t.C.max()) * 100, 100)
    p = f.params
    n, d = optimal_nd(cs, p["A"], p["B"], p["alpha"], p["beta"])
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.subplots()
    bp = f.boot_params()
    if bp is not None and len(bp):
        bn, bd = optimal_nd(cs[None, :], bp[:, 1:2], bp[:, 2:3], bp[:, 3:4], bp[:, 4:5])
        for arr, col in ((bn, "C0"), (bd, "C1")):
            lo, hi = np.nanpercentile(arr, [2.5, 97.5], axis=0)
            ax.fill_between(cs, lo, hi, color=col, alpha=0.2, lw=0)
    a_, b_ = p["beta"] / (p["alpha"] + p["beta"]), p["alpha"] / (p["alpha"] + p["beta"])
    ax.plot(cs, n, "C0-", label=f"N_opt ~ C^{a_:.3f} (band: bootstrap 95%)")
    ax.plot(cs, d, "C1-", label=f"D_opt ~ C^{b_:.3f}")
    ax.plot(t.C, t.N, "C0.", alpha=0.5, label="runs: N")
    ax.plot(t.C, t.D, "C1.", alpha=0.5, label="runs: D")
    ax.axvspan(float(t.C.min()), float(t.C.max()), color="0.9", zorder=0, label="sweep's compute range")
    _loglog(ax, "compute C = 6 N D (FLOPs)", "N (params) or D (tokens)")
    ax.set_title("compute-optimal allocation (Chinchilla fit)")
    ax.legend(fontsize=7)
    return "compute_optimal.png", fig


@figure
def residuals(a: Analysis):
    """log(pred) - log(obs) of the two-variable laws against compute, coloured by N."""
    t = a.table
    fits = [(k, a.fits.get(k)) for k in ("chinchilla", "kaplan")]
    fits = [(k, f) for k, f in fits if f is not None]
    if not fits:
        return None
    fig = Figure(figsize=(6.5 * len(fits), 4.5), layout="constrained")
    axs = np.atleast_1d(fig.subplots(1, len(fits)))
    norm, sm = _size_colors(t.N)
    for ax, (k, f) in zip(axs, fits):
        r = f.log_residuals
        ax.scatter(t.C, r, c=t.N, cmap="viridis", norm=norm, s=12)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("compute C = 6 N D (FLOPs)")
        ax.set_ylabel("log(predicted) - log(observed)")
        ax.set_title(f"{k} residuals (R^2 log = {f.r2_log:.4f}, RMS = {np.sqrt(np.mean(r ** 2)):.3g})")
        ax.grid(True, alpha=0.2)
    fig.colorbar(sm, ax=axs[-1], label="N (non-embedding params)")
    return "residuals.png", fig
