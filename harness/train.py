"""The training loop: one run from a validated config to a run record.

Read top to bottom: resolve device and precision, build data and model, then train
for steps = ceil(data.tokens / (batch_size * context)) with AdamW, the lr schedule,
gradient clipping and periodic evaluation on the held-out windows. The run ends as
``ok``, ``diverged`` (NaN/inf loss, or loss above ``diverge_factor`` x its first
value), ``oom``, ``failed`` or ``interrupted`` (SIGINT/SIGTERM); every ending writes
a record, atomically. Deterministic on CPU for a given config: batches are a pure
function of the step, the model's init a function of ``train.seed``. Checkpoints
(every ``train.checkpoint_every`` steps or ``train.checkpoint_minutes`` minutes, and
on interrupt) hold the whole loop state, so ``train.resume=true`` ends exactly where
the uninterrupted run would have.

On a GPU the loop keeps every token tensor on the device (``TokenData.to``), runs
bf16 autocast, fused AdamW and SDPA attention (flash kernels where they apply), and
with ``train.compile=true`` compiles the model (``train.compile_mode=reduce-overhead``
adds CUDA graphs). The step itself never waits for the device: the loss is read back
(a host sync) only every 10 steps, at evaluations and before a checkpoint.

Curve points record ``tokens`` seen, ``flops`` = 6·N·tokens (Kaplan's convention,
non-embedding N, the same as the record's ``flops_6nd``), the mean training loss
since the previous point and the held-out loss, all in nats per token.
"""
from __future__ import annotations

import math
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable

import torch

import harness
from harness import records, slurm
from harness.config import resolve_lr, to_container
from harness.data import build_data
from harness.model import GPT, GPTConfig, flops_per_token, param_counts
from harness.probes import evaluate_probes
from harness.schedule import lr_multiplier, warmup_steps
from harness.tracking import Tracker

# Peak dense bf16 FLOP/s for MFU (vendor datasheets, without sparsity). The first key
# whose words all appear, in order and whole, in the device name wins; an unknown
# device gets no MFU rather than a neighbour's peak.
PEAK_FLOPS = {
    "H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12,
    "L40S": 362e12, "L40": 181e12, "L4": 121e12, "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12,
}


def peak_flops_for(name: str) -> float | None:
    """Peak bf16 dense FLOP/s of a CUDA device called ``name``, or None if not in the table."""
    words = re.split(r"[\s\-_]+", name.lower())
    for key, value in PEAK_FLOPS.items():
        k = key.lower().split()
        if any(words[i : i + len(k)] == k for i in range(len(words))):
            return value
    return None


def peak_flops(device: torch.device) -> float | None:
    return peak_flops_for(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    return ("bf16" if device.type == "cuda" else "fp32") if name == "auto" else name


def gpt_config(cfg: Any, vocab: int) -> GPTConfig:
    m = cfg.model
    return GPTConfig(
        vocab=vocab, width=m.width, depth=m.depth, heads=m.heads, context=m.context,
        mlp_ratio=m.mlp_ratio, tie_embeddings=m.tie_embeddings,
        parametrization=m.parametrization, base_width=m.base_width,
    )


def planned_tokens(cfg: Any) -> int:
    """Training tokens D: ``data.tokens``, or ``flop_budget / (6 N)`` for IsoFLOP runs
    (N non-embedding, which does not depend on the vocabulary)."""
    if cfg.data.flop_budget:
        n = param_counts(gpt_config(cfg, vocab=1))["params_nonembedding"]
        return max(int(cfg.data.flop_budget / (6 * n)), cfg.train.batch_size * cfg.model.context)
    return int(cfg.data.tokens)


def versions() -> dict:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"torch": torch.__version__, "harness": harness.__version__, "git": commit,
            "python": platform.python_version()}


