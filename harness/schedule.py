"""Learning-rate schedules as pure functions of the step: multipliers of the peak lr.

All start with a linear warmup over ``warmup`` steps (from 1/warmup to 1). The
schedule's length is the run's step count, which comes from the token budget D, so
a cosine run always ends its decay exactly when its data ends (Hoffmann et al. 2022
found a cosine cycle longer than the run overestimates the loss).

- ``cosine``: half-cosine from 1 down to ``min_ratio`` at the last step.
- ``wsd``: warmup, stable at 1, then the last ``cooldown`` fraction of steps decays
  as 1 - sqrt(x), x from 0 to 1, to 0 (Hägele et al. 2024, "Scaling Laws and
  Compute-Optimal Training Beyond Fixed Training Durations").
- ``constant``: 1 after warmup.
"""
from __future__ import annotations

import math


def warmup_steps(warmup: float, total_steps: int) -> int:
    """``warmup`` < 1 is a fraction of the run; >= 1 is a number of steps."""
    w = warmup * total_steps if warmup < 1 else warmup
    return int(min(max(round(w), 0), total_steps))


def lr_multiplier(
    step: int,
    total_steps: int,
    schedule: str,
    warmup: int,
    cooldown: float = 0.2,
    min_ratio: float = 0.1,
) -> float:
    """Multiplier of the peak lr at 0-based ``step`` of ``total_steps``."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(total_steps - 1 - warmup, 1)
        progress = min((step - warmup) / span, 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "wsd":
        cool_steps = round(cooldown * total_steps)
        cool_start = total_steps - cool_steps
        if cool_steps == 0 or step < cool_start:
            return 1.0
        x = (step - cool_start + 1) / cool_steps
        return 1.0 - math.sqrt(x)
    raise ValueError(f"unknown schedule {schedule!r}")
