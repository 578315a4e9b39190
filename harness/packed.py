"""Packing: K runs of one model shape trained together, in one process, as one batched model.

A sweep of small models leaves a GPU mostly idle: each step is a few hundred tiny
kernels, bound by launch latency rather than arithmetic. Runs that share a shape
(they may differ in ``train.seed``, ``train.lr``, the schedule, ``data.seed``,
``data.tokens``, ...) can instead share every kernel: their parameters are stacked
along a new leading dimension k, the forward and backward run once over the stack,
and one elementwise AdamW updates all K runs. The arithmetic of each run is that of
:func:`harness.train.train`; only the order of some floating-point sums changes.

Conventions
- Parameters: run k is initialised exactly as ``GPT(cfg)`` under
  ``torch.manual_seed(train.seed)``. The K copies live in one flat fp32 buffer of
  shape (K, P), P = parameters per run, in ``GPT.named_parameters()`` order; each
  parameter is a (K, *shape) view of it. The optimizer state (exp_avg, exp_avg_sq)
  has the same layout, so AdamW, weight decay, μP lr scales and clipping are a dozen
  elementwise kernels on (K, P) tensors whatever the depth.
- Forward: ``torch.vmap`` over ``torch.func.functional_call`` of the very ``GPT``
  module that train.py uses, so a change to model.py changes packed runs too. Linear
  layers become batched matmuls. torch registers vmap batching rules for the CUDA
  attention kernels (flash, memory-efficient, cuDNN), so SDPA stays one call for all
  K runs there; the CPU kernel has none, and vmap loops over the K runs (same result,
  some overhead: scripts/bench_packing.py measures it).
- Gradients: of the sum of the K runs' losses. Run k's loss depends only on row k,
  so row k of the gradient is exactly run k's own gradient.
- Per-run hyperparameters: peak lr and schedule (its own total steps, warmup,
  cooldown, floor: a (K, steps) lr table on the device), weight decay, betas and the
  clipping threshold are (K, 1) columns broadcast along a run's row; the divergence
  factor and eval interval are per run too. μP per-parameter lr scales and the decay
  mask (≥2-D weights only) come from ``GPT.param_groups`` and are (P,) vectors.
- Clipping is per run: the norm is over run k's row of the gradient (all of its
  parameters), as ``clip_grad_norm_`` computes it over one model.
- Runs that end (their step budget is spent, or they diverge) leave the stack: their
  rows are copied out and dropped, so a short run costs nothing after its end and a
  diverged run cannot touch the others (each row's arithmetic is independent anyway).
- Evaluation, the curve, divergence checks (every 10 steps and at evals) and the run
  record follow train.py step for step, so a packed run's record is a normal record
  with the same ``run_id`` (plus ``packed``: the pack size and the other run ids).
  Its ``tokens_per_s`` is its own tokens over the loop time until it ended (the
  pack's throughput is the sum over runs), and ``mfu`` follows from that rate, so the
  MFUs of a pack add up; ``wall_time_s`` counts from the pack's start.
- Runs whose data config and token budget agree share one built data source.

Not supported in packed mode (use harness.train.train for these): checkpoints and
``train.resume`` (an interrupted pack records ``interrupted``, and a sweep redoes
it), ``train.compile`` (ignored, with a warning), and wandb (records only).
"""
from __future__ import annotations

import json
import math
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import functional_call, vmap

from harness import records
from harness.config import resolve_lr, to_container
from harness.data import TokenData, build_data, data_key
from harness.model import GPT, GPTConfig, flops_per_token, param_counts
from harness.schedule import lr_multiplier, warmup_steps
from harness.train import gpt_config, is_oom, peak_flops, planned_tokens, resolve_device, resolve_precision, versions

# Keys that must agree for runs to share a pack: the model's shape (one set of
# kernels), the batch shape, and where and in which precision they run.
PACK_KEYS = (
    "model.width", "model.depth", "model.heads", "model.context", "model.mlp_ratio",
    "model.tie_embeddings", "model.parametrization", "model.base_width",
    "train.batch_size", "train.device", "train.precision",
)

EPS = 1e-8  # torch.optim.AdamW's default, which train.py uses

# CPU only: SDPA's CPU kernel has no vmap batching rule, so vmap loops over the runs
# (correct, a little slower). Known and measured by scripts/bench_packing.py.
_CPU_SDPA_FALLBACK = r".*batching rule for aten::_scaled_dot_product_flash_attention_for_cpu.*"


def pack_key(cfg: Any) -> tuple:
    """Runs with equal keys can be packed together (see ``PACK_KEYS``)."""
    return tuple(json.dumps(_get(cfg, k), default=str) for k in PACK_KEYS)


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


