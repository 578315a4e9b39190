import math

import pytest

from harness.schedule import lr_multiplier, warmup_steps


def test_warmup_fraction_or_steps():
    assert warmup_steps(0.1, 200) == 20
    assert warmup_steps(30, 200) == 30
    assert warmup_steps(0, 200) == 0


def test_warmup_is_linear():
    assert [lr_multiplier(s, 100, "cosine", 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_ends_at_min_ratio_and_is_monotone():
    vals = [lr_multiplier(s, 100, "cosine", 10, min_ratio=0.1) for s in range(100)]
    assert vals[10] == pytest.approx(1.0)
    assert vals[-1] == pytest.approx(0.1)
    assert all(a >= b - 1e-12 for a, b in zip(vals[10:], vals[11:]))
    mid = 10 + (99 - 10) / 2
    assert lr_multiplier(int(mid), 100, "cosine", 10, min_ratio=0.0) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * (int(mid) - 10) / 89)))


def test_wsd_stable_then_sqrt_cooldown_to_zero():
    total, cool = 100, 0.2
    vals = [lr_multiplier(s, total, "wsd", 5, cooldown=cool) for s in range(total)]
    assert all(v == 1.0 for v in vals[5:80])
    assert vals[-1] == pytest.approx(0.0)
    assert vals[80] == pytest.approx(1 - math.sqrt(1 / 20))


def test_constant():
    assert lr_multiplier(50, 100, "constant", 5) == 1.0
