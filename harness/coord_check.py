"""Coordinate check for μP (Yang et al. 2021, Tensor Programs V, §D.1 and fig. 5).

Train the same model at several widths for a few Adam steps and record, on one
fixed probe batch, the mean absolute coordinate of each layer's output: the
embedding (token + position), every block's attention output, MLP output and
residual stream, and the logits. Two quantities per layer and step t:

- ``size``   = mean |x_t|, the activation scale;
- ``change`` = mean |x_t - x_0|, how far training has moved it (fig. 5 plots this).

Under μP both stay O(1) as width grows; under SP with Adam the change of the
hidden layers and logits grows about linearly in width (each entry of ΔW is
O(lr), and ΔW·x sums n correlated terms). :func:`width_slope` summarises a curve
by its log-log slope against width: ~0 is flat, ~1 is linear growth.

The data are zipf_facts windows (the harness's default source), the model the
harness's GPT with fixed head size, the optimizer the harness's AdamW groups
(``GPT.param_groups``) with a constant lr and no weight decay or clipping, so the
check measures the parametrization and nothing else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from harness.data.synthetic import ZipfFacts
from harness.model import GPT, GPTConfig


@dataclass
class CoordCheckConfig:
    widths: tuple[int, ...] = (32, 64, 128, 256)
    parametrization: str = "mup"
    base_width: int = 32
    depth: int = 2
    head_dim: int = 16  # heads = width / head_dim, so the head size is fixed
    context: int = 32
    batch_size: int = 16
    vocab: int = 128
    n_facts: int = 4096
    steps: int = 4  # Adam steps; activations are recorded at steps 0..steps
    lr: float = 1e-2
    seeds: tuple[int, ...] = (0,)


def layer_names(depth: int) -> list[str]:
    names = ["embed"]
    for i in range(depth):
        names += [f"attn.{i}", f"mlp.{i}", f"resid.{i}"]
    return names + ["logits"]


def _record(model: GPT, probe: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward ``probe`` and return every tracked layer's output (detached)."""
    out: dict[str, torch.Tensor] = {}
    hooks = [model.blocks[0].register_forward_pre_hook(
        lambda m, args: out.__setitem__("embed", args[0].detach()))]
    for i, b in enumerate(model.blocks):
        hooks += [
            b.proj.register_forward_hook(lambda m, a, y, i=i: out.__setitem__(f"attn.{i}", y.detach())),
            b.fc_out.register_forward_hook(lambda m, a, y, i=i: out.__setitem__(f"mlp.{i}", y.detach())),
            b.register_forward_hook(lambda m, a, y, i=i: out.__setitem__(f"resid.{i}", y.detach())),
        ]
    try:
        with torch.no_grad():
            out["logits"] = model(probe).detach()
    finally:
        for h in hooks:
            h.remove()
    return out


def coord_check(c: CoordCheckConfig) -> list[dict]:
    """Rows ``{parametrization, width, seed, step, layer, size, change}``."""
    lang = ZipfFacts(c.vocab, c.n_facts, zipf_exponent=1.5, fact_noise=0.1, seed=0)
    rows = []
    for seed in c.seeds:
        rng = np.random.default_rng(seed)
        batches = [torch.from_numpy(lang.windows(rng, c.batch_size, c.context).astype(np.int64))
                   for _ in range(c.steps + 1)]
        probe = batches[-1][:, :-1]  # held out from the training steps
        for width in c.widths:
            torch.manual_seed(seed)
            g = GPTConfig(vocab=c.vocab, width=width, depth=c.depth, heads=width // c.head_dim,
                          context=c.context, parametrization=c.parametrization, base_width=c.base_width)
            model = GPT(g)
            opt = torch.optim.AdamW(model.param_groups(c.lr, weight_decay=0.0), lr=c.lr)
            x0 = None
            for step in range(c.steps + 1):
                acts = _record(model, probe)
                if x0 is None:
                    x0 = acts
                for layer, x in acts.items():
                    rows.append({
                        "parametrization": c.parametrization, "width": width, "seed": seed,
                        "step": step, "layer": layer, "size": x.abs().mean().item(),
                        "change": (x - x0[layer]).abs().mean().item(),
                    })
                if step < c.steps:
                    batch = batches[step]
                    _, loss = model(batch[:, :-1], batch[:, 1:])
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
    return rows


def curve(rows: list[dict], layer: str, step: int, quantity: str = "change") -> tuple[list[int], list[float]]:
    """Widths and the seed-mean of ``quantity`` for one layer at one step."""
    widths = sorted({r["width"] for r in rows})
    vals = [float(np.mean([r[quantity] for r in rows
                           if r["width"] == w and r["layer"] == layer and r["step"] == step]))
            for w in widths]
    return widths, vals


def width_slope(rows: list[dict], layer: str, step: int, quantity: str = "change") -> float:
    """Least-squares slope of log(quantity) against log(width): 0 is flat in width."""
    widths, vals = curve(rows, layer, step, quantity)
    return float(np.polyfit(np.log(widths), np.log(vals), 1)[0])
