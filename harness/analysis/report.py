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
             f"N_opt = G·(C/6)^a, D_opt = G⁻¹·(C/6)^b with a = β/(α+β), b = α/(α+β), G = (αA/(βB))^(1/(α+β)).",
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
    if not a.fit["figures"]:
        return None
    return "## Figures\n\n" + "\n\n".join(f"![{Path(p).stem}]({p})" for p in a.fit["figures"])


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
