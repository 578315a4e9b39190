"""What each extra minute of the cpu preset buys: nested designs refitted from results/cpu_v3.

The cpu preset's 12 ladders are added in steps, from the 35-run design of the previous
preset (widths 16 .. 64, 3 seeds at 16) to the 60-run one; each step's runs are taken
from the committed records (same configs, so the same runs a smaller preset would have
trained) and fitted as harness-fit fits them (400 resamples, no skills or figures);
each row reports the chinchilla law (the cpu preset's selected law) and which law that
design's own selection picks.
Its cost is the steps' measured single-core training seconds (the records'
wall_time_s; the sweep runs two at once, so wall minutes are about half).

    python scripts/design_budget.py [--out results/design_budget]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from harness.analysis import noise
from harness.analysis.forms import CHINCHILLA, residual_bootstrap
from harness.analysis.pipeline import N_RESAMPLES, fit_table
from harness.analysis.table import from_records
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "results" / "cpu_v3"
# (name, ladders added: (width, seed)), cumulative
STEPS = [
    ("previous preset: widths 16-64, 3 seeds at 16", [(16, 0), (16, 1), (16, 2), (24, 0), (32, 0), (48, 0), (64, 0)]),
    ("+ width 12", [(12, 0)]),
    ("+ 2 seeds at width 32", [(32, 1), (32, 2)]),
    ("+ 2 seeds at width 64 (the cpu preset)", [(64, 1), (64, 2)]),
]


def _half(v) -> float:
    return (v[1] - v[0]) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "design_budget")
    a = ap.parse_args()
    recs = [r for r in load_records(SWEEP)[0] if r["status"] == "ok"]
    key = lambda r: (r["config"]["model"]["width"], r["config"]["train"]["seed"])  # noqa: E731
    have, rows, core = set(), [], 0.0
    for name, ladders in STEPS:
        have |= set(ladders)
        use = [r for r in recs if key(r) in have]
        core = sum(r["wall_time_s"] for r in use)
        with tempfile.TemporaryDirectory() as tmp:  # fit_table writes fit.json and report.md: here, thrown away
            fit = fit_table(from_records(use), tmp, figures=False, skills=False)["fit"]
        sel = fit["selected"]
        law = fit["laws"]["chinchilla"]  # the cpu preset's selected law, for a like-for-like row
        ka, kb = "alpha", "beta"
        line = fit["laws"]["L_C"]["fixed_floor_line"]
        rows.append({
            "design": name, "runs": len(use), "ladders": sorted(have), "core_s": round(core),
            "selected": sel, "law": "chinchilla", "weighted_fit": bool((fit["replicate_noise"] or {}).get("weighted_fit")),
            "N_exponent": [law["params"][ka], law["ci95"][ka]], "D_exponent": [law["params"][kb], law["ci95"][kb]],
            "N_half_width": _half(law["ci95"][ka]), "D_half_width": _half(law["ci95"][kb]),
            "rms_log": law["rms_log"], "residual_pattern_r2": law["residual_pattern_r2"],
            "free_E_minus_floor": law["free_E"]["E_minus_floor"],
            "heldout_mean_error": law["heldout_mean_reducible_error"],
            "L_C_decades": line["decades_C"], "gamma_half_width": _half(line["gamma_ci95"]),
        })
        r = rows[-1]
        print(f"{name}: {r['runs']} runs, {core / 60:.1f} core-min; selected {sel}; chinchilla: N exp ±{r['N_half_width']:.3f}, "
              f"D exp ±{r['D_half_width']:.3f}, free E {r['free_E_minus_floor']:+.4f}, L(C) {r['L_C_decades']:.2f} dec")
    # the full design's N exponent with the noise drawn per run and the weights held (the
    # bootstrap the ladder one replaced), for comparison
    t = from_records(use)
    sd = noise.seed_sigma(noise.by_size(t.XU, t.loss), t.N)
    iid = noise.fit_weighted(CHINCHILLA, t.X, t.loss, t.floor, None, sd)
    rep = fit["replicate_noise"]
    residual_bootstrap(iid, N_RESAMPLES, 0, (rep["sigma_log"], rep["dof"]))
    lo, hi = np.percentile(iid.boot_params()[:, 2], [2.5, 97.5])
    rows[-1]["N_half_width_independent_draws"] = float(hi - lo) / 2
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "design_budget.json").write_text(json.dumps({
        "what": __doc__.split("\n\n")[1].replace("\n", " "), "sweep": "results/cpu_v3", "steps": rows,
        "note": "core_s: summed single-core training seconds of the design's runs (records' wall_time_s); the "
                "sweep trains two runs at once, so its wall time is about core_s / 2 plus the fit"}, indent=1) + "\n")


if __name__ == "__main__":
    main()
