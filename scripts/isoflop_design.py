"""Write configs/sweep/isoflop.yaml from the cpu sweep's fit: budgets and sizes centred
on the compute-optimal ridge that the fit measured (issue: every parabola's minimum
interior).

The ridge: the selected law's compute-optimal tokens per parameter D/N, from
harness-predict's ``optimal`` at each candidate budget (geometric mean over the
budgets, since the sizes are placed by one ratio r: N_opt = sqrt(C / (6 r)), see
harness.config.iso_width). Sizes: N_opt x sqrt(2)^k, k = -2..2, widths rounded to
multiples of 2, one attention head. Budgets: 5, a factor rho apart, the smallest the
one whose smallest size is width 12; rho as large as a cost model allows in
``--core-seconds`` (tokens / tokens-per-second,
tokens/s measured on the cpu sweep's records as a power of N).

    python scripts/isoflop_design.py [--core-seconds 700]
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from harness.analysis.predict import optimal
from harness.config import iso_width
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "results" / "cpu"
STEPS = (-2, -1, 0, 1, 2)


def n_of(w: int, depth: int = 2) -> int:
    return depth * (12 * w * w + 13 * w) + 2 * w


def tps_model(sweep: Path = SWEEP) -> tuple[float, float]:
    """ln(tokens/s) = p0 + p1 ln N over the sweep's stable runs (the unbranched ones)."""
    recs = [r for r in load_records(sweep)[0] if r["status"] == "ok" and not r.get("branched_from_step")]
    n = np.log([r["params_nonembedding"] for r in recs])
    t = np.log([r["tokens"] / r["wall_time_s"] for r in recs])
    p1, p0 = np.polyfit(n, t, 1)
    return p0, p1


def design(fit: dict, core_seconds: float, sweep: Path = SWEEP, n_budgets: int = 6, ridge: float | None = None,
           rho_given: float | None = None) -> dict:
    p0, p1 = tps_model(sweep)
    best = None
    for rho in [rho_given] if rho_given else np.arange(1.5, 6.01, 0.05):
        # the smallest budget: its k=-2 size is width 12 at this ridge; iterate the ridge
        r = ridge or 100.0
        for _ in range(1 if ridge else 3):
            c0 = 6 * r * (2 * n_of(12)) ** 2
            budgets = [float(f"{c0 * rho ** j:.2g}") for j in range(n_budgets)]
            if not ridge:
                r = math.exp(np.mean([math.log(optimal(fit, c)["D"] / optimal(fit, c)["N"]) for c in budgets]))
        cost = 0.0
        for c in budgets:
            for k in STEPS:
                n = n_of(iso_width(c, k, r, 2))
                cost += c / (6 * n) / math.exp(p0 + p1 * math.log(n))
        widths = [[iso_width(c, k, r, 2) for k in STEPS] for c in budgets]
        if all(len(set(w)) == 5 for w in widths) and cost <= core_seconds:
            best = {"rho": float(rho), "budgets": budgets, "tokens_per_param": float(f"{r:.3g}"),
                    "widths": widths, "core_seconds": cost, "tps": [p0, p1]}
    if best is None:
        raise SystemExit("no design fits the budget")
    return best


TEMPLATE = """# @package _global_
# Chinchilla approach 2, sizes centred on each budget's optimum. Written by
# scripts/isoflop_design.py {args}: {ridge_src}
# D/N = {r:g} tokens per parameter over these budgets, so budget C's
# sizes are N_opt x sqrt(2)^k, k = -2..2 (sweep.size_step), N_opt = sqrt(C / (6 x {r:g})),
# widths rounded to multiples of 2, one attention head (harness.config.iso_width):
{table}
# Each run trains on D = C / (6 N) tokens, one WSD run each (the cpu preset's schedule,
# lr rule 0.192 / width, batch and held-out set). Planned: {cost:.0f} s of single-core
# training, about {wall:.0f} minutes on 2 cores.
sweep:
  name: isoflop
model:
  depth: 2
  width: ${{iso_width:${{data.flop_budget}},${{sweep.size_step}},{r:g},${{model.depth}}}}
  heads: 1
  context: 64
data:
  source: zipf_facts
train:
  batch_size: 16
  lr: ${{over:0.192,${{model.width}}}}
  schedule: wsd
  warmup: 20
  cooldown: 0.2
  eval_every: 1000
  threads: 1
  progress: false
  resume: true
defaults:
  - override /hydra/launcher: joblib
hydra:
  launcher:
    n_jobs: 2
  sweeper:
    params:
      data.flop_budget: {budgets}   # largest budgets first, so the two
      sweep.size_step: -2,-1,0,1,2                  # workers end together on short jobs
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--core-seconds", type=float, default=1200.0)
    p.add_argument("--budgets", type=int, default=6)
    p.add_argument("--ridge", type=float, default=None, help="tokens per parameter (default: from the fit)")
    p.add_argument("--rho", type=float, default=None, help="budget spacing (default: the largest that fits)")
    p.add_argument("--sweep", type=Path, default=SWEEP)
    p.add_argument("--dry-run", action="store_true", help="print, do not write the preset")
    a = p.parse_args()
    fit = json.loads((a.sweep / "fit.json").read_text())
    d = design(fit, a.core_seconds, a.sweep, a.budgets, a.ridge, a.rho)
    table = "\n".join(f"#   C = {c:.2g}: widths {', '.join(map(str, w))}" for c, w in zip(d["budgets"], d["widths"]))
    args = " ".join(f"--{k} {v:g}" for k, v in (("budgets", a.budgets), ("ridge", a.ridge), ("rho", a.rho)) if v)
    ridge_src = ("the ridge given (measured by this script on the 35-run cpu fit of commit\n# c353ab3; the "
                 "60-run cpu_v3 fit's is 107 to 92 over the sweep's compute)," if a.ridge else
                 "the selected law's compute-optimal\n# ridge in results/cpu/fit.json,")
    text = TEMPLATE.format(args=args, ridge_src=ridge_src, r=d["tokens_per_param"], table=table, cost=d["core_seconds"],
                           wall=d["core_seconds"] / 2 / 60 + 0.5,
                           budgets=",".join(f"{c:.2g}" for c in reversed(d["budgets"])))
    if not a.dry_run:
        (ROOT / "configs" / "sweep" / "isoflop.yaml").write_text(text)
    print(text)
    print(json.dumps(d))


if __name__ == "__main__":
    main()
