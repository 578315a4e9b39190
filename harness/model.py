"""A GPT decoder: pre-norm blocks, causal SDPA attention, GELU MLP, tied or untied head.

Parameter counts (all exact, tested against ``numel()``), with d = width, L = depth,
r = mlp_ratio, V = vocab, T = context:
- embedding = V·d (tokens) + T·d (positions) + V·d if the head is untied;
- non-embedding (Kaplan's N) = L·((4 + 2r)·d² + (9 + r)·d) + 2·d: attention and MLP
  weights and biases plus every LayerNorm. For r = 4 this is the familiar 12·L·d²
  plus lower-order terms.

FLOPs per training token (:func:`flops_per_token`), convention as in PaLM's MFU
(Chowdhery et al. 2022, appendix B): a multiply-add is 2 FLOPs, backward costs twice
the forward, so 6 FLOPs per non-embedding parameter (biases and norms included, as
in Kaplan's 6N) and per LM-head weight (V·d, tied or not), plus 12·L·d·T for the
attention scores and the
weighted sum over the full context (no discount for the causal mask). Embedding
look-ups, softmax, norms and the optimizer are not counted. Kaplan's C = 6·N·D uses
non-embedding N only; records keep both.

μP (``parametrization=mup``, Yang et al. 2021, Tensor Programs V, table 3 for Adam),
with width multiplier m = width / base_width:
- hidden matrices (attention q/k/v/out, MLP in/out): init std σ/√m and Adam lr/m;
- token and position embeddings: init std σ and lr unchanged (vector-like);
- readout: logits multiplied by 1/m; its weight keeps lr unchanged. With tied
  embeddings the shared matrix is treated as an embedding (σ, lr), and the 1/m
  readout multiplier still applies (mup's MuSharedReadout does the same);
- attention logits scaled by 1/d_head instead of 1/√d_head;
- biases and LayerNorm gains: lr unchanged. Weight decay is AdamW's lr·wd per step,
  so hidden matrices decay at (lr/m)·wd (mup's MuAdam would multiply their wd by m;
  at the lr_transfer sweep's run lengths wd=0 vs 0.1 made no measurable difference).
At m = 1 μP differs from SP only in the attention scale. Under SP nothing changes.
Checked by the coordinate check (:mod:`harness.coord_check`, ``tests/test_mup.py``):
under μP every layer's activation change after a few Adam steps is flat in width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

INIT_STD = 0.02  # GPT-2's init scale (Radford et al. 2019)


@dataclass
class GPTConfig:
    vocab: int
    width: int = 64
    depth: int = 2
    heads: int = 4
    context: int = 64
    mlp_ratio: int = 4
    tie_embeddings: bool = True
    parametrization: str = "sp"
    base_width: int = 64

    @property
    def width_mult(self) -> float:
        return self.width / self.base_width if self.parametrization == "mup" else 1.0


class Block(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        d = c.width
        self.heads = c.heads
        self.attn_scale = 1 / (d // c.heads) if c.parametrization == "mup" else None  # None: 1/sqrt(d_head)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, c.mlp_ratio * d)
        self.fc_out = nn.Linear(c.mlp_ratio * d, d)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.attn_scale)
        return self.proj(y.transpose(1, 2).reshape(B, T, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.config = c
        self.wte = nn.Embedding(c.vocab, c.width)
        self.wpe = nn.Embedding(c.context, c.width)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.depth))
        self.ln_f = nn.LayerNorm(c.width)
        self.head = None if c.tie_embeddings else nn.Linear(c.width, c.vocab, bias=False)
        self.readout_mult = 1.0 / c.width_mult
        self.reset_parameters()

    def hidden_matrices(self) -> list[nn.Parameter]:
        return [m.weight for b in self.blocks for m in (b.qkv, b.proj, b.fc, b.fc_out)]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        c = self.config
        hidden_std = INIT_STD / math.sqrt(c.width_mult)
        for p in self.parameters():
            if p.dim() == 1:
                nn.init.zeros_(p)  # biases; LayerNorm weights are set to 1 below
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
        nn.init.normal_(self.wte.weight, std=INIT_STD)
        nn.init.normal_(self.wpe.weight, std=INIT_STD)
        for b in self.blocks:
            for lin in (b.qkv, b.fc):
                nn.init.normal_(lin.weight, std=hidden_std)
            # residual projections scaled by 1/sqrt(2L), as GPT-2 does
            for lin in (b.proj, b.fc_out):
                nn.init.normal_(lin.weight, std=hidden_std / math.sqrt(2 * c.depth))
        if self.head is not None:
            nn.init.normal_(self.head.weight, std=INIT_STD)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        w = self.wte.weight if self.head is None else self.head.weight
        logits = F.linear(x, w) * self.readout_mult
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """AdamW groups: decay on matrices only; μP divides hidden-matrix lr by m."""
        hidden = {id(p) for p in self.hidden_matrices()}
        groups: dict[tuple, list] = {}
        for p in self.parameters():
            is_hidden = id(p) in hidden
            decay = weight_decay if p.dim() >= 2 else 0.0
            scale = 1 / self.config.width_mult if is_hidden else 1.0
            groups.setdefault((decay, scale), []).append(p)
        return [
            {"params": ps, "weight_decay": wd, "lr": lr * s, "lr_scale": s}
            for (wd, s), ps in groups.items()
        ]


def param_counts(c: GPTConfig) -> dict[str, int]:
    """Closed-form parameter counts (see module docstring)."""
    d, L, r = c.width, c.depth, c.mlp_ratio
    embedding = c.vocab * d + c.context * d + (0 if c.tie_embeddings else c.vocab * d)
    nonembedding = L * ((4 + 2 * r) * d * d + (9 + r) * d) + 2 * d
    return {
        "params_total": embedding + nonembedding,
        "params_embedding": embedding,
        "params_nonembedding": nonembedding,
    }


def flops_per_token(c: GPTConfig) -> float:
    """Training FLOPs per token, PaLM convention (see module docstring)."""
    n = param_counts(c)["params_nonembedding"]
    return 6.0 * (n + c.vocab * c.width) + 12.0 * c.depth * c.width * c.context


def gpt_config(cfg: Any, vocab: int) -> GPTConfig:
    """The model of a run config (``cfg.model``) over a vocabulary of ``vocab`` tokens."""
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
