"""``harness-predict``: a fitted law's prediction for a run not yet trained.

    harness-predict RESULTS_DIR (--n N --d D | --c C) [--u U_D] [--law NAME] [--skills] [--json]

Reads ``RESULTS_DIR/fit.json`` only (no refit). The 95% prediction interval combines
the parameter uncertainty (the spread of the law's bootstrap draws kept in fit.json)
and run-to-run noise in quadrature on the log scale: the larger of the law's residual
spread (``noise_log``) and the spread measured by runs repeated with other seeds
(``replicate_noise``), when the sweep has them. A law fitted with weights (seeds at two
or more sizes, :mod:`harness.analysis.noise`) uses its noise model at the asked N
instead: the seeds' spread at that size (held at the largest replicated size above
it) and the law's misfit tau, in quadrature. With ``--c`` it prints the
compute-optimal N, D and loss on the law's surface at C = 6 N D and a
``harness-train`` line for a model of about that size. ``--json`` adds when the
prediction was made (UTC) and the sha256 of the fit.json it read.
With ``--u`` (a data-constrained law: ``muennighoff``, ``muennighoff_interaction``) the
run draws its D tokens from a pool of U_D unique ones: the loss at (N, D, U_D), or with
``--c`` the N that minimises the loss for that pool, and its epochs D / U_D. With
``--skills``, each probe bucket's loss and exact match at that N and D, with 95%
intervals, from the two-step fits in fit.json's ``skills`` block
(:mod:`harness.analysis.skills`).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

from harness.analysis.compute_optimal import numeric_n_opt, optimal_nd
from harness.analysis.forms import LAWS, MUENNIGHOFF_RD
from harness.analysis.noise import seed_sigma

Z95 = 1.959964


def load(results_dir: str | Path) -> dict:
    path = Path(results_dir) / "fit.json"
    if not path.is_file():
        raise SystemExit(f"harness-predict: error: no fit.json in {results_dir} (run harness-fit first)")
    return json.loads(path.read_text())


def _law(fit: dict, name: str | None) -> tuple[str, dict]:
    name = name or fit.get("selected") or "chinchilla"
    law = fit["laws"].get(name)
    if name not in LAWS or not law or not law.get("params"):
        fitted = [k for k in LAWS if (fit["laws"].get(k) or {}).get("params")]
        raise SystemExit(f"harness-predict: error: no fitted joint law {name!r}; choose from {fitted}")
    return name, law


def _split(name: str, law: dict, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(form parameters (m, k), E (m,)) from reported parameter rows in ``params`` order."""
    keys = list(law["params"])
    form = _form(name, law)
    cols = [keys.index(k) for k in form.names]
    E = P[:, keys.index("E")] if "E" in keys else np.full(len(P), law["fixed"]["E"])
    return P[:, cols], E


def _form(name: str, law: dict):
    """The law's form; a muennighoff law fitted without R_N* (no excess parameters) is its R_D*-only variant."""
    return MUENNIGHOFF_RD if name == "muennighoff" and "R_N*" not in law["params"] else LAWS[name]


def _inputs(form, N: float, D: float, U: float | None) -> np.ndarray:
    if U is None:
        return np.array([[float(N), float(D)]])
    if form.n_inputs != 3:
        raise SystemExit(f"harness-predict: error: --u needs a data-constrained law (muennighoff, "
                         f"muennighoff_interaction); {form.name} does not read U_D")
    return np.array([[float(N), float(D), float(U)]])


