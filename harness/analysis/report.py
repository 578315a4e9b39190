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
from harness.analysis.context import Analysis

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


@section
def title(a: Analysis) -> str:
    f = a.fit
    src = f["source"]
    what = f"records ({src.get('n_records')} runs)" if src["kind"] == "records" else f"CSV `{src.get('file')}` ({src.get('n_rows')} rows)"
    return (f"# Scaling-law fit\n\nInput: {what}; {f['n_points']} points used. "
            f"Every number below is also in `fit.json`; intervals are bootstrap percentile 95% intervals "
            f"({f['settings']['bootstrap']['resamples']} resamples of the rows, seed {f['settings']['bootstrap']['seed']}).")


@section
def conventions(a: Analysis) -> str:
    c = a.fit["conventions"]
    rows = [[k, f"`{v}`"] for k, v in c.items()]
    return "## Conventions\n\n" + _table(["quantity", "definition"], rows) + (
        "\n\nN is the non-embedding parameter count (Kaplan et al. 2020), C = 6 N D FLOPs, losses in nats per token."
        if a.fit["source"]["kind"] == "records" else "")


@section
def laws(a: Analysis) -> str:
    out = ["## Laws"]
    for name, law in a.fit["laws"].items():
        out.append(f"### {name}: L = {law['form']}\n\nFitted to {law['n_points']} points: {law['inputs']}.")
        if law.get("params") is None:
            out.append(f"Not fitted: {law.get('skipped')}.")
            continue
        rows = [[k, _v(v), _ci((law.get("ci95") or {}).get(k))] for k, v in law["params"].items()]
        out.append(_table(["parameter", "estimate", "95% interval"], rows))
        out.append(f"R² (log loss) = {_v(law['r2_log'])}; Huber objective = {_v(law['objective'])}; "
                   f"{law['starts_agreeing']} of {law['n_starts']} starts reached the same optimum; "
                   + (f"no bootstrap intervals: {law['bootstrap_skipped']}." if law.get("bootstrap_skipped")
                      else f"{law['bootstrap_resamples']} bootstrap refits."))
        wide = [k for k, ci in (law.get("ci95") or {}).items()
                if ci and ci[0] is not None and ci[1] is not None and ci[0] > 0 and ci[1] / ci[0] > 100]
        if wide:
            out.append(f"The intervals of {', '.join(wide)} span more than a factor of 100: these points do not "
                       f"pin {'them' if len(wide) > 1 else 'it'} down.")
    return "\n\n".join(out)


@section
def entropy_floor(a: Analysis) -> str:
    f = a.fit
    floor = f["entropy_floor"]
    rows = []
    for name, law in f["laws"].items():
        if law.get("params") and "E" in law["params"]:
            E = law["params"]["E"]
            d = "–" if not isinstance(floor, float) else _v(E - floor)
            rows.append([name, _v(E), _ci((law.get("ci95") or {}).get("E")), d])
    head = "## Irreducible loss E vs the entropy floor\n\n"
    if isinstance(floor, float):
        head += (f"The data source's exact entropy floor is {floor:.4f} nats/token; a fitted E below it is "
                 f"impossible for a perfect model and signals an extrapolation artefact (or too short a range).\n\n")
    elif isinstance(floor, list):
        head += f"Runs report different entropy floors: {', '.join(_v(x) for x in floor)} nats/token.\n\n"
    else:
        head += "The data's entropy floor is unknown (none recorded).\n\n"
    return head + _table(["law", "E", "95% interval", "E − floor"], rows)


@section
def compute_optimal(a: Analysis) -> str | None:
    c = a.fit.get("compute_optimal")
    if not c:
        return None
    ci = c.get("ci95") or {}
    lines = ["## Compute-optimal allocation (from the Chinchilla fit)",
             "N_opt = G·(C/6)^a, D_opt = G⁻¹·(C/6)^b with a = β/(α+β), b = α/(α+β), G = (αA/(βB))^(1/(α+β)).",
             _table(["quantity", "estimate", "95% interval"],
                    [["a", _v(c["a"]), _ci(ci.get("a"))], ["b", _v(c["b"]), _ci(ci.get("b"))],
                     ["G", _v(c["G"]), _ci(ci.get("G"))]])]
    a_, lo_hi = c["a"], ci.get("a")
    verdict = []
    for ref, name in ((KAPLAN_A, "Kaplan et al. (2020)"), (CHINCHILLA_A, "Hoffmann et al. (2022, ~0.5)")):
        inside = lo_hi is not None and lo_hi[0] <= ref <= lo_hi[1]
        verdict.append(f"{name}'s a = {ref} is {'inside' if inside else 'outside'} the interval")
    lines.append(f"a = {_v(a_)} vs Kaplan's 0.73 and Chinchilla's ~0.5: " + "; ".join(verdict) + ".")
    rows = [[r["label"], _v(r["C"]), _v(r["N_opt"]), _ci(r["ci95"].get("N_opt")), _v(r["D_opt"]),
             _ci(r["ci95"].get("D_opt")), _v(r["tokens_per_param"]), _ci(r["ci95"].get("tokens_per_param"))]
            for r in c["at_compute"]]
    lines.append(_table(["C", "FLOPs", "N_opt", "95%", "D_opt", "95%", "tokens/param", "95%"], rows))
    lines.append("Values beyond the sweep's compute range are extrapolations; their intervals show how far to trust them.")
    return "\n\n".join(lines)


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
    if not e:
        return None
    out = [f"## Extrapolation check\n\n{e['law']} law refitted without the held-out runs ({e['criterion']}); "
           f"{e['n_train']} runs used."]
    if e.get("skipped"):
        out.append(f"Skipped: {e['skipped']}.")
        return "\n\n".join(out)
    out.append(f"Mean relative error predicting the held-out runs: **{e['rel_error']:.2%}** (max {e['max_rel_error']:.2%}).")
    runs = sorted(e["runs"], key=lambda r: -r["C"])
    out.append(_table(["run", "N", "D", "C", "observed", "predicted", "rel. error"],
                      [[r["id"], _v(r["N"]), _v(r["D"]), _v(r["C"]), _v(r["observed"]), _v(r["predicted"]),
                        f"{r['rel_error']:.2%}"] for r in runs[:MAX_ROWS]]))
    if len(runs) > MAX_ROWS:
        out.append(f"({len(runs) - MAX_ROWS} more held-out runs in fit.json.)")
    return "\n\n".join(out)


def _n(x) -> str:
    return "–" if x is None else f"{x:.3g}"


def _learned_at(value, bound, lo: str, hi: str) -> str:
    return _n(value) if value is not None else {"below": f"< {lo}", "above": f"> {hi}"}.get(bound, "–")


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
    figs = [p for p in a.fit["figures"] if not Path(p).stem.startswith("probes_")]  # shown in their section
    if not figs:
        return None
    return "## Figures\n\n" + "\n\n".join(f"![{Path(p).stem}]({p})" for p in figs)


@section
def method(a: Analysis) -> str:
    s = a.fit["settings"]
    o = s["optimizer"]
    return ("## Method\n\n"
            f"- Objective: {s['objective']} (Besiroglu et al. 2024).\n"
            f"- Optimizer: {o['method']} with ftol={o['ftol']:g}, gtol={o['gtol']:g}, maxiter={o['maxiter']}; "
            "coefficients as logs, terms combined by logsumexp.\n"
            f"- Starts: {s['starts']}.\n"
            f"- Bootstrap: {s['bootstrap']['method']}.")
