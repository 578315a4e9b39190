"""harness-bench: throughput, step time, memory and MFU of the real training loop.

For each shape (``WIDTHxDEPTH``) it runs :func:`harness.train.train` for a fixed
number of steps on the default data and reads tokens/s from the record (the whole
loop: data, forward, backward, AdamW, schedule, divergence checks; one final
evaluation of a single batch is included). MFU = flops_per_token x tokens/s / peak
bf16 dense FLOP/s of the device (table in harness/train.py); None on CPU.

Extra measurements:
- ``--baseline``: the same shape in a minimal nanoGPT-style loop (forward, backward,
  AdamW step, nothing else), to show what the harness's loop costs on top.
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
import platform
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf


def bench_config(width: int, depth: int, args: argparse.Namespace, threads: int, results_dir: str):
    from harness.config import RunConfig, validate

    cfg = OmegaConf.structured(RunConfig)
    steps = args.steps
    for key, value in {
        "model.width": width, "model.depth": depth, "model.heads": max(1, width // args.head_dim),
        "model.context": args.context, "train.batch_size": args.batch_size,
        "data.tokens": steps * args.batch_size * args.context,
        "data.eval_tokens": args.context, "data.probe_records": 0,
        "train.eval_every": steps, "train.progress": False,
        "train.device": args.device, "train.precision": args.precision, "train.compile": args.compile,
        "train.threads": threads, "wandb.mode": "disabled", "results_dir": results_dir,
        "sweep.name": "bench", "train.warmup": 0,
    }.items():
        OmegaConf.update(cfg, key, value, merge=False)
    validate(cfg)
    return cfg


def run_shape(width: int, depth: int, args, threads: int, results_dir: str) -> dict:
    from harness.train import train

    cfg = bench_config(width, depth, args, threads, results_dir)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    rec = train(cfg)
    wall = time.time() - t0
    if rec["status"] != "ok":
        raise RuntimeError(f"bench run {width}x{depth} {rec['status']}: {rec.get('error')}")
    tps = rec["tokens_per_s"]
    return {
        "shape": f"{width}x{depth}", "width": width, "depth": depth, "context": args.context,
        "batch_size": args.batch_size, "params_nonembedding": rec["params_nonembedding"],
        "tokens_per_s": tps, "step_ms": 1e3 * args.batch_size * args.context / tps,
        "peak_mem_mb": (torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
        "mfu": rec["mfu"], "flops_per_token": rec["flops_per_token"], "wall_s": wall,
        "first_step_s": rec.get("first_step_s"),  # includes torch.compile's compilation with --compile
        "precision": rec["precision"], "compile": args.compile, "threads": threads,
    }


def minimal_loop(width: int, depth: int, args, threads: int) -> float:
    """tokens/s of a bare nanoGPT-style loop on random tokens: set the lr, forward,
    backward, clip the gradient norm at 1, AdamW step. What the harness is compared to."""
    from harness.model import GPT, GPTConfig

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    model = GPT(GPTConfig(vocab=128, width=width, depth=depth, heads=max(1, width // args.head_dim),
                          context=args.context)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    data = torch.randint(0, 128, (args.steps, args.batch_size, args.context + 1), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.time()  # every step timed, warm-up included, as the harness loop's tokens/s is
    for i in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * min(1.0, (i + 1) / 10)
        _, loss = model(data[i, :, :-1], data[i, :, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * args.batch_size * args.context / (time.time() - t0)


def _parallel_worker(job):
    width, depth, args, rd = job
    return run_shape(width, depth, args, 1, rd)["tokens_per_s"]


def sweep_throughput(width: int, depth: int, args, k: int, results_dir: str) -> dict:
    """Aggregate training tokens/s of k equal runs: one after another in one process with
    torch's default threads (the harmonic mean of their loop rates) vs k single-thread
    processes at once (the sum of their loop rates). Process start-up is left out of both:
    a sweep pays it once per job either way."""
    seq_rates = [run_shape(width, depth, args, 0, f"{results_dir}/seq{i}")["tokens_per_s"] for i in range(k)]
    seq = k / sum(1 / r for r in seq_rates)
    with mp.get_context("spawn").Pool(k) as pool:
        par_rates = pool.map(_parallel_worker, [(width, depth, args, f"{results_dir}/par{i}") for i in range(k)])
    par = sum(par_rates)
    return {"shape": f"{width}x{depth}", "runs": k, "sequential_tokens_per_s": seq,
            "parallel_tokens_per_s": par, "speedup": par / seq, "torch_default_threads": torch.get_num_threads()}


def sampler_throughput(batch_size: int = 512, context: int = 256, n: int = 200) -> dict:
    from harness.data.sampler import StreamSampler, WindowSampler

    rows = torch.randint(0, 128, (batch_size * n, context + 1), dtype=torch.int16)
    ws = WindowSampler(rows, batch_size)
    stream = np.random.randint(0, 2048, size=50_000_000, dtype=np.uint16)
    ss = StreamSampler(stream, context, batch_size, seed=0)
    out = {}
    for name, s in (("window", ws), ("stream", ss)):
        t0 = time.time()
        for i in range(n):
            s.batch(i)
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


def device_name(device: str) -> str:
    if torch.cuda.is_available() and device != "cpu":
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()}"


def to_markdown(res: dict) -> str:
    lines = [f"# harness-bench on {res['device']}", "",
             f"torch {res['torch']}, context {res['args']['context']}, batch {res['args']['batch_size']}, "
             f"{res['args']['steps']} steps per shape, precision {res['args']['precision']}, "
             f"compile {res['args']['compile']}", "",
             "| shape | N (non-emb) | tokens/s | step ms | first step s | peak MB | MFU | nanoGPT-style loop tokens/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["shapes"]:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] else "n/a"
        mem = f"{r['peak_mem_mb']:.0f}" if r["peak_mem_mb"] else "n/a"
        base = f"{r['baseline_tokens_per_s']:,.0f}" if r.get("baseline_tokens_per_s") else "-"
        first = f"{r['first_step_s']:.2f}" if r.get("first_step_s") is not None else "-"
        lines.append(f"| {r['shape']} | {r['params_nonembedding']:,} | {r['tokens_per_s']:,.0f} | "
                     f"{r['step_ms']:.2f} | {first} | {mem} | {mfu} | {base} |")
    if res.get("parallel"):
        p = res["parallel"]
        lines += ["", f"Sweep throughput, {p['runs']} runs of {p['shape']}: sequential (one process, default "
                  f"threads) {p['sequential_tokens_per_s']:,.0f} tok/s; {p['runs']} processes x 1 thread "
                  f"{p['parallel_tokens_per_s']:,.0f} tok/s ({p['speedup']:.2f}x)."]
    s = res["samplers"]
    lines += ["", f"Samplers: window slices {s['window_tokens_per_s'] / 1e6:,.0f} M tok/s, "
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
    ap.add_argument("--compile", action="store_true")
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
    scratch = Path(args.out) / ".scratch"
    res = {"device": device_name(args.device), "torch": torch.__version__, "args": vars(args), "shapes": []}
    for w, d in shapes:
        r = run_shape(w, d, args, args.threads, str(scratch))
        if args.baseline:
            r["baseline_tokens_per_s"] = minimal_loop(w, d, args, args.threads)
        res["shapes"].append(r)
        print(f"{r['shape']}: {r['tokens_per_s']:,.0f} tok/s, {r['step_ms']:.2f} ms/step"
              + (f", MFU {100 * r['mfu']:.1f}%" if r["mfu"] else "")
              + (f", minimal loop {r['baseline_tokens_per_s']:,.0f} tok/s" if args.baseline else ""))
    if args.parallel:
        res["parallel"] = sweep_throughput(*shapes[0], args, args.parallel, str(scratch))
    res["samplers"] = sampler_throughput()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if "CPU" not in res["device"] else "cpu"
    (out / f"bench_{tag}.json").write_text(json.dumps(res, indent=1, default=str))
    md = to_markdown(res)
    (out / f"bench_{tag}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