def law_prediction(name: str, law: dict, N: float, D: float, seeds_noise: float = 0.0,
                   unique: float | None = None, noise_at: tuple[float, str] | None = None) -> dict:
    """A law's loss at (N, D) (from a pool of ``unique`` tokens U_D) from its fit.json
    entry, with the 95% prediction interval of the module docstring (None without
    bootstrap draws); ``seeds_noise``: the spread of repeated seeds in log L, used when
    larger than the law's residuals'; ``noise_at`` = (noise, what it is) replaces both
    (a weighted law's noise model at N)."""
    form = _form(name, law)
    x = _inputs(form, N, D, unique)
    p0, e0 = _split(name, law, np.array([list(law["params"].values())]))
    loss = float(form.loss(p0, e0, x)[0, 0])
    out = {"loss": loss, "interval": None}
    boot = law.get("bootstrap_params")
    noise = float(law.get("noise_log") or 0.0)
    source = "replicates' spread" if seeds_noise > noise else "residual spread"
    noise = max(noise, seeds_noise)
    if noise_at is not None:
        noise, source = noise_at
    if boot is not None and len(boot):
        pb, eb = _split(name, law, np.array(boot, float))
        lb = np.log(form.loss(pb, eb, x)[:, 0])
        lo, hi = np.percentile(lb, [2.5, 97.5])
        c = math.log(loss)
        half_lo, half_hi = math.hypot(c - lo, Z95 * noise), math.hypot(hi - c, Z95 * noise)
        out["interval"] = [math.exp(c - half_lo), math.exp(c + half_hi)]
        out["interval_method"] = ("bootstrap parameter spread and run-to-run noise in quadrature, on log L"
                                  f" ({len(boot)} draws; noise {noise:.3g} in log L, the {source})")
        out["noise_log"] = noise
    return out


def noise_model_at(reps: dict, law: dict, N: float) -> tuple[float, str] | None:
    """A weighted law's run-to-run noise at N (log L) and its description, or None."""
    sizes, nm = reps.get("by_size"), law.get("noise_model")
    if not (reps.get("used") and sizes and nm):
        return None
    s, tau = float(seed_sigma(sizes, N)), float(nm["tau_log"])
    scale = math.sqrt(max(1.0, float(nm.get("chi2_dof") or 1.0)))
    return (scale * math.hypot(s, tau),
            f"noise model at N: seeds {s:.3g} at this size, misfit tau {tau:.3g}, in quadrature")


def predict(fit: dict, N: float, D: float, law_name: str | None = None, unique: float | None = None) -> dict:
    """Loss at (N, D) (from a pool of ``unique`` tokens U_D) with a 95% prediction interval."""
    name, law = _law(fit, law_name)
    reps = fit.get("replicate_noise") or {}
    seeds = float(reps["sigma_log"]) if reps.get("used") else 0.0
    out = {"law": name, "N": float(N), "D": float(D), "C": 6.0 * N * D,
           **law_prediction(name, law, N, D, seeds, unique, noise_model_at(reps, law, N))}
    if unique is not None:
        out.update(unique_tokens=float(unique), epochs=float(D) / float(unique))
    floor = (fit.get("floor") or {}).get("value")
    if floor is not None and out["loss"] < floor:
        out["below_floor"] = True
    return out


def optimal(fit: dict, C: float, law_name: str | None = None, unique: float | None = None) -> dict:
    """The compute-optimal N, D and loss at compute C on the law's surface (from a pool of
    ``unique`` tokens: the data-constrained optimum, found numerically)."""
    name, law = _law(fit, law_name)
    form = _form(name, law)
    _inputs(form, 1.0, 1.0, unique)  # refuses --u for a law that does not read it
    p0, _ = _split(name, law, np.array([list(law["params"].values())]))
    n_range = tuple((fit.get("compute_optimal") or {}).get("n_range") or (1.0, 1e13))
    if unique is not None:
        n_opt = float(numeric_n_opt(form, p0, C, n_range, unique=unique)[0])
    elif name == "chinchilla":
        n_opt = float(optimal_nd(C, *p0[0])[0])
    else:
        n_opt = float(numeric_n_opt(form, p0, C, n_range)[0])
    if not math.isfinite(n_opt):
        return {"law": name, "C": C, "N": None, "D": None, "loss": None, "interval": None,
                "reason": f"{name} has no compute-optimal size near C = {C:.3g}: the loss keeps falling along C = 6ND"}
    out = predict(fit, n_opt, C / (6 * n_opt), name, unique)
    out["C"] = C
    return out


