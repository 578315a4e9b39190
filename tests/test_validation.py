"""Each validation rule the README promises stops a bad config with its own one-line
message before any compute is spent, and the values next to it pass."""
from __future__ import annotations

import pytest
import torch

from harness.config import ConfigError
from harness.validation import validate

RULES = [
    ({"train.lr": "kaplan", "model.parametrization": "mup"},
     "train.lr='kaplan' is a rule for model.parametrization=sp only"),
    ({"train.branch_tokens": [8192, 16384]},  # the default schedule is cosine
     "train.branch_tokens needs train.schedule=wsd and train.warmup in steps (>= 1)"),
    ({"train.branch_tokens": [8192], "train.schedule": "wsd", "train.warmup": 0.05},  # a fraction, not steps
     "train.branch_tokens needs train.schedule=wsd and train.warmup in steps (>= 1)"),
    ({"train.branch_tokens": [8192, -5], "train.schedule": "wsd", "train.warmup": 5},
     "train.branch_tokens=[8192, -5] must be positive token counts"),
    ({"train.cooldown": -0.1}, "train.cooldown=-0.1 must be a fraction in [0, 1]"),
    ({"train.cooldown": 1.5}, "train.cooldown=1.5 must be a fraction in [0, 1]"),
    ({"train.warmup": -1.0}, "train.warmup=-1.0 must be >= 0"),
    ({"train.grad_clip": -0.5}, "train.grad_clip=-0.5 must be >= 0 (0 disables clipping)"),
]


@pytest.mark.parametrize("overrides, message", RULES, ids=[m.split(" ")[0] for _, m in RULES])
def test_each_rule_stops_with_its_message(tiny_cfg, overrides, message):
    with pytest.raises(ConfigError) as e:
        validate(tiny_cfg(**overrides))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides", [
    {"train.lr": "kaplan"},  # sp, the default
    {"train.branch_tokens": [8192, 16384], "train.schedule": "wsd", "train.warmup": 5},
    {"train.cooldown": 0.0}, {"train.cooldown": 1.0}, {"train.warmup": 0}, {"train.grad_clip": 0.0},
], ids=["kaplan-sp", "branch-wsd", "cooldown-0", "cooldown-1", "warmup-0", "grad_clip-0"])
def test_the_values_at_the_edge_of_each_rule_pass(tiny_cfg, overrides):
    validate(tiny_cfg(**overrides))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_cuda_stops_before_compute(tiny_cfg):
    with pytest.raises(ConfigError) as e:
        validate(tiny_cfg(**{"train.device": "cuda"}))
    assert str(e.value) == "train.device=cuda but no CUDA device is available; use auto or cpu"
    validate(tiny_cfg(**{"train.device": "auto"}))


def test_device_cuda_without_cuda_is_caught_even_where_cuda_exists(tiny_cfg, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="train.device=cuda but no CUDA device is available"):
        validate(tiny_cfg(**{"train.device": "cuda"}))
