"""``harness-compare``: a change's effect on the compute frontier, as an effective compute multiplier.

    harness-compare BASE_DIR VARIANT_DIR [--out DIR]

Writes compare.json, compare.md and figures/ (the overlaid frontiers, the multiplier
curve) into ``--out`` (default ``./compare``). Sweeps that cannot be compared, and
folders without enough records, print one line and exit with status 2, writing nothing.

Conventions:

- Each sweep's L(C) is the end-of-schedule compute frontier of ``harness-fit``
  (:func:`harness.analysis.frontier.frontier_points`), fitted as the line
  log(L - F) = log A - gamma log C with F the sweeps' shared known floor
  (:func:`harness.analysis.frontier.line_fit`; F = 0 when no floor is known).
- The effective compute multiplier at a loss L is m(L) = C_base(L) / C_variant(L): the
  compute the base needs to reach L over the compute the variant needs. m > 1: the
  variant reaches the loss with less compute (a variant whose loss is the base's at
  k C has m = k). The curve is over the losses both frontiers reach, plotted against the
  base's compute C_base(L); its summary is the geometric mean over a grid uniform in log C.
- The exponent difference is gamma_variant - gamma_base.
- 95% intervals are percentile bootstrap intervals: runs are resampled with replacement
  within each sweep, and the frontiers, lines and multipliers are recomputed.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.analysis.errors import TableError
from harness.analysis.frontier import frontier_points, line_fit
from harness.analysis.pipeline import jsonable
from harness.analysis.table import Table, from_records

N_RESAMPLES = 1000
SEED = 0
GRID = 60  # losses on the multiplier curve
# data keys that set how much a run trains on, not what it trains or is evaluated on
TRAIN_ONLY = {"tokens", "flop_budget", "unique_tokens", "cache_dir"}
SOURCE_KEYS = {"source", "path", "hub_dataset"}
VOCAB_KEYS = {"vocab", "tokenizer_vocab"}


@dataclass
class Sweep:
    name: str
    records: list[dict]
    table: Table


def load_sweep(path: str | Path) -> Sweep:
    """A sweep's ok records and its table; :class:`TableError` when unusable."""
    from harness.records import load_records

    if not Path(path).is_dir():
        raise TableError(f"no such folder: {path}")
    records, problems = load_records(path)
    table = from_records(records, problems, source=str(path))
    ok = set(table.ids)
    return Sweep(str(path), [r for r in records if r.get("run_id") in ok], table)


def data_identity(records: list[dict]) -> dict[str, set]:
    """Per config key (``data.*`` except training-amount keys, and ``model.context``), the
    set of values the runs use: what fixes the data, its tokenizer and the held-out windows."""
    out: dict[str, set] = {}
    for rec in records:
        cfg = rec.get("config") or {}
        data = cfg.get("data") or {}
        items = {f"data.{k}": v for k, v in data.items() if k not in TRAIN_ONLY}
        items["model.context"] = (cfg.get("model") or {}).get("context")
        for k, v in items.items():
            out.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    return out


def check_comparable(base: Sweep, variant: Sweep) -> list[str]:
    """Raise :class:`TableError` (one line) when the sweeps train on different data or
    evaluate on different held-out sets; return the config keys that were compared."""
    ib, iv = data_identity(base.records), data_identity(variant.records)
    keys = sorted(set(ib) | set(iv))
    diff = [k for k in keys if ib.get(k, {"null"}) != iv.get(k, {"null"})]
    if diff:
        short = {k.split(".", 1)[1] for k in diff}
        what = ("different data source" if short & SOURCE_KEYS else
                "different tokenizer or vocabulary" if short & VOCAB_KEYS else "held-out sets that differ")
        shown = "; ".join(f"{k}: {'/'.join(sorted(ib.get(k, {'null'})))} vs {'/'.join(sorted(iv.get(k, {'null'})))}"
                          for k in diff[:3])
        raise TableError(f"cannot compare {base.name} and {variant.name}: {what} ({shown})")
    fb, fv = base.table.floor, variant.table.floor
    if (fb is None) != (fv is None) or (fb is not None and abs(fb - fv) > 1e-9 * max(1.0, abs(fb))):
        raise TableError(f"cannot compare {base.name} and {variant.name}: held-out sets that differ "
                         f"(known floors {fb} vs {fv})")
    return keys


def _frontier(t: Table, idx: np.ndarray, F: float):
    fr = frontier_points(t.C[idx], t.loss[idx], t.N[idx])
    return fr, line_fit(fr["C"], fr["loss"], F)


def _log_c(line: dict, u: np.ndarray) -> np.ndarray:
    """log C at which the line reaches log(L - F) = u."""
    return (np.log(line["A"]) - u) / line["gamma"]


