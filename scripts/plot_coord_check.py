"""μP coordinate check plot (Tensor Programs V, fig. 5 style).

For each parametrization (one row) and layer (one column): the mean |x_t - x_0| of
the layer's output on a fixed probe batch against width, one line per Adam step t.
Flat lines mean the layer's update is width-independent (μP's promise); lines that
rise with width mean a wider model takes a bigger step in function space (SP).
Prints the log-log slope of each curve against width.

    python scripts/plot_coord_check.py [--widths 32,64,128,256] [--lr 1e-2] [--steps 4]
        [--quantity change|size] [--out results/lr_transfer/figures/coord_check.png]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from harness.coord_check import CoordCheckConfig, coord_check, curve, layer_names, width_slope  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="32,64,128,256,512")
    ap.add_argument("--base-width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--quantity", default="change", choices=["change", "size"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/lr_transfer/figures/coord_check.png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    widths = tuple(int(w) for w in args.widths.split(","))
    seeds = tuple(int(s) for s in args.seeds.split(","))
    layers = layer_names(args.depth)
    params = ("mup", "sp")
    rows = {p: coord_check(CoordCheckConfig(
        widths=widths, parametrization=p, base_width=args.base_width, depth=args.depth,
        steps=args.steps, lr=args.lr, seeds=seeds)) for p in params}

    fig, axes = plt.subplots(len(params), len(layers), figsize=(2.3 * len(layers), 2.4 * len(params)),
                             sharex=True, sharey="col", squeeze=False)
    cmap = plt.get_cmap("viridis")
    print(f"log-log slope of mean |x_t - x_0| against width (lr {args.lr}, widths {widths}):"
          if args.quantity == "change" else f"log-log slope of mean |x_t| against width (lr {args.lr}):")
    print("| parametrization | layer | " + " | ".join(f"step {s}" for s in range(1, args.steps + 1)) + " |")
    print("|---|---|" + "---|" * args.steps)
    for i, p in enumerate(params):
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            for s in range(1, args.steps + 1):
                ws, vals = curve(rows[p], layer, s, args.quantity)
                ax.plot(ws, vals, "o-", ms=3, color=cmap((s - 1) / max(args.steps - 1, 1)), label=f"t={s}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            if i == 0:
                ax.set_title(layer, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{p}\nmean |x_t - x_0|" if args.quantity == "change" else f"{p}\nmean |x_t|",
                              fontsize=8)
            if i == len(params) - 1:
                ax.set_xlabel("width", fontsize=8)
            ax.tick_params(labelsize=7)
            slopes = [width_slope(rows[p], layer, s, args.quantity) for s in range(1, args.steps + 1)]
            print(f"| {p} | {layer} | " + " | ".join(f"{v:+.2f}" for v in slopes) + " |")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"coordinate check: Adam lr {args.lr}, base width {args.base_width}, "
                 f"depth {args.depth}, 16-dim heads, seeds {seeds}", fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