def train_line(N: float, D: float) -> str:
    """A harness-train line for a model of about N non-embedding parameters (depth 2,
    16-dim heads, the default MLP ratio 4: 12 * depth * width^2 parameters)."""
    depth = 2
    width = max(16, int(round(math.sqrt(N / (12 * depth)) / 16)) * 16)
    return (f"harness-train model.width={width} model.depth={depth} model.heads={width // 16} "
            f"data.tokens={int(round(D))}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness-predict", description="Predict the final loss of an untrained run "
                                "from a fitted results folder (reads fit.json; no refit).")
    p.add_argument("results_dir")
    p.add_argument("--n", type=float, help="non-embedding parameters N")
    p.add_argument("--d", type=float, help="training tokens D")
    p.add_argument("--c", type=float, help="compute C = 6 N D: give the compute-optimal N, D and loss")
    p.add_argument("--u", type=float, help="unique tokens U_D the run draws its D from (a data-constrained law)")
    p.add_argument("--law", help="a joint law in fit.json (default: the selected one)")
    p.add_argument("--skills", action="store_true", help="also each probe bucket's loss and exact match "
                   "(two steps: the bucket's loss law, then a sigmoid of exact match in that loss)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if (args.c is None) == (args.n is None or args.d is None) or (args.c is not None and (args.n or args.d)):
        p.error("give either --n N --d D, or --c C")
    for v in (args.n, args.d, args.c, args.u):
        if v is not None and not v > 0:
            p.error("N, D and C must be positive")
    fit = load(args.results_dir)
    if args.skills:
        skills_block(fit, args.results_dir)  # refuse before printing anything
    res = optimal(fit, args.c, args.law, args.u) if args.c is not None else predict(fit, args.n, args.d, args.law, args.u)
    if args.c is not None and res.get("N"):
        res["train"] = train_line(res["N"], res["D"]) + (f" data.unique_tokens={int(round(args.u))}" if args.u else "")
    if args.skills and res.get("N"):
        from harness.analysis.skills import predict_all

        res["skills"] = predict_all(skills_block(fit, args.results_dir), res["N"], res["D"])
    if args.json:
        # provenance, so a prediction saved before its run is trained can be checked later
        fit_bytes = (Path(args.results_dir) / "fit.json").read_bytes()
        res.update(predicted_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   fit=str(Path(args.results_dir) / "fit.json"), fit_sha256=hashlib.sha256(fit_bytes).hexdigest())
        print(json.dumps(res))
        return 0
    if res.get("loss") is None:
        print(res["reason"])
        return 1
    iv = res["interval"]
    print(f"{res['law']}: N = {res['N']:.4g}, D = {res['D']:.4g} (C = {res['C']:.4g} FLOPs): loss {res['loss']:.4f} "
          f"nats/token" + (f" from {res['unique_tokens']:.4g} unique tokens ({res['epochs']:.3g} epochs)"
                           if res.get("unique_tokens") else "")
          + (f", 95% prediction interval [{iv[0]:.4f}, {iv[1]:.4f}]" if iv else " (no interval)")
          + (" -- below the floor" if res.get("below_floor") else ""))
    if res.get("train"):
        print(res["train"])
    for b in res.get("skills") or []:
        print(skill_line(b))
    return 0


def skills_block(fit: dict, results_dir) -> dict:
    """fit.json's two-step skill fits, or a one-line refusal."""
    if "skills" not in fit:
        raise SystemExit(f"harness-predict: error: --skills: {results_dir}/fit.json has no skill fits (fitted before "
                         f"them, or with --no-skills): refit with harness-fit {results_dir}")
    if not fit["skills"]:
        raise SystemExit(f"harness-predict: error: --skills: the records in {results_dir} have no per-skill probes "
                         f"(or fewer than 3 runs with them), so there is nothing to predict skills from")
    return fit["skills"]


def skill_line(b: dict) -> str:
    """One bucket's prediction in one line."""
    if b["loss"] is None:
        return f"  {b['bucket']}: no prediction ({b.get('why')})"
    iv = lambda v, f: f" [{f.format(v[0])}, {f.format(v[1])}]" if v else " (no interval)"  # noqa: E731
    return (f"  {b['bucket']}: loss {b['loss']:.4f}{iv(b['loss_interval'], '{:.4f}')} nats, exact match "
            f"{b['accuracy']:.3f}{iv(b['accuracy_interval'], '{:.3f}')}"
            + (f"  -- flagged: {b['why']}" if b["flags"] else ""))


if __name__ == "__main__":
    sys.exit(main())
