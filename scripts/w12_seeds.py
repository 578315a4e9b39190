"""Is the cpu preset's smallest size on its law? Four more seeds at width 12, and its lr.

The cpu preset trains its smallest size, width 12 (N = 3.8e3), with one seed. Its
seed noise is extrapolated from widths 16 to 64, and the noise model rates the
width-12 runs the noisiest of the sweep, so the fit gives them the least weight. This
study trains the width-12 ladder with seeds 1 to 4 (`configs/ladder/w12_seed{1..4}`,
the preset's settings otherwise) into results/w12_seeds, and with lr x0.5 and x2 into
results/w12_lr (seed 0), then asks:

- where the preset's seed 0 sits among the 5 seeds;
- whether the 5-seed mean agrees with the committed cpu law: its residual per D under
  results/cpu_v3/fit.json's selected law (log predicted − log observed, the fit's own
  residual convention), in units of the mean's standard error (from the 5 seeds'
  spread at that D);
- what the fit says when the preset's records are joined by 2 or 4 of the new seeds
  (harness-fit's own pipeline, 400 resamples, no skills or figures);
- whether the lr rule (0.192 / width) holds at width 12.

Writes results/w12_seeds/study.json and results/w12_seeds/w12_seeds.png.

    harness-sweep sweep=cpu sweep.name=w12_seeds ladder=w12_seed1,w12_seed2,w12_seed3,w12_seed4
    harness-sweep sweep=cpu sweep.name=w12_lr ladder=w12 train.lr=0.008,0.032
    python scripts/w12_seeds.py
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from harness.analysis.forms import JOINT
from harness.analysis.pipeline import fit_dict
from harness.analysis.table import from_records
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
CPU, SEEDS, LR = (ROOT / "results" / n for n in ("cpu_v3", "w12_seeds", "w12_lr"))
OUT = SEEDS
WIDTH = 12


def _ok(path: Path) -> list[dict]:
    return [r for r in load_records(path)[0] if r["status"] == "ok"]


def _half(v) -> float:
    return (v[1] - v[0]) / 2


def _joined(extra_seeds: int, cpu: list[dict], new: list[dict]) -> dict:
    """The cpu preset's records plus the width-12 seeds 1 .. extra_seeds, fitted."""
    use = cpu + [r for r in new if 1 <= r["config"]["train"]["seed"] <= extra_seeds]
    fit = fit_dict(from_records(use), skills=False)
    sel = fit["selected"]
    chin, inter = fit["laws"]["chinchilla"], fit["laws"]["interaction"]
    return {
        "runs": len(use), "width12_seeds": 1 + extra_seeds, "selected": sel,
        "selected_heldout_mean_error": fit["laws"][sel]["heldout_mean_reducible_error"],
        "chinchilla": {"alpha": [chin["params"]["alpha"], chin["ci95"]["alpha"]],
                       "beta": [chin["params"]["beta"], chin["ci95"]["beta"]],
                       "alpha_half_width": _half(chin["ci95"]["alpha"]), "beta_half_width": _half(chin["ci95"]["beta"]),
                       "tau_log": chin["noise_model"]["tau_log"], "rms_log": chin["rms_log"],
                       "residual_pattern_r2": chin["residual_pattern_r2"],
                       "free_E_minus_floor": chin["free_E"]["E_minus_floor"],
                       "heldout_mean_error": chin["heldout_mean_reducible_error"]},
        "interaction_gamma": [inter["params"]["gamma"], inter["ci95"]["gamma"]],
        "interaction_tau_log": inter["noise_model"]["tau_log"],
        "sigma_seed_per_size": fit["replicate_noise"]["by_size"]["per_size"],
    }


