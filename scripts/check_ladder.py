"""Check a width (or data) ladder against the data source's known entropy floor.

Reads a sweep's records and reports, for L(x) - E with E the exact floor:
monotonicity, the power-law slope and its log-space R^2, and a free fit of
L = E' + A x^-alpha whose E' is compared with the floor. x is N (non-embedding
parameters) or D (tokens).

    python scripts/check_ladder.py results/width_ladder [--x params_nonembedding|tokens]
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy.optimize import curve_fit

from harness.records import load_records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_dir")
    ap.add_argument("--x", default="params_nonembedding", choices=["params_nonembedding", "tokens"])
    args = ap.parse_args()
    recs = [r for r in load_records(args.results_dir)[0] if r["status"] == "ok"]
    recs.sort(key=lambda r: r[args.x])
    x = np.array([r[args.x] for r in recs], dtype=float)
    L = np.array([r["final_val_loss"] for r in recs])
    E = recs[0]["entropy_floor"]
    gap = L - E
    slope, icpt = np.polyfit(np.log(x), np.log(gap), 1)
    pred = icpt + slope * np.log(x)
    r2 = 1 - np.sum((np.log(gap) - pred) ** 2) / np.sum((np.log(gap) - np.log(gap).mean()) ** 2)
    for xi, li, gi in zip(x, L, gap):
        print(f"{args.x}={xi:12.4g}  loss={li:.4f}  loss-E={gi:.4f}")
    print(f"entropy floor E = {E:.4f} nats/token")
    print(f"monotone decreasing: {bool(np.all(np.diff(L) < 0))}")
    print(f"L - E ~ x^{slope:.3f}, log-space R^2 = {r2:.4f}")
    try:
        (e_fit, a, alpha), _ = curve_fit(lambda x, e, a, al: e + a * x ** -al, x, L,
                                         p0=(E, np.exp(icpt), -slope), maxfev=20000)
        print(f"free fit L = E' + A x^-alpha: E' = {e_fit:.4f} (floor {E:.4f}, diff {e_fit - E:+.4f}), alpha = {alpha:.3f}")
    except RuntimeError as e:
        print(f"free fit failed: {e}")


if __name__ == "__main__":
    main()
