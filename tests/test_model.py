import itertools
import math

import pytest
import torch

from harness.model import GPT, GPTConfig, flops_per_token, param_counts

SHAPES = [
    dict(vocab=50, width=16, depth=1, heads=2, context=8),
    dict(vocab=128, width=64, depth=3, heads=4, context=64, mlp_ratio=2),
    dict(vocab=300, width=48, depth=2, heads=3, context=20, tie_embeddings=False),
    dict(vocab=97, width=96, depth=4, heads=6, context=33, mlp_ratio=3, parametrization="mup", base_width=32),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_param_counts_match_numel(shape):
    c = GPTConfig(**shape)
    model = GPT(c)
    counts = param_counts(c)
    emb = {id(model.wte.weight), id(model.wpe.weight)} | ({id(model.head.weight)} if model.head is not None else set())
    n_emb = sum(p.numel() for p in model.parameters() if id(p) in emb)
    n_all = sum(p.numel() for p in model.parameters())
    assert counts["params_embedding"] == n_emb
    assert counts["params_nonembedding"] == n_all - n_emb
    assert counts["params_total"] == n_all == counts["params_embedding"] + counts["params_nonembedding"]


@pytest.mark.parametrize("d,L", itertools.product([16, 64, 256], [1, 2, 6]))
def test_nonembedding_is_kaplan_12Ld2_plus_lower_order(d, L):
    n = param_counts(GPTConfig(vocab=10, width=d, depth=L, heads=1, context=4))["params_nonembedding"]
    assert n == 12 * L * d * d + 13 * L * d + 2 * d


def test_flops_per_token_closed_form():
    c = GPTConfig(vocab=128, width=64, depth=2, heads=4, context=64)
    n = param_counts(c)["params_nonembedding"]
    assert flops_per_token(c) == 6 * n + 6 * 128 * 64 + 12 * 2 * 64 * 64


def test_flops_match_forward_macs_of_matmuls():
    """6 x (matmul MACs per token) + attention term equals the stated count up to biases and norms."""
    c = GPTConfig(vocab=64, width=32, depth=2, heads=4, context=16)
    d, L, r, V, T = c.width, c.depth, c.mlp_ratio, c.vocab, c.context
    macs = L * (3 * d * d + d * d + 2 * r * d * d) + V * d  # weights only
    attn = L * 2 * T * d  # QK^T and AV, full context
    exact_weights_only = 6 * macs + 6 * attn
    small = param_counts(c)["params_nonembedding"] - L * 12 * d * d  # biases and norms
    assert flops_per_token(c) - exact_weights_only == 6 * small


def test_forward_shapes_and_initial_loss_near_uniform():
    torch.manual_seed(0)
    c = GPTConfig(vocab=100, width=32, depth=2, heads=4, context=16)
    model = GPT(c)
    x = torch.randint(0, 100, (4, 16))
    logits, loss = model(x, torch.randint(0, 100, (4, 16)))
    assert logits.shape == (4, 16, 100)
    assert abs(loss.item() - math.log(100)) < 0.1


def test_mup_param_groups_scale_hidden_lr():
    c = GPTConfig(vocab=50, width=128, depth=2, heads=4, context=8, parametrization="mup", base_width=32)
    model = GPT(c)
    groups = model.param_groups(lr=1.0, weight_decay=0.1)
    hidden = {id(p) for p in model.hidden_matrices()}
    for g in groups:
        for p in g["params"]:
            assert g["lr"] == (0.25 if id(p) in hidden else 1.0)
            assert g["weight_decay"] == (0.1 if p.dim() >= 2 else 0.0)
    assert model.readout_mult == 0.25
    assert model.blocks[0].attn_scale == 1 / 32


def test_sp_is_unchanged_by_base_width():
    a = GPT(GPTConfig(vocab=50, width=64, depth=1, heads=2, context=8, base_width=16))
    assert a.readout_mult == 1.0 and a.blocks[0].attn_scale is None
    assert all(g["lr"] == 1.0 for g in a.param_groups(1.0, 0.0))