def study(joined: bool = True) -> tuple[dict, np.ndarray, float, str]:
    """The study's numbers (``joined=False``: without the three joined fits, the slow
    part), and the committed law's parameters, floor and name for the figure."""
    cpu, new, lr = _ok(CPU), _ok(SEEDS), _ok(LR)
    fit = json.loads((CPU / "fit.json").read_text())
    sel = fit["selected"]
    law = fit["laws"][sel]
    p = np.array([law["params"][k] for k in JOINT[sel].names])
    F = fit["floor"]["value"]
    w12 = [r for r in cpu + new if r["config"]["model"]["width"] == WIDTH]
    Ds = sorted({r["tokens"] for r in w12})
    N = w12[0]["params_nonembedding"]
    seeds = sorted({r["config"]["train"]["seed"] for r in w12})
    L = {(r["config"]["train"]["seed"], r["tokens"]): r["final_val_loss"] for r in w12}
    per_d = []
    for d in Ds:
        v = np.log([L[(s, d)] for s in seeds])
        pred = float(np.log(JOINT[sel].loss(p, F, np.array([[N, d]]))[0, 0]))
        se = float(v.std(ddof=1) / math.sqrt(len(v)))
        per_d.append({"D": d, "loss_by_seed": [L[(s, d)] for s in seeds],
                      "seed0_rank": int(np.argsort(np.argsort(v))[0]) + 1,  # 1 = lowest loss
                      "seed0_minus_mean_log": float(v[0] - v.mean()), "sd_log": float(v.std(ddof=1)),
                      "mean_residual_log": float(pred - v.mean()), "se_mean_log": se,
                      "z": float((pred - v.mean()) / se), "seed0_residual_log": float(pred - v[0])})
    lr_rows = {}
    for r in lr + [r for r in cpu if r["config"]["model"]["width"] == WIDTH]:
        lr_rows.setdefault(r["lr"], {})[r["tokens"]] = r["final_val_loss"]
    chi2 = float(sum(x["z"] ** 2 for x in per_d))
    from scipy.stats import chi2 as chi2_dist
    res = {
        "what": __doc__.split("\n\n")[1].replace("\n", " "),
        "width": WIDTH, "N": N, "seeds": seeds, "law": sel, "law_source": "results/cpu_v3/fit.json",
        "per_D": per_d,
        "mean_residual_chi2": chi2, "mean_residual_dof": len(per_d),
        "mean_residual_p": float(chi2_dist.sf(chi2, len(per_d))),
        "joined": [_joined(k, cpu, new) for k in (0, 2, 4)] if joined else None,
        "lr_check": {"rule_lr": 0.192 / WIDTH, "D": Ds,
                     "loss_by_lr": {f"{k:g}": [v.get(d) for d in Ds] for k, v in sorted(lr_rows.items())},
                     "best_lr_by_D": [min(lr_rows, key=lambda k: lr_rows[k].get(d, math.inf)) for d in Ds]},
        "core_s_new_seeds": round(sum(r["wall_time_s"] for r in new)),
        "note": "the joined fits read the same records as results/cpu_v3 plus the new seeds' records, "
                "as harness-fit would fit a sweep holding all of them; per_D's se is the 5 seeds' sd / sqrt(5), "
                "so z ignores the law's own uncertainty at N = 3.8e3 (a few 1e-3: the committed fit's "
                "residual bootstrap), and chi2 over the 5 D values treats them as independent",
    }
    return res, p, F, sel


def main() -> None:
    res, p, F, sel = study()
    per_d, chi2 = res["per_D"], res["mean_residual_chi2"]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "study.json").write_text(json.dumps(res, indent=1) + "\n")
    _figure(res, p, F, sel)
    for x in per_d:
        print(f"D={x['D']:.3g}: seed 0 rank {x['seed0_rank']}/5, {x['seed0_minus_mean_log']:+.4f} from the mean; "
              f"mean residual {x['mean_residual_log']:+.4f} ± {x['se_mean_log']:.4f} (z {x['z']:+.1f})")
    print(f"chi2 {chi2:.1f} on {len(per_d)}, p = {res['mean_residual_p']:.2g}")
    for j in res["joined"]:
        c = j["chinchilla"]
        print(f"{j['runs']} runs ({j['width12_seeds']} seeds at w12): selected {j['selected']}; chinchilla alpha "
              f"±{c['alpha_half_width']:.3f} beta ±{c['beta_half_width']:.3f} tau {c['tau_log']:.4f} rms {c['rms_log']:.4f} "
              f"free E {c['free_E_minus_floor']:+.4f}; interaction gamma {j['interaction_gamma']}")
    print("lr", res["lr_check"]["loss_by_lr"], "best", res["lr_check"]["best_lr_by_D"])


def _figure(res: dict, p: np.ndarray, F: float, sel: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = res["per_D"]
    D = np.array([r["D"] for r in rows])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, s in enumerate(res["seeds"]):
        a.plot(D, [r["loss_by_seed"][k] for r in rows], "o-", ms=4, lw=1, alpha=0.8,
               label=f"seed {s}" + (" (the preset's)" if s == 0 else ""))
    grid = np.geomspace(D[0], D[-1], 50)
    a.plot(grid, JOINT[sel].loss(p, F, np.column_stack([np.full_like(grid, res["N"]), grid]))[0], "k--",
           label=f"committed {sel} law")
    a.set_xscale("log")
    a.set_xlabel("training tokens D")
    a.set_ylabel("final held-out loss (nats/token)")
    a.set_title(f"width 12 (N = {res['N']:.0f}): 5 seeds")
    a.legend(fontsize=8)
    b.axhline(0, color="k", lw=0.8)
    b.errorbar(D, [r["mean_residual_log"] for r in rows], yerr=[1.96 * r["se_mean_log"] for r in rows], fmt="o-",
               capsize=3, label="5-seed mean (95% of the mean)")
    b.plot(D, [r["seed0_residual_log"] for r in rows], "s:", label="seed 0 alone (in the preset)")
    b.set_xscale("log")
    b.set_xlabel("training tokens D")
    b.set_ylabel("log L of the committed law − log L observed")
    b.set_title(f"residual at width 12 (χ² = {res['mean_residual_chi2']:.0f} on {res['mean_residual_dof']})")
    b.legend(fontsize=8)
    for ax in (a, b):  # the budgets themselves as ticks
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(D, [f"{d / 1e6:.2g}M" for d in D])
    fig.tight_layout()
    fig.savefig(OUT / "w12_seeds.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
