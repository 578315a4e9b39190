"""Structured config: one dataclass per component, registered in Hydra's ConfigStore.

The yaml files under ``configs/`` fill these schemas; Hydra type-checks them, and
:func:`validate` checks the values before any compute is spent. Every error is one
line that names the key and what is allowed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
# torch.compile modes; reduce-overhead and max-autotune replay CUDA graphs on a GPU
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SCHEDULES = ("cosine", "wsd", "constant")
PARAMETRIZATIONS = ("sp", "mup")
WANDB_MODES = ("online", "offline", "disabled")


@dataclass
class ModelConfig:
    width: int = 64  # d_model
    depth: int = 2  # number of transformer blocks
    heads: int = 4
    context: int = 64  # tokens per training sequence
    mlp_ratio: int = 4
    tie_embeddings: bool = True
    parametrization: str = "sp"  # "sp" (standard) or "mup"
    base_width: int = 64  # muP: width at which muP equals SP


@dataclass
class DataConfig:
    source: str = "zipf_facts"  # see harness.data.SOURCES
    tokens: int = 1_000_000  # training tokens D (targets seen)
    flop_budget: Optional[float] = None  # if set, tokens = flop_budget / (6 N) (IsoFLOP sweeps)
    eval_tokens: int = 65_536  # held-out tokens per evaluation
    probe_records: int = 512  # per-skill probes: records per frequency bucket (0 disables)
    seed: int = 0
    # zipf_facts / markov knobs (ignored by other sources)
    vocab: int = 128
    n_facts: int = 16_384
    zipf_exponent: float = 1.5
    fact_noise: float = 0.1
    # text source knobs
    path: Optional[str] = None  # text file, glob or folder (data.source=text)
    hub_dataset: Optional[str] = None  # a Hub dataset name (needs network)
    tokenizer_vocab: int = 2048
    val_fraction: float = 0.05
    cache_dir: str = "${results_dir}/.cache"


@dataclass
class TrainConfig:
    batch_size: int = 32  # sequences per step
    lr: Any = 3e-3  # a float, or "kaplan" for Kaplan et al. eq. D.1
    schedule: str = "cosine"
    warmup: float = 0.05  # fraction of steps (<1) or a number of steps (>=1)
    cooldown: float = 0.2  # WSD: fraction of steps spent in the (1-sqrt) cooldown
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    compile_mode: str = "default"  # torch.compile mode; reduce-overhead = CUDA graphs
    seed: int = 0
    eval_every: int = 0  # steps between evaluations; 0 means 10 evaluations per run
    threads: int = 0  # CPU threads for torch; 0 leaves torch's default
    diverge_factor: float = 3.0  # stop as diverged when loss > factor * initial loss
    checkpoint_every: int = 0  # steps between checkpoints; 0 disables
    checkpoint_minutes: float = 0.0  # also checkpoint when this many minutes passed; 0 disables
    resume: bool = False
    # WSD data ladders (Hägele et al. 2024): the token budgets D of sibling runs that
    # differ from this one only in data.tokens. A run passing a sibling's cooldown start
    # saves its state there, and a sibling finding that state starts from it.
    branch_tokens: list = field(default_factory=list)
    progress: bool = True


@dataclass
class WandbConfig:
    mode: str = "disabled"
    project: str = "scaling-harness"
    entity: Optional[str] = None
    tags: list = field(default_factory=list)


@dataclass
class SweepConfig:
    name: str = "single"
    fit: bool = True  # fit and plot when the sweep ends
    pack: int = 0  # >0: train up to this many same-shape runs together as one batched model


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    results_dir: str = "results"


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    from harness import slurm  # hydra/launcher=submitit_slurm with requeues allowed (harness/slurm.py)

    slurm.register()
    # ${div:${model.width},16} lets a preset tie heads to width (fixed head size)
    if not OmegaConf.has_resolver("div"):
        OmegaConf.register_new_resolver("div", lambda a, b: int(a) // int(b))


class ConfigError(ValueError):
    """A config value that is not allowed. The message is one line."""


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _positive(key: str, value: Any, minimum: float = 1) -> None:
    if value is None or value < minimum:
        raise ConfigError(f"{key}={value!r} must be >= {minimum}")


def resolve_lr(train: Any, n_nonembedding: int) -> float:
    """The peak learning rate. ``train.lr=kaplan`` is Kaplan et al. (2020) eq. D.1:
    lr(N) = 0.003239 - 0.0001395 * ln N, with N the non-embedding parameter count."""
    if isinstance(train.lr, str):
        return 0.003239 - 0.0001395 * math.log(n_nonembedding)
    return float(train.lr)


def validate(cfg: Any) -> None:
    """Raise ConfigError (one line, naming the key) for any value we cannot run."""
    from harness.data import SOURCES  # registry of data sources

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
        import torch

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


def to_container(cfg: Any) -> dict:
    """The resolved config as plain python (for records and hashing)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    from dataclasses import asdict

    return asdict(cfg)
