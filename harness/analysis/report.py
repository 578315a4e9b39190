"""report.md: the human summary of a fit.

The report is a list of sections, ``SECTIONS``; each is a function
``Analysis -> str | None`` (markdown, or None to leave it out) registered with
:func:`section`. Sections read the rounded fit.json content (``a.fit``) so the report
and fit.json never disagree. Figures are embedded with paths relative to the report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from harness.analysis.compute_optimal import CHINCHILLA_A, KAPLAN_A
from harness.analysis.selection import HOLDOUTS
from harness.analysis.result import Analysis

SectionFn = Callable[[Analysis], "str | None"]
SECTIONS: list[SectionFn] = []
MAX_ROWS = 25  # longer per-run tables are left to fit.json


def section(fn: SectionFn) -> SectionFn:
    SECTIONS.append(fn)
    return fn


def render(a: Analysis) -> str:
    parts = [s for s in (fn(a) for fn in SECTIONS) if s]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def write_report(a: Analysis, path: Path) -> Path:
    from harness.records import atomic_write_text

    atomic_write_text(Path(path), render(a))
    return Path(path)


def _v(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _ci(ci) -> str:
    return f"[{_v(ci[0])}, {_v(ci[1])}]" if ci else "–"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1%}"


@section
def title(a: Analysis) -> str:
    f = a.fit
    src = f["source"]
    what = f"records ({src.get('n_records')} runs)" if src["kind"] == "records" else f"CSV `{src.get('file')}` ({src.get('n_rows')} rows)"
    out = [f"# Scaling-law fit\n\nInput: {what}; {f['n_points']} points used. Every number below is also in "
           f"`fit.json`; intervals are 95% parametric-bootstrap percentile intervals "
           f"({f['settings']['bootstrap']['resamples']} resamples, seed {f['settings']['bootstrap']['seed']})."]
    reps = f.get("replicate_noise")
    if reps:
        out.append(f"Run-to-run noise, measured: {reps['runs']} runs repeat {reps['groups']} (N, D) points with other "
                   f"seeds; their pooled spread is {reps['sigma_log']:.2g} in log loss ({reps['dof']} degrees of "
                   f"freedom, largest range {reps['max_range_log']:.2g})"
                   + ("; the joint laws' bootstrap never assumes less noise than that, and harness-predict's "
                      "intervals use it." if reps.get("used") and not reps.get("weighted_fit") else
                      "." if reps.get("used") else "; too few to use."))
        sizes = reps.get("by_size")
        if sizes and reps.get("used"):
            per = ", ".join(f"{r['sigma_log']:.2g} at N = {r['N']:.3g} ({r['dof']} dof)" for r in sizes["per_size"])
            nm = (f["laws"].get(f.get("selected") or "", {}) or {}).get("noise_model") or {}
            out.append(f"The spread depends on size: {per}; log sigma = {sizes['a']:.3g} + ({sizes['b']:.3g}) log N "
                       f"(held above the largest replicated size). The joint laws are weighted least squares with "
                       f"each run's sigma^2 = sigma_seed(N)^2 + tau^2, tau the law's misfit beyond the seeds' noise"
                       + (f" ({f['selected']}: tau = {nm['tau_log']:.2g})" if nm else "")
                       + "; the bootstrap draws that noise with a seed's offset shared by its ladder's runs and "
                         "re-measures the spread on every resample (noise.ladder_bootstrap), and harness-predict's "
                         "intervals use the noise model at the asked N.")
    sel = f.get("selected")
    if sel is None:
        return "\n\n".join(out + ["No joint law could be scored on held-out runs."])
    law = f["laws"][sel]
    fl = f["floor"]
    out.append(f"**Selected law: {sel}**, L = {law['form']}"
               + (f" with E fixed at the floor F = {fl['value']:.6g} ({fl['source']})" if fl["value"] is not None
                  else " (E free: no known floor)")
               + f"; " + ", ".join(f"{k} = {_v(v)} {_ci((law.get('ci95') or {}).get(k))}" for k, v in law["params"].items())
               + f"; log-loss RMS {law['rms_log']:.4f}. Chosen by held-out error among "
               + ", ".join(f"{k} ({_pct(f['laws'][k].get('heldout_mean_reducible_error'))})" for k in f["laws"]
                           if "heldout" in f["laws"][k]) + " (mean reducible error over the hold-outs).")
    rows = []
    for h in _holdouts(f):
        e = (f.get("extrapolation") or {}).get(h, {})
        if e.get("reducible_error") is None:
            rows.append([h, e.get("skipped", "–"), "–", "–", "–", "–"])
            continue
        b = e["baselines"]
        rows.append([h, _pct(e["reducible_error"]), f"{e['nats']:.4f}", _pct(b.get("best_trained")),
                     _pct(b.get("largest_N_same_D")), "yes" if e["passes"] else "**no**"])
    out.append(_table(["hold-out", f"{sel}: error / reducible loss", "nats", "baseline best trained",
                       "baseline largest N at same D", "beats both"], rows))
    out.append(_pins(a))
    return "\n\n".join(out)


def _holdouts(f: dict) -> list[str]:
    """The hold-outs this fit used (``most_epochs`` too when runs repeat data)."""
    return list(f.get("extrapolation") or HOLDOUTS)


def _pins(a: Analysis) -> str:
    f = a.fit
    co = f.get("compute_optimal") or {}
    n = f["n_points"]
    if co.get("a") is None:
        tail = f"they cannot pin down a compute-optimal allocation ({co.get('reason', 'none was computed')})."
    else:
        ci = (co.get("ci95") or {}).get("a")
        tail = (f"the compute-optimal exponent a = {co['a']:.3f} {_ci(ci)} is a local slope over the sweep's "
                f"compute range, so beyond it the law's form, not the data, decides it.")
    return (f"What this sweep can and cannot pin down: its {n} runs fix the loss surface inside their range, as "
            f"the hold-out errors above show, and run-to-run noise is estimated from the residuals; " + tail)


@section
def conventions(a: Analysis) -> str:
    c = a.fit["conventions"]
    rows = [[k, f"`{v}`"] for k, v in c.items()]
    fl = a.fit["floor"]
    return "## Conventions\n\n" + _table(["quantity", "definition"], rows) + (
        "\n\nN is the non-embedding parameter count (Kaplan et al. 2020), C = 6 N D FLOPs, losses in nats per token."
        if a.fit["source"]["kind"] == "records" else "") + (
        f"\n\nFloor F = {fl['value']:.6g} nats/token: {fl['source']}." if fl["value"] is not None
        else f"\n\nNo known floor ({fl['source']}): E is fitted freely and errors are relative to the loss.")


def _law_table(law: dict) -> str:
    rows = [[k, _v(v), _ci((law.get("ci95") or {}).get(k))] for k, v in law["params"].items()]
    if law.get("fixed"):
        rows.append(["E", f"{_v(law['fixed']['E'])} (fixed: the floor)", "–"])
    return _table(["parameter", "estimate", "95% interval"], rows)


@section
def laws(a: Analysis) -> str:
    f = a.fit
    out = ["## Joint laws L(N, D)"]
    rows = []
    for name, law in f["laws"].items():
        if "heldout" not in law:
            continue
        h = law["heldout"]
        rows.append([name + (" (selected)" if name == f["selected"] else ""), law.get("n_params", "–"),
                     _v(law.get("rms_log")), *[_pct(h.get(k, {}).get("reducible_error")) for k in _holdouts(f)],
                     _pct(law.get("heldout_mean_reducible_error"))])
    out.append(_table(["law", "parameters", "RMS log", *[f"held out: {k}" for k in _holdouts(f)], "mean"], rows))
    for name, law in f["laws"].items():
        if name in ("L_N", "L_D", "L_C"):
            continue
        out.append(f"### {name}: L = {law['form']}")
        if law.get("params") is None:
            out.append(f"Not fitted: {law.get('skipped')}.")
            continue
        out.append(_law_table(law))
        text = (f"R² (log loss) = {_v(law['r2_log'])}; RMS {_v(law['rms_log'])}; {law['starts_agreeing']} of "
                f"{law['n_starts']} refined starts reached the same optimum"
                + (f"; no intervals: {law['bootstrap_skipped']}." if law.get("bootstrap_skipped") else ".")
                + (f" The intervals of {', '.join(law['ci95_at_bound'])} reach the search bound: the data do not "
                   f"bound them there." if law.get("ci95_at_bound") else ""))
        fe = law.get("free_E")
        if fe:
            flag = (" **below the floor**" if fe["below_floor"] else "") + (
                " **above the lowest observed loss**" if fe["above_lowest_loss"] else "")
            text += (f" Diagnostic, E free: E = {fe['E']:.4g} ({fe['E_minus_floor']:+.4f} from the floor){flag}, "
                     f"RMS {fe['rms_log']:.4f}.")
        out.append(text)
    return "\n\n".join(out)


@section
def one_variable(a: Analysis) -> str:
    f = a.fit
    out = ["## One-variable laws",
           "L(N) and L(D) tend to the loss of an infinite model at the sweep's largest D (or infinite data at its "
           "largest N), not to the floor: their asymptotes are named for that and not compared with F."]
    for name in ("L_N", "L_D", "L_C"):
        law = f["laws"][name]
        out.append(f"### {name}: L = {law['form']}\n\nFitted to {law['n_points']} points: {law['inputs']}."
                   + (f" Asymptote: {law['asymptote']}." if law.get("asymptote") else ""))
        if law.get("params") is None:
            out.append(f"Not fitted: {law.get('skipped')}.")
            continue
        out.append(_law_table(law) + f"\n\nRMS log {_v(law['rms_log'])}."
                   + (f" The intervals of {', '.join(law['ci95_at_bound'])} reach the search bound: the data do not "
                      f"bound them there." if law.get("ci95_at_bound") else ""))
    line = f["laws"]["L_C"].get("fixed_floor_line")
    if line:
        out.append(f"With the known floor: {line['form']}, gamma = {line['gamma']:.4g} {_ci(line['gamma_ci95'])} "
                   f"(t interval), A = {line['A']:.4g}, RMS of log(L - F) {line['rms_log_reducible']:.4f}, "
                   f"{line['residual_sign_runs']} runs of one residual sign over {line['n_points']} points"
                   + (f" spanning {line['decades_C']:.2f} decades of C" if "decades_C" in line else "") + ". The "
                   f"free-E fit above is a diagnostic.")
    return "\n\n".join(out)


@section
def compute_optimal(a: Analysis) -> str | None:
    c = a.fit.get("compute_optimal")
    if not c:
        return None
    lines = [f"## Compute-optimal allocation (from the selected law, {c['law']})", f"Method: {c['method']}."]
    if c.get("a") is None:
        lines.append(f"None: {c['reason']}.")
    else:
        ci = c.get("ci95") or {}
        lines.append(_table(["quantity", "estimate", "95% interval"],
                            [["a", _v(c["a"]), _ci(ci.get("a"))], ["b", _v(c["b"]), _ci(ci.get("b"))]]))
        verdict = []
        for ref, name in ((KAPLAN_A, "Kaplan et al. (2020)"), (CHINCHILLA_A, "Hoffmann et al. (2022, ~0.5)")):
            lo_hi = ci.get("a")
            inside = lo_hi is not None and lo_hi[0] <= ref <= lo_hi[1]
            verdict.append(f"{name}'s a = {ref} is {'inside' if inside else 'outside'} the interval")
        lines.append("; ".join(verdict) + ".")
        rows = [[r["label"], _v(r["C"]), _v(r["N_opt"]), _ci(r["ci95"].get("N_opt")), _v(r["D_opt"]),
                 _ci(r["ci95"].get("D_opt")), _v(r["tokens_per_param"])] for r in c["at_compute"]]
        lines.append(_table(["C", "FLOPs", "N_opt", "95%", "D_opt", "95%", "tokens/param"], rows))
        lines.append("Values beyond the sweep's compute range are extrapolations of the law's form.")
    ag = c.get("isoflop_agreement")
    if ag:
        lines.append(f"IsoFLOP (independent): a = {_v(ag['isoflop_a'])} {_ci(ag['isoflop_ci95'])}; the two "
                     + {True: "agree", False: "**disagree**", None: "cannot be compared (an interval is missing)"}[ag["agree"]]
                     + " within their 95% intervals.")
    return "\n\n".join(lines)


@section
def repeated_data(a: Analysis) -> str | None:
    dc = a.fit.get("data_constrained")
    if not dc:
        return None
    out = [f"## Repeated data (Muennighoff et al. 2023)",
           f"Law: {dc['law']}" + (" (the selected law)" if dc["selected_overall"] else
                                  " (the data-constrained law with the lowest held-out error; not the selected law)")
           + f", L = {dc['form']}. R_D* = {_v(dc['R_D*'])} {_ci(dc.get('R_D*_ci95'))}"
           + (f", R_N* = {_v(dc['R_N*'])} {_ci(dc.get('R_N*_ci95'))}" if dc.get("R_N*") is not None else "")
           + " (Muennighoff et al. on C4: 15.4 and 5.3)."]
    ts = dc.get("two_stage")
    if ts:
        ci = ts.get("ci95") or {}
        out.append(f"Two-stage ({dc['two_stage_definition']}): "
                   + ", ".join(f"{k} = {_v(v)} {_ci(ci.get(k))}" for k, v in ts["params"].items())
                   + f", RMS log {_v(ts['rms_log'])}"
                   + (f"; {', '.join(ts['ci95_at_bound'])} reach the search bound" if ts.get("ci95_at_bound") else "")
                   + "; a repeated token is then worth " + ", ".join(
                       f"{_v(v['value_law'])} at {v['epochs']} epochs" for v in ts["value_of_a_repeated_token"]) + ".")
    rows = [[v["epochs"], _v(v["value_law"]), _ci(v.get("ci95"))] for v in dc["value_of_a_repeated_token"]]
    out.append("Value of a repeated token, " + dc["value_definition"] + ":\n\n"
               + _table(["epochs", "value (fresh tokens)", "95% interval"], rows))
    rows = [[r["id"], _v(r["N"]), _v(r["D"]), _v(r["unique_tokens"]), _v(r["epochs"]), _v(r["observed"]),
             _v(r["predicted"]), _v(r["value_law"]), _v(r["value_observed"]) if r["value_observed"] is not None
             else "below the fresh law's limit"] for r in dc["runs"]]
    out.append("Runs that repeat data (" + dc["observed_definition"] + "; the fresh-data law: "
               + dc["fresh_law"]["what"] + "):\n\n"
               + _table(["run", "N", "D", "U_D", "epochs", "loss", "law", "value (law)", "value (observed)"], rows))
    rows = []
    for r in dc["allocation"]:
        c, fr = r["constrained"], r["fresh"]
        rows.append([_v(r["unique_tokens"]), _v(r["C"]), *((_v(c["N_opt"]), _v(c["epochs"]), _v(c["loss"])) if c
                                                           else ("none in range",) * 3),
                     *((_v(fr["N_opt"]), _v(fr["loss"])) if fr else ("none in range",) * 2)])
    out.append("Data-constrained allocation (" + dc["allocation_method"] + "):\n\n"
               + _table(["U_D", "C", "N_opt", "epochs", "loss", "fresh-data N_opt", "fresh-data loss"], rows))
    return "\n\n".join(out)


@section
def counting_conventions(a: Analysis) -> str | None:
    c = a.fit.get("counting_conventions") or {}
    keys = [k for k in c.get("default", {}) if k not in ("N", "C")]
    rows = [[v["N"], v["C"], *[_v(v.get(k)) for k in keys]]
            for v in (c.get(k) for k in ("default", "total_params", "detailed_flops")) if v]
    return None if not c else (f"## Counting conventions ({c['law']})\n\nThe same law's exponents and compute-optimal a when N counts "
            f"every parameter (refitted) or C is the detailed FLOP count ({c['intervals']}; null: no optimum).\n\n"
            + _table(["N", "C", *keys], rows))


@section
def isoflop(a: Analysis) -> str | None:
    iso = a.fit.get("isoflop")
    if not iso:
        return None
    rows = [[_v(b["C"]), b["n_runs"], f"{_v(b['N_range'][0])}–{_v(b['N_range'][1])}", _v(b["N_opt"]),
             _v(b["D_opt"]), _v(b["loss_opt"]), {True: "yes", False: "**no**", None: "–"}[b["in_range"]],
             "yes" if b["used"] else "no"] for b in iso["budgets"]]
    out = ["## IsoFLOP profiles (Chinchilla approach 2)", iso["method"] + ".",
           _table(["C", "runs", "N sampled", "N_opt", "D_opt", "loss at optimum", "optimum inside range", "used"], rows)]
    if iso["a"] is not None:
        out.append(f"N_opt ∝ C^a with a = {_v(iso['a'])} {_ci(iso['a_ci95'])} (t interval over budgets; "
                   f"{iso['n_budgets_used']} budgets), D_opt ∝ C^{_v(iso['b'])}.")
    for w in iso["warnings"]:
        out.append(f"- warning: {w}")
    return "\n\n".join(out)


@section
def extrapolation(a: Analysis) -> str | None:
    e = a.fit.get("extrapolation")
    if e is None:  # no joint law could be scored
        return None
    out = ["## Extrapolation check, run by run",
           "Each hold-out is predicted by the selected law refitted without it; errors are |pred − obs| over the "
           "reducible loss obs − F (over obs without a floor). Baselines: the best loss among the training runs, "
           "and the training run with the largest N at the same D. Every law's hold-out errors are in its "
           "`heldout` block in fit.json."]
    for h, row in e.items():
        if row.get("skipped"):
            out.append(f"**{h}**: skipped: {row['skipped']}.")
            continue
        below = f"; **{len(row['below_floor'])} predicted below the floor**" if row["below_floor"] else ""
        out.append(f"**{h}**: {_pct(row['reducible_error'])} of the reducible loss, {row['nats']:.4f} nats"
                   + (f", {row['gap_units']:.2f} size gaps" if row.get("gap_units") is not None else "") + below + ".")
        out.append(_table(["run", "N", "D", "observed", "predicted"],
                          [[r["id"], _v(r["N"]), _v(r["D"]), _v(r["observed"]), _v(r["predicted"])]
                           for r in row["runs"][:MAX_ROWS]]))
    return "\n\n".join(out)


def _n(x) -> str:
    return "–" if x is None else f"{x:.3g}"


def _learned_at(value, bound, lo: str, hi: str) -> str:
    return _n(value) if value is not None else {"below": f"< {lo}", "above": f"> {hi}"}.get(bound, "–")


def _bucket_rows(pr: dict, N: list) -> list[list]:
    """The per-bucket sharpness table's rows."""
    rows = []
    for r in pr["per_bucket"]:
        ci = r.get("ci95") or {}
        if r["identified"]:
            mid = f"{_n(r['midpoint_N'])} [{_n(ci.get('midpoint_N', [None])[0])}, {_n(ci.get('midpoint_N', [None, None])[1])}]"
            sh = f"{_n(r['sharpness_decades'])} [{_n(ci.get('sharpness_decades', [None])[0])}, " \
                 f"{_n(ci.get('sharpness_decades', [None, None])[1])}]"
        elif r["status"] == "learned in range" and r.get("sharpness_bound") == "upper":
            mid, sh = _n(r["midpoint_N"]), f"< {_n(r.get('sharpness_upper_decades'))} (not resolved)"
        elif r["status"] == "learned in range":
            mid, sh = _n(r["midpoint_N"]), f"{_n(r['sharpness_decades'])} (not resolved)"
        else:
            mid, sh = "–", "–"
        st = r.get("largest_step_share")
        step = "–" if not st else " / ".join("–" if st[m] is None else f"{st[m]:.0%}" for m in ("accuracy", "logprob"))
        rows.append([r["bucket"], f"{r['mass']:.2%}", r["status"], mid, sh, step,
                     _learned_at(r["learned_at_N"], r["learned_at_N_bound"], _n(N[0]), _n(N[-1])),
                     _learned_at(r["learned_at_C"], r["learned_at_C_bound"], "first eval", "all runs"),
                     r["why"] or "identified"])
    return rows


