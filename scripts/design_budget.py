"""What each extra minute of the cpu preset buys: nested designs refitted from committed runs.

Each design is a set of ladders (width, seed) in one or more result folders; its runs
are taken from the committed records (same configs, so the same runs a smaller or larger
preset would have trained) and fitted as harness-fit fits them (400 resamples, no skills
or figures). `--sweep cpu` (the preset, results/cpu) adds its ladders in steps, from
widths 12 .. 64 with 3 seeds at 16 to all 65 runs, and refits beside them the 60 without
width 96 and the preset with runs trained beyond it: 2 more seeds at width 96
(results/w96_seeds), 2 more at widths 24 and 48 (results/mid_seeds), both, a width-128
ladder (results/w128_ladder), a 0.51M-token run per ladder with its lr (results/short_branch:
500 steps, the stable phase the ladder's own, so the 0.51M cooldown branch it would have
had), the same at lr = 0.384 / width (results/short_lr, the best c at 0.51M in
results/lr_rule), and width 128 with the 0.51M runs. `--sweep cpu_v3` (the previous
preset) did the same on that grid. Each row reports which law that design's own
selection picks, one law's exponents and checks (chinchilla for cpu_v3, interaction for
cpu: each preset's selected law) and both laws' for comparison. Its cost is the
designs' measured single-core training seconds (the records' wall_time_s; the sweep runs
two at once, so wall minutes are about half; a 0.51M run trained alone costs about 5
times what its cooldown branch would, 20% of its tokens).

    harness-sweep sweep=cpu sweep.name=w96_seeds ladder=w96_seed1,w96_seed2  # 10 runs beyond the preset
    harness-sweep sweep=cpu sweep.name=mid_seeds ladder=w48_seed1,w48_seed2,w24_seed1,w24_seed2  # 20 more
    harness-sweep sweep=cpu sweep.name=w128_ladder ladder=w128  # 5 more
    L=w128,w96,w64,w64_seed1,w64_seed2,w48,w32,w32_seed1,w32_seed2,w24,w16,w16_seed1,w16_seed2,w12
    harness-sweep sweep=cpu sweep.name=short_branch data.tokens=512000 ladder=$L  # 14 more
    harness-sweep sweep=cpu sweep.name=short_lr data.tokens=512000 "train.lr='${over:0.384,${model.width}}'" ladder=$L
    python scripts/design_budget.py [--sweep cpu|cpu_v3] [--out results/design_budget]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from harness.analysis import noise
from harness.analysis.forms import CHINCHILLA, exponent_names, residual_bootstrap
from harness.analysis.pipeline import N_RESAMPLES, fit_dict
from harness.analysis.table import from_records
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
_BASE = [(12, 0), (16, 0), (16, 1), (16, 2), (24, 0), (32, 0), (48, 0), (64, 0)]
_SEEDS32, _SEEDS64, _W96 = [(32, 1), (32, 2)], [(64, 1), (64, 2)], [(96, 0)]
_PRESET = _BASE + _W96 + _SEEDS32 + _SEEDS64
_SEEDS96 = [(96, 1), (96, 2)]  # not in the preset: results/w96_seeds
_SEEDS_MID = [(24, 1), (24, 2), (48, 1), (48, 2)]  # not in the preset: results/mid_seeds
_W128 = [(128, 0)]  # not in the preset: results/w128_ladder
# sweep -> (the law each row reports, designs as (name, {result folder: ladders (width, seed)})):
# a design takes every run of those ladders in those folders (results/short_branch and
# results/short_lr hold one 0.51M-token run per ladder, the others whole ladders)
DESIGNS = {
    "cpu_v3": ("chinchilla", [
        ("previous preset: widths 16-64, 3 seeds at 16", {"cpu_v3": _BASE[1:]}),
        ("+ width 12", {"cpu_v3": _BASE}),
        ("+ 2 seeds at width 32", {"cpu_v3": _BASE + _SEEDS32}),
        ("+ 2 seeds at width 64 (the cpu preset)", {"cpu_v3": _BASE + _SEEDS32 + _SEEDS64}),
    ]),
    "cpu": ("interaction", [
        ("widths 12-64, 3 seeds at 16", {"cpu": _BASE}),
        ("+ width 96", {"cpu": _BASE + _W96}),
        ("+ 2 seeds at width 32", {"cpu": _BASE + _W96 + _SEEDS32}),
        ("+ 2 seeds at width 64 (the cpu preset)", {"cpu": _PRESET}),
        ("the preset without width 96", {"cpu": _BASE + _SEEDS32 + _SEEDS64}),
        ("the preset + 2 seeds at width 96", {"cpu": _PRESET, "w96_seeds": _SEEDS96}),
        ("the preset + 2 seeds at widths 24 and 48", {"cpu": _PRESET, "mid_seeds": _SEEDS_MID}),
        ("the preset + 2 seeds at widths 24, 48 and 96", {"cpu": _PRESET, "w96_seeds": _SEEDS96, "mid_seeds": _SEEDS_MID}),
        ("the preset + width 128", {"cpu": _PRESET, "w128_ladder": _W128}),
        ("the preset + a 0.51M branch per ladder", {"cpu": _PRESET, "short_branch": _PRESET}),
        ("the preset + 0.51M runs at lr 0.384 / width", {"cpu": _PRESET, "short_lr": _PRESET}),
        ("the preset + width 128, 0.51M branches", {"cpu": _PRESET, "w128_ladder": _W128,
                                                   "short_branch": _PRESET + _W128}),
    ]),
}


# folders whose runs belong to the preset's own ladders: each is a ladder's run at another D
# (the same config but data.tokens), trained by another sweep
JOINS_LADDERS = ("short_branch",)


def _as_ladder_run(rec: dict, sweep: str) -> dict:
    """A run another sweep trained for one of ``sweep``'s ladders, read as that ladder's:
    the fit's families (records.family_id) key on the whole config but D, the sweep's name
    included, and this run shares the ladder's init, data order and stable phase, so its
    seed offset is the ladder's (results/short_branch's 0.51M runs equal the previous
    preset's, whose ladders had them as branches, within 2e-6 nats)."""
    cfg = {**rec["config"], "sweep": {**rec["config"]["sweep"], "name": sweep}}
    return {**rec, "config": cfg}


