"""How much the fitted exponents depend on what N counts: the cpu preset refitted with N = total params.

The harness's N is the non-embedding parameter count (Kaplan et al. 2020). At the preset's
sizes the embeddings are a large share of the model (vocabulary 128 and 64 positions:
2.3e3 of 6.1e3 parameters at width 12, 1.8e4 of 2.4e5 at width 96), so the choice moves
the N exponent. This script refits the committed results/cpu records as harness-fit fits
them (400 resamples, no skills or figures) with N = params_total (C = 6 N D with that N),
and writes each law's N and D exponents with their 95% intervals beside those of the
committed fit.json (N = params_nonembedding).

    python scripts/n_convention.py [--sweep cpu] [--out results/n_convention]
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from design_budget import law_row  # scripts/ is on the path when a script runs

from harness.analysis.pipeline import fit_dict
from harness.analysis.table import from_records
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
CONVENTIONS = {"params_nonembedding": "non-embedding parameters (the harness's N): the committed fit.json",
               "params_total": "all parameters, the tied token embedding and the position table included: refitted"}


def _as_total(rec: dict) -> dict:
    """The record with N counted as all parameters (and C = 6 N D with that N)."""
    r = copy.deepcopy(rec)
    r["params_nonembedding"] = r["params_total"]
    r["flops_6nd"] = 6.0 * r["params_total"] * r["tokens"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "n_convention")
    a = ap.parse_args()
    recs = [r for r in load_records(ROOT / "results" / a.sweep)[0] if r["status"] == "ok"]
    total = fit_dict(from_records([_as_total(r) for r in recs]), skills=False)
    fits = {"params_nonembedding": json.loads((ROOT / "results" / a.sweep / "fit.json").read_text()),
            "params_total": total}
    rows = []
    for n_key, fit in fits.items():
        co = fit["compute_optimal"]
        rows.append({"N": n_key, "what": CONVENTIONS[n_key], "runs": len(recs), "selected": fit["selected"],
                     "N_range": [min(r[n_key] for r in recs), max(r[n_key] for r in recs)],
                     "a": co.get("a"), "a_ci95": (co.get("ci95") or {}).get("a"),
                     "laws": {k: law_row(fit["laws"][k]) for k in ("chinchilla", "kaplan", "interaction")}})
        s = rows[-1]["laws"][fit["selected"]]
        print(f"N = {n_key}: selected {fit['selected']}, N exponent {s['N_exponent'][0]:.3f} ± {s['N_half_width']:.3f}, "
              f"D exponent {s['D_exponent'][0]:.3f} ± {s['D_half_width']:.3f}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.sweep}.json").write_text(json.dumps({
        "what": " ".join(__doc__.split("\n\n")[1].split()), "sweep": f"results/{a.sweep}", "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
