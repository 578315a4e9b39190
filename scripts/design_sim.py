"""What precision could a cpu-preset design reach? Simulated sweeps, before any training.

Each candidate design (seeds per width of the preset's 6 widths, 5 WSD budgets each)
is simulated from results/cpu_v3's chinchilla fit with the noise measured there: a
per-ladder offset and a per-run part, both log-linear in N through widths 16, 32 and
64 (the values of scripts/noise_coverage.py), extended below width 16 and held at
width 64's value above it; optionally plus the law's own misfit tau as independent noise per run
(the committed fit's tau; real misfit is systematic, so this is optimistic). Each
simulated sweep is fitted as harness-fit fits results/cpu_v3 (noise.by_size,
noise.fit_weighted; and E free for the free-E diagnostic); the spread of the estimates
over the sweeps is the design's sampling precision (1.96 sd: the half-width an ideal
95% interval would have). Cost: the ladders' measured single-core training seconds
(results/cpu_v3 records; width 12 and 16 ladders cost about the same), wall time about
half of it plus the fit.

    python scripts/design_sim.py [--sweeps 200] [--out results/design_sim]

The committed results/design_sim was drawn from cpu_v3's fit as harness-fit made it
then, by weighted least squares (the JSON's "true"); the pipeline has since moved to
generalised least squares on the ladder covariance (harness/analysis/noise.py), which
moves cpu_v3's point estimate within its interval.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from harness.analysis import noise
from harness.analysis.forms import CHINCHILLA, fit_form

FIT = Path(__file__).resolve().parent.parent / "results" / "cpu_v3" / "fit.json"
TOKENS = 512000 * 2.0 ** np.arange(5)
MEASURED_N = np.array([6592.0, 25472, 100096])
OFFSET_SD = np.array([0.0041, 0.0009, 0.0002])  # per-ladder offset, widths 16, 32, 64 (noise_coverage.py)
WITHIN_SD = np.array([0.0024, 0.0014, 0.0005])
WIDTHS = (12, 16, 24, 32, 48, 64)
DESIGNS = {  # seeds per width, in WIDTHS order
    "the cpu preset": (1, 3, 1, 3, 1, 3),
    "seeds at 12, 16, 32, 64": (3, 3, 1, 3, 1, 3),
    "seeds at 12, 32, 64": (3, 1, 1, 3, 1, 3),
    "seeds at 12, 32": (3, 1, 1, 3, 1, 1),
    "5 seeds at 12, 3 at 32": (5, 1, 1, 3, 1, 1),
    "5 seeds at 12 and 16, 3 at 32, 64": (5, 5, 1, 3, 1, 3),
    "3 seeds everywhere": (3, 3, 3, 3, 3, 3),
    "5 seeds everywhere": (5, 5, 5, 5, 5, 5),
}


def n_nonembedding(width: int) -> float:
    return 2 * (12 * width ** 2 + 13 * width) + 2 * width  # depth 2, mlp ratio 4


def _loglin(n, sd):
    n = np.minimum(n, MEASURED_N[-1])
    return np.exp(np.polyval(np.polyfit(np.log(MEASURED_N), np.log(sd), 1), np.log(n)))


def one_sweep(seeds: tuple, k: int, tau: float, true: np.ndarray, floor: float) -> tuple:
    rng = np.random.default_rng(5000 + k)
    X, logy = [], []
    for w, s_count in zip(WIDTHS, seeds):
        n = n_nonembedding(w)
        for _ in range(s_count):
            off = rng.normal(0, _loglin(n, OFFSET_SD))
            for d in TOKENS:
                X.append((n, d))
                logy.append(np.log(CHINCHILLA.loss(true, floor, np.array([[n, d]]))[0, 0]) + off
                            + rng.normal(0, _loglin(n, WITHIN_SD)) + rng.normal(0, tau))
    X, y = np.array(X), np.exp(logy)
    sd = noise.seed_sigma(noise.by_size(X, y), X[:, 0])
    fit = noise.fit_weighted(CHINCHILLA, X, y, floor, None, sd)
    free = fit_form(CHINCHILLA, fit.x, fit.y, None, None, sigma=fit.sigma)
    return fit.params["alpha"], fit.params["beta"], free.params["E"] - floor, fit.rms_log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=FIT.parent.parent / "design_sim")
    a = ap.parse_args()
    fit = json.loads(FIT.read_text())
    law = fit["laws"]["chinchilla"]
    true = np.array([law["params"][k] for k in CHINCHILLA.names])
    floor, tau_fit = fit["floor"]["value"], law["noise_model"]["tau_log"]
    runs = [json.loads(p.read_text()) for p in sorted((FIT.parent / "runs").glob("*.json"))]
    core = {}
    for r in runs:
        core.setdefault((r["config"]["model"]["width"], r["config"]["train"]["seed"]), 0.0)
        core[(r["config"]["model"]["width"], r["config"]["train"]["seed"])] += r["wall_time_s"]
    ladder_s = {w: float(np.mean([v for (ww, _), v in core.items() if ww == w])) for w in WIDTHS}
    t0, rows = time.time(), []
    for tau in (0.0, tau_fit):
        for name, seeds in DESIGNS.items():
            est = np.array(Parallel(n_jobs=a.jobs)(delayed(one_sweep)(seeds, k, tau, true, floor)
                                                   for k in range(a.sweeps)))
            cost = sum(ladder_s[w] * s for w, s in zip(WIDTHS, seeds))
            rows.append({"design": name, "seeds": dict(zip(map(str, WIDTHS), seeds)), "runs": 5 * sum(seeds),
                         "misfit_tau_log": tau, "core_s": round(cost),
                         "alpha_half_width": float(1.96 * est[:, 0].std(ddof=1)),
                         "beta_half_width": float(1.96 * est[:, 1].std(ddof=1)),
                         "free_E_mean": float(est[:, 2].mean()), "free_E_sd": float(est[:, 2].std(ddof=1)),
                         "rms_log_mean": float(est[:, 3].mean())})
            r = rows[-1]
            print(f"tau {tau:.5f} {name:36s} {r['runs']:3d} runs {cost / 60:5.1f} core-min: alpha ±{r['alpha_half_width']:.3f} "
                  f"beta ±{r['beta_half_width']:.3f} free E {r['free_E_mean']:+.4f} (sd {r['free_E_sd']:.4f}) "
                  f"rms {r['rms_log_mean']:.4f}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "design_sim.json").write_text(json.dumps({
        "what": __doc__.split("\n\n")[1].replace("\n", " "), "true": dict(zip(CHINCHILLA.names, true.tolist())),
        "floor": floor, "sweeps": a.sweeps, "ladder_core_s": ladder_s, "designs": rows,
        "wall_s": round(time.time() - t0, 1)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