@section
def probes(a: Analysis) -> str | None:
    """Per-skill probes (harness.analysis.probes): sharpness table, learning order,
    the prediction check and the figures."""
    pr = a.fit.get("probes")
    if not pr:
        return None
    ser = pr["series"]
    N = ser["N"]
    what = {"facts": "facts (a skill is a fact; buckets are bands of its frequency rank)",
            "tokens": "next tokens (buckets are bands of the token's frequency rank)"}.get(pr["kind"], pr["kind"])
    out = [f"## Skills next to loss: per-bucket probes\n\n"
           f"Probes measure {what} in each bucket: exact-match accuracy (argmax = the right answer), the "
           f"log-probability of the right answer and the loss. A bucket counts as learned at "
           f"{pr['learned_threshold']:.0%} exact match. Sizes: {len(N)} runs at D = {_n(ser['D'])} tokens, "
           f"one per N ({_n(N[0])} to {_n(N[-1])}); {ser['description']}. {pr['runs']} runs have probes"
           + (f", {len(pr['skipped_runs'])} left out (no probes or other buckets)." if pr["skipped_runs"] else ".")]
    srt = pr["sigmoid"]
    out.append(f"Sigmoid per bucket: {srt['form']}, {srt['fit']}; sharpness = {srt['sharpness']}; intervals: "
               f"{srt['bootstrap_resamples']} bootstrap resamples of the runs.")
    rows = _bucket_rows(pr, N)
    out.append(_table(["bucket", "mass", "status", "midpoint N [95%]", "10→90% width, decades of N [95%]",
                       "largest step between sizes: exact match / log-prob", "learned at N",
                       "learned at C (FLOPs)", "fit"], rows))
    out.append("The step column is the largest change between adjacent sizes as a share of the whole change: "
               "if exact match jumps while the log-probability of the same answers climbs evenly, the abruptness "
               "is the metric's (Schaeffer et al. 2023); if both jump, the skill itself turns on between those sizes "
               + (f" (with {len(N)} sizes an even climb gives {1 / (len(N) - 1):.0%})." if len(N) > 1 else "."))
    lo = pr["learning_order"]
    parts = []
    for key, label in (("by_C", "compute"), ("by_N", "model size")):
        o = lo[key]
        if o.get("spearman_rho") is None:
            parts.append(f"by {label}: {o.get('note', 'not testable')}")
        else:
            parts.append(f"by {label}: Spearman rho(frequency rank, learning point) = {o['spearman_rho']:.3f} "
                         f"(p = {o['p_value']:.2g}, {o['n_buckets']} buckets, {o['n_learned_in_range']} learned "
                         f"inside the range)")
    out.append("**Learning order.** " + "; ".join(parts) + ". Positive means frequent buckets are learned first, "
               "as Michaud et al. (2023) predict; buckets learned before the first point or never rank first or last.")
    p = pr["prediction"]
    head = "**Does the aggregate loss predict the next skill?** "
    if not p.get("testable"):
        out.append(head + p.get("reason", "not testable") + ".")
    else:
        law = p["law"]["params"]
        text = (f"{head}Held out: {p['criterion']}. From the smaller runs: the aggregate loss at which each bucket "
                f"is learned, L*, against the mass of rarer buckets, a line through {' and '.join(p['threshold_line']['through'])} "
                f"extrapolated to the next bucket, {p['next_bucket']}: L* = {p['predicted_L_star']:.4g}; "
                f"L(N) = {law['E']:.4g} + {law['A']:.4g}/N^{law['alpha']:.3g} from {p['law']['n_points']} training sizes "
                + (f"puts it at N = {_n(p['predicted_N'])}" if p["predicted_N"] is not None else f"predicts it {p['predicted']}")
                + f". Observed: {p['observed']}")
        if p.get("observed_L") is not None:
            text += f", where the aggregate loss is {p['observed_L']:.4g}"
        text += "."
        if p.get("error_decades") is not None:
            text += (f" Error: **{p['error_decades']:+.2f} decades of N** ({p['error_L_star']:+.3g} nats of "
                     f"aggregate loss; near E the law is flat, so small loss errors become large size errors).")
        elif "consistent" in p:
            text += f" The prediction is {'consistent with' if p['consistent'] else 'contradicted by'} that."
        la = p["all_buckets_line"]
        text += (f" The line through all {len(p['thresholds'])} learned buckets would predict L* = "
                 f"{la['predicted_L_star']:.4g}, N = {_n(la.get('predicted_N'))}"
                 + (f" ({la['error_decades']:+.2f} decades)." if la.get("error_decades") is not None else "."))
        out.append(text)
    figs = [f for f in a.fit["figures"] if Path(f).stem.startswith("probes_")]
    out += [f"![{Path(f).stem}]({f})" for f in figs]
    return "\n\n".join(out)


