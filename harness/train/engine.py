"""Engines: K runs of one model shape, their models and AdamW optimizers, one step.

The loop (:mod:`harness.train.loop`) never touches a model: it hands an engine the
batches of the runs at stack rows ``rows`` and gets their losses back.

- :class:`SingleEngine` trains one run (K = 1) with the plain forward, optionally
  ``torch.compile``d.
- :class:`PackedEngine` trains K runs of one shape as one batched model: the forward
  is ``torch.vmap`` over ``torch.func.functional_call`` of the very ``GPT`` module,
  with each parameter stacked (K, *shape) from the K runs' own models, so linear
  layers become batched matmuls and every kernel is shared. The gradient of the sum
  of the K losses gives each run exactly its own gradient (run k's loss depends only
  on row k). On CUDA, SDPA stays one call for all K runs (torch has vmap rules for
  its flash, memory-efficient and cuDNN kernels); the CPU kernel has none, and vmap
  loops over the runs (same result, some overhead: scripts/bench_packing.py).

Both engines keep one ``GPT`` and one ``torch.optim.AdamW`` per run, built exactly as
a lone run builds them (``torch.manual_seed(train.seed)``, ``GPT.param_groups``), so
clipping (``clip_grad_norm_`` over the run's parameters), AdamW, weight decay and μP
lr scales are torch's own, per run; a packed run's arithmetic differs from a lone
run's only in the order of some sums in the batched forward and backward. Each row's
state dict is a lone run's: checkpoints and WSD branch states are shared by both.
"""
from __future__ import annotations

import json
import warnings
from typing import Any, Callable

import torch
from torch.func import functional_call, vmap

from harness.model import GPT, GPTConfig

# Keys that must agree for runs to share a pack: the model's shape (one set of
# kernels), the batch shape, and where and in which precision they run.
PACK_KEYS = (
    "model.width", "model.depth", "model.heads", "model.context", "model.mlp_ratio",
    "model.tie_embeddings", "model.parametrization", "model.base_width",
    "train.batch_size", "train.device", "train.precision",
)

CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")

# SDPA's CPU kernel has no vmap batching rule, so vmap loops over the runs (correct, a
# little slower; measured by scripts/bench_packing.py).
_CPU_SDPA_FALLBACK = r".*batching rule for aten::_scaled_dot_product_flash_attention_for_cpu.*"


def pack_key(cfg: Any) -> tuple:
    """Runs with equal keys can be packed together (see ``PACK_KEYS``)."""
    return tuple(json.dumps(_get(cfg, k), default=str) for k in PACK_KEYS)


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


