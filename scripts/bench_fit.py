"""Time the joint fits and their residual bootstrap on synthetic data.

    python scripts/bench_fit.py [--points 240] [--resamples 400]

Data are drawn from Chinchilla-like parameters with 2% multiplicative noise at
log-uniform N in [1e7, 1e10] and D in [1e9, 1e12], with a known floor E = 1.8.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from harness.analysis.forms import CHINCHILLA, JOINT, fit_form, residual_bootstrap


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--points", type=int, default=240)
    p.add_argument("--resamples", type=int, default=400)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    n = args.points
    X = np.column_stack([np.exp(rng.uniform(np.log(1e7), np.log(1e10), n)),
                         np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))])
    y = CHINCHILLA.loss(np.array([480.0, 2100.0, 0.35, 0.37]), 1.8, X)[0] * np.exp(rng.normal(0, 0.02, n))
    for name, form in JOINT.items():
        for floor in (1.8, None):
            t0 = time.perf_counter()
            fit = fit_form(form, X, y, floor)
            t1 = time.perf_counter()
            residual_bootstrap(fit, args.resamples)
            t2 = time.perf_counter()
            print(f"{name:12s} E {'fixed' if floor else 'free '}: fit {t1 - t0:6.2f} s, "
                  f"{args.resamples} resamples {t2 - t1:6.2f} s, RMS log {fit.rms_log:.4f}")


if __name__ == "__main__":
    main()