def _iv(iv, fmt: str = "{:.3f}") -> str:
    return f"[{fmt.format(iv[0])}, {fmt.format(iv[1])}]" if iv else "–"


def skill_check(sk: dict) -> str:
    """The held-out skill check in markdown: one paragraph and the per-bucket table
    (fit.json's rounded ``skills``; the README quotes it, and a test keeps them equal)."""
    h = sk["heldout"]
    head = "**Held-out check.** "
    if h.get("skipped"):
        return head + f"Skipped: {h['skipped']}."
    s, ag = h["summary"]["predictable"], h["aggregate_loss"]
    text = (f"{head}Held out: {h['criterion']} ({len(h['held_out_runs'])} runs); both steps refitted on the other "
            f"{h['n_train_runs']}, law selection included. ")
    if ag.get("reducible_error") is not None:
        text += (f"The aggregate loss ({ag['law']}): {ag['reducible_error']:.1%} of the reducible loss, "
                 f"{ag['nats']:.4f} nats" + (f", {ag['relative_error']:.2%} of the loss" if ag.get("relative_error")
                                             is not None else "") + ". ")
    if s["two_step_error"] is not None:
        text += (f"Over the {len(s['buckets'])} predictable buckets: bucket loss {s['loss_relative_error']:.1%} of the "
                 f"loss; exact match **{s['two_step_error']:.3f}** mean absolute error in two steps against "
                 + (f"**{s['one_step_error']:.3f}** for the one-step baseline" if s["one_step_error"] is not None
                    else "no one-step baseline")
                 + (f"; {s['inside']} of {s['n']} held-out observations inside their 95% intervals" if s["inside"]
                    is not None else "") + ".")
    else:
        text += "No bucket is predictable on this sweep."
    table = _table(["bucket", "flags", "exact match error: two-step", "one-step", "bucket loss error", "inside 95%"],
                   [[r["bucket"], ", ".join(r["flags"]) or "–", _n(r["two_step_error"]), _n(r["one_step_error"]),
                     f"{r['loss_error']['relative']:.1%}" if r["loss_error"] else "–",
                     f"{r['inside']}/{len(r['runs'])}" if r["inside"] is not None else "–"]
                    for r in h["per_bucket"]])
    return text + "\n\n" + table