# --- the optimizer and clipping on stacked rows -------------------------------------

def clip_per_run_(g: torch.Tensor, max_norm: torch.Tensor) -> torch.Tensor:
    """Scale each row of ``g`` (K, P) in place so its L2 norm is at most ``max_norm[k]``.

    Same rule as ``torch.nn.utils.clip_grad_norm_`` on one model: coefficient
    max_norm / (norm + 1e-6), clamped to 1, with the norm over all of the run's
    parameters (here over its row at once; clip_grad_norm_ takes the norm of the
    per-tensor norms, which is the same number up to rounding). ``max_norm[k] <= 0`` leaves row k alone
    (train.grad_clip=0 disables clipping). Returns the (K,) norms before clipping.
    """
    norms = torch.linalg.vector_norm(g, dim=1)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    g.mul_(torch.where(max_norm > 0, coef, torch.ones_like(coef)).unsqueeze(1))
    return norms


def adamw_(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, *, lr: torch.Tensor,
           weight_decay: torch.Tensor, beta1: torch.Tensor, beta2: torch.Tensor, step: int) -> None:
    """One AdamW step (Loshchilov & Hutter 2019) in place on stacked rows.

    ``p, g, m, v`` are (K, P); ``lr`` and ``weight_decay`` broadcast to (K, P) (per-run
    lr times per-parameter μP scale; per-run decay times the ≥2-D mask); ``beta1`` and
    ``beta2`` are (K, 1); ``step`` counts from 1. Written in the same order as
    torch.optim.AdamW's single-tensor path, so each row does what train.py's optimizer
    does, up to the rounding of lr·scale in fp32.
    """
    p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_((1 - beta2) * g, g)
    bias1 = 1 - beta1**step
    bias2_sqrt = (1 - beta2**step).sqrt()
    denom = (v.sqrt() / bias2_sqrt).add_(EPS)
    p.sub_((lr / bias1) * (m / denom))


# --- the parameter layout ------------------------------------------------------------

