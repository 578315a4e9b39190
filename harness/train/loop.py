"""The training loop: runs from validated configs to run records, over an engine.

Read top to bottom: :func:`train_runs` resolves device and precision, sets up each
run (data, counts, record), builds the engine (one model, or K packed as one),
restores saved states, then :func:`loop` steps every run still training with AdamW,
the lr schedule and gradient clipping, evaluating on the held-out windows. A run
ends ``ok``, ``diverged`` (NaN/inf loss, or loss above ``diverge_factor`` x its first
value), ``oom``, ``failed`` or ``interrupted`` (SIGINT/SIGTERM, see
:mod:`harness.train.signals`); every ending writes its record, atomically.
Deterministic on CPU for a given config: batches are a pure function of the step,
the model's init a function of ``train.seed``. Checkpoints (every
``train.checkpoint_every`` steps or ``train.checkpoint_minutes`` minutes, and on
interrupt) hold the whole run state, so ``train.resume=true`` ends exactly where the
uninterrupted run would have.

On a GPU every token tensor stays on the device, the forward runs under bf16
autocast with fused AdamW and SDPA attention. The step never waits for the device:
losses (and, for wandb, the gradient norms) are read back in one host sync, only every
10 steps, at evaluations and before a checkpoint.

Curve points record ``tokens`` seen, ``flops`` = 6·N·tokens (Kaplan's convention,
non-embedding N, the same as the record's ``flops_6nd``), the mean training loss
since the previous point and the held-out loss, all in nats per token.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Callable

import torch
from tqdm.auto import tqdm

from harness import slurm
from harness.data import TokenData
from harness.data.probe_sets import evaluate_probes
from harness.hardware import autocast_for, is_oom, peak_flops, resolve_device, resolve_precision
from harness.train.engine import Engine, PackedEngine, SingleEngine, pack_key
from harness.train.run import Run, probe_row
from harness.train.signals import deferred_stop

OnEval = Callable[[dict], None]


def train(cfg, on_eval: OnEval | None = None) -> dict:
    """Train one run described by ``cfg`` (already validated); return its record.

    The record is written to ``results/<sweep>/runs/<run_id>.json`` whatever the
    outcome. SIGINT/SIGTERM stop the run at the end of a step with a checkpoint
    (``train.resume=true`` continues from it) and a record saying ``interrupted``
    that keeps the partial curve; then KeyboardInterrupt is raised, so a sweep stops too.
    """
    return train_runs([cfg], on_eval)[0]


def train_packed(cfgs: list) -> list[dict]:
    """Train ``cfgs`` (validated, one shape: see ``pack_key``) as one pack; each run
    writes the record a lone run writes (same ``run_id``, plus ``packed``: the pack's
    size and the other run ids). Returns the records in config order. Everything a
    lone run does, a packed run does, except ``train.compile`` (ignored, with a
    warning). wandb holds one live run per process, so each packed run gets its wandb
    run when it ends, with its curve replayed from the record."""
    if not cfgs:
        raise ValueError("nothing to pack")
    if len({pack_key(c) for c in cfgs}) > 1:
        raise ValueError("runs differ in a key that packing needs equal: see harness.train.engine.PACK_KEYS")
    return train_runs(cfgs, packed=True)


def train_runs(cfgs: list, on_eval: OnEval | None = None, packed: bool = False) -> list[dict]:
    """Set up, train and record ``cfgs`` together (one run, or a pack); see the module docstring."""
    if not packed and len(cfgs) != 1:
        raise ValueError("one config, unless packed")
    with deferred_stop() as stop:
        runs = _train_runs(cfgs, on_eval, packed, stop)
    for r in runs:  # SLURM: requeue through submitit, or exit for SLURM's own requeue
        slurm.after_stop(stop, r.record)
    if (stop or any(r.record["status"] == "interrupted" for r in runs)) and not slurm.in_job():
        raise KeyboardInterrupt  # outside SLURM the sweep stops too; in a job the record is its result
    return [r.record for r in runs]


def _train_runs(cfgs: list, on_eval: OnEval | None, packed: bool, stop: dict) -> list[Run]:
    t0 = cfgs[0].train
    device = resolve_device(t0.device)
    precision = resolve_precision(t0.precision, device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    if t0.threads:
        torch.set_num_threads(t0.threads)
    runs = [Run(c, device, precision) for c in cfgs]
    cache: dict[str, TokenData] = {}
    for r in runs:
        if packed:
            r.record["packed"] = {"size": len(runs), "with": [x.rid for x in runs if x is not r]}
        try:
            r.setup(cache)
        except Exception as e:
            r.end("failed", f"{type(e).__name__}: {e}")
    ready = [r for r in runs if not r.ended]
    try:
        if not ready:
            return runs
        if len({repr(r.gcfg) for r in ready}) > 1:
            raise ValueError("packed runs must build the same GPTConfig (same data vocabulary)")
        if packed and any(r.cfg.train.compile for r in ready):
            warnings.warn("train.compile is ignored when runs are packed")
        engine = (PackedEngine if packed else SingleEngine)(ready, ready[0].gcfg, device,
                                                            autocast_for(precision, device))
        for row, r in enumerate(ready):
            r.restore(engine, row)
            if not packed:  # one live wandb run per process: packed runs are logged as they end (Run.end)
                r.open_tracker()
        loop(engine, ready, stop, on_eval)
    except KeyboardInterrupt:
        why = stop.get("signal", "KeyboardInterrupt")
        for r in ready:
            r.end("interrupted", f"interrupted ({why}) at step {r.state.step}")
    except Exception as e:
        status, error = ("oom", str(e).splitlines()[0] if str(e) else "CUDA out of memory") if is_oom(e) \
            else ("failed", f"{type(e).__name__}: {e}")
        for r in ready:
            r.end(status, error)
    return runs


def loop(engine: Engine, runs: list[Run], stop: dict, on_eval: OnEval | None = None) -> None:
    """Step every run at stack rows ``range(len(runs))`` until each has ended."""
    active = [row for row, r in enumerate(runs) if r.state.step < r.total_steps]
    start_step = {row: runs[row].state.step for row in active}
    total = sum(r.total_steps * r.batch_tokens for r in runs)
    bar = tqdm(total=total, initial=sum(r.state.step * r.batch_tokens for r in runs), unit="tok",
               unit_scale=True, disable=not runs[0].cfg.train.progress, leave=False, dynamic_ncols=True,
               desc=f"run {runs[0].rid}" if len(runs) == 1 else f"pack of {len(runs)}")
    t_loop = last_ckpt = time.time()
    peak = peak_flops(engine.device)
    while active:
        batches = [runs[row].data.train.batch(runs[row].state.step) for row in active]
        x, y = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
        losses = engine.step(active, x, y, [runs[row].lr_mult(runs[row].state.step) for row in active])
        for k, row in enumerate(active):
            s = runs[row].state
            s.loss_sum += losses[k]
            s.loss_count += 1
            s.step += 1
            if s.first_loss is None:
                s.first_loss = losses[k].item()  # syncs: the first step's wall time is complete here
                # with train.compile=true this includes the compilation, so it measures its cost
                runs[row].record["first_step_s"] = time.time() - t_loop

        stopping = bool(stop)
        timed = any(r.cfg.train.checkpoint_minutes and time.time() - last_ckpt >= 60 * r.cfg.train.checkpoint_minutes
                    for r in runs)
        due = {row: _due(runs[row], stopping, timed) for row in active}
        checked = [row for row in active if due[row]["check"]]
        # host syncs only every 10 steps, at evals and before a checkpoint (never save a diverged state);
        # the gradient norms (for wandb) come back in the same read
        norms = [engine.grad_norms[row] for row in checked if row in engine.grad_norms]
        read = torch.stack([runs[row].state.loss_sum / runs[row].state.loss_count for row in checked]
                           + [n.float() for n in norms]).tolist() if checked else []
        train_loss = dict(zip(checked, read))
        grad_norm = dict(zip([row for row in checked if row in engine.grad_norms], read[len(checked):]))
        for row in checked:
            r = runs[row]
            if not math.isfinite(train_loss[row]) or train_loss[row] > r.cfg.train.diverge_factor * r.state.first_loss:
                r.end("diverged", f"training loss {train_loss[row]:.4g} at step {r.state.step} "
                                  f"(first {r.state.first_loss:.4g})")
        for row in checked:
            if not runs[row].ended:
                _log_train(runs[row], train_loss[row], grad_norm.get(row))
        if checked:
            if len(runs) == 1 and not runs[0].ended:
                bar.set_postfix(loss=f"{train_loss[active[0]]:.3f}", refresh=False)
            bar.update(sum(r.state.step * r.batch_tokens for r in runs) - bar.n)
        evals = [row for row in active if due[row]["eval"] and not runs[row].ended]
        for row in _evaluate(engine, runs, evals, train_loss):
            if on_eval:
                on_eval(runs[row].state.curve[-1])
        for row in active:
            r, d = runs[row], due[row]
            if r.ended:
                continue
            if d["share"]:
                r.save(engine, row, r.layout.branch(r.family, r.state.step))
            if d["save"]:
                r.save(engine, row)
                r.record["checkpoint_step"] = r.state.step  # where train.resume=true would continue
            if r.state.step == r.total_steps:
                r.complete(time.time() - t_loop, r.state.step - start_step[row], peak)
                r.end()
        if any(due[row]["save"] for row in active):
            last_ckpt = time.time()
        active = [row for row in active if not runs[row].ended]
        if stopping and active:
            raise KeyboardInterrupt
    bar.close()


def _log_train(r: Run, mean: float, grad_norm: float | None) -> None:
    """A wandb row of run ``r`` at a loss check (every 10 steps): the mean training loss
    over the steps since its previous row, derived from the running mean the loop has
    read anyway, the schedule's lr of the last step (peak x schedule, before μP's per-group
    scale) and the gradient norm before clipping (when ``train.grad_clip`` > 0)."""
    if r.tracker is None or r.tracker.run is None:
        return
    s = r.state
    total, count = mean * s.loss_count, s.loss_count
    prev_total, prev_count = r.logged
    r.logged = (total, count)
    if count <= prev_count:
        return
    tokens = s.step * r.batch_tokens
    row = {"tokens": tokens, "flops_6nd": 6.0 * r.n_nonemb * tokens, "train/loss": (total - prev_total) / (count - prev_count),
           "train/lr": r.lr * r.lr_mult(s.step - 1)}
    if grad_norm is not None:
        row["train/grad_norm"] = grad_norm
    r.tracker.log(row, step=s.step)


def _due(r: Run, stopping: bool, timed: bool) -> dict:
    """What run ``r`` does after its step: evaluate, save a branch state, checkpoint,
    and whether its loss is read back at all."""
    t, step = r.cfg.train, r.state.step
    d = {"eval": step % r.eval_every == 0 or step == r.total_steps, "share": step in r.branch_steps,
         "save": step < r.total_steps and bool(stopping or (t.checkpoint_every and step % t.checkpoint_every == 0)
                                               or timed)}
    d["check"] = d["eval"] or d["save"] or d["share"] or step % 10 == 0
    return d


def _evaluate(engine: Engine, runs: list[Run], rows: list[int], train_loss: dict[int, float]) -> list[int]:
    """Held-out loss (and probes) of the runs at ``rows``: a curve point each, or the
    end of a run whose held-out loss is not finite. Returns the rows that got a point."""
    if not rows:
        return []
    vals = engine.evaluate(rows, [runs[row].data.val for row in rows], runs[rows[0]].cfg.train.batch_size)
    done = []
    for row, val_loss in zip(rows, vals):
        r, s = runs[row], runs[row].state
        if not math.isfinite(val_loss):
            r.end("diverged", f"held-out loss {val_loss} at step {s.step}")
            continue
        tokens = s.step * r.batch_tokens
        point = {"step": s.step, "tokens": tokens, "flops": 6.0 * r.n_nonemb * tokens,
                 "train_loss": train_loss[row], "val_loss": val_loss}
        if r.data.probe is not None:
            t_probe = time.time()
            point["probes"] = evaluate_probes(engine.models[row], r.data.probe, r.cfg.train.batch_size,
                                              engine.device, engine.autocast)
            r.probe_time += time.time() - t_probe
        s.curve.append(point)
        s.loss_sum.zero_()
        s.loss_count = 0
        r.logged = (0.0, 0)
        if r.tracker is not None:  # merges with the step's train/ row
            r.tracker.log({"val/loss": val_loss, **probe_row(point.get("probes") or [])}, step=s.step)
        done.append(row)
    return done