@section
def skills(a: Analysis) -> str | None:
    """Two-step skill prediction (harness.analysis.skills): the fits, the held-out
    check against the aggregate loss and the one-step baseline, and its figure."""
    sk = a.fit.get("skills")
    if not sk:
        return None
    m = sk["method"]
    out = ["## Predicting skills in two steps: (N, D) → bucket loss → exact match",
           f"Step 1, per bucket: {m['loss_law']}. Step 2: {m['sigmoid']}. Prediction intervals: {m['interval']} "
           f"({m['resamples']} bootstrap draws each). Unpredictable buckets are flagged: "
           + "; ".join(f"*{k}*: {v}" for k, v in m["flags"].items()) + ". `harness-predict RESULTS_DIR --n N --d D "
           "--skills` prints these predictions for a run not yet trained."]
    rows = []
    for r in sk["buckets"]:
        law, sig = r.get("law") or {}, r.get("sigmoid") or {}
        p, ci = sig.get("params") or {}, sig.get("ci95") or {}
        rows.append([r["bucket"], f"{r['mass']:.2%}", ", ".join(r["flags"]) or "predictable",
                     f"{law['name']} (RMS log {law['rms_log']:.3f})" if law.get("params") else "–",
                     f"{p['L0']:.3g} {_iv(ci.get('L0'), '{:.3g}')}" if p else "–",
                     f"{p['k']:.3g} {_iv(ci.get('k'), '{:.3g}')}" if p else "–",
                     f"{p['lo']:.2f}–{p['hi']:.2f}" if p else "–",
                     f"{sig['eval_noise']:.3f}" if sig.get("eval_noise") is not None else "–"])
    out.append(_table(["bucket", "mass", "flags", "bucket-loss law", "L0, nats [95%]", "k per nat [95%]",
                       "lo–hi", "eval-to-eval sd"], rows))
    out.append(skill_check(sk))
    h = sk["heldout"]
    if h.get("skipped"):
        return "\n\n".join(out)
    rows = [[r["bucket"], _n(x["D"]), f"{x['observed']:.3f}",
             f"{x['two_step']:.3f} {_iv(x.get('interval'))}" if x.get("two_step") is not None else "–",
             f"{x['one_step']:.3f}" if x.get("one_step") is not None else "–", f"{x['observed_loss']:.3f}",
             f"{x['predicted_loss']:.3f} {_iv(x.get('loss_interval'))}" if x.get("predicted_loss") is not None
             else "–"]
            for r in h["per_bucket"] for x in r["runs"]]
    out.append(_table(["bucket", "D", "observed exact match", "two-step [95%]", "one-step", "observed bucket loss",
                       "predicted bucket loss [95%]"], rows[:4 * MAX_ROWS]))
    figs = [f for f in a.fit["figures"] if Path(f).stem.startswith("skills_")]
    out += [f"![{Path(f).stem}]({f})" for f in figs]
    return "\n\n".join(out)


