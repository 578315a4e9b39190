"""Structured config: one dataclass per component, registered in Hydra's ConfigStore.

The dataclasses carry every default (``configs/`` holds only the root config and
the sweep presets that override them); Hydra type-checks them, and
:func:`harness.validation.validate` checks the values before any compute is spent.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from harness import slurm


def knob(default: Any = None, *, semantic: bool = True, factory: Any = None, hash_null: bool = True) -> Any:
    """A config field. ``semantic=False`` marks a key that does not change what a run
    computes (where it runs, how it reports): it is left out of the run id.
    ``hash_null=False`` marks a key added after records were committed whose null value
    means what runs did before it existed: left out of the run id while null, so those
    runs keep their ids (a config without the key is the same run)."""
    meta = {"semantic": semantic, "hash_null": hash_null}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """The GPT decoder. N (non-embedding params) =
    depth * ((4 + 2*mlp_ratio) * width^2 + (9 + mlp_ratio) * width) + 2*width."""

    width: int = 64  # d_model
    depth: int = 2  # number of transformer blocks
    heads: int = 4  # width must be divisible by heads
    context: int = 64  # tokens per training sequence
    mlp_ratio: int = 4
    tie_embeddings: bool = True
    parametrization: str = "sp"  # sp | mup
    base_width: int = 64  # mup: the width at which mup equals sp (up to the attention scale)


@dataclass
class DataConfig:
    source: str = "zipf_facts"  # zipf_facts (embedded default, exact floor) | markov | text: harness.data.SOURCES
    tokens: int = 1_000_000  # training tokens D (targets seen)
    flop_budget: Optional[float] = None  # if set, D = flop_budget / (6 N) instead of tokens (IsoFLOP runs)
    # U_D: train on the first unique_tokens tokens of the source, repeated in epochs
    # (D / U_D of them); null: every token fresh (harness.data.SOURCES: synthetic, text)
    unique_tokens: Optional[int] = knob(None, hash_null=False)
    eval_tokens: int = 65_536  # held-out tokens per evaluation
    # per-skill probes: zipf_facts records per frequency bucket (0 disables); other
    # sources probe token-frequency buckets on the held-out windows
    probe_records: int = 512
    seed: int = 0
    # zipf_facts / markov knobs (ignored by other sources)
    vocab: int = 128
    n_facts: int = 16_384
    zipf_exponent: float = 1.5
    fact_noise: float = 0.1
    # text source knobs
    path: Optional[str] = None  # text file, glob or folder of .txt files (data.source=text)
    hub_dataset: Optional[str] = None  # a Hub dataset name (needs network)
    tokenizer_vocab: int = 2048
    val_fraction: float = 0.05
    cache_dir: str = knob("${results_dir}/.cache", semantic=False)


@dataclass
class TrainConfig:
    batch_size: int = 32  # sequences per step; steps = ceil(data.tokens / (batch_size * context))
    lr: Any = 3e-3  # peak lr, or "kaplan" (Kaplan et al. 2020 eq. D.1, sp only)
    schedule: str = "cosine"  # cosine | wsd | constant
    warmup: float = 0.05  # fraction of steps (<1) or a number of steps (>=1)
    cooldown: float = 0.2  # wsd: fraction of steps spent in the (1-sqrt) cooldown
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    device: str = knob("auto", semantic=False)  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on cuda, fp32 on cpu) | fp32 | bf16
    compile: bool = knob(False, semantic=False)  # torch.compile (its cost lands in the record's first_step_s)
    # default | reduce-overhead (CUDA graphs: tiny models on a GPU) | max-autotune | max-autotune-no-cudagraphs
    compile_mode: str = knob("default", semantic=False)
    seed: int = 0
    eval_every: int = 0  # steps between evaluations; 0 means 10 evaluations per run
    threads: int = knob(0, semantic=False)  # CPU threads for torch; 0 leaves torch's default
    diverge_factor: float = 3.0  # stop as diverged when loss > factor * the first step's loss
    checkpoint_every: int = knob(0, semantic=False)  # steps between checkpoints; 0 = off (an interrupt always checkpoints)
    checkpoint_minutes: float = knob(0.0, semantic=False)  # also checkpoint every this many minutes; 0 = off
    resume: bool = knob(False, semantic=False)  # continue from this run's checkpoint if one exists
    # WSD data ladders (Hägele et al. 2024): the token budgets D of sibling runs that
    # differ from this one only in data.tokens. A run passing a sibling's cooldown start
    # saves its state there, and a sibling finding that state starts from it.
    branch_tokens: list = knob(semantic=False, factory=list)
    progress: bool = knob(True, semantic=False)


@dataclass
class WandbConfig:
    """online | offline | disabled. WANDB_MODE in the environment wins; online without an
    API key falls back to offline (sync later with ``wandb sync``)."""

    mode: str = "offline"
    project: str = "scaling-harness"
    entity: Optional[str] = None
    tags: list = field(default_factory=list)


@dataclass
class SweepConfig:
    name: str = "single"
    fit: bool = knob(True, semantic=False)  # fit and plot when the sweep ends
    # >0: train up to this many same-shape runs together as one batched model
    pack: int = knob(0, semantic=False)
    # IsoFLOP presets: a size's offset from its budget's optimum, in x sqrt(2) steps of N
    # (harness.config.iso_width); the run is what it resolves to, so not in the run id
    size_step: int = knob(0, semantic=False)


def iso_width(flop_budget: float, step: int, tokens_per_param: float, depth: int, multiple: int = 2) -> int:
    """IsoFLOP presets: the width (a multiple of ``multiple``, at least that) whose N is
    sqrt(2)^step times the compute-optimal N at C = ``flop_budget`` for a ridge of
    ``tokens_per_param`` = D/N, i.e. N_opt = sqrt(C / (6 r)), so each budget's sizes
    are centred on its own optimum. N(w) = depth (12 w^2 + 13 w) + 2 w (ModelConfig's
    count at mlp_ratio 4), solved for w."""
    n = math.sqrt(float(flop_budget) / (6.0 * float(tokens_per_param))) * 2.0 ** (float(step) / 2)
    a, b = 12.0 * depth, 13.0 * depth + 2.0
    w = (-b + math.sqrt(b * b + 4 * a * n)) / (2 * a)
    return max(multiple, int(round(w / multiple)) * multiple)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    wandb: WandbConfig = knob(semantic=False, factory=WandbConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    results_dir: str = knob("results", semantic=False)


def _keys_marked(meta: str, schema: type = RunConfig, prefix: str = "") -> set[str]:
    """Dotted keys (and whole groups) whose field metadata sets ``meta`` to False."""
    out: set[str] = set()
    for f in fields(schema):
        key = prefix + f.name
        if not f.metadata.get(meta, True):
            out.add(key)
        elif f.default_factory is not MISSING and is_dataclass(f.default_factory):
            out |= _keys_marked(meta, f.default_factory, key + ".")
    return out


def non_semantic_keys() -> set[str]:
    """Dotted keys (and whole groups) marked ``semantic=False``: left out of the run id."""
    return _keys_marked("semantic")


def null_unhashed_keys() -> set[str]:
    """Dotted keys marked ``hash_null=False``: left out of the run id while null."""
    return _keys_marked("hash_null")


def make_config(config: dict | None = None, /, **overrides: Any) -> DictConfig:
    """A structured RunConfig (the defaults), merged with ``config`` (a nested dict, e.g.
    a record's config), then dotted ``overrides`` (``**{"model.width": 128}``). Not
    validated: call :func:`validate` before training."""
    cfg = OmegaConf.structured(RunConfig)
    if config:
        cfg = OmegaConf.merge(cfg, config)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    slurm.register()  # hydra/launcher=submitit_slurm with requeues allowed (harness/slurm.py)
    # ${div:${model.width},16} lets a preset tie heads to width (fixed head size)
    if not OmegaConf.has_resolver("div"):
        OmegaConf.register_new_resolver("div", lambda a, b: int(a) // int(b))
    # ${over:0.384,${model.width}} lets a preset scale the lr with width (SP, lr = c / width);
    # the record holds the resolved number, so the run is the same as with that lr given
    if not OmegaConf.has_resolver("iso_width"):
        OmegaConf.register_new_resolver("iso_width", lambda c, k, r, d: iso_width(float(c), int(k), float(r), int(d)))
    if not OmegaConf.has_resolver("over"):
        OmegaConf.register_new_resolver("over", lambda a, b: float(a) / float(b))


class ConfigError(ValueError):
    """A config value that is not allowed. The message is one line."""


def resolve_lr(train: Any, n_nonembedding: int) -> float:
    """The peak learning rate. ``train.lr=kaplan`` is Kaplan et al. (2020) eq. D.1:
    lr(N) = 0.003239 - 0.0001395 * ln N, with N the non-embedding parameter count."""
    if isinstance(train.lr, str):
        return 0.003239 - 0.0001395 * math.log(n_nonembedding)
    return float(train.lr)


def to_container(cfg: Any) -> dict:
    """The resolved config as plain python (for records and hashing)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return asdict(cfg)
