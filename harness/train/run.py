"""One run's facts and record: setup from its config, restore, checkpoints, the end.

A :class:`Run` is built from a validated config before any compute: its run id, its
record (``failed`` until it ends otherwise), data, model shape, steps, lr and the
record's static fields. The loop moves its :class:`TrainState`; the run saves and
restores it with the engine's row state (a checkpoint, or a WSD sibling's branch
state), and writes the record whatever the outcome.
"""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from harness import checkpoint, records, slurm
from harness.config import resolve_lr, to_container
from harness.data import TokenData, build_data, data_key
from harness.data.synthetic import heldout_bayes_loss
from harness.hardware import record_device, versions
from harness.model import GPTConfig, flops_per_token, gpt_config, param_counts, planned_tokens
from harness.records import ResultsLayout, RunRecord
from harness.schedule import lr_multiplier, warmup_steps
from harness.tracking import Tracker, resolve_mode
from harness.train.engine import Engine
from harness.train.state import TrainState

STATUS_EXIT = {"ok": 0, "interrupted": 130}  # wandb exit codes; anything else is 1


class Run:
    """One run of a pack (or alone): config, data, counts, record and loop state."""

    # set by setup()
    data: TokenData
    gcfg: GPTConfig
    n_nonemb: int  # Kaplan's N
    batch_tokens: int
    total_steps: int
    fpt: float  # training FLOPs per token (harness.model)
    lr: float  # the resolved peak lr
    eval_every: int
    warm: int  # warmup steps
    family: str  # WSD: the run id without the token budget
    own_start: int  # WSD: this run's cooldown start
    branch_steps: set[int]  # WSD: where this run saves branch states for its siblings

    def __init__(self, cfg: Any, device: torch.device, precision: str):
        self.cfg, self.device = cfg, device
        self.config = to_container(cfg)
        self.rid = records.run_id(self.config)
        self.layout = ResultsLayout.of(cfg)
        self.state = TrainState.fresh(device)
        self.record: RunRecord = {"run_id": self.rid, "sweep": cfg.sweep.name, "status": "failed",
                                  "config": self.config, "curve": self.state.curve,
                                  **slurm.job_info()}  # slurm_job_id, requeues: only inside SLURM
        self.precision = precision
        self.tracker: Tracker | None = None
        self.wandb_id: str | None = None  # the wandb run a restored checkpoint was logging to
        self.logged = (0.0, 0)  # train loss sum and step count at the last train/ row since the last point
        self.start = time.time()
        self.probe_time = 0.0
        self.ended = False

    def setup(self, data_cache: dict[str, TokenData]) -> None:
        """Data, model shape, step count, lr and the record's static fields."""
        cfg, t, dev = self.cfg, self.cfg.train, self.device
        D_planned = planned_tokens(cfg)
        self.data = _data(cfg, D_planned, data_cache, dev)
        self.gcfg = gpt_config(cfg, self.data.vocab_size)
        counts = param_counts(self.gcfg)
        self.n_nonemb = counts["params_nonembedding"]
        self.batch_tokens = t.batch_size * cfg.model.context
        self.total_steps = max(1, math.ceil(D_planned / self.batch_tokens))
        tokens = self.total_steps * self.batch_tokens
        self.fpt = flops_per_token(self.gcfg)
        self.lr = resolve_lr(t, self.n_nonemb)
        self.eval_every = t.eval_every or max(self.total_steps // 10, 1)
        self.warm = warmup_steps(t.warmup, self.total_steps)
        self.record.update(counts)
        # U_D as built (synthetic pools round up to whole batches; text always has one, its
        # finite training part when U_D is null); epochs over it, 1 when every token is fresh
        pool = self.data.info.get("unique_tokens")
        self.record.update({"unique_tokens": pool, "epochs": tokens / pool if pool else 1.0})
        self.record.update({
            "tokens": tokens, "steps": self.total_steps, "lr": self.lr,
            "flops_6nd": 6.0 * self.n_nonemb * tokens, "flops": self.fpt * tokens, "flops_per_token": self.fpt,
            "entropy_floor": self.data.entropy_floor,
            # the exact Bayes loss of these very held-out windows (the entropy rate plus the
            # validation set's sampling noise): the floor the fits fix E at; null for text
            "heldout_floor": heldout_bayes_loss(self.config["data"], cfg.model.context),
            "data_info": self.data.info,
            "device": record_device(dev), "precision": self.precision, "versions": versions(),
            # CPU results are bitwise reproducible for a fixed thread count and CPU model
            # (versions.cpu); reductions split differently across threads (final losses up
            # to ~1e-3 nats apart), kernels differ across CPU models (~2e-6)
            "torch_threads": torch.get_num_threads() if dev.type == "cpu" else None,
        })
        self.family = records.family_id(self.config)
        self.own_start = checkpoint.wsd_cooldown_start(self.total_steps, t.cooldown)
        self.branch_steps = (checkpoint.branch_steps(t.branch_tokens, self.batch_tokens, self.own_start, t.cooldown)
                             if t.branch_tokens else set())

    def lr_mult(self, step: int) -> float:
        """The schedule's multiplier of the peak lr at ``step`` (counting from 0)."""
        t = self.cfg.train
        return lr_multiplier(step, self.total_steps, t.schedule, self.warm, t.cooldown, t.min_lr_ratio)

    # -- saved states -------------------------------------------------------------------

    def restore(self, engine: Engine, row: int) -> None:
        """Continue from this run's checkpoint (``train.resume``), else from a WSD
        sibling's stable phase: the steps before this run's cooldown are the same in
        every sibling (same data prefix, same lr). A bad saved state costs a restart
        from step 0, never the run."""
        ckpt = self.layout.checkpoint(self.rid)
        if (self.cfg.train.resume or slurm.requeues()) and ckpt.exists():  # a requeued SLURM job always resumes
            try:
                state = self._load(engine, row, ckpt)
                self.wandb_id = state.get("wandb_id")
                self.start -= float(state.get("wall_time_s", 0.0))
                self.record["resumed_from_step"] = self.state.step
            except Exception as e:
                self._restart(engine, row, "checkpoint", ckpt, e)
                self.wandb_id, self.start = None, time.time()
                self.record["checkpoint_error"] = f"{ckpt.name}: {type(e).__name__}"
        if not self.cfg.train.branch_tokens:
            return
        shared = self.layout.branch(self.family, self.own_start)
        if self.state.step == 0 and self.own_start > 0 and shared.exists():
            try:
                self._load(engine, row, shared)
                self.record["branched_from_step"] = self.state.step
                self.record["tokens_shared"] = self.state.step * self.batch_tokens
            except Exception as e:
                self._restart(engine, row, "branch state", shared, e)

    def _load(self, engine: Engine, row: int, path: Path) -> dict:
        state = checkpoint.load(path, self.device)
        engine.load_state_dict(row, state)
        torch.set_rng_state(state["rng_cpu"].cpu())
        if self.device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.device)
        self.state.load_state_dict(state)
        return state

    def _restart(self, engine: Engine, row: int, what: str, path: Path, e: Exception) -> None:
        warnings.warn(f"ignoring unusable {what} {path}: {type(e).__name__}: {e}")
        engine.reset(row)
        self.state.reset()

    def save(self, engine: Engine, row: int, path: Path | None = None) -> None:
        """Checkpoint (or, with ``path``, a branch state): the whole state of the run."""
        dev = self.device
        checkpoint.save(path or self.layout.checkpoint(self.rid), {
            **engine.state_dict(row), **self.state.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
            "wandb_id": self.tracker.id if self.tracker else None, "wall_time_s": time.time() - self.start,
        })

    # -- wandb ------------------------------------------------------------------------------

    def open_tracker(self) -> None:
        """This run's wandb run: named, tagged, configured with the derived counts, on the
        tokens axis. A resumed run continues its wandb run (same id); any other run that
        starts with a curve (a WSD branch, a resume without a wandb id, a packed run
        logged at its end) replays it, so each record is one wandb run with a whole curve."""
        cfg = self.cfg
        if resolve_mode(cfg.wandb.mode) == "disabled":
            self.tracker = Tracker(cfg.wandb, name=self.rid, group="", job_type="train", config={},
                                   directory=self.layout.root)  # a no-op tracker, built without a git call
            return
        tags = [cfg.sweep.name, cfg.train.schedule, cfg.model.parametrization, cfg.data.source]
        self.tracker = Tracker(cfg.wandb, name=self.run_name(), group=cfg.sweep.name, job_type="train",
                               config={**self.config, **self.derived()}, directory=self.layout.root,
                               resume_id=self.wandb_id, tags=[str(t) for t in tags])
        self.tracker.define_metrics()
        if self.wandb_id is None:
            for point in self.state.curve:
                self.tracker.log(point_row(point), step=point["step"])

    def run_name(self) -> str:
        """``w64-d2-D1.6M-lr3e-03-s0``: width, depth, tokens, peak lr and seed (the run id is in config)."""
        m, rec = self.cfg.model, self.record
        tokens = rec.get("tokens") or self.cfg.data.tokens
        lr = rec.get("lr") or self.cfg.train.lr
        return "-".join([f"w{m.width}", f"d{m.depth}"] + ([f"D{_short(tokens)}"] if tokens else [])
                        + ([f"lr{lr:.0e}"] if lr else []) + [f"s{self.cfg.train.seed}"])

    def derived(self) -> dict:
        """What the config implies: N (all three counts), D, C, peak lr, ids and the git commit."""
        rec = self.record
        keys = ("params_total", "params_embedding", "params_nonembedding", "tokens", "steps", "flops_6nd", "flops")
        out = {k: rec[k] for k in keys if k in rec}
        out.update(run_id=self.rid, family_id=records.family_id(self.config), lr_peak=rec.get("lr"),
                   git_commit=(rec.get("versions") or versions()).get("git"))
        return out

    # -- the end --------------------------------------------------------------------------

    def complete(self, elapsed: float, steps_run: int, peak: float | None) -> None:
        """Fill the record of a run that trained to its last step in ``elapsed`` loop seconds."""
        rec, curve = self.record, self.state.curve
        tps = steps_run * self.batch_tokens / max(elapsed, 1e-9)
        if self.cfg.train.compile and "first_step_s" in rec and steps_run > 1:
            # compilation = the first step's time over a typical step's (evals are spread
            # over the steps, so this slightly underestimates it)
            typical = (elapsed - rec["first_step_s"]) / (steps_run - 1)
            rec["compile_s"] = max(0.0, rec["first_step_s"] - typical)
        rec.update({"status": "ok", "final_train_loss": curve[-1]["train_loss"],
                    "final_val_loss": curve[-1]["val_loss"], "tokens_per_s": tps,
                    "mfu": self.fpt * tps / peak if peak else None})
        if self.data.probe is not None:
            rec["probes"] = {
                "kind": self.data.probe.kind, "buckets": self.data.probe.names, "mass": self.data.probe.mass,
                "final": curve[-1].get("probes"), "time_s": self.probe_time,
                "time_fraction": self.probe_time / max(elapsed, 1e-9),
            }
        self.layout.checkpoint(self.rid).unlink(missing_ok=True)
        rec.pop("checkpoint_step", None)

    def end(self, status: str | None = None, error: str | None = None) -> None:
        """Write the record (with ``status`` and ``error`` unless it completed) and close wandb."""
        if self.ended:
            return
        self.ended = True
        if status is not None:
            self.record.update(status=status, error=error)
        self.record["wall_time_s"] = time.time() - self.start
        path = records.write_record(self.record, self.cfg.results_dir)
        if self.tracker is None:  # failed before training, or packed: log the run (and its curve) now
            self.open_tracker()
        rec = self.record
        keys = ("status", "error", "wall_time_s", "steps", "tokens_per_s", "mfu", "final_train_loss",
                "final_val_loss", "params_nonembedding", "params_total", "tokens", "flops_6nd", "flops",
                "entropy_floor", "resumed_from_step", "branched_from_step")
        summary = {k: rec.get(k) for k in keys if rec.get(k) is not None}
        summary["lr"] = rec.get("lr")  # the peak: history logs the schedule's lr as train/lr
        self.tracker.summary({k: v for k, v in summary.items() if v is not None})
        if path is not None:
            self.tracker.log_artifact(f"record-{self.rid}", "run-record", {Path(path): Path(path).name})
        self.tracker.finish(STATUS_EXIT.get(rec["status"], 1))


def point_row(point: dict) -> dict:
    """A curve point as a wandb history row (the eval interval's mean train loss)."""
    row = {"tokens": point["tokens"], "flops_6nd": point["flops"], "train/loss": point["train_loss"],
           "val/loss": point["val_loss"]}
    row.update(probe_row(point.get("probes") or []))
    return row


def probe_row(buckets: list[dict]) -> dict:
    """Per-bucket probe metrics as ``probe/<bucket>/<metric>`` keys."""
    return {f"probe/{b['bucket']}/{k}": b[k] for b in buckets for k in ("loss", "accuracy", "logprob")
            if b.get(k) is not None}


def _short(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(int(n))


def _data(cfg: Any, n_tokens: int, cache: dict[str, TokenData], device: torch.device) -> TokenData:
    """Runs that differ only in seed or lr would build identical data: build it once,
    and hold its tokens on the device, so no step copies them from the host."""
    key = data_key(cfg, n_tokens)
    if key not in cache:
        data = build_data(cfg, n_tokens)
        cache[key] = data.to(device) if device.type != "cpu" else data
    return cache[key]