@section
def excluded(a: Analysis) -> str:
    f = a.fit
    out = ["## Excluded runs"]
    if f["excluded_runs"]:
        out.append(_table(["run", "status", "reason"], [[e["run_id"], e["status"], e.get("reason", "status not ok")]
                                                        for e in f["excluded_runs"]]))
    else:
        out.append("None: every run had status ok.")
    if f["skipped_files"]:
        out.append("Unreadable files skipped: " + ", ".join(f"`{s['file']}` ({s['reason']})" for s in f["skipped_files"]))
    if f["dropped_rows"]:
        out.append(f"Rows dropped on request ({len(f['dropped_rows'])}): "
                   + ", ".join(f"{d['row']} (loss {_v(d['loss'])}, {d['reason']})" for d in f["dropped_rows"]))
    return "\n\n".join(out)


@section
def warnings_(a: Analysis) -> str | None:
    if not a.fit["warnings"]:
        return None
    return "## Warnings\n\n" + "\n".join(f"- {w}" for w in a.fit["warnings"])


@section
def figures(a: Analysis) -> str | None:
    figs = [p for p in a.fit["figures"] if not Path(p).stem.startswith(("probes_", "skills_"))]  # in their sections
    if not figs:
        return None
    return "## Figures\n\n" + "\n\n".join(f"![{Path(p).stem}]({p})" for p in figs)


@section
def method(a: Analysis) -> str:
    s = a.fit["settings"]
    o = s["optimizer"]
    return ("## Method\n\n"
            f"- Objective: {s['objective']} (Besiroglu et al. 2024).\n"
            f"- Optimizer: {o['method']} with ftol={o['ftol']:g}, gtol={o['gtol']:g}, max_nfev={o['max_nfev']}; "
            "coefficients as logs, terms combined by logsumexp.\n"
            f"- Selection: {s['selection']}.\n"
            f"- Starts: {s['starts']}.\n"
            f"- Bootstrap: {s['bootstrap']['method']}.")
