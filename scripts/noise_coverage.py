"""Do the weighted fit's 95% intervals cover the true exponents when seeds shift whole ladders?

Simulates the cpu preset's design (6 sizes x 5 budgets, 3 seeds at the 2nd, 4th and
6th size, as in configs/sweep/cpu.yaml) from a known Chinchilla law, with seed noise
as measured in results/cpu_v3: a per-ladder offset and a per-run part, both falling with
N (their sds at widths 16, 32 and 64, fitted log-linear in N). Each synthetic sweep is
fitted as harness-fit fits results/cpu_v3 (noise.by_size, noise.fit_weighted) and
bootstrapped two ways: noise drawn per run with the weights held ("independent",
forms.residual_bootstrap) and the pipeline's way ("ladder", noise.ladder_bootstrap:
the seed part shared by a ladder's runs, the spread re-measured and the fit
reweighted on every resample). Writes the coverage of
alpha's and beta's intervals, their mean half-widths and the true sampling spread
of the estimates.

    python scripts/noise_coverage.py [--sweeps 40] [--resamples 100] [--out results/noise_coverage]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from harness.analysis import noise
from harness.analysis.forms import CHINCHILLA, residual_bootstrap

TRUE = np.array([30.15, 914.8, 0.643, 0.678])  # results/cpu_v3's chinchilla fit: A, B, alpha, beta
FLOOR = 1.30276
SIZES = np.array([3808.0, 6592, 14496, 25472, 56640, 100096])  # widths 12 .. 64, depth 2
TOKENS = 512000 * 2.0 ** np.arange(5)
SEEDS = {1: 3, 3: 3, 5: 3}
# results/cpu_v3, widths 16, 32, 64: sd of the per-ladder offset and of the rest (log loss)
MEASURED_N = np.array([6592.0, 25472, 100096])
OFFSET_SD = np.array([0.0041, 0.0009, 0.0002])
WITHIN_SD = np.array([0.0024, 0.0014, 0.0005])


def _loglin(n, sd):
    return np.exp(np.polyval(np.polyfit(np.log(MEASURED_N), np.log(sd), 1), np.log(n)))


def one_sweep(k: int, resamples: int) -> dict:
    rng = np.random.default_rng(1000 + k)
    X, logy, fam = [], [], []
    for i, n in enumerate(SIZES):
        for s in range(SEEDS.get(i, 1)):
            off = rng.normal(0, _loglin(n, OFFSET_SD))
            for d in TOKENS:
                X.append((n, d))
                fam.append(f"{i}-{s}")
                logy.append(np.log(CHINCHILLA.loss(TRUE, FLOOR, np.array([[n, d]]))[0, 0]) + off
                            + rng.normal(0, _loglin(n, WITHIN_SD)))
    X, y = np.array(X), np.exp(logy)
    sizes = noise.by_size(X, y)
    sd = noise.seed_sigma(sizes, X[:, 0])
    share = noise.ladder_share(X, y, fam, sizes)
    out = {"alpha_hat": None, "beta_hat": None}
    for mode in ("independent", "ladder"):
        fit = noise.fit_weighted(CHINCHILLA, X, y, FLOOR, None, sd)
        if mode == "ladder":
            noise.ladder_bootstrap(fit, resamples, k, X, fam, share)
        else:
            residual_bootstrap(fit, resamples, seed=k, replicate_noise=(1.0, sum(r["dof"] for r in sizes["per_size"])))
        lo, hi = np.percentile(fit.boot_params(), [2.5, 97.5], axis=0)
        out[mode] = {"alpha": [float(lo[2]), float(hi[2])], "beta": [float(lo[3]), float(hi[3])]}
        out["alpha_hat"], out["beta_hat"] = fit.params["alpha"], fit.params["beta"]
    out["rho"] = [r["rho"] for r in share["per_size"]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=40)
    ap.add_argument("--resamples", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="results/noise_coverage")
    a = ap.parse_args()
    t0 = time.time()
    rows = Parallel(n_jobs=a.jobs)(delayed(one_sweep)(k, a.resamples) for k in range(a.sweeps))
    summary = {}
    for mode in ("independent", "ladder"):
        summary[mode] = {}
        for j, name in ((2, "alpha"), (3, "beta")):
            iv = np.array([r[mode][name] for r in rows])
            summary[mode][name] = {"coverage": float(np.mean((iv[:, 0] < TRUE[j]) & (TRUE[j] < iv[:, 1]))),
                                   "mean_half_width": float(np.mean(iv[:, 1] - iv[:, 0]) / 2)}
    spread = {name: float(np.std([r[f"{name}_hat"] for r in rows], ddof=1)) for name in ("alpha", "beta")}
    res = {"what": __doc__.split("\n\n")[1].replace("\n", " "), "true": dict(zip(CHINCHILLA.names, TRUE.tolist())),
           "sweeps": a.sweeps, "resamples": a.resamples, "nominal": 0.95, "summary": summary,
           "sampling_sd": spread, "ideal_half_width": {k: 1.959964 * v for k, v in spread.items()},
           "rho_mean_per_size": np.mean([r["rho"] for r in rows], axis=0).tolist(),
           "wall_s": round(time.time() - t0, 1), "per_sweep": rows}
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "coverage.json").write_text(json.dumps(res, indent=1))
    for mode in summary:
        print(mode, {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in summary[mode].items()})
    print("sampling sd", spread, "->", {k: round(v, 4) for k, v in res["ideal_half_width"].items()})


if __name__ == "__main__":
    main()
