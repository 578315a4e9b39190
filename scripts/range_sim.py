"""How wide a range of N and D would the exponents' +-0.05 need? Simulated sweeps, a lower bound.

Each design is a set of WSD ladders (width: seeds, budgets) at the preset's depth rule
(depth 2, 16-dim heads): the cpu preset's, with more widths, more budgets or more seeds.
Its sweeps are simulated from results/cpu's selected law (interaction, E at the floor)
with the noise fit.json measured: sigma_seed(N) (replicate_noise.by_size, held above
width 64 as the fit holds it), the share rho of it that is one offset per ladder
(replicate_noise.ladder_share, held at the ends) and the law's misfit tau drawn as
independent noise per run. Each simulated sweep is fitted as harness-fit fits
results/cpu: the seed spread and rho re-measured from its replicates, then generalised
least squares on the ladder covariance. 1.96 times the spread of the estimates over the
sweeps is the half-width an ideal 95% interval would have. It is a lower bound: the law
is true here by construction, while the real law's misfit is systematic and grows where
a design reaches further (results/design_budget: width 128, the 0.51M branches), and a
real interval also carries the noise level's own uncertainty. Cost: single-core
seconds per token of each width's ladder, from the committed seed-0 ladders (results/cpu,
on the AVX2 AMD EPYC; results/w128_ladder, on the AVX-512 one), times the tokens a
ladder trains (its longest budget, plus the 20% cooldown of each other); widths beyond
128 extrapolated by a line in params_total through widths 64 .. 128, and marked so.

    python scripts/range_sim.py [--sweeps 200] [--jobs 2] [--out results/range_sim]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from harness.analysis import noise
from harness.analysis.forms import INTERACTION
from harness.model import GPTConfig, param_counts
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "results" / "cpu"
MEASURED = ("cpu", "w128_ladder")  # result folders with committed seed-0 ladders
PRESET_SEEDS = {12: 1, 16: 3, 24: 1, 32: 3, 48: 1, 64: 3, 96: 1}  # configs/sweep/cpu.yaml
SHORT, LONG = 512000, 16384000  # a budget below the preset's (500 steps) and one above (x2)


def designs(budgets: list[int]) -> dict[str, dict[int, tuple[int, list]]]:
    """name -> width -> (seeds, budgets)."""
    preset = {w: (s, budgets) for w, s in PRESET_SEEDS.items()}
    more = lambda extra: {w: (s, sorted(budgets + extra)) for w, s in PRESET_SEEDS.items()}  # noqa: E731
    return {
        "the preset (widths 12-96, 5 budgets 1.02M-8.19M)": preset,
        "+ width 128": {**preset, 128: (1, budgets)},
        "+ widths 128, 192, 256": {**preset, **{w: (1, budgets) for w in (128, 192, 256)}},
        "widths 16-256 (no 12)": {**{w: v for w, v in preset.items() if w != 12},
                                  **{w: (1, budgets) for w in (128, 192, 256)}},
        "3 seeds at every width": {w: (3, budgets) for w in PRESET_SEEDS},
        "+ a 0.51M branch per ladder": more([SHORT]),
        "+ width 128, 0.51M branches": {**more([SHORT]), 128: (1, sorted(budgets + [SHORT]))},
        "+ a 16.4M budget per ladder": more([LONG]),
        "+ 0.51M and 16.4M per ladder": more([SHORT, LONG]),
    }


def counts(width: int, like: dict) -> dict:
    """Parameter counts of the preset's model at ``width``: a committed record ``like``'s
    model (depth, context, tied head) with its vocabulary (from its embedding count)."""
    m = like["config"]["model"]
    vocab = like["params_embedding"] // m["width"] - m["context"]
    return param_counts(GPTConfig(vocab=vocab, width=width, depth=m["depth"], context=m["context"],
                                  mlp_ratio=m["mlp_ratio"], tie_embeddings=m["tie_embeddings"]))


def ladder_tokens(budgets: list) -> float:
    """Tokens a WSD ladder trains: its longest run, plus each shorter one's cooldown."""
    return max(budgets) + 0.2 * (sum(budgets) - max(budgets))


def design_rows(spec: dict, like: dict) -> tuple[np.ndarray, list]:
    X, fam = [], []
    for w, (seeds, budgets) in sorted(spec.items()):
        for s in range(seeds):
            X += [(counts(w, like)["params_nonembedding"], d) for d in budgets]
            fam += [f"w{w}_s{s}"] * len(budgets)
    return np.array(X, dtype=float), fam


