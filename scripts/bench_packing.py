"""Packing benchmark: K runs of one shape trained as one pack vs one after another.

For each shape, K runs that differ in ``train.seed`` and ``train.lr`` (the same
token budget) are trained twice on the same device:
- sequential: ``harness.train.train`` once per run, in this process (the harness loop
  as a sweep runs it with the basic launcher);
- packed: ``harness.train.train_packed`` over all K (the same loop, the packed engine).

Reported per shape: aggregate training tokens/s over the loops (sequential: the sum
of each record's loop time, tokens / ``tokens_per_s``; packed: the pack's loop time),
end-to-end wall time (data, init, loop, evals, records), the speedups, and the
largest relative difference between a run's final held-out loss packed and alone
(0 up to rounding in fp32; bf16 autocast on CUDA rounds differently in batched
kernels, so expect ~1e-3 there). Both loops evaluate once, at the end
(``train.eval_every`` = steps), on ``--eval-tokens`` held-out tokens. A short
untimed warm-up (imports, allocator, kernel selection) runs first.

    python scripts/bench_packing.py                      # defaults for the device found
    python scripts/bench_packing.py --shapes 64x2,256x4 --k 8 --steps 200

Writes ``results/bench/packing_<cpu|cuda>.json`` and ``.md``, naming the device.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from harness.bench import parse_shapes
from harness.config import make_config
from harness.validation import validate
from harness.hardware import host_name, resolve_device, resolve_precision
from harness.train import train, train_packed

os.environ.setdefault("WANDB_MODE", "disabled")

# Per-device defaults: the CPU ones finish in about a minute on two shared cores; the
# CUDA ones follow configs/sweep/gpu.yaml (context 256, batch 64, 16-dim heads).
DEFAULTS = {
    "cpu": {"shapes": "32x2,64x2,128x2", "k": 4, "steps": 40, "context": 64, "batch_size": 32, "threads": 1},
    "cuda": {"shapes": "64x2,128x4,256x4", "k": 8, "steps": 200, "context": 256, "batch_size": 64,
             "threads": 0},
}


def run_configs(width: int, depth: int, args: argparse.Namespace, results_dir: str) -> list:
    """K configs of one shape: seeds 0..K-1, lr spread by factors of 2 around --lr."""
    cfgs = []
    for i in range(args.k):
        cfg = make_config(**{
            "model.width": width, "model.depth": depth, "model.heads": max(1, width // args.head_dim),
            "model.context": args.context, "train.batch_size": args.batch_size,
            "data.tokens": args.steps * args.batch_size * args.context, "data.eval_tokens": args.eval_tokens,
            "train.eval_every": args.steps, "train.progress": False, "train.seed": i,
            "train.lr": args.lr * 2.0 ** (i % 4 - 1.5), "train.device": args.device,
            "train.precision": args.precision, "train.threads": args.threads,
            "wandb.mode": "disabled", "results_dir": results_dir, "sweep.name": "bench_packing",
        })
        validate(cfg)
        cfgs.append(cfg)
    return cfgs


def loop_seconds(rec: dict) -> float:
    """A run's loop time: its tokens over its ``tokens_per_s`` (for a packed run, from the
    pack's start to the run's end)."""
    return rec["tokens"] / rec["tokens_per_s"]


def sequential(cfgs: list) -> dict:
    t0 = time.time()
    recs = [train(c) for c in cfgs]
    wall = time.time() - t0
    bad = [r for r in recs if r["status"] != "ok"]
    if bad:
        raise RuntimeError(f"sequential run ended {bad[0]['status']}: {bad[0].get('error')}")
    loop = sum(loop_seconds(r) for r in recs)
    return {"records": recs, "loop_s": loop, "wall_s": wall}


def packed(cfgs: list) -> dict:
    t0 = time.time()
    recs = train_packed(cfgs)
    wall = time.time() - t0
    bad = [r for r in recs if r["status"] != "ok"]
    if bad:
        raise RuntimeError(f"packed run ended {bad[0]['status']}: {bad[0].get('error')}")
    return {"records": recs, "loop_s": max(loop_seconds(r) for r in recs), "wall_s": wall}


def bench_shape(width: int, depth: int, args: argparse.Namespace, scratch: str) -> dict:
    cfgs = run_configs(width, depth, args, scratch)
    seq = sequential(cfgs)
    pk = packed(cfgs)
    tokens = sum(r["tokens"] for r in seq["records"])
    runs = [{"lr": s["lr"], "seed": s["config"]["train"]["seed"],
             "sequential_final_val_loss": s["final_val_loss"], "packed_final_val_loss": p["final_val_loss"],
             "rel_diff": abs(p["final_val_loss"] - s["final_val_loss"]) / s["final_val_loss"]}
            for p, s in zip(pk["records"], seq["records"])]
    return {
        "shape": f"{width}x{depth}", "width": width, "depth": depth, "k": args.k,
        "params_nonembedding": seq["records"][0]["params_nonembedding"],
        "steps_per_run": seq["records"][0]["steps"], "tokens_total": tokens,
        "sequential_tokens_per_s": tokens / seq["loop_s"], "packed_tokens_per_s": tokens / pk["loop_s"],
        "speedup_loop": seq["loop_s"] / pk["loop_s"],
        "sequential_wall_s": seq["wall_s"], "packed_wall_s": pk["wall_s"],
        "speedup_wall": seq["wall_s"] / pk["wall_s"],
        "max_rel_diff_final_val_loss": max(r["rel_diff"] for r in runs), "runs": runs,
    }


def to_markdown(res: dict) -> str:
    a = res["args"]
    lines = [
        f"# Packing benchmark on {res['device']}", "",
        f"torch {res['torch']}, precision {res['precision']}, threads {a['threads'] or 'default'}, "
        f"context {a['context']}, batch {a['batch_size']}, {a['steps']} steps per run, "
        f"K = {a['k']} runs per shape (seeds 0..K-1, lr spread x2 around {a['lr']}), one eval per run "
        f"on {a['eval_tokens']} held-out tokens.", "",
        "Tokens/s are aggregate training throughput over the loops (all K runs); wall is end to end "
        "(data, init, loop, evals, records). 1-minute load average while it ran: "
        f"{res['load_avg_1min']['start']:.1f} at the start, {res['load_avg_1min']['end']:.1f} at the end, "
        f"on {res['cpu_count']} CPUs (other processes share the machine).", "",
        "| shape | N (non-emb) | K | sequential tok/s | packed tok/s | speedup (loop) | "
        "sequential wall s | packed wall s | speedup (wall) | max rel. diff. final val loss |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in res["shapes"]:
        lines.append(
            f"| {r['shape']} | {r['params_nonembedding']:,} | {r['k']} | "
            f"{r['sequential_tokens_per_s']:,.0f} | "
            f"{r['packed_tokens_per_s']:,.0f} | {r['speedup_loop']:.2f}x | {r['sequential_wall_s']:.1f} | "
            f"{r['packed_wall_s']:.1f} | {r['speedup_wall']:.2f}x | {r['max_rel_diff_final_val_loss']:.1e} |")
    lines += ["", "The last column is a check, not a goal: packed and sequential do the same arithmetic "
              "up to the order of floating-point sums. Where a run trains at the edge of stability "
              "(the largest lr of the spread) such rounding differences grow over the steps, as they do "
              "between two sequential runs on different thread counts; per-run values are in the JSON."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--shapes", help="comma-separated WIDTHxDEPTH (default depends on the device)")
    ap.add_argument("--k", type=int, help="runs per pack")
    ap.add_argument("--steps", type=int, help="steps per run")
    ap.add_argument("--context", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--threads", type=int, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-tokens", type=int, default=4096)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--out", default="results/bench")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    tag = device.type
    for key, value in DEFAULTS[tag].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        shapes = parse_shapes(args.shapes)
    except ValueError as e:
        ap.error(str(e))

    res = {"device": host_name(tag), "torch": torch.__version__,
           "precision": resolve_precision(args.precision, device), "args": vars(args), "shapes": [],
           # other processes on the machine skew timings; this says how busy it was
           "cpu_count": os.cpu_count(), "load_avg_1min": {"start": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory() as scratch:
        warm = argparse.Namespace(**{**vars(args), "k": 2, "steps": 3})
        sequential(run_configs(*shapes[0], warm, scratch)[:1])
        packed(run_configs(*shapes[0], warm, scratch))
        for w, d in shapes:
            r = bench_shape(w, d, args, scratch)
            res["shapes"].append(r)
            print(f"{r['shape']} K={r['k']}: sequential {r['sequential_tokens_per_s']:,.0f} tok/s, "
                  f"packed {r['packed_tokens_per_s']:,.0f} tok/s ({r['speedup_loop']:.2f}x loop, "
                  f"{r['speedup_wall']:.2f}x wall), max rel. diff. {r['max_rel_diff_final_val_loss']:.1e}",
                  flush=True)
    res["load_avg_1min"]["end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"packing_{tag}.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    md = to_markdown(res)
    (out / f"packing_{tag}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