def _half(v) -> float:
    return (v[1] - v[0]) / 2


def law_row(law: dict) -> dict:
    """One fit.json law's exponents with their 95% half-widths and its checks, for a study's table."""
    ka, kb = exponent_names(law["params"])
    return {"N_exponent": [law["params"][ka], law["ci95"][ka]], "D_exponent": [law["params"][kb], law["ci95"][kb]],
            "N_half_width": _half(law["ci95"][ka]), "D_half_width": _half(law["ci95"][kb]),
            "rms_log": law["rms_log"], "residual_pattern_r2": law["residual_pattern_r2"],
            "tau_log": (law.get("noise_model") or {}).get("tau_log"),
            "free_E_minus_floor": law["free_E"]["E_minus_floor"],
            "heldout_mean_error": law["heldout_mean_reducible_error"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", choices=sorted(DESIGNS), default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "design_budget")
    a = ap.parse_args()
    row_law, designs = DESIGNS[a.sweep]
    key = lambda r: (r["config"]["model"]["width"], r["config"]["train"]["seed"])  # noqa: E731
    folders = sorted({d for _, parts in designs for d in parts})
    recs = {d: [_as_ladder_run(r, a.sweep) if d in JOINS_LADDERS else r
                for r in load_records(ROOT / "results" / d)[0] if r["status"] == "ok"] for d in folders}
    missing = {(d, lad) for _, parts in designs for d, ladders in parts.items() for lad in ladders} - \
        {(d, key(r)) for d, rs in recs.items() for r in rs}
    if missing:
        raise SystemExit(f"no committed runs for (folder, ladder) {sorted(missing)}")
    rows = []
    for name, parts in designs:
        use = [r for d, ladders in parts.items() for r in recs[d] if key(r) in set(ladders)]
        core = sum(r["wall_time_s"] for r in use)
        fit = fit_dict(from_records(use), skills=False)
        sel = fit["selected"]
        law = row_law
        line = fit["laws"]["L_C"]["fixed_floor_line"]
        top = fit["extrapolation"]["top_C"]
        rows.append({
            "design": name, "runs": len(use), "parts": {d: sorted(lads) for d, lads in parts.items()},
            "core_s": round(core),
            "selected": sel, "law": law, "weighted_fit": bool((fit["replicate_noise"] or {}).get("weighted_fit")),
            **law_row(fit["laws"][law]),
            "top_C_error": top["reducible_error"], "top_C_better_baseline": min(
                v for v in top["baselines"].values() if v is not None),
            "L_C_decades": line["decades_C"], "gamma_half_width": _half(line["gamma_ci95"]),
            "interaction_gamma": [fit["laws"]["interaction"]["params"]["gamma"], fit["laws"]["interaction"]["ci95"]["gamma"]],
            "sigma_seed_per_size": ((fit["replicate_noise"] or {}).get("by_size") or {}).get("per_size"),
            "laws": {k: law_row(fit["laws"][k]) for k in ("chinchilla", "interaction")},
        })
        r = rows[-1]
        print(f"{name}: {r['runs']} runs, {core / 60:.1f} core-min; selected {sel}; {law}: N exp ±{r['N_half_width']:.3f}, "
              f"D exp ±{r['D_half_width']:.3f}, RMS {r['rms_log']:.4f}, pattern {r['residual_pattern_r2']:.2f}, "
              f"free E {r['free_E_minus_floor']:+.4f}, top-C {r['top_C_error']:.3f}, L(C) {r['L_C_decades']:.2f} dec",
              flush=True)
    if a.sweep == "cpu_v3":
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
    (a.out / f"{a.sweep}.json").write_text(json.dumps({
        "what": " ".join(__doc__.split("\n\n")[1].split()), "sweep": f"results/{a.sweep}", "steps": rows,
        "note": "core_s: summed single-core training seconds of the design's runs (records' wall_time_s); the "
                "sweep trains two runs at once, so its wall time is about core_s / 2 plus the fit"}, indent=1) + "\n")


if __name__ == "__main__":
    main()
