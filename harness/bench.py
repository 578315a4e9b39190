"""harness-bench: throughput, step time, memory and MFU of the real training loop.

For each shape (``WIDTHxDEPTH``) it runs :func:`harness.train.train` for a fixed
number of steps on the default data and reads tokens/s from the record (the whole
loop: data, forward, backward, AdamW, schedule, divergence checks; one final
evaluation of a single batch is included). It reports both the run's tokens/s (every
step, so a compile is paid in it) and the steady-state tokens/s without the first
step. MFU = flops_per_token x steady tokens/s / peak bf16 dense FLOP/s of the device
(table in harness/hardware.py; FLOPs in the PaLM convention of harness.model); None on CPU.

Extra measurements:
- ``--baseline``: the same shape in a minimal nanoGPT-style loop (forward, backward,
  AdamW step, nothing else), to show what the harness's loop costs on top.
- ``--compile``: each shape eager and compiled (``--compile-mode``, e.g.
  ``reduce-overhead`` for CUDA graphs), with the compile cost (first-step time over
  eager's) and the number of steps after which compiling pays back.
- ``--parallel K``: sweep-level throughput, K identical runs one after another in
  one process with torch's default threads vs K processes of one thread each.
- the batch samplers' tokens/s (``WindowSampler`` slices, ``StreamSampler`` gathers).

Writes ``results/bench/bench_<device>.json`` and ``.md`` naming the device.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import torch
from harness.config import ConfigError, make_config
from harness.validation import COMPILE_MODES, validate
from harness.data.sampler import StreamSampler, WindowSampler
from harness.hardware import host_name, resolve_device, sync
from harness.model import GPT, GPTConfig
from harness.train import train

DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice, before any run changes it


def bench_config(width: int, depth: int, args: argparse.Namespace, threads: int, results_dir: str,
                 compile: bool = False):
    steps = args.steps
    cfg = make_config(**{
        "model.width": width, "model.depth": depth, "model.heads": max(1, width // args.head_dim),
        "model.context": args.context, "train.batch_size": args.batch_size,
        "data.tokens": steps * args.batch_size * args.context,
        "data.eval_tokens": args.context, "data.probe_records": 0,
        "train.eval_every": steps, "train.progress": False,
        "train.device": args.device, "train.precision": args.precision, "train.compile": compile,
        "train.compile_mode": args.compile_mode if compile else "default",
        "train.threads": threads, "wandb.mode": "disabled", "results_dir": results_dir,
        "sweep.name": "bench", "train.warmup": 0,
    })
    validate(cfg)
    return cfg


def run_shape(width: int, depth: int, args, threads: int, results_dir: str, compile: bool = False) -> dict:
    cfg = bench_config(width, depth, args, threads, results_dir, compile)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    rec = train(cfg)
    wall = time.time() - t0
    if rec["status"] != "ok":
        raise RuntimeError(f"bench run {width}x{depth} {rec['status']}: {rec.get('error')}")
    tps = rec["tokens_per_s"]
    steady = steady_tokens_per_s(rec["tokens"], tps, rec["first_step_s"], args.batch_size * args.context)
    return {
        "shape": f"{width}x{depth}", "width": width, "depth": depth, "context": args.context,
        "batch_size": args.batch_size, "params_nonembedding": rec["params_nonembedding"],
        "tokens_per_s": tps, "step_ms": 1e3 * args.batch_size * args.context / tps,
        "peak_mem_mb": (torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
        "steady_tokens_per_s": steady, "steady_step_ms": 1e3 * args.batch_size * args.context / steady,
        "mfu": None if rec["mfu"] is None else rec["mfu"] * steady / tps, "mfu_whole_run": rec["mfu"],
        "flops_per_token": rec["flops_per_token"], "wall_s": wall,
        "first_step_s": rec["first_step_s"],  # includes torch.compile's compilation when compiled
        "precision": rec["precision"], "compile": compile,
        "compile_mode": args.compile_mode if compile else None, "threads": threads,
    }


def steady_tokens_per_s(tokens: int, tokens_per_s: float, first_step_s: float, batch_tokens: int) -> float:
    """tokens/s over every step but the first (which holds the compilation and warm-up):
    the run's loop time less the first step's, over the tokens of the other steps."""
    rest = tokens / tokens_per_s - first_step_s
    return (tokens - batch_tokens) / rest if rest > 0 and tokens > batch_tokens else tokens_per_s


def compile_payback(eager: dict, comp: dict) -> dict:
    """Compile cost = the compiled first step's extra seconds over eager's; it pays back
    after cost / (eager step time - compiled step time) steps, or never if the compiled
    step is not faster."""
    cost = comp["first_step_s"] - eager["first_step_s"]
    saved_ms = eager["steady_step_ms"] - comp["steady_step_ms"]
    return {"compile_s": cost, "step_ms_saved": saved_ms,
            "payback_steps": cost / (saved_ms / 1e3) if saved_ms > 0 else None,
            "speedup": eager["steady_step_ms"] / comp["steady_step_ms"]}


def minimal_loop(width: int, depth: int, args, threads: int) -> float:
    """tokens/s of a bare nanoGPT-style loop on random tokens: set the lr, forward,
    backward, clip the gradient norm at 1, AdamW step. What the harness is compared to."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    model = GPT(GPTConfig(vocab=128, width=width, depth=depth, heads=max(1, width // args.head_dim),
                          context=args.context)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    data = torch.randint(0, 128, (args.steps, args.batch_size, args.context + 1), device=device)
    sync(device)
    t0 = time.time()  # every step timed, warm-up included, as the harness loop's tokens/s is
    for i in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * min(1.0, (i + 1) / 10)
        _, loss = model(data[i, :, :-1], data[i, :, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(device)
    return args.steps * args.batch_size * args.context / (time.time() - t0)


def _parallel_worker(job):
    width, depth, args, rd = job
    return run_shape(width, depth, args, 1, rd)["tokens_per_s"]


def sweep_throughput(width: int, depth: int, args, k: int, results_dir: str) -> dict:
    """Aggregate training tokens/s of k equal runs: one after another in one process with
    torch's default threads (the harmonic mean of their loop rates) vs k single-thread
    processes at once (the sum of their loop rates). Process start-up is left out of both:
    a sweep pays it once per job either way. The default is set explicitly, because an
    earlier ``--threads`` run in this process changed torch's setting for the process."""
    seq_rates = [run_shape(width, depth, args, DEFAULT_THREADS, f"{results_dir}/seq{i}")["tokens_per_s"]
                 for i in range(k)]
    seq = k / sum(1 / r for r in seq_rates)
    with mp.get_context("spawn").Pool(k) as pool:
        par_rates = pool.map(_parallel_worker, [(width, depth, args, f"{results_dir}/par{i}") for i in range(k)])
    par = sum(par_rates)
    return {"shape": f"{width}x{depth}", "runs": k, "sequential_tokens_per_s": seq,
            "parallel_tokens_per_s": par, "speedup": par / seq, "torch_default_threads": DEFAULT_THREADS}


def sampler_throughput(device: torch.device, batch_size: int = 512, context: int = 256, n: int = 200) -> dict:
    """Batches/s of both samplers where training uses them: on the device (CPU or GPU)."""
    rows = torch.randint(0, 128, (batch_size * n, context + 1), dtype=torch.int16)
    stream = np.random.randint(0, 2048, size=50_000_000, dtype=np.uint16)
    ws = WindowSampler(rows, batch_size)
    ss = StreamSampler(stream, context, batch_size, seed=0)
    if device.type != "cpu":
        ws, ss = ws.to(device), ss.to(device)
    out = {}
    for name, s in (("window", ws), ("stream", ss)):
        sync(device)
        t0 = time.time()
        for i in range(n):
            s.batch(i)
        sync(device)
        out[f"{name}_tokens_per_s"] = n * batch_size * context / (time.time() - t0)
    return out


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """``"64x2,128x4"`` -> [(64, 2), (128, 4)] as (width, depth)."""
    shapes = []
    for s in text.split(","):
        try:
            w, d = (int(v) for v in s.lower().split("x"))
        except ValueError:
            raise ValueError(f"--shapes: {s!r} is not WIDTHxDEPTH") from None
        shapes.append((w, d))
    return shapes


def to_markdown(res: dict) -> str:
    a = res["args"]
    lines = [f"# harness-bench on {res['device']}", "",
             f"torch {res['torch']}, context {a['context']}, batch {a['batch_size']}, head dim {a['head_dim']}, "
             f"{a['steps']} steps per shape, precision {res['shapes'][0]['precision']}, threads "
             f"{a['threads'] or 'default'}. Run tok/s counts every step; steady tok/s, step ms and MFU "
             "leave out the first step (compilation, warm-up).", "",
             "| shape | N (non-emb) | run tok/s | steady tok/s | step ms | first step s | peak MB | MFU "
             "| nanoGPT-style loop tok/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["shapes"]:
        for row in [r] + ([r["compiled"]] if r.get("compiled") else []):
            name = row["shape"] + (f" compiled ({row['compile_mode']})" if row["compile"] else "")
            mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "n/a"
            mem = f"{row['peak_mem_mb']:.0f}" if row["peak_mem_mb"] is not None else "n/a"
            base = f"{row['baseline_tokens_per_s']:,.0f}" if row.get("baseline_tokens_per_s") else "-"
            lines.append(f"| {name} | {row['params_nonembedding']:,} | {row['tokens_per_s']:,.0f} | "
                         f"{row['steady_tokens_per_s']:,.0f} | {row['steady_step_ms']:.2f} | "
                         f"{row['first_step_s']:.2f} | {mem} | {mfu} | {base} |")
    paid = [r for r in res["shapes"] if r.get("payback")]
    if paid:
        lines += ["", "torch.compile against eager (compile cost = the compiled first step's extra seconds):", ""]
        for r in paid:
            p = r["payback"]
            when = (f"pays back after {p['payback_steps']:,.0f} steps" if p["payback_steps"] is not None
                    else "never pays back (the compiled step is not faster)")
            lines.append(f"- {r['shape']}: compile {p['compile_s']:.1f} s, steady step {p['speedup']:.2f}x "
                         f"eager's, {when}.")
    if res.get("parallel"):
        p = res["parallel"]
        lines += ["", f"Sweep throughput, {p['runs']} runs of {p['shape']}: sequential (one process, torch's "
                  f"default {p['torch_default_threads']} threads) {p['sequential_tokens_per_s']:,.0f} tok/s; "
                  f"{p['runs']} processes x 1 thread {p['parallel_tokens_per_s']:,.0f} tok/s ({p['speedup']:.2f}x)."]
    s = res["samplers"]
    lines += ["", f"Samplers on {res['sampler_device']}: window slices {s['window_tokens_per_s'] / 1e6:,.0f} M tok/s, "
              f"stream gathers {s['stream_tokens_per_s'] / 1e6:,.0f} M tok/s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="harness-bench", description="Throughput, memory and MFU for given shapes.")
    ap.add_argument("--shapes", default="32x2,64x2,128x2", help="comma-separated WIDTHxDEPTH")
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--compile", action="store_true", help="also run each shape compiled, and compare")
    ap.add_argument("--compile-mode", default="default", choices=list(COMPILE_MODES),
                    help="torch.compile mode for --compile (reduce-overhead = CUDA graphs)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--baseline", action="store_true", help="also time a minimal nanoGPT-style loop")
    ap.add_argument("--parallel", type=int, default=0, help="K: sweep throughput of K runs of the first shape")
    ap.add_argument("--out", default="results/bench")
    args = ap.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    try:
        shapes = parse_shapes(args.shapes)
    except ValueError as e:
        ap.error(str(e))
    if args.steps < 2:
        ap.error("--steps must be at least 2 (the first step is left out of the steady state)")
    for w, d in shapes:  # every shape must be a valid run before anything is timed
        try:
            bench_config(w, d, args, args.threads, "unused", args.compile)
        except ConfigError as e:
            ap.error(f"shape {w}x{d}: {e}")
    scratch = Path(args.out) / ".scratch"
    res = {"device": host_name(args.device), "torch": torch.__version__, "args": vars(args), "shapes": []}
    for w, d in shapes:
        r = run_shape(w, d, args, args.threads, str(scratch))
        if args.baseline:
            r["baseline_tokens_per_s"] = minimal_loop(w, d, args, args.threads)
        if args.compile:
            r["compiled"] = run_shape(w, d, args, args.threads, str(scratch), compile=True)
            r["payback"] = compile_payback(r, r["compiled"])
        res["shapes"].append(r)
        print(f"{r['shape']}: {r['steady_tokens_per_s']:,.0f} tok/s steady, {r['steady_step_ms']:.2f} ms/step"
              + (f", MFU {100 * r['mfu']:.1f}%" if r["mfu"] is not None else "")
              + (f", minimal loop {r['baseline_tokens_per_s']:,.0f} tok/s" if args.baseline else "")
              + (f", compiled {r['compiled']['steady_step_ms']:.2f} ms/step after a "
                 f"{r['compiled']['first_step_s']:.1f} s first step" if args.compile else ""))
    if args.parallel:
        res["parallel"] = sweep_throughput(*shapes[0], args, args.parallel, str(scratch))
    device = resolve_device(args.device)
    res["sampler_device"] = str(device)
    res["samplers"] = sampler_throughput(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if "CPU" not in res["device"] else "cpu"
    (out / f"bench_{tag}.json").write_text(json.dumps(res, indent=1, default=str))
    md = to_markdown(res)
    (out / f"bench_{tag}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
