"""Learning-rate transfer: loss against lr, one line per width, one panel per parametrization.

Reads the run records of an lr sweep (``harness-sweep sweep=lr_transfer``) and writes
``figures/lr_transfer.png`` and ``summary.md`` into the results folder:

- the best lr per width and parametrization, as a value and as a grid step (index
  into the sorted lr grid; the grid is log-spaced, its ratio is stated), and the
  spread of the best step across widths: μP transfers when the spread is <= 1;
- the full loss grid;
- L(N) under three lr policies, for the question "which gives the straighter L(N)":
  μP at the lr tuned at the smallest width (the transferred lr), SP at one fixed lr
  (``--sp-fixed-lr``, the harness default 3e-3), SP at each width's own best lr,
  and SP with ``train.lr=kaplan`` if such records are there. Straightness is the
  log-space R^2 of a line through log(L - E) against log N, E the data's exact
  entropy floor, N non-embedding parameters.

    python scripts/lr_transfer_plot.py [results/lr_transfer] [--sp-fixed-lr 3e-3]
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.records import load_records  # noqa: E402

PARAMS = ("mup", "sp")


def load(results_dir: Path):
    """(grid, kaplan): grid[param][width][lr] = record; kaplan[width] = record (sp, lr=kaplan)."""
    grid: dict = defaultdict(lambda: defaultdict(dict))
    kaplan: dict = {}
    for r in load_records(results_dir)[0]:
        m, lr = r["config"]["model"], r["config"]["train"]["lr"]
        if isinstance(lr, str):
            kaplan[m["width"]] = r
        else:
            grid[m["parametrization"]][m["width"]][float(lr)] = r
    return grid, kaplan


def loss(r: dict | None) -> float:
    return r["final_val_loss"] if r is not None and r["status"] == "ok" else math.nan


def best_lr(runs: dict[float, dict]) -> float | None:
    ok = {lr: loss(r) for lr, r in runs.items() if not math.isnan(loss(r))}
    return min(ok, key=ok.get) if ok else None


def straightness(n: list[float], L: list[float], E: float) -> dict:
    """Slope and log-space R^2 of log(L - E) against log N; monotone = L falls with N."""
    n, L = np.asarray(n, float), np.asarray(L, float)
    ok = np.isfinite(L) & (L > E)
    if ok.sum() < 3:
        return {"slope": math.nan, "r2": math.nan, "monotone": False}
    x, y = np.log(n[ok]), np.log(L[ok] - E)
    slope, icpt = np.polyfit(x, y, 1)
    r2 = 1 - np.sum((y - icpt - slope * x) ** 2) / np.sum((y - y.mean()) ** 2)
    return {"slope": float(slope), "r2": float(r2), "monotone": bool(np.all(np.diff(L) < 0))}


def plot(grid, lrs, widths, out: Path) -> None:
    fig, axes = plt.subplots(1, len(PARAMS), figsize=(11, 4.2), sharey=True, layout="constrained")
    cmap = plt.get_cmap("viridis")
    ok_losses = [loss(r) for p in PARAMS for w in grid[p] for r in grid[p][w].values()]
    ok_losses = [v for v in ok_losses if not math.isnan(v)]
    lo = min(ok_losses)
    top = min(max(ok_losses), lo + 0.5)
    for ax, p in zip(axes, PARAMS):
        for i, w in enumerate(widths):
            color = cmap(i / max(len(widths) - 1, 1))
            ys = [loss(grid[p][w].get(lr)) for lr in lrs]
            ax.plot(lrs, ys, "o-", ms=4, color=color, label=f"width {w}")
            b = best_lr(grid[p][w])
            if b is not None:
                ax.plot([b], [loss(grid[p][w][b])], "*", ms=14, color=color, mec="k", mew=0.6)
            bad = [lr for lr in lrs if lr in grid[p][w] and math.isnan(loss(grid[p][w][lr]))]
            if bad:  # an empty unclipped line would wreck the layout
                ax.plot(bad, [top] * len(bad), "x", ms=7, color=color, clip_on=False)
        ax.set_xscale("log", base=2)
        ax.set_ylim(lo - 0.02, top + 0.01)
        ax.set_xlabel("peak learning rate")
        ax.set_title({"mup": "μP (base width 32)", "sp": "SP"}[p])
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("final held-out loss (nats/token)")
    axes[-1].legend(fontsize=8)
    fig.suptitle("learning-rate transfer: ★ best lr per width, × diverged (drawn at the top)", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)


def summary(grid, kaplan, lrs, widths, sp_fixed_lr: float) -> str:
    ratio = lrs[1] / lrs[0] if len(lrs) > 1 else math.nan
    step = {lr: i for i, lr in enumerate(lrs)}
    any_rec = next(iter(grid[PARAMS[0]][widths[0]].values()))
    E = any_rec.get("entropy_floor")
    c = any_rec["config"]
    lines = [
        "# Learning-rate transfer: μP vs SP",
        "",
        f"zipf_facts, depth {c['model']['depth']}, 16-dim heads, {any_rec['tokens']:,} training tokens "
        f"({any_rec['steps']} steps of {c['train']['batch_size']}x{c['model']['context']} tokens), "
        f"{c['train']['schedule']} schedule, AdamW wd {c['train']['weight_decay']}, "
        f"μP base width {c['model']['base_width']}, one seed per point. "
        f"Loss: final held-out loss in nats/token (entropy floor {E:.4f}).",
        "",
        f"lr grid: {', '.join(f'{lr:g}' for lr in lrs)} (grid step = x{ratio:g}; step 0 = {lrs[0]:g}).",
        "",
        "## Best lr per width",
        "",
        "| parametrization | " + " | ".join(f"width {w}" for w in widths) + " | spread (grid steps) |",
        "|---|" + "---|" * (len(widths) + 1),
    ]
    spreads = {}
    for p in PARAMS:
        cells, steps = [], []
        for w in widths:
            b = best_lr(grid[p][w])
            if b is None:
                cells.append("-")
                continue
            steps.append(step[b])
            cells.append(f"{b:g} (step {step[b]}, loss {loss(grid[p][w][b]):.4f})")
        spreads[p] = max(steps) - min(steps) if steps else math.nan
        lines.append(f"| {p} | " + " | ".join(cells) + f" | {spreads[p]} |")
    lines += ["", f"μP best lr {'is' if spreads['mup'] <= 1 else 'is NOT'} stable within one grid step "
              f"across widths (spread {spreads['mup']}); SP spread {spreads['sp']}.", ""]

    lines += ["## Loss grid (final held-out loss; 'div' = diverged)", ""]
    for p in PARAMS:
        lines += [f"**{p}**", "", "| lr | " + " | ".join(f"width {w}" for w in widths) + " |",
                  "|---|" + "---|" * len(widths)]
        for lr in lrs:
            cells = []
            for w in widths:
                r = grid[p][w].get(lr)
                cells.append("-" if r is None else (f"{loss(r):.4f}" if r["status"] == "ok" else r["status"][:4]))
            lines.append(f"| {lr:g} | " + " | ".join(cells) + " |")
        lines.append("")

    # L(N) under lr policies
    n = {w: next(iter(grid["sp"][w].values()))["params_nonembedding"] for w in widths}
    base = widths[0]
    mup_lr = best_lr(grid["mup"][base])
    policies = {
        f"μP, lr {mup_lr:g} (tuned at width {base}, transferred)": [loss(grid["mup"][w].get(mup_lr)) for w in widths],
        "μP, each width's best lr": [loss(grid["mup"][w].get(best_lr(grid["mup"][w]))) for w in widths],
        f"SP, fixed lr {sp_fixed_lr:g}": [loss(grid["sp"][w].get(sp_fixed_lr)) for w in widths],
        f"SP, lr {best_lr(grid['sp'][base]):g} (tuned at width {base})":
            [loss(grid["sp"][w].get(best_lr(grid["sp"][base]))) for w in widths],
        "SP, each width's best lr": [loss(grid["sp"][w].get(best_lr(grid["sp"][w]))) for w in widths],
    }
    if kaplan:
        policies["SP, lr=kaplan (" + ", ".join(f"{kaplan[w]['lr']:.2g}" for w in widths if w in kaplan) + ")"] = [
            loss(kaplan.get(w)) for w in widths]
    lines += ["## L(N) under each lr policy", "",
              f"N = non-embedding parameters ({', '.join(f'{n[w]:,}' for w in widths)}). "
              "Straightness: log-space R^2 of log(L - E) against log N (1 is a perfect power law); "
              "slope is the fitted exponent.", "",
              "| lr policy | " + " | ".join(f"width {w}" for w in widths) + " | monotone | slope | R^2 |",
              "|---|" + "---|" * (len(widths) + 3)]
    for name, L in policies.items():
        s = straightness([n[w] for w in widths], L, E)
        lines.append(f"| {name} | " + " | ".join("div" if math.isnan(v) else f"{v:.4f}" for v in L)
                     + f" | {'yes' if s['monotone'] else 'no'} | {s['slope']:.3f} | {s['r2']:.3f} |")
    wall = sum(r.get("wall_time_s") or 0 for p in PARAMS for w in widths for r in grid[p][w].values())
    wall += sum(r.get("wall_time_s") or 0 for r in kaplan.values())
    lines += ["", f"Summed run wall time {wall / 60:.1f} min (runs in parallel: see the sweep log for elapsed).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_dir", nargs="?", default="results/lr_transfer")
    ap.add_argument("--sp-fixed-lr", type=float, default=3e-3)
    args = ap.parse_args()
    out = Path(args.results_dir)
    grid, kaplan = load(out)
    if not grid:
        raise SystemExit(f"no lr-grid records under {out}")
    lrs = sorted({lr for p in grid for w in grid[p] for lr in grid[p][w]})
    widths = sorted({w for p in grid for w in grid[p]})
    plot(grid, lrs, widths, out / "figures" / "lr_transfer.png")
    text = summary(grid, kaplan, lrs, widths, args.sp_fixed_lr)
    (out / "summary.md").write_text(text)
    print(text)
    print(f"wrote {out / 'figures' / 'lr_transfer.png'} and {out / 'summary.md'}")


if __name__ == "__main__":
    main()
