"""Where does the previous grid's misfit live? results/cpu_v3 refitted without each budget.

The cpu_v3 preset (60 runs: 6 widths x 5 WSD budgets, 0.51M .. 8.19M tokens) selected
chinchilla with a misfit tau beyond the seeds and a patterned residual surface. Each
row here refits its records without one budget (48 runs), as harness-fit fits a sweep
(fit_dict on the records, 400 resamples), and reports the chinchilla law: its
exponents' 95% half-widths, tau, the residual pattern R², the free-E diagnostic and the
held-out selection. If the misfit sat everywhere, every row would keep it.

    python scripts/short_budget.py   # writes results/short_budget/study.json (~2 minutes)
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.analysis.pipeline import fit_dict
from harness.analysis.table import from_records
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
SWEEP, OUT = ROOT / "results" / "cpu_v3", ROOT / "results" / "short_budget"


def _row(dropped, recs: list[dict]) -> dict:
    use = [r for r in recs if r["tokens"] != dropped]
    fit = fit_dict(from_records(use), skills=False)
    law = fit["laws"]["chinchilla"]
    half = {k: (b - a) / 2 for k, (a, b) in law["ci95"].items()}
    return {"dropped_D": dropped, "runs": len(use), "selected": fit["selected"],
            "alpha": law["params"]["alpha"], "alpha_half_width": half["alpha"],
            "beta": law["params"]["beta"], "beta_half_width": half["beta"],
            "tau_log": law["noise_model"]["tau_log"], "rms_log": law["rms_log"],
            "residual_pattern_r2": law["residual_pattern_r2"], "free_E_minus_floor": law["free_E"]["E_minus_floor"]}


def main() -> None:
    recs = [r for r in load_records(SWEEP)[0] if r["status"] == "ok"]
    budgets = sorted({r["tokens"] for r in recs})
    rows = [_row(None, recs)] + [_row(d, recs) for d in budgets]
    for r in rows:
        print(f"without D = {r['dropped_D']}: {r['runs']} runs, selected {r['selected']}; chinchilla alpha "
              f"±{r['alpha_half_width']:.3f} beta ±{r['beta_half_width']:.3f} tau {r['tau_log']:.5f} "
              f"pattern {r['residual_pattern_r2']:.2f} free E {r['free_E_minus_floor']:+.4f}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "study.json").write_text(json.dumps({"what": __doc__.split("\n\n")[1].replace("\n", " "),
                                                "sweep": "results/cpu_v3", "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
