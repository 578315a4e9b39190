"""Config values checked before any compute is spent.

:func:`validate` raises :class:`~harness.config.ConfigError`, one line that names the
key and what is allowed, for any value a run cannot use; each data source checks its
own knobs (``SOURCES[name].validate``).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from harness.config import ConfigError, unique_tokens
from harness.data import SOURCES
from harness.model import planned_tokens

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
# torch.compile modes; reduce-overhead and max-autotune replay CUDA graphs on a GPU
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SCHEDULES = ("cosine", "wsd", "constant")
PARAMETRIZATIONS = ("sp", "mup")
WANDB_MODES = ("online", "offline", "disabled")



def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _positive(key: str, value: Any, minimum: float = 1) -> None:
    if value is None or value < minimum:
        raise ConfigError(f"{key}={value!r} must be >= {minimum}")


def validate(cfg: Any) -> None:
    """Raise ConfigError (one line, naming the key) for any value we cannot run."""
    m, d, t = cfg.model, cfg.data, cfg.train
    for key in ("width", "depth", "heads", "context", "mlp_ratio", "base_width"):
        _positive(f"model.{key}", getattr(m, key))
    if m.width % m.heads:
        raise ConfigError(
            f"model.width={m.width} must be divisible by model.heads={m.heads} "
            f"(allowed heads: {', '.join(str(h) for h in range(1, m.width + 1) if m.width % h == 0)})"
        )
    _choice("model.parametrization", m.parametrization, PARAMETRIZATIONS)
    _choice("data.source", d.source, tuple(SOURCES))
    _positive("data.eval_tokens", d.eval_tokens)
    _positive("data.vocab", d.vocab, 2)
    _positive("train.batch_size", t.batch_size)
    batch_tokens = t.batch_size * m.context
    if d.tokens < batch_tokens:
        raise ConfigError(
            f"data.tokens={d.tokens} is smaller than one batch "
            f"(train.batch_size * model.context = {batch_tokens})"
        )
    if isinstance(t.lr, str):
        if t.lr != "kaplan":
            raise ConfigError(f"train.lr={t.lr!r} must be a positive number or 'kaplan'")
        if m.parametrization != "sp":
            raise ConfigError("train.lr='kaplan' is a rule for model.parametrization=sp only")
    elif isinstance(t.lr, bool) or not (isinstance(t.lr, (int, float)) and t.lr > 0 and math.isfinite(t.lr)):
        raise ConfigError(f"train.lr={t.lr!r} must be a positive number or 'kaplan'")
    _choice("train.schedule", t.schedule, SCHEDULES)
    _choice("train.device", t.device, DEVICES)
    _choice("train.precision", t.precision, PRECISIONS)
    _choice("train.compile_mode", t.compile_mode, COMPILE_MODES)
    if t.compile_mode != "default" and not t.compile:
        raise ConfigError(f"train.compile_mode={t.compile_mode} needs train.compile=true")
    if t.warmup < 0:
        raise ConfigError(f"train.warmup={t.warmup} must be >= 0")
    if not 0 <= t.cooldown <= 1:
        raise ConfigError(f"train.cooldown={t.cooldown} must be a fraction in [0, 1]")
    if t.grad_clip < 0:
        raise ConfigError(f"train.grad_clip={t.grad_clip} must be >= 0 (0 disables clipping)")
    _check_train_numbers(t)
    for key, value in (("data.seed", d.seed), ("train.seed", t.seed), ("data.probe_records", d.probe_records),
                       ("sweep.pack", cfg.sweep.pack)):
        if value < 0:
            raise ConfigError(f"{key}={value} must be >= 0")
    if d.flop_budget is not None and not (math.isfinite(d.flop_budget) and d.flop_budget > 0):
        raise ConfigError(f"data.flop_budget={d.flop_budget} must be a positive number (or null for data.tokens)")
    if t.device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device=cuda but no CUDA device is available; use auto or cpu")
    if t.branch_tokens:
        if t.schedule != "wsd" or t.warmup < 1:
            raise ConfigError("train.branch_tokens needs train.schedule=wsd and train.warmup in steps (>= 1), "
                              "so that runs of different D share their stable phase")
        if any(not isinstance(v, int) or v < 1 for v in t.branch_tokens):
            raise ConfigError(f"train.branch_tokens={list(t.branch_tokens)} must be positive token counts")
    _choice("wandb.mode", cfg.wandb.mode, WANDB_MODES)
    SOURCES[d.source].validate(cfg)
    if d.unique_tokens is not None or d.epochs is not None:
        _check_unique_tokens(cfg)  # last: for text it reads the token stream


def _check_unique_tokens(cfg: Any) -> None:
    """``data.unique_tokens`` (U_D) or ``data.epochs``: a positive count no larger than the
    run's D (at least one epoch); the source then checks that it can give that many
    (text: its training tokens)."""
    u, e = cfg.data.unique_tokens, cfg.data.epochs
    D = planned_tokens(cfg)
    if e is not None:
        if u is not None:
            raise ConfigError(f"data.unique_tokens={u} and data.epochs={e}: give one of the two (U_D, or D / U_D)")
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not (math.isfinite(e) and e >= 1):
            raise ConfigError(f"data.epochs={e!r} must be a number >= 1 (U_D = D / epochs; or null: every token fresh)")
        u = unique_tokens(cfg.data, D)
        label = f"data.epochs={e} gives data.unique_tokens={u}, which"
    else:
        if isinstance(u, bool) or not isinstance(u, int) or u < 1:
            raise ConfigError(f"data.unique_tokens={u!r} must be a positive token count (or null: every token fresh)")
        label = f"data.unique_tokens={u}"
        if u > D:
            what = f"the run's D={D} (data.flop_budget / 6N)" if cfg.data.flop_budget else f"data.tokens={D}"
            raise ConfigError(f"{label} is above {what}: a run cannot see more unique tokens than it trains on")
    check = getattr(SOURCES[cfg.data.source], "check_unique_tokens", None)
    if check is not None:
        check(cfg, u, label)


def _check_train_numbers(t: Any) -> None:
    """The numeric train.* knobs that torch would reject mid-run, or that would silently
    do nothing (a NaN compares false with everything)."""
    for key in ("warmup", "cooldown", "min_lr_ratio", "weight_decay", "beta1", "beta2", "grad_clip",
                "diverge_factor", "checkpoint_minutes"):
        if not math.isfinite(getattr(t, key)):
            raise ConfigError(f"train.{key}={getattr(t, key)} must be a finite number")
    if not 0 <= t.min_lr_ratio <= 1:
        raise ConfigError(f"train.min_lr_ratio={t.min_lr_ratio} must be a fraction in [0, 1]")
    if t.weight_decay < 0:
        raise ConfigError(f"train.weight_decay={t.weight_decay} must be >= 0")
    for key in ("beta1", "beta2"):
        if not 0 <= getattr(t, key) < 1:
            raise ConfigError(f"train.{key}={getattr(t, key)} must be in [0, 1)")
    if not t.diverge_factor > 1:
        raise ConfigError(f"train.diverge_factor={t.diverge_factor} must be > 1 "
                          "(a run stops as diverged when its loss exceeds factor x its first loss)")
    for key, zero in (("eval_every", "10 evaluations per run"), ("threads", "torch's default"),
                      ("checkpoint_every", "off"), ("checkpoint_minutes", "off")):
        if getattr(t, key) < 0:
            raise ConfigError(f"train.{key}={getattr(t, key)} must be >= 0 (0 = {zero})")