@dataclass
class Layout:
    """Where each parameter sits in a run's flat row of P numbers, with its μP lr scale
    and whether AdamW decays it; both taken from ``GPT.param_groups``."""

    names: list[str]
    shapes: list[torch.Size]
    offsets: list[int]
    lr_scale: torch.Tensor  # (P,)
    decay: torch.Tensor  # (P,), 1.0 where weight decay applies (≥2-D weights)

    @staticmethod
    def of(model: GPT) -> "Layout":
        named = list(model.named_parameters())
        group_of = {}
        for g in model.param_groups(lr=1.0, weight_decay=1.0):
            for p in g["params"]:
                group_of[id(p)] = (g["lr_scale"], g["weight_decay"])
        offsets, scale, decay, o = [], [], [], 0
        for _, p in named:
            s, wd = group_of[id(p)]
            offsets.append(o)
            scale.append(torch.full((p.numel(),), float(s)))
            decay.append(torch.full((p.numel(),), float(wd > 0)))
            o += p.numel()
        return Layout([n for n, _ in named], [p.shape for _, p in named], offsets,
                      torch.cat(scale), torch.cat(decay))

    def flatten(self, model: GPT) -> torch.Tensor:
        params = dict(model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(K, *shape) views of a (K, P) buffer, by parameter name."""
        K = flat.shape[0]
        return {n: flat[:, o:o + s.numel()].view(K, *s)
                for n, s, o in zip(self.names, self.shapes, self.offsets)}


# --- one run's bookkeeping ----------------------------------------------------------

@dataclass
class _Run:
    cfg: Any
    record: dict
    data: TokenData | None = None
    val: torch.Tensor | None = None
    total_steps: int = 0
    eval_every: int = 1
    warm: int = 0
    lr: float = 0.0
    batch_tokens: int = 0
    n_nonemb: int = 0
    first_loss: float | None = None
    loss_count: int = 0
    lr_steps: torch.Tensor | None = None  # (total_steps,) lr of each step: peak x schedule
    final: torch.Tensor | None = None  # its (P,) row, once it has left the stack
    curve: list[dict] = field(default_factory=list)


class PackedTrainer:
    """Train runs of one shape together; ``run()`` returns one record per config.

    The step-level API (``step``, ``params_of``, ``active``) is there for tests and
    tools; a sweep only needs :func:`train_packed`.
    """

    def __init__(self, cfgs: list[Any]):
        if not cfgs:
            raise ValueError("nothing to pack")
        keys = {pack_key(c) for c in cfgs}
        if len(keys) > 1:
            raise ValueError(f"runs differ in a key that packing needs equal: {', '.join(PACK_KEYS)}")
        t0 = cfgs[0].train
        if any(c.train.compile for c in cfgs):
            warnings.warn("train.compile is ignored when runs are packed (harness.packed)")
        self.device = resolve_device(t0.device)
        self.precision = resolve_precision(t0.precision, self.device)
        if t0.threads:
            torch.set_num_threads(t0.threads)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)  # as train.py
        self.autocast = ((lambda: torch.autocast(self.device.type, dtype=torch.bfloat16))
                         if self.precision == "bf16" else nullcontext)
        self.start = time.time()
        data_cache: dict[str, TokenData] = {}
        self.runs = [self._prepare(c, data_cache) for c in cfgs]
        rids = [r.record["run_id"] for r in self.runs]
        for r in self.runs:
            r.record["packed"] = {"size": len(cfgs), "with": [x for x in rids if x != r.record["run_id"]]}

        ready = [i for i, r in enumerate(self.runs) if r.data is not None]
        self.gcfg: GPTConfig | None = None
        self.step_count = 0
        self.active: list[int] = []  # run indices, in stack-row order
        self.loop_start = time.time()
        self.loop_time = 0.0
        if not ready:
            return
        gcfgs = {i: gpt_config(self.runs[i].cfg, self.runs[i].data.vocab_size) for i in ready}
        self.gcfg = gcfgs[ready[0]]
        if any(g != self.gcfg for g in gcfgs.values()):
            raise ValueError("packed runs must build the same GPTConfig (same data vocabulary)")
        with torch.device("meta"):
            self.template = GPT(self.gcfg)  # the module functional_call runs; holds no data
        self.layout = Layout.of(self.template)
        self.lr_scale = self.layout.lr_scale.to(self.device)
        self.decay = self.layout.decay.to(self.device)

        rows = []
        for i in ready:
            torch.manual_seed(self.runs[i].cfg.train.seed)  # as train.py's build()
            rows.append(self.layout.flatten(GPT(self.gcfg)))
        self.active = ready
        self.p = torch.stack(rows).to(self.device)
        self.m = torch.zeros_like(self.p)
        self.v = torch.zeros_like(self.p)
        self.loss_sum = torch.zeros(len(ready), device=self.device)
        self._restack()

    # -- setup --------------------------------------------------------------------

    def _prepare(self, cfg: Any, data_cache: dict) -> _Run:
        """Data, counts and the record's static fields for one run (as train.py); a
        run whose setup fails is recorded ``failed`` and left out of the stack."""
        config = to_container(cfg)
        rid = records.run_id(config)
        record: dict[str, Any] = {"run_id": rid, "sweep": cfg.sweep.name, "status": "failed",
                                  "config": config}
        run = _Run(cfg=cfg, record=record)
        record["curve"] = run.curve
        dev = self.device
        try:
            D_planned = planned_tokens(cfg)
            run.data = _build_data(cfg, D_planned, data_cache, dev)
            gcfg = gpt_config(cfg, run.data.vocab_size)
            counts = param_counts(gcfg)
            run.n_nonemb = counts["params_nonembedding"]
            run.batch_tokens = cfg.train.batch_size * cfg.model.context
            run.total_steps = max(1, math.ceil(D_planned / run.batch_tokens))
            tokens = run.total_steps * run.batch_tokens
            fpt = flops_per_token(gcfg)
            run.lr = resolve_lr(cfg.train, run.n_nonemb)
            run.eval_every = cfg.train.eval_every or max(run.total_steps // 10, 1)
            run.warm = warmup_steps(cfg.train.warmup, run.total_steps)
            t = cfg.train
            run.lr_steps = torch.tensor([
                run.lr * lr_multiplier(s, run.total_steps, t.schedule, run.warm, t.cooldown, t.min_lr_ratio)
                for s in range(run.total_steps)
            ])
            run.val = run.data.val
            record.update(counts)
            record.update({
                "tokens": tokens, "steps": run.total_steps, "lr": run.lr,
                "flops_6nd": 6.0 * run.n_nonemb * tokens, "flops": fpt * tokens, "flops_per_token": fpt,
                "entropy_floor": run.data.entropy_floor, "data_info": run.data.info,
                "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
                "precision": self.precision, "versions": versions(),
            })
        except Exception as e:
            run.data = None
            record.update(status="failed", error=f"{type(e).__name__}: {e}")
        return run

    def _restack(self) -> None:
        """Fresh autograd leaves viewing the current (K, P) buffer, and the per-run
        hyperparameter vectors, after the stack is built or a run leaves it. The lr
        schedules are a (K, steps) table on the device, so a step never waits on a
        host-to-device copy."""
        self.params = {n: t.detach().requires_grad_() for n, t in self.layout.views(self.p).items()}
        col = lambda f: torch.tensor([float(f(self.runs[i].cfg.train)) for i in self.active],  # noqa: E731
                                     device=self.device).unsqueeze(1)
        self.weight_decay = col(lambda t: t.weight_decay) * self.decay
        self.beta1, self.beta2 = col(lambda t: t.beta1), col(lambda t: t.beta2)
        self.grad_clip = col(lambda t: t.grad_clip).squeeze(1)
        steps = max(self.runs[i].total_steps for i in self.active)
        self.lr_table = torch.zeros(len(self.active), steps)
        for row, i in enumerate(self.active):
            self.lr_table[row, : self.runs[i].total_steps] = self.runs[i].lr_steps
        self.lr_table = self.lr_table.to(self.device)

    # -- the model, batched ---------------------------------------------------------

    def _loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, params, (x, y))[1]

    def losses(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(K,) mean losses of K runs on their own (K, B, T) batches."""
        with warnings.catch_warnings(), self.autocast():
            warnings.filterwarnings("ignore", message=_CPU_SDPA_FALLBACK)
            return vmap(self._loss)(params, x, y)

    # -- training ---------------------------------------------------------------------

    def step(self) -> None:
        """One optimizer step of every active run, then evals, checks and departures."""
        s = self.step_count
        runs = [self.runs[i] for i in self.active]
        batches = [r.data.train.batch(s) for r in runs]
        x = torch.stack([b[0] for b in batches])  # on the device already (see _build_data)
        y = torch.stack([b[1] for b in batches])

        loss = self.losses(self.params, x, y)
        grads = torch.autograd.grad(loss.sum(), list(self.params.values()))
        g = torch.cat([gi.reshape(len(runs), -1) for gi in grads], dim=1)
        clip_per_run_(g, self.grad_clip)
        with torch.no_grad():
            adamw_(self.p, g, self.m, self.v, lr=self.lr_table[:, s : s + 1] * self.lr_scale,
                   weight_decay=self.weight_decay, beta1=self.beta1, beta2=self.beta2, step=s + 1)
        self.loss_sum += loss.detach()
        self.step_count = step = s + 1
        for r in runs:
            r.loss_count += 1
        if s == 0:
            for r, first in zip(runs, loss.tolist()):
                r.first_loss = first

        # train.py's checks and evals, per run and at the same steps: the mean training
        # loss since the last curve point every 10 steps and at evals (one host sync)
        due_eval = [step % r.eval_every == 0 or step == r.total_steps for r in runs]
        if not (step % 10 == 0 or any(due_eval)):
            return
        sums = self.loss_sum.tolist()
        leaving: dict[int, str] = {}  # stack row -> "ok" | "diverged"
        train_loss: dict[int, float] = {}
        for row, r in enumerate(runs):
            if not (due_eval[row] or step % 10 == 0):
                continue
            loss_now = train_loss[row] = sums[row] / r.loss_count
            if not math.isfinite(loss_now) or loss_now > r.cfg.train.diverge_factor * r.first_loss:
                r.record.update(status="diverged", error=(
                    f"training loss {loss_now:.4g} at step {step} (first {r.first_loss:.4g})"))
                leaving[row] = "diverged"
        rows = [row for row in range(len(runs)) if due_eval[row] and row not in leaving]
        for row, val_loss in zip(rows, self.evaluate(rows)):
            r = runs[row]
            if not math.isfinite(val_loss):
                r.record.update(status="diverged", error=f"held-out loss {val_loss} at step {step}")
                leaving[row] = "diverged"
                continue
            r.curve.append({"step": step, "tokens": step * r.batch_tokens,
                            "flops": 6.0 * r.n_nonemb * step * r.batch_tokens,
                            "train_loss": train_loss[row], "val_loss": val_loss})
            self.loss_sum[row] = 0.0
            r.loss_count = 0
            if step == r.total_steps:
                leaving[row] = "ok"
        if leaving:
            self._leave(leaving)

    @torch.no_grad()
    def evaluate(self, rows: list[int]) -> list[float]:
        """Held-out loss of the runs at these stack rows, each over all of its own
        windows in chunks of batch_size, weighted as train.py's ``evaluate``."""
        out: dict[int, float] = {}
        by_shape: dict[tuple, list[int]] = {}
        for row in rows:
            by_shape.setdefault(tuple(self.runs[self.active[row]].val.shape), []).append(row)
        for group in by_shape.values():
            idx = torch.tensor(group, device=self.device)
            params = {n: p.detach().index_select(0, idx) for n, p in self.params.items()}
            val = torch.stack([self.runs[self.active[row]].val for row in group])
            bs = self.runs[self.active[group[0]]].cfg.train.batch_size
            total, count = torch.zeros(len(group), device=self.device), 0
            for i in range(0, val.shape[1], bs):
                chunk = val[:, i:i + bs]
                loss = self.losses(params, chunk[:, :, :-1], chunk[:, :, 1:])
                n = chunk[0, :, 1:].numel()
                total += loss.float() * n
                count += n
            out.update(zip(group, (total / count).tolist()))
        return [out[row] for row in rows]

    def _leave(self, leaving: dict[int, str]) -> None:
        """Finish these stack rows: keep each one's final row, write its record's
        results and drop it from the stack (rows, moments and accumulators)."""
        now = time.time()
        for row, status in leaving.items():
            r = self.runs[self.active[row]]
            r.final = self.p[row].detach().clone()
            if status == "ok":
                elapsed = now - self.loop_start
                tps = r.record["tokens"] / max(elapsed, 1e-9)
                peak = peak_flops(self.device)
                r.record.update({
                    "status": "ok",
                    "final_train_loss": r.curve[-1]["train_loss"],
                    "final_val_loss": r.curve[-1]["val_loss"],
                    "tokens_per_s": tps,
                    "mfu": r.record["flops_per_token"] * tps / peak if peak else None,
                })
            r.record["wall_time_s"] = now - self.start
        keep = [row for row in range(len(self.active)) if row not in leaving]
        self.active = [self.active[row] for row in keep]
        idx = torch.tensor(keep, device=self.device, dtype=torch.long)
        self.p, self.m, self.v = (t.index_select(0, idx) for t in (self.p, self.m, self.v))
        self.loss_sum = self.loss_sum.index_select(0, idx)
        if self.active:
            self._restack()
        else:
            self.loop_time = time.time() - self.loop_start

    def run(self) -> list[dict]:
        """Train until every run has ended; return the records, in config order.

        A Ctrl-C marks the runs still training ``interrupted`` (records keep their
        partial curves) and re-raises; an OOM or other error ends the runs still in
        the stack as ``oom`` or ``failed``, as train.py would end one run.
        """
        self.loop_start = time.time()
        try:
            while self.active:
                self.step()
        except KeyboardInterrupt:
            self._abort("interrupted", f"interrupted at step {self.step_count}")
            raise
        except Exception as e:
            if is_oom(e):
                self._abort("oom", f"CUDA out of memory with {len(self.active)} packed runs")
            else:
                self._abort("failed", f"{type(e).__name__}: {e}")
        self.loop_time = time.time() - self.loop_start
        return [r.record for r in self.runs]

    def _abort(self, status: str, error: str) -> None:
        for i in self.active:
            self.runs[i].record.update(status=status, error=error, wall_time_s=time.time() - self.start)
        self.active = []

    # -- inspection -------------------------------------------------------------------

    def params_of(self, k: int) -> dict[str, torch.Tensor]:
        """Run k's parameters (by config index): live while it trains, frozen after."""
        r = self.runs[k]
        row = r.final if r.final is not None else self.p[self.active.index(k)]
        return {n: t[0].clone() for n, t in self.layout.views(row.unsqueeze(0)).items()}

    @property
    def aggregate_tokens_per_s(self) -> float:
        """Training tokens of all runs that ended ok, over the pack's loop time."""
        done = sum(r.record["tokens"] for r in self.runs if r.record["status"] == "ok")
        return done / max(self.loop_time, 1e-9)


def _build_data(cfg: Any, n_tokens: int, cache: dict, device: torch.device) -> TokenData:
    """Runs of a pack that differ only in seed or lr would build identical data: build
    it once (and hold it on the device, as train.py does)."""
    key = data_key(cfg, n_tokens)
    if key not in cache:
        data = build_data(cfg, n_tokens)
        cache[key] = data.to(device) if device.type != "cpu" else data
    return cache[key]


def train_packed(cfgs: list[Any], write: bool = True) -> list[dict]:
    """Train ``cfgs`` (validated, one shape: see ``pack_key``) as one pack; write each
    run's record to ``results/<sweep>/runs/<run_id>.json`` unless ``write=False``;
    return the records in config order."""
    trainer = PackedTrainer(cfgs)
    try:
        recs = trainer.run()
    finally:
        if write:
            for r in trainer.runs:
                r.record.setdefault("wall_time_s", time.time() - trainer.start)
                records.write_record(r.record, r.cfg.results_dir)
    return recs
