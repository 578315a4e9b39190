"""``harness-fit``: fit a sweep's records or any CSV table.

    harness-fit RESULTS_DIR [--out DIR]
    harness-fit --csv FILE --n COL (--d COL | --c COL) --loss COL [--d-unique COL] [--floor F] [--out DIR]

Writes fit.json, figures/*.png and report.md (and runs.csv for records) into ``--out``
(default: RESULTS_DIR, or ``./<csv stem>_fit`` for a CSV). Input problems print one
line and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from harness.analysis.errors import TableError
from harness.analysis.pipeline import N_JOBS, N_RESAMPLES, SEED, fit_results_dir, fit_table
from harness.analysis.table import from_csv
from harness.tracking import log_analysis, wandb_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness-fit", description="Fit scaling laws (joint forms chosen by held-out "
                                "error, L(N), L(D), L(C), compute-optimal allocation, IsoFLOP) with bootstrap intervals.")
    p.add_argument("results_dir", nargs="?", help="a sweep folder holding runs/*.json")
    p.add_argument("--csv", help="fit this CSV table instead of run records")
    p.add_argument("--n", help="CSV column with the parameter count N")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--d", help="CSV column with training tokens D")
    g.add_argument("--c", help="CSV column with training compute C; then D = C / (6 N)")
    p.add_argument("--loss", help="CSV column with the final loss")
    p.add_argument("--d-unique", metavar="COL", help="CSV column with the unique tokens U_D of each row (repeated "
                   "data, D / U_D epochs): adds Muennighoff et al.'s data-constrained laws")
    p.add_argument("--id", dest="id_col", help="CSV column naming each row (default: row index)")
    p.add_argument("--flop-budget", help="CSV column with an iso-FLOP group's budget (empty when none); without it, "
                   "rows sharing a compute within 1%% (3 or more) form IsoFLOP groups")
    p.add_argument("--floor", type=float, help="the known irreducible loss F: every law fixes E = F")
    p.add_argument("--huber-delta", type=float, metavar="DELTA", help="fit by the summed Huber loss of log "
                   "residuals instead of least squares (Epoch's Chinchilla replication uses 1e-3)")
    p.add_argument("--drop-highest-loss", type=int, default=0, metavar="K",
                   help="drop the K highest-loss rows first (Epoch's Chinchilla replication drops 5)")
    p.add_argument("--out", help="output folder (default: RESULTS_DIR, or ./<csv stem>_fit)")
    p.add_argument("--resamples", type=int, default=N_RESAMPLES, help=f"bootstrap resamples (default {N_RESAMPLES})")
    p.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed (default {SEED})")
    p.add_argument("--jobs", type=int, default=N_JOBS, help=f"bootstrap worker processes (default {N_JOBS})")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-skills", action="store_true", help="skip the two-step skill prediction (fit.json then has "
                   "no skills block; with probes it is most of the fit's time)")
    p.add_argument("--wandb", choices=["online", "offline", "disabled"], default="disabled",
                   help="also log the fit as a wandb analysis run (offline: into the output folder's wandb/)")
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=file or sys.stderr)


def _summary(res: dict) -> str:
    f = res["fit"]
    lines = [f"wrote {res['fit_json']}, {res['report']} and {len(res['figures'])} figures"]
    sel = f.get("selected")
    if sel:
        law = f["laws"][sel]
        lines.append(f"selected: {sel} (L = {law['form']}), " + ", ".join(f"{k}={v:.4g}" for k, v in law["params"].items())
                     + f"; RMS log {law['rms_log']:.4f}")
    for h, e in (f.get("extrapolation") or {}).items():
        if e.get("reducible_error") is not None:
            b = e["baselines"]
            unit = "of the reducible loss" if f["floor"]["value"] is not None else "of the loss (no known floor)"
            lines.append(f"  held out {h}: {e['reducible_error']:.1%} {unit} ({e['nats']:.4f} nats); "
                         f"baselines {', '.join(f'{k} {v:.1%}' for k, v in b.items() if v is not None)}"
                         f"{'' if e['passes'] else '  (does not beat them)'}")
    dc = f.get("data_constrained")
    if dc:
        ci = dc.get("R_D*_ci95")
        lines.append(f"repeated data ({dc['law']}): R_D* = {dc['R_D*']:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")
                     + (f", R_N* = {dc['R_N*']:.3g}" if dc.get("R_N*") is not None else "")
                     + "; a repeated token is worth " + ", ".join(f"{v['value_law']:.2f} at {v['epochs']} epochs"
                                                                  for v in dc["value_of_a_repeated_token"][1:4:2]))
    co = f.get("compute_optimal") or {}
    if co.get("a") is not None:
        ci = (co.get("ci95") or {}).get("a")
        lines.append(f"compute-optimal a={co['a']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    elif co.get("reason"):
        lines.append(f"compute-optimal: none ({co['reason']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if (args.results_dir is None) == (args.csv is None):
        p.error("give either RESULTS_DIR or --csv FILE")
    if args.csv and not (args.n and args.loss and (args.d or args.c)):
        p.error("--csv needs --n COL, --loss COL and one of --d COL or --c COL")
    if args.d_unique and not args.csv:
        p.error("--d-unique names a CSV column: give it with --csv (records carry unique_tokens themselves)")
    if args.resamples < 0 or args.jobs < 1:
        p.error("--resamples must be >= 0 and --jobs >= 1")
    if args.huber_delta is not None and not args.huber_delta > 0:
        p.error("--huber-delta must be > 0")
    kw = dict(n_resamples=args.resamples, seed=args.seed, n_jobs=args.jobs, figures=not args.no_figures,
              huber_delta=args.huber_delta, skills=not args.no_skills)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            if args.csv:
                table = from_csv(args.csv, n=args.n, loss=args.loss, d=args.d, c=args.c,
                                 drop_highest_loss=args.drop_highest_loss, id_col=args.id_col,
                                 budget_col=args.flop_budget, floor=args.floor, d_unique=args.d_unique)
                out = Path(args.out) if args.out else Path.cwd() / f"{Path(args.csv).stem}_fit"
                res = fit_table(table, out, **kw)
            else:
                if not Path(args.results_dir).is_dir():
                    raise TableError(f"no such folder: {args.results_dir}")
                res = fit_results_dir(args.results_dir, args.out, **kw)
        except TableError as e:
            print(f"harness-fit: error: {e}", file=sys.stderr)
            return 2
    print(_summary(res))
    if args.wandb != "disabled":
        out = Path(res["fit_json"]).parent  # where the fit was written
        root = Path(args.results_dir) if args.results_dir else out
        log_analysis(wandb_settings(args.wandb), root, res["fit"], [Path(f) for f in res["figures"]], out=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
