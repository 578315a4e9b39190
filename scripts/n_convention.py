"""How much the fitted exponents depend on what N counts: the cpu preset refitted with N = total params.

The harness's N is the non-embedding parameter count (Kaplan et al. 2020). At the preset's
sizes the embeddings are a large share of the model (vocabulary 128 and 64 positions:
2.3e3 of 6.1e3 parameters at width 12, 1.8e4 of 2.4e5 at width 96), so the choice moves
the N exponent. This script refits the committed results/cpu records as harness-fit fits
them (400 resamples, no skills or figures) twice: with N = params_nonembedding (the
committed fit.json) and with N = params_total (C = 6 N D with that N), and writes each
law's N and D exponents with their 95% intervals side by side.

    python scripts/n_convention.py [--sweep cpu] [--out results/n_convention]
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

from harness.analysis.pipeline import fit_table
from harness.analysis.table import from_records
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
CONVENTIONS = {"params_nonembedding": "non-embedding parameters (the harness's N)",
               "params_total": "all parameters, the tied token embedding and the position table included"}


def _as_total(rec: dict) -> dict:
    """The record with N counted as all parameters (and C = 6 N D with that N)."""
    r = copy.deepcopy(rec)
    r["params_nonembedding"] = r["params_total"]
    r["flops_6nd"] = 6.0 * r["params_total"] * r["tokens"]
    return r


def _exponents(law: dict) -> dict:
    p, ci = law["params"], law["ci95"]
    ka, kb = ("alpha" if "alpha" in p else "alpha_N"), ("beta" if "beta" in p else "alpha_D")  # kaplan's names
    return {"N_exponent": [p[ka], ci[ka]], "D_exponent": [p[kb], ci[kb]],
            "N_half_width": (ci[ka][1] - ci[ka][0]) / 2, "D_half_width": (ci[kb][1] - ci[kb][0]) / 2,
            "rms_log": law["rms_log"], "residual_pattern_r2": law["residual_pattern_r2"],
            "free_E_minus_floor": law["free_E"]["E_minus_floor"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "n_convention")
    a = ap.parse_args()
    recs = [r for r in load_records(ROOT / "results" / a.sweep)[0] if r["status"] == "ok"]
    rows = []
    for n_key, what in CONVENTIONS.items():
        use = recs if n_key == "params_nonembedding" else [_as_total(r) for r in recs]
        with tempfile.TemporaryDirectory() as tmp:  # fit_table writes fit.json and report.md: here, thrown away
            fit = fit_table(from_records(use), tmp, figures=False, skills=False)["fit"]
        co = fit["compute_optimal"]
        rows.append({"N": n_key, "what": what, "runs": len(use), "selected": fit["selected"],
                     "N_range": [min(r[n_key] for r in recs), max(r[n_key] for r in recs)],
                     "a": co.get("a"), "a_ci95": (co.get("ci95") or {}).get("a"),
                     "laws": {k: _exponents(fit["laws"][k]) for k in ("chinchilla", "kaplan", "interaction")}})
        s = rows[-1]["laws"][fit["selected"]]
        print(f"N = {n_key}: selected {fit['selected']}, N exponent {s['N_exponent'][0]:.3f} ± {s['N_half_width']:.3f}, "
              f"D exponent {s['D_exponent'][0]:.3f} ± {s['D_half_width']:.3f}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.sweep}.json").write_text(json.dumps({
        "what": " ".join(__doc__.split("\n\n")[1].split()), "sweep": f"results/{a.sweep}", "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