class Engine:
    """The models and optimizers of K runs; subclasses say how K losses are computed.

    ``runs`` provide ``cfg`` (the run config) and ``lr`` (the resolved peak lr)."""

    def __init__(self, runs: list[Any], gcfg: GPTConfig, device: torch.device, autocast: Callable):
        self.runs, self.gcfg, self.device, self.autocast = runs, gcfg, device, autocast
        self.grad_norms: dict[int, torch.Tensor] = {}  # row -> its last step's gradient norm (0-d)
        built = [self.build(row) for row in range(len(runs))]
        self.models = [m for m, _ in built]
        self.optimizers = [o for _, o in built]

    def build(self, row: int) -> tuple[GPT, torch.optim.Optimizer]:
        """Run ``row``'s model, initialised from its seed, and its optimizer. The step
        sets each group's lr to peak x ``lr_scale`` (μP) x the schedule."""
        t, lr = self.runs[row].cfg.train, self.runs[row].lr
        torch.manual_seed(t.seed)
        model = GPT(self.gcfg).to(self.device)
        optimizer = torch.optim.AdamW(
            model.param_groups(lr, t.weight_decay), lr=lr, betas=(t.beta1, t.beta2),
            fused=self.device.type == "cuda",
        )
        return model, optimizer

    def reset(self, row: int) -> None:
        """Back to run ``row``'s initial model and optimizer (a restart from step 0)."""
        self.models[row], self.optimizers[row] = self.build(row)

    def losses(self, rows: list[int], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(K,) mean losses of the runs at ``rows`` on their (K, B, T) batches."""
        raise NotImplementedError

    def train_losses(self, rows: list[int], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training forward (a subclass may compile it)."""
        return self.losses(rows, x, y)

    def step(self, rows: list[int], x: torch.Tensor, y: torch.Tensor, lr_mults: list[float]) -> torch.Tensor:
        """One optimizer step of each run at ``rows`` (lr = peak x its group's μP scale x
        ``lr_mults``, the schedule); returns the (K,) losses, detached, on the device."""
        for row, mult in zip(rows, lr_mults):
            for g in self.optimizers[row].param_groups:
                g["lr"] = self.runs[row].lr * g["lr_scale"] * mult
        with self.autocast():
            loss = self.train_losses(rows, x, y)
        loss.sum().backward()
        for row in rows:
            clip = self.runs[row].cfg.train.grad_clip
            if clip > 0:  # the norm before clipping, kept on the device: the loop reads it with the losses
                self.grad_norms[row] = torch.nn.utils.clip_grad_norm_(self.models[row].parameters(), clip)
            self.optimizers[row].step()
            self.optimizers[row].zero_grad(set_to_none=True)
        return loss.detach()

    @torch.no_grad()
    def evaluate(self, rows: list[int], val: list[torch.Tensor], batch_size: int) -> list[float]:
        """Mean loss in nats per token of each run at ``rows`` over every one of its
        held-out windows ``val`` (R, T+1), in chunks of ``batch_size`` windows."""
        out: dict[int, float] = {}
        by_shape: dict[tuple, list[int]] = {}
        for i, v in enumerate(val):
            by_shape.setdefault(tuple(v.shape), []).append(i)
        self._train_mode(False)
        for group in by_shape.values():
            windows = torch.stack([val[i] for i in group])
            total, count = torch.zeros(len(group), device=self.device), 0
            for i in range(0, windows.shape[1], batch_size):
                chunk = windows[:, i : i + batch_size].to(self.device)
                with self.autocast():
                    loss = self.losses([rows[j] for j in group], chunk[:, :, :-1], chunk[:, :, 1:])
                n = chunk[0, :, 1:].numel()
                total += loss.float() * n
                count += n
            out.update(zip(group, (total / count).tolist()))
        self._train_mode(True)
        return [out[i] for i in range(len(rows))]

    def _train_mode(self, on: bool) -> None:
        for m in self.models:
            m.train(on)

    def state_dict(self, row: int) -> dict:
        return {"model": self.models[row].state_dict(), "optimizer": self.optimizers[row].state_dict()}

    def load_state_dict(self, row: int, state: dict) -> None:
        self.models[row].load_state_dict(state["model"])
        self.optimizers[row].load_state_dict(state["optimizer"])


class SingleEngine(Engine):
    """One run, the plain forward; ``train.compile=true`` compiles the training forward
    (``reduce-overhead`` records CUDA graphs, which removes the per-kernel launch cost
    that dominates tiny models on a GPU; on CPU inductor skips the graphs)."""

    def __init__(self, runs: list[Any], gcfg: GPTConfig, device: torch.device, autocast: Callable):
        super().__init__(runs, gcfg, device, autocast)
        t = runs[0].cfg.train
        # CUDA graphs replay into the same output buffers: tell torch where a step begins
        self.mark_step = t.compile and t.compile_mode in CUDA_GRAPH_MODES
        self._compile()

    def _compile(self) -> None:
        t = self.runs[0].cfg.train
        self.forward = (torch.compile(self.models[0], mode=None if t.compile_mode == "default" else t.compile_mode)
                        if t.compile else self.models[0])

    def reset(self, row: int) -> None:
        super().reset(row)
        self._compile()  # the training forward must run the new model

    def losses(self, rows: list[int], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.models[0](x[0], y[0])[1].unsqueeze(0)

    def train_losses(self, rows: list[int], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.mark_step:
            torch.compiler.cudagraph_mark_step_begin()
        return self.forward(x[0], y[0])[1].unsqueeze(0)


class PackedEngine(Engine):
    """K runs of one shape as one vmapped model (see the module docstring)."""

    def __init__(self, runs: list[Any], gcfg: GPTConfig, device: torch.device, autocast: Callable):
        super().__init__(runs, gcfg, device, autocast)
        with torch.device("meta"):
            self.template = GPT(gcfg)  # the module functional_call runs; holds no data
        self.names = [n for n, _ in self.template.named_parameters()]

    def losses(self, rows: list[int], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        named = [dict(self.models[r].named_parameters()) for r in rows]
        params = {n: torch.stack([p[n] for p in named]) for n in self.names}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CPU_SDPA_FALLBACK)
            return vmap(self._loss)(params, x, y)

    def _loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, params, (x, y))[1]
