"""Checkpoints and WSD branch states: save, load, and which runs may share them.

A checkpoint is everything the rest of a run depends on: the model, the optimizer,
the loop's :class:`~harness.train.state.TrainState` (the step *is* the data position,
since batches are a pure function of the step), RNG states, the wandb id and the wall
time so far. Resuming from it reproduces the uninterrupted run exactly on CPU.

WSD data ladders (Hägele et al. 2024): runs that differ only in ``data.tokens`` (one
*family*) share their stable phase, so a run passing a sibling's cooldown start saves
its state there (a branch state), and the sibling starts from it.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from harness.atomic import atomic_write

FORMAT = 1  # bump when the saved state changes; other checkpoints are not resumed


def save(path: Path, state: dict) -> None:
    """Atomically (temp file, fsync, rename): a kill at any instant leaves the previous
    checkpoint or the new one, never a torn file."""
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def load(path: Path, device: torch.device) -> dict:
    """``weights_only=True``: tensors and plain containers only, never pickled code."""
    state = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError("not a harness checkpoint of this format")
    return state


def wsd_cooldown_start(total_steps: int, cooldown: float) -> int:
    """The step at which a WSD run of ``total_steps`` leaves its stable phase."""
    return total_steps - round(cooldown * total_steps)


def branch_steps(branch_tokens: list, batch_tokens: int, own_start: int, cooldown: float) -> set[int]:
    """Steps of this run's stable phase at which a sibling (token budgets
    ``branch_tokens``) starts its cooldown: where this run saves a branch state."""
    starts = {wsd_cooldown_start(max(1, math.ceil(int(d) / batch_tokens)), cooldown) for d in branch_tokens}
    return {s for s in starts if 0 < s < own_start}