def _estimate(lb: dict, lv: dict, u: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(log m on the grid, log of its geometric mean, gamma_v - gamma_b)."""
    log_m = _log_c(lb, u) - _log_c(lv, u)
    return log_m, float(log_m.mean()), lv["gamma"] - lb["gamma"]


def compare(base: Sweep, variant: Sweep, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """The comparison as a JSON-ready dict (pure computation, no files)."""
    keys = check_comparable(base, variant)
    msgs = []
    F = base.table.floor
    floor_source = base.table.floor_source
    if F is None:
        F, floor_source = 0.0, "unknown: lines fitted to log L (F = 0)"
        msgs.append("no known floor: the lines are fitted to log L, not to the reducible loss")
    tb, tv = base.table, variant.table
    (frb, lb), (frv, lv) = _frontier(tb, np.arange(len(tb)), F), _frontier(tv, np.arange(len(tv)), F)
    for s, fr, line in ((base, frb, lb), (variant, frv, lv)):
        if line is None:
            raise TableError(f"{s.name}: its compute frontier has {int(np.sum(fr['loss'] > F))} points above the "
                             "floor; the line needs at least 3")
        if not line["gamma"] > 0:
            raise TableError(f"{s.name}: its frontier does not fall with compute (gamma = {line['gamma']:.3g})")
    above_b, above_v = frb["loss"][frb["loss"] > F], frv["loss"][frv["loss"] > F]  # the points the lines used
    lo, hi = max(above_b.min(), above_v.min()), min(above_b.max(), above_v.max())
    if not lo < hi:
        raise TableError(f"cannot compare {base.name} and {variant.name}: their frontiers share no loss range "
                         f"(base {above_b.min():.4g}-{above_b.max():.4g}, "
                         f"variant {above_v.min():.4g}-{above_v.max():.4g})")
    u = np.linspace(np.log(lo - F), np.log(hi - F), GRID)
    log_m, log_g, dgamma = _estimate(lb, lv, u)
    rng = np.random.default_rng(seed)
    boot_m, boot_g, boot_d = [], [], []
    for _ in range(n_resamples):
        _, b = _frontier(tb, rng.integers(0, len(tb), len(tb)), F)
        _, v = _frontier(tv, rng.integers(0, len(tv), len(tv)), F)
        if b is None or v is None or b["gamma"] <= 0 or v["gamma"] <= 0:
            continue
        m, g, d = _estimate(b, v, u)
        boot_m.append(m), boot_g.append(g), boot_d.append(d)
    used = len(boot_g)
    if n_resamples and used < 0.9 * n_resamples:
        msgs.append(f"bootstrap: {n_resamples - used} of {n_resamples} resamples left a frontier with fewer than "
                    "3 points above the floor (or a non-decreasing line) and were dropped")

    def ci(a, axis=None):
        return None if not used else np.percentile(np.asarray(a), [2.5, 97.5], axis=axis)

    m_ci, g_ci, d_ci = ci(boot_m, 0), ci(boot_g), ci(boot_d)
    geo = float(np.exp(log_g))
    geo_ci = None if g_ci is None else np.exp(g_ci)
    out = {
        "base": _side(base, frb, lb),
        "variant": _side(variant, frv, lv),
        "floor": {"value": None if floor_source.startswith("unknown") else F, "source": floor_source},
        "compared_config": keys,
        "shared_loss_range": [float(lo), float(hi)],
        "multiplier": {
            "definition": "m(L) = C_base(L) / C_variant(L) from the two frontier lines; m > 1: the variant "
                          "reaches the loss with less compute",
            "geomean": geo, "geomean_ci95": geo_ci,
            "curve": {"loss": F + np.exp(u), "C_base": np.exp(_log_c(lb, u)), "m": np.exp(log_m),
                      "ci95_low": None if m_ci is None else np.exp(m_ci[0]),
                      "ci95_high": None if m_ci is None else np.exp(m_ci[1])},
        },
        "exponent_difference": {"definition": "gamma_variant - gamma_base (L - F ~ C^-gamma)", "value": dgamma,
                                "ci95": d_ci},
        "bootstrap": {"resamples": n_resamples, "used": used, "seed": seed,
                      "method": "runs resampled with replacement within each sweep; frontiers, lines and "
                                "multipliers recomputed; percentile 95% intervals"},
        "warnings": msgs,
    }
    out["verdict"] = verdict(out)
    return jsonable(out)


def _side(s: Sweep, fr: dict, line: dict) -> dict:
    t = s.table
    return {"dir": s.name, "n_runs": len(t), "frontier": {"run_ids": [t.ids[i] for i in fr["run"]], "C": fr["C"],
                                                          "loss": fr["loss"]}, "line": line}


def verdict(c: dict) -> str:
    """One plain sentence: slope change, shift, or no detectable difference."""
    m, mci = c["multiplier"]["geomean"], c["multiplier"]["geomean_ci95"]
    d, dci = c["exponent_difference"]["value"], c["exponent_difference"]["ci95"]
    if mci is None:
        return f"undetermined: no bootstrap, so no interval (multiplier {m:.3g}, exponent difference {d:+.3f})"
    mtxt = f"{m:.3g}x [{mci[0]:.3g}, {mci[1]:.3g}]"
    dtxt = f"{d:+.3f} [{dci[0]:+.3f}, {dci[1]:+.3f}]"
    cur = c["multiplier"]["curve"]  # ordered by increasing loss, so by decreasing base compute
    if dci[0] > 0 or dci[1] < 0:
        return (f"slope change: the exponents differ by {dtxt}, so the multiplier drifts with compute, from "
                f"{cur['m'][-1]:.3g}x at C = {cur['C_base'][-1]:.3g} to {cur['m'][0]:.3g}x at C = "
                f"{cur['C_base'][0]:.3g} (geometric mean {mtxt}).")
    if mci[0] > 1 or mci[1] < 1:
        return (f"shift: the variant is worth {mtxt} the base's compute over the shared loss range, with "
                f"exponents that agree (difference {dtxt}).")
    return f"no detectable difference: the multiplier {mtxt} covers 1 and the exponent difference {dtxt} covers 0."


# -- outputs ---------------------------------------------------------------------------

def _plain_y(ax) -> None:
    """Plain numbers on a log y axis (a short range reads better as 0.6, 0.7 than 6 x 10^-1)."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:.3g}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(fmt)
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _figures(c: dict, base: Sweep, variant: Sweep, folder: Path) -> list[Path]:
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    F = c["floor"]["value"] or 0.0
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    for s, side, color in ((base, c["base"], "tab:blue"), (variant, c["variant"], "tab:orange")):
        t, fr, line = s.table, side["frontier"], side["line"]
        ax.scatter(t.C, t.loss - F, s=10, color=color, alpha=0.3, lw=0)
        ax.plot(fr["C"], np.asarray(fr["loss"]) - F, "o", color=color, ms=5,
                label=f"{Path(side['dir']).name or side['dir']}: frontier ({len(fr['C'])} runs)")
        x = np.geomspace(min(fr["C"]) / 1.5, max(fr["C"]) * 1.5, 50)
        g = line["gamma_ci95"]
        ax.plot(x, line["A"] * x ** -line["gamma"], "-", color=color, lw=1.3,
                label=f"  gamma = {line['gamma']:.3f} [{g[0]:.3f}, {g[1]:.3f}]")
    lo, hi = c["shared_loss_range"]
    ax.axhspan(lo - F, hi - F, color="0.9", zorder=0, label="shared loss range")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("C = 6ND (FLOPs)")
    ax.set_ylabel("L - F (nats/token)" if c["floor"]["value"] is not None else "loss (nats/token)")
    _plain_y(ax)
    ax.set_title("compute frontiers (end-of-schedule losses); faint: all runs", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    paths = [folder / "compare_frontiers.png"]
    fig.savefig(paths[0], dpi=120, metadata={"Software": None})

    cur = c["multiplier"]["curve"]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    C, m = np.asarray(cur["C_base"]), np.asarray(cur["m"])
    o = np.argsort(C)
    if cur["ci95_low"] is not None:
        ax.fill_between(C[o], np.asarray(cur["ci95_low"])[o], np.asarray(cur["ci95_high"])[o], color="tab:orange",
                        alpha=0.25, lw=0, label="95% bootstrap band (pointwise)")
    ax.plot(C[o], m[o], color="tab:orange", label="m(C) = C_base / C_variant at equal loss")
    gm, gci = c["multiplier"]["geomean"], c["multiplier"]["geomean_ci95"]
    ax.axhline(gm, color="tab:orange", ls="--", lw=1,
               label=f"geometric mean {gm:.3g}" + (f" [{gci[0]:.3g}, {gci[1]:.3g}]" if gci else ""))
    ax.axhline(1.0, color="0.3", lw=0.8, ls=":", label="no difference")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("base compute C_base(L) (FLOPs), over the shared loss range")
    ax.set_ylabel("effective compute multiplier m")
    _plain_y(ax)
    ax.set_title("> 1: the variant needs less compute for the same loss", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    paths.append(folder / "compare_multiplier.png")
    fig.savefig(paths[1], dpi=120, metadata={"Software": None})
    return paths


def _ci(v) -> str:
    return "" if v is None else f" [{v[0]:.4g}, {v[1]:.4g}]"


def report_md(c: dict) -> str:
    b, v, m, d = c["base"], c["variant"], c["multiplier"], c["exponent_difference"]
    lines = [
        "# Comparison", "",
        f"**{c['verdict']}**", "",
        f"- base: `{b['dir']}` ({b['n_runs']} runs, {len(b['frontier']['C'])} on the frontier)",
        f"- variant: `{v['dir']}` ({v['n_runs']} runs, {len(v['frontier']['C'])} on the frontier)",
        f"- floor F = {c['floor']['value']} ({c['floor']['source']})",
        f"- shared loss range: {c['shared_loss_range'][0]:.4g} to {c['shared_loss_range'][1]:.4g} nats/token",
        "", "| | base | variant |", "|---|---|---|",
        f"| gamma (L - F ~ C^-gamma), t interval | {b['line']['gamma']:.4f}{_ci(b['line']['gamma_ci95'])} | "
        f"{v['line']['gamma']:.4f}{_ci(v['line']['gamma_ci95'])} |",
        f"| A | {b['line']['A']:.4g} | {v['line']['A']:.4g} |",
        f"| RMS log residual | {b['line']['rms_log_reducible']:.4f} | {v['line']['rms_log_reducible']:.4f} |",
        "",
        f"- effective compute multiplier, geometric mean: **{m['geomean']:.4g}**{_ci(m['geomean_ci95'])} "
        f"({m['definition']})",
        f"- exponent difference {d['definition']}: **{d['value']:+.4f}**{_ci(d['ci95'])}",
        f"- intervals: {c['bootstrap']['method']}; {c['bootstrap']['used']} of {c['bootstrap']['resamples']} "
        f"resamples used, seed {c['bootstrap']['seed']}",
        "- not measured: whether the difference holds outside the shared loss range, or at other "
        "hyperparameters than the ones each sweep ran",
    ]
    cur = m["curve"]
    idx = np.unique(np.linspace(0, len(cur["m"]) - 1, 5).astype(int))
    lines += ["", "| base compute C | loss | m | 95% |", "|---|---|---|---|"]
    for i in idx[::-1]:
        band = "" if cur["ci95_low"] is None else f"[{cur['ci95_low'][i]:.3g}, {cur['ci95_high'][i]:.3g}]"
        lines.append(f"| {cur['C_base'][i]:.3g} | {cur['loss'][i]:.4g} | {cur['m'][i]:.3g} | {band} |")
    if c["warnings"]:
        lines += ["", "Warnings:", *[f"- {w}" for w in c["warnings"]]]
    if c.get("figures"):
        lines += ["", *[f"![{Path(f).stem}]({f})" for f in c["figures"]]]
    return "\n".join(lines) + "\n"


def compare_dirs(base_dir: str | Path, variant_dir: str | Path, out_dir: str | Path,
                 n_resamples: int = N_RESAMPLES, seed: int = SEED, figures: bool = True) -> dict:
    """Compare two sweeps' records and write compare.json, compare.md and figures/.
    Every input problem raises :class:`TableError` before anything is written."""
    from harness.records import atomic_write_text

    base, variant = load_sweep(base_dir), load_sweep(variant_dir)
    c = compare(base, variant, n_resamples, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(c, base, variant, out / "figures") if figures else []
    c["figures"] = [str(p.relative_to(out)) for p in figs]
    atomic_write_text(out / "compare.json", json.dumps(c, indent=1, allow_nan=False) + "\n")
    atomic_write_text(out / "compare.md", report_md(c))
    return {"compare": c, "json": out / "compare.json", "report": out / "compare.md", "figures": figs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="harness-compare", description="Compare two sweeps' compute frontiers: the "
                                "variant's effective compute multiplier and exponent difference, with bootstrap "
                                "intervals.")
    p.add_argument("base_dir", help="the base sweep's results folder (runs/*.json)")
    p.add_argument("variant_dir", help="the variant sweep's results folder")
    p.add_argument("--out", default="compare", help="output folder (default ./compare)")
    p.add_argument("--resamples", type=int, default=N_RESAMPLES, help=f"bootstrap resamples (default {N_RESAMPLES})")
    p.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed (default {SEED})")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    args = p.parse_args(argv)
    if args.resamples < 0:
        p.error("--resamples must be >= 0")
    with warnings.catch_warnings():
        warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
        try:
            res = compare_dirs(args.base_dir, args.variant_dir, args.out, args.resamples, args.seed,
                               not args.no_figures)
        except TableError as e:
            print(f"harness-compare: error: {e}", file=sys.stderr)
            return 2
    c = res["compare"]
    print(f"wrote {res['json']}, {res['report']} and {len(res['figures'])} figures")
    print(c["verdict"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
