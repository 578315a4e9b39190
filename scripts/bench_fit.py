"""Time the Chinchilla fit and its bootstrap: 1000 points x 1000 resamples.

    python scripts/bench_fit.py [--points 1000] [--resamples 1000] [--jobs 2]

Target: under 60 s on 2 CPU cores. Data are drawn from Chinchilla-like parameters with
2% multiplicative noise at log-uniform N in [1e7, 1e10] and D in [1e9, 1e12].
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from harness.analysis.fit import bootstrap, fit_law
from harness.analysis.laws import CHINCHILLA


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    n = args.points
    X = np.column_stack([np.exp(rng.uniform(np.log(1e7), np.log(1e10), n)),
                         np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))])
    th = CHINCHILLA.theta_from_params(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    y = CHINCHILLA.predict(th, X) * np.exp(rng.normal(0, 0.02, n))
    t0 = time.perf_counter()
    fit = fit_law(CHINCHILLA, X, y)
    t1 = time.perf_counter()
    bootstrap(fit, n_resamples=args.resamples, seed=0, n_jobs=args.jobs)
    t2 = time.perf_counter()
    ci = fit.ci95()
    print(f"{n} points: fit {t1 - t0:.2f} s ({fit.starts_agreeing}/{fit.n_starts} starts agree); "
          f"{args.resamples} bootstrap resamples on {args.jobs} workers {t2 - t1:.2f} s; total {t2 - t0:.2f} s")
    for k, v in fit.params.items():
        print(f"  {k:6s} {v:10.4g}  95% [{ci[k][0]:.4g}, {ci[k][1]:.4g}]")


if __name__ == "__main__":
    main()
