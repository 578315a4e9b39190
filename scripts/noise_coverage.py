"""Do the joint fit's 95% intervals cover the true exponents when seeds shift whole ladders?

Simulates results/cpu's own design (its runs' N, D and ladder families, read from the
records) from its chinchilla fit, with seed noise as measured there (fit.json
replicate_noise: sigma_seed(N) and the share rho of it that is one offset per ladder).
Each synthetic sweep is fitted and bootstrapped three ways: weighted least squares with
noise drawn per run and the weights held ("independent", forms.residual_bootstrap);
weighted least squares with the ladder bootstrap ("ladder", the pipeline before the
generalised fit: the seed part shared by a ladder's runs, the spread re-measured and
the fit reweighted on every resample); and generalised least squares on the ladder
covariance with the same bootstrap, rho re-measured too ("gls", what harness-fit does).
Writes each way's coverage of alpha's and beta's intervals, their mean half-widths and
the sampling spread of its point estimates.

    python scripts/noise_coverage.py [--sweeps 200] [--resamples 100] [--out results/noise_coverage]
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
from harness.analysis.table import from_records

SWEEP = Path(__file__).resolve().parent.parent / "results" / "cpu"
MODES = ("independent", "ladder", "gls")


def design() -> dict:
    """results/cpu's rows, families, law and measured noise."""
    fit = json.loads((SWEEP / "fit.json").read_text())
    t = from_records(json.loads(p.read_text()) for p in sorted((SWEEP / "runs").glob("*.json")))
    law, reps = fit["laws"]["chinchilla"], fit["replicate_noise"]
    return {"X": t.X, "family": list(t.family), "floor": float(t.floor),
            "true": np.array([law["params"][k] for k in CHINCHILLA.names]),
            "sd": noise.seed_sigma(reps["by_size"], t.N),
            "rho": np.clip(noise.rho_at(reps["ladder_share"], t.N), 0, 1)}


def one_sweep(k: int, resamples: int, d: dict) -> dict:
    rng = np.random.default_rng(1000 + k)
    X, fam, F = d["X"], d["family"], d["floor"]
    _, idx = np.unique(np.asarray(fam, dtype=str), return_inverse=True)
    logy = np.log(CHINCHILLA.loss(d["true"], F, X)[0]) + noise.ladder_noise(rng, d["sd"], d["rho"], idx)
    y = np.exp(logy)
    sizes = noise.by_size(X, y)
    sd = noise.seed_sigma(sizes, X[:, 0])
    share = noise.ladder_share(X, y, fam, sizes)
    out = {"rho": [r["rho"] for r in share["per_size"]]}
    for mode in MODES:
        if mode == "gls":
            fit = noise.fit_weighted(CHINCHILLA, X, y, F, None, sd, fam, noise.rho_at(share, X[:, 0]))
        else:
            fit = noise.fit_weighted(CHINCHILLA, X, y, F, None, sd)
        if mode == "independent":
            residual_bootstrap(fit, resamples, seed=k, replicate_noise=(1.0, sum(r["dof"] for r in sizes["per_size"])))
        else:
            noise.ladder_bootstrap(fit, resamples, k, X, fam, share)
        lo, hi = np.percentile(fit.boot_params(), [2.5, 97.5], axis=0)
        out[mode] = {"alpha": [float(lo[2]), float(hi[2])], "beta": [float(lo[3]), float(hi[3])],
                     "alpha_hat": fit.params["alpha"], "beta_hat": fit.params["beta"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--resamples", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="results/noise_coverage")
    a = ap.parse_args()
    t0, d = time.time(), design()
    rows = Parallel(n_jobs=a.jobs)(delayed(one_sweep)(k, a.resamples, d) for k in range(a.sweeps))
    summary = {}
    for mode in MODES:
        summary[mode] = {}
        for j, name in ((2, "alpha"), (3, "beta")):
            iv = np.array([r[mode][name] for r in rows])
            sd = float(np.std([r[mode][f"{name}_hat"] for r in rows], ddof=1))
            summary[mode][name] = {"coverage": float(np.mean((iv[:, 0] < d["true"][j]) & (d["true"][j] < iv[:, 1]))),
                                   "mean_half_width": float(np.mean(iv[:, 1] - iv[:, 0]) / 2),
                                   "sampling_sd": sd, "ideal_half_width": 1.959964 * sd}
    res = {"what": " ".join(__doc__.split("\n\n")[1].split()), "sweep": "results/cpu", "runs": len(d["X"]),
           "ladders": len(set(d["family"])), "true": dict(zip(CHINCHILLA.names, d["true"].tolist())), "floor": d["floor"],
           "sweeps": a.sweeps, "resamples": a.resamples, "nominal": 0.95, "summary": summary,
           "rho_mean_per_size": np.mean([r["rho"] for r in rows], axis=0).tolist(),
           "wall_s": round(time.time() - t0, 1), "per_sweep": rows}
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "coverage.json").write_text(json.dumps(res, indent=1) + "\n")
    for mode in summary:
        print(mode, {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in summary[mode].items()})


if __name__ == "__main__":
    main()
