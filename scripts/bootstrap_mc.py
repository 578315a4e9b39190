"""How much do the exponents' 95% intervals move with the bootstrap's own seed?

harness-fit draws its intervals from N_RESAMPLES parametric-bootstrap resamples with a
fixed seed (fit.json settings.bootstrap), so a committed half-width is one draw of a
Monte Carlo estimate. This refits results/cpu's records as harness-fit does (no skills
or figures) under bootstrap seeds 0 .. K-1 and writes the selected law's exponent
half-widths per seed, their mean and standard deviation: the Monte Carlo error that a
half-width quoted to three decimals carries, and where the committed seed falls.

    python scripts/bootstrap_mc.py [--seeds 10] [--out results/bootstrap_mc]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from harness.analysis.forms import exponent_names
from harness.analysis.pipeline import N_RESAMPLES, SEED, fit_dict
from harness.analysis.table import from_records
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "results" / "cpu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bootstrap_mc")
    a = ap.parse_args()
    committed = json.loads((SWEEP / "fit.json").read_text())
    law_name = committed["selected"]
    table = from_records(r for r in load_records(SWEEP)[0] if r["status"] == "ok")
    t0, rows = time.time(), []
    for seed in range(a.seeds):
        law = fit_dict(table, seed=seed, skills=False)["laws"][law_name]
        ka, kb = exponent_names(law["params"])
        rows.append({"seed": seed, "N_exponent_ci95": law["ci95"][ka], "D_exponent_ci95": law["ci95"][kb],
                     "N_half_width": (law["ci95"][ka][1] - law["ci95"][ka][0]) / 2,
                     "D_half_width": (law["ci95"][kb][1] - law["ci95"][kb][0]) / 2})
        print(f"seed {seed}: N exponent ±{rows[-1]['N_half_width']:.4f}, D exponent ±{rows[-1]['D_half_width']:.4f}",
              flush=True)
    summary = {}
    for k in ("N_half_width", "D_half_width"):
        v = np.array([r[k] for r in rows])
        own = next(r[k] for r in rows if r["seed"] == SEED)
        summary[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)), "min": float(v.min()), "max": float(v.max()),
                      "committed_seed": own, "committed_rank": int((v < own).sum()) + 1}
        print(f"{k}: mean {v.mean():.4f} sd {v.std(ddof=1):.4f}; the committed seed {SEED} ranks "
              f"{summary[k]['committed_rank']} of {len(v)}")
    ends = {k: np.array([r[k] for r in rows]).std(axis=0, ddof=1).tolist() for k in ("N_exponent_ci95", "D_exponent_ci95")}
    mc = committed["laws"][law_name].get("ci95_mc_sd")
    ka, kb = exponent_names(committed["laws"][law_name]["params"])
    summary["endpoint_sd_over_seeds"] = ends
    summary["endpoint_sd_estimated_by_the_committed_fit"] = (
        {"N_exponent_ci95": mc[ka], "D_exponent_ci95": mc[kb]} if mc else None)  # fit.json ci95_mc_sd
    print(f"endpoint sd over seeds {ends}; the committed fit's own estimate (ci95_mc_sd) "
          f"{summary['endpoint_sd_estimated_by_the_committed_fit']}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "cpu.json").write_text(json.dumps({
        "what": " ".join(__doc__.split("\n\n")[1].split()), "sweep": "results/cpu", "law": law_name,
        "resamples": N_RESAMPLES, "committed_seed": SEED, "seeds": rows, "summary": summary,
        "wall_s": round(time.time() - t0, 1)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