def one_sweep(k: int, X: np.ndarray, fam: list, true: np.ndarray, floor: float, reps: dict, tau: float) -> tuple:
    rng = np.random.default_rng(7000 + k)
    sd = noise.seed_sigma(reps["by_size"], X[:, 0])
    rho = np.clip(noise.rho_at(reps["ladder_share"], X[:, 0]), 0.0, noise.RHO_MAX)
    _, idx = np.unique(np.asarray(fam, dtype=str), return_inverse=True)
    logy = (np.log(INTERACTION.loss(true, floor, X)[0]) + noise.ladder_noise(rng, sd, rho, idx)
            + tau * rng.standard_normal(len(X)))
    y = np.exp(logy)
    sizes = noise.by_size(X, y)
    share = noise.ladder_share(X, y, fam, sizes)
    fit = noise.fit_weighted(INTERACTION, X, y, floor, None, noise.seed_sigma(sizes, X[:, 0]), fam,
                             noise.rho_at(share, X[:, 0]))
    return fit.params["alpha"], fit.params["beta"], fit.params["gamma"]


def per_token_cost(budgets: list, recs: list[dict]) -> tuple[dict, dict, list]:
    """Measured single-core seconds per ladder token by width (seed-0 ladders of the
    preset's budgets), each width's params_total, and the line in params_total beyond."""
    core, total = {}, {}
    for d in MEASURED:
        for r in recs if d == SWEEP.name else load_records(ROOT / "results" / d)[0]:
            if r["status"] == "ok" and r["config"]["train"]["seed"] == 0 and r["tokens"] in budgets:
                w = r["config"]["model"]["width"]
                core[w] = core.get(w, 0.0) + r["wall_time_s"]
                total[w] = r["params_total"]
    k = {w: c / ladder_tokens(budgets) for w, c in core.items()}
    big = [w for w in k if w >= 64]
    return k, total, np.polyfit([total[w] for w in big], [k[w] for w in big], 1).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "range_sim")
    a = ap.parse_args()
    fit = json.loads((SWEEP / "fit.json").read_text())
    law, reps, floor = fit["laws"]["interaction"], fit["replicate_noise"], fit["floor"]["value"]
    true = np.array([law["params"][k] for k in INTERACTION.names])
    tau = law["noise_model"]["tau_log"]
    recs = load_records(SWEEP)[0]
    budgets, like = sorted({int(r["tokens"]) for r in recs}), recs[0]
    k, _, line = per_token_cost(budgets, recs)
    t0, rows = time.time(), []
    for name, spec in designs(budgets).items():
        X, fam = design_rows(spec, like)
        est = np.array(Parallel(n_jobs=a.jobs)(delayed(one_sweep)(i, X, fam, true, floor, reps, tau)
                                               for i in range(a.sweeps)))
        cost, extrapolated = 0.0, []
        for w, (seeds, bud) in spec.items():
            if w not in k:
                extrapolated.append(w)
            kw = k[w] if w in k else float(np.polyval(line, counts(w, like)["params_total"]))
            cost += seeds * kw * ladder_tokens(bud)
        rows.append({"design": name, "ladders": {str(w): {"seeds": s, "budgets": b} for w, (s, b) in sorted(spec.items())},
                     "runs": len(X), "N_decades": float(np.log10(X[:, 0].max() / X[:, 0].min())),
                     "D_decades": float(np.log10(X[:, 1].max() / X[:, 1].min())),
                     "core_s": round(cost), "cost_extrapolated_for_widths": sorted(extrapolated),
                     "alpha_half_width": float(1.96 * est[:, 0].std(ddof=1)),
                     "beta_half_width": float(1.96 * est[:, 1].std(ddof=1)),
                     "gamma_half_width": float(1.96 * est[:, 2].std(ddof=1)),
                     "alpha_mean": float(est[:, 0].mean()), "beta_mean": float(est[:, 1].mean()),
                     "gamma_mean": float(est[:, 2].mean())})
        r = rows[-1]
        print(f"{name:50s} {r['runs']:3d} runs N {r['N_decades']:.2f} D {r['D_decades']:.2f} dec "
              f"{cost / 60:5.1f} core-min{' (extrapolated)' if extrapolated else ''}: alpha ±{r['alpha_half_width']:.3f} "
              f"beta ±{r['beta_half_width']:.3f} gamma ±{r['gamma_half_width']:.3f}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    half = lambda v: (v[1] - v[0]) / 2  # noqa: E731
    (a.out / "cpu.json").write_text(json.dumps({
        "what": " ".join(__doc__.split("\n\n")[1].split()), "sweep": "results/cpu", "law": "interaction",
        "true": law["params"], "floor": floor, "tau_log": tau, "sweeps": a.sweeps,
        "core_s_per_ladder_token": {str(w): v for w, v in sorted(k.items())},
        "cost_line_per_param_total": line, "designs": rows,
        "measured_preset_half_widths": {"alpha": half(law["ci95"]["alpha"]), "beta": half(law["ci95"]["beta"])},
        "wall_s": round(time.time() - t0, 1)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