@torch.no_grad()
def evaluate(model: GPT, val: torch.Tensor, batch_size: int, device: torch.device, autocast) -> float:
    """Mean loss in nats per token over every held-out window."""
    model.eval()
    total, count = torch.zeros((), device=device), 0
    for i in range(0, val.shape[0], batch_size):
        chunk = val[i : i + batch_size].to(device)
        with autocast():
            _, loss = model(chunk[:, :-1], chunk[:, 1:])
        n = chunk[:, 1:].numel()
        total += loss.float() * n
        count += n
    model.train()
    return (total / count).item()


CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compiled(model: torch.nn.Module, mode: str) -> Callable:
    """``torch.compile`` of the forward pass (and so its backward). ``reduce-overhead``
    records CUDA graphs, which removes the per-kernel launch cost that dominates tiny
    models on a GPU; on CPU inductor skips the graphs and it acts as ``default``."""
    return torch.compile(model, mode=None if mode == "default" else mode)


class Diverged(Exception):
    pass


def is_oom(e: BaseException) -> bool:
    """CUDA OOM, including the allocator failures that surface as a plain RuntimeError."""
    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower()
    )


# --- checkpoints -------------------------------------------------------------------
# A checkpoint is everything that the rest of the run depends on: model, optimizer,
# the step (batches are a pure function of the step, so the step *is* the data
# position), RNG states, the curve so far, the training-loss accumulator since the
# last curve point and the first loss (the divergence reference). Resuming from it
# reproduces the uninterrupted run exactly on CPU.

CHECKPOINT_FORMAT = 1  # bump when the saved state changes; other checkpoints are not resumed


def family_id(config: dict) -> str:
    """The run id with the token budget left out: runs of one family differ only in D."""
    base = {k: v for k, v in config.items()}
    base["data"] = {k: v for k, v in config["data"].items() if k not in ("tokens", "flop_budget")}
    return records.run_id(base)


def wsd_cooldown_start(total_steps: int, cooldown: float) -> int:
    """The step at which a WSD run of ``total_steps`` leaves its stable phase."""
    return total_steps - round(cooldown * total_steps)


def branch_path(cfg: Any, family: str, step: int) -> Path:
    return Path(cfg.results_dir) / cfg.sweep.name / "branches" / f"{family}_{step}.pt"


def checkpoint_path(cfg: Any, rid: str) -> Path:
    return Path(cfg.results_dir) / cfg.sweep.name / "checkpoints" / f"{rid}.pt"


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomically (temp file, fsync, rename): a kill at any instant leaves the previous
    checkpoint or the new one, never a torn file."""
    records.atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """``weights_only=True``: tensors and plain containers only, never pickled code."""
    state = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not a harness checkpoint of this format")
    return state


@contextmanager
def deferred_stop():
    """While inside, SIGINT (and SIGTERM, when nobody else handles it) only ask the
    loop to stop: it finishes the current step, checkpoints and records ``interrupted``.
    A second signal stops at once. Yields the request (empty until a signal came)."""
    request: dict[str, str] = {}

    def handler(signum: int, frame: Any) -> None:
        if request:
            raise KeyboardInterrupt
        request["signal"] = signal.Signals(signum).name
        print(f"\nharness: {request['signal']}: stopping after this step (checkpoint and record); "
              "send it again to stop now", file=sys.stderr, flush=True)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
            if signal.getsignal(sig) is default:
                previous[sig] = signal.signal(sig, handler)
        # in a submitit SLURM job, SIGTERM and SIGUSR2 stop the loop too (harness/slurm.py)
        previous.update(slurm.take_signals(request))
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def train(cfg: Any, on_eval: Callable[[dict], None] | None = None) -> dict:
    """Train one run described by ``cfg`` (already validated); return its record.

    The record is written to ``results/<sweep>/runs/<run_id>.json`` whatever the
    outcome. SIGINT/SIGTERM stop the run at the end of a step with a checkpoint
    (``train.resume=true`` continues from it) and a record saying ``interrupted``
    that keeps the partial curve; then KeyboardInterrupt is raised, so a sweep stops too
    (in a SLURM job the record is returned instead, or the job requeued: harness/slurm.py).
    """
    with deferred_stop() as stop:
        record = _train(cfg, on_eval, stop)
    # SLURM: requeue through submitit, or exit for SLURM's requeue; else the record is the job's result
    slurm.after_stop(stop, record)
    if (stop or record["status"] == "interrupted") and not slurm.in_job():
        raise KeyboardInterrupt
    return record


def _train(cfg: Any, on_eval: Callable[[dict], None] | None, stop: dict) -> dict:
    config = to_container(cfg)
    rid = records.run_id(config)
    t = cfg.train
    device = resolve_device(t.device)
    precision = resolve_precision(t.precision, device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
        if precision == "bf16" else nullcontext
    )

    record: dict[str, Any] = {"run_id": rid, "sweep": cfg.sweep.name, "status": "failed", "config": config}
    record.update(slurm.job_info())  # slurm_job_id, requeues (harness/slurm.py); nothing outside SLURM
    curve: list[dict] = []
    record["curve"] = curve
    tracker = None
    start = time.time()
    step = 0
    try:
        if t.threads:
            torch.set_num_threads(t.threads)
        D_planned = planned_tokens(cfg)
        data = build_data(cfg, D_planned)
        if device.type != "cpu":
            data = data.to(device)  # tokens live on the device: no step copies them from the host
        gcfg = gpt_config(cfg, data.vocab_size)
        counts = param_counts(gcfg)
        n_nonemb = counts["params_nonembedding"]
        batch_tokens = t.batch_size * cfg.model.context
        total_steps = max(1, math.ceil(D_planned / batch_tokens))
        tokens = total_steps * batch_tokens
        fpt = flops_per_token(gcfg)
        lr = resolve_lr(t, n_nonemb)
        record.update(counts)
        record.update({
            "tokens": tokens, "steps": total_steps, "lr": lr,
            "flops_6nd": 6.0 * n_nonemb * tokens, "flops": fpt * tokens, "flops_per_token": fpt,
            "entropy_floor": data.entropy_floor, "data_info": data.info,
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "precision": precision, "versions": versions(),
            # CPU results are bitwise reproducible for a fixed thread count; reductions
            # split differently across threads (final losses up to ~1e-3 nats apart)
            "torch_threads": torch.get_num_threads() if device.type == "cpu" else None,
        })

        def build() -> tuple[GPT, torch.optim.Optimizer]:
            torch.manual_seed(t.seed)
            model = GPT(gcfg).to(device)
            optimizer = torch.optim.AdamW(
                model.param_groups(lr, t.weight_decay), lr=lr, betas=(t.beta1, t.beta2),
                fused=device.type == "cuda",
            )
            return model, optimizer

        model, optimizer = build()
        first_loss: float | None = None  # loss of the first step: the divergence reference
        loss_sum = torch.zeros((), device=device)  # training loss summed since the last curve point
        loss_count = 0
        wandb_id = None

        def restore(path: Path) -> dict:
            """Continue from a saved state: this run's checkpoint, or a sibling's stable phase."""
            nonlocal step, loss_sum, loss_count, first_loss
            state = load_checkpoint(path, device)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng_cpu"].cpu())
            if device.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"].cpu(), device)
            step = int(state["step"])
            curve[:] = state["curve"]
            loss_sum = state["loss_sum"].to(device)
            loss_count = int(state["loss_count"])
            first_loss = state["first_loss"]
            return state

        def restart(what: str, path: Path, e: Exception) -> None:
            """A bad saved state costs a restart from step 0, never the run."""
            nonlocal model, optimizer, step, loss_sum, loss_count, first_loss
            warnings.warn(f"ignoring unusable {what} {path}: {type(e).__name__}: {e}")
            model, optimizer = build()
            step, first_loss, loss_count = 0, None, 0
            loss_sum = torch.zeros((), device=device)
            curve.clear()

        ckpt = checkpoint_path(cfg, rid)
        if (t.resume or slurm.requeues()) and ckpt.exists():  # a requeued SLURM job always resumes
            try:
                state = restore(ckpt)
                wandb_id = state.get("wandb_id")
                start -= float(state.get("wall_time_s", 0.0))
                record["resumed_from_step"] = step
            except Exception as e:
                restart("checkpoint", ckpt, e)
                wandb_id, start = None, time.time()
                record["checkpoint_error"] = f"{ckpt.name}: {type(e).__name__}"
        # WSD data ladder: steps before this run's cooldown are the same in every sibling
        # (same data prefix, same lr), so start from a sibling's saved state if there is one.
        family = family_id(config)
        branch_steps: set[int] = set()
        if t.branch_tokens:
            branch_steps = {wsd_cooldown_start(max(1, math.ceil(int(d) / batch_tokens)), t.cooldown)
                            for d in t.branch_tokens}
            own_start = wsd_cooldown_start(total_steps, t.cooldown)
            branch_steps = {s for s in branch_steps if 0 < s < own_start}
            shared = branch_path(cfg, family, own_start)
            if step == 0 and own_start > 0 and shared.exists():
                try:
                    restore(shared)
                    record["branched_from_step"] = step
                    record["tokens_shared"] = step * batch_tokens
                except Exception as e:
                    restart("branch state", shared, e)
        step_fn = compiled(model, t.compile_mode) if t.compile else model
        # CUDA graphs replay into the same output buffers: tell torch where a step begins
        mark_step = t.compile and t.compile_mode in CUDA_GRAPH_MODES

        tracker = Tracker(
            cfg.wandb, name=rid, group=cfg.sweep.name, job_type="train", config=config,
            directory=Path(cfg.results_dir) / cfg.sweep.name, resume_id=wandb_id,
        )

        def checkpoint(path: Path = ckpt) -> None:
            save_checkpoint(path, {
                "format": CHECKPOINT_FORMAT, "step": step,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "curve": list(curve), "loss_sum": loss_sum.detach().cpu(), "loss_count": loss_count,
                "first_loss": first_loss, "wandb_id": tracker.id, "wall_time_s": time.time() - start,
            })

        eval_every = t.eval_every or max(total_steps // 10, 1)
        warm = warmup_steps(t.warmup, total_steps)
        tokens_at_start = step * batch_tokens
        probe_time = 0.0
        t_loop = last_ckpt = time.time()

        from tqdm.auto import tqdm

        bar = tqdm(total=tokens, initial=tokens_at_start, unit="tok", unit_scale=True,
                   disable=not t.progress, desc=f"run {rid}", leave=False, dynamic_ncols=True)
        while step < total_steps:
            mult = lr_multiplier(step, total_steps, t.schedule, warm, t.cooldown, t.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = lr * g["lr_scale"] * mult
            x, y = data.train.batch(step)
            if mark_step:
                torch.compiler.cudagraph_mark_step_begin()
            with autocast():
                _, loss = step_fn(x, y)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            loss_count += 1
            step += 1
            if first_loss is None:
                first_loss = loss.item()  # syncs: the first step's wall time is complete here
                # with train.compile=true this includes the compilation, so it measures its cost
                record["first_step_s"] = time.time() - t_loop

            is_eval = step % eval_every == 0 or step == total_steps
            stopping = bool(stop) and step < total_steps
            share = step in branch_steps
            save = step < total_steps and (
                stopping
                or (t.checkpoint_every and step % t.checkpoint_every == 0)
                or (t.checkpoint_minutes and time.time() - last_ckpt >= 60 * t.checkpoint_minutes)
            )
            # host syncs only every 10 steps, at evals and before a checkpoint (never save a
            # diverged state)
            if is_eval or save or share or step % 10 == 0:
                train_loss = (loss_sum / loss_count).item()
                if not math.isfinite(train_loss) or train_loss > t.diverge_factor * first_loss:
                    raise Diverged(f"training loss {train_loss:.4g} at step {step} (first {first_loss:.4g})")
                bar.set_postfix(loss=f"{train_loss:.3f}", refresh=False)
                bar.update(step * batch_tokens - bar.n)
            if is_eval:
                val_loss = evaluate(model, data.val, t.batch_size, device, autocast)
                if not math.isfinite(val_loss):
                    raise Diverged(f"held-out loss {val_loss} at step {step}")
                point = {"step": step, "tokens": step * batch_tokens,
                         "flops": 6.0 * n_nonemb * step * batch_tokens,
                         "train_loss": train_loss, "val_loss": val_loss}
                if data.probe is not None:
                    t_probe = time.time()
                    point["probes"] = evaluate_probes(model, data.probe, t.batch_size, device, autocast)
                    probe_time += time.time() - t_probe
                curve.append(point)
                loss_sum.zero_()
                loss_count = 0
                tracker.log({"train/loss": train_loss, "val/loss": val_loss, "tokens": point["tokens"],
                             "flops_6nd": point["flops"], "lr": lr * mult}, step=step)
                if on_eval:
                    on_eval(point)
            if share:
                checkpoint(branch_path(cfg, family, step))
            if save:
                checkpoint()
                last_ckpt = time.time()
                record["checkpoint_step"] = step  # where train.resume=true would continue
            if stopping:
                raise KeyboardInterrupt
        bar.close()
        elapsed = time.time() - t_loop
        tps = (tokens - tokens_at_start) / max(elapsed, 1e-9)
        peak = peak_flops(device)
        steps_run = total_steps - tokens_at_start // batch_tokens
        if t.compile and "first_step_s" in record and steps_run > 1:
            # compilation = the first step's time over a typical step's (evals are spread
            # over the steps, so this slightly underestimates it)
            typical = (elapsed - record["first_step_s"]) / (steps_run - 1)
            record["compile_s"] = max(0.0, record["first_step_s"] - typical)
        record.update({
            "status": "ok",
            "final_train_loss": curve[-1]["train_loss"],
            "final_val_loss": curve[-1]["val_loss"],
            "tokens_per_s": tps,
            "mfu": fpt * tps / peak if peak else None,
        })
        if data.probe is not None:
            record["probes"] = {
                "kind": data.probe.kind, "buckets": data.probe.names, "mass": data.probe.mass,
                "final": curve[-1].get("probes"), "time_s": probe_time,
                "time_fraction": probe_time / max(elapsed, 1e-9),
            }
        ckpt.unlink(missing_ok=True)
        record.pop("checkpoint_step", None)
    except Diverged as e:
        record.update(status="diverged", error=str(e))
    except KeyboardInterrupt:
        why = stop.get("signal", "KeyboardInterrupt")
        record.update(status="interrupted", error=f"interrupted ({why}) at step {step}")
    except Exception as e:
        if is_oom(e):
            record.update(status="oom", error=str(e).splitlines()[0] if str(e) else "CUDA out of memory")
        else:
            record.update(status="failed", error=f"{type(e).__name__}: {e}")
    exit_code = {"ok": 0, "interrupted": 130}.get(record["status"], 1)
    _finish(record, cfg, start, tracker, exit_code=exit_code)
    return record


def _finish(record: dict, cfg: Any, start: float, tracker: Tracker | None, exit_code: int) -> None:
    record["wall_time_s"] = time.time() - start
    records.write_record(record, cfg.results_dir)
    if tracker is not None:
        keys = ("status", "final_train_loss", "final_val_loss", "params_nonembedding", "params_total",
                "tokens", "flops_6nd", "flops", "entropy_floor", "tokens_per_s", "mfu")
        tracker.summary({k: record.get(k) for k in keys if record.get(k) is not None})
        tracker.finish(exit_code)
