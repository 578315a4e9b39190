"""Batch samplers: the one place tokens become (inputs, targets) tensors.

A batch is a pure function of the step index, so a resumed run sees exactly the
batches it would have seen, and the loader keeps no hidden state. Each batch is one
vectorized gather (or a slice) from a token array held in memory, a memmap or on
the device.
"""
from __future__ import annotations

import numpy as np
import torch


class WindowSampler:
    """Pre-cut windows: ``rows`` has shape (R, context + 1); rows past the last whole
    batch (R mod B of them) are never used, and R below means the rows that are.

    Epoch ``e`` is the batches of steps ``[e*R/B, (e+1)*R/B)``. Epoch 0 takes the rows in
    order (batch ``s`` is rows ``[s*B, (s+1)*B)``), so a run that fits in one epoch sees
    every training window exactly once. Each later epoch takes every row exactly once
    again, in a permutation seeded by (``seed``, e): a pure function of the step, so a
    resumed or branched run sees the same batches. Over ``k`` whole epochs every row is
    seen exactly ``k`` times (``data.unique_tokens``). Used by the synthetic sources,
    whose windows start at a record boundary.
    """

    def __init__(self, rows: torch.Tensor, batch_size: int, seed: int = 0):
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed
        self.n_batches = rows.shape[0] // batch_size
        self._order: tuple[int, torch.Tensor] | None = None  # (epoch, permutation): a cache, not state

    def to(self, device: torch.device | str) -> "WindowSampler":
        """The same batches, sliced from a copy of the rows held on ``device``."""
        return WindowSampler(self.rows.to(device), self.batch_size, self.seed)

    def order(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s row order (epoch >= 1): a seeded permutation of the used rows."""
        if self._order is None or self._order[0] != epoch:
            perm = np.random.default_rng((self.seed, 7, epoch)).permutation(self.n_batches * self.batch_size)
            self._order = (epoch, torch.from_numpy(perm).to(self.rows.device))
        return self._order[1]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(step, self.n_batches)
        i *= self.batch_size
        if epoch == 0:
            chunk = self.rows[i : i + self.batch_size].long()
        else:
            chunk = self.rows[self.order(epoch)[i : i + self.batch_size]].long()
        return chunk[:, :-1], chunk[:, 1:]


class StreamSampler:
    """Random windows from one long token stream (natural text).

    Window starts for step ``s`` come from a generator seeded with (seed, s): uniform
    over the stream, with replacement, as in nanoGPT. ``epochs`` is tokens seen over
    stream length.

    The stream stays a (memory-mapped) numpy array until :meth:`to` copies it into a
    torch tensor on a device (int32, 4 bytes per token); then only the ``batch_size``
    window starts cross from the host each step and the gather runs on the device.
    Both paths give the same batches.
    """

    def __init__(self, tokens: np.ndarray, context: int, batch_size: int, seed: int):
        if len(tokens) <= context + 1:
            raise ValueError(f"a token stream of {len(tokens)} tokens is too short for context {context}")
        self.tokens = tokens
        self.context = context
        self.batch_size = batch_size
        self.seed = seed
        self._offsets = np.arange(context + 1)
        self._on_device: torch.Tensor | None = None  # the stream as a tensor, after to()

    def to(self, device: torch.device | str) -> "StreamSampler":
        """The same batches, gathered from a copy of the stream held on ``device``."""
        moved = StreamSampler(self.tokens, self.context, self.batch_size, self.seed)
        moved._on_device = torch.from_numpy(np.asarray(self.tokens, dtype=np.int32)).to(device)
        return moved

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, step))
        starts = rng.integers(0, len(self.tokens) - self.context - 1, size=self.batch_size)
        if self._on_device is None:
            chunk = torch.from_numpy(self.tokens[starts[:, None] + self._offsets].astype(np.int64))
        else:
            s = torch.from_numpy(starts).to(self._on_device.device, non_blocking=True)
            idx = s[:, None] + torch.arange(self.context + 1, device=s.device)
            chunk = self._on_device[idx].long()
        return chunk[:, :-1], chunk[:, 1:]


def contiguous_windows(tokens: np.ndarray, context: int, n_tokens: int) -> torch.Tensor:
    """Non-overlapping (context+1)-token windows from the start of ``tokens``, enough
    to cover ``n_tokens`` targets (fewer if the stream is short). For held-out sets."""
    n_rows = max(1, min(-(-n_tokens // context), (len(tokens) - 1) // context))
    idx = np.arange(n_rows)[:, None] * context + np.arange(context + 1)
    return torch.from_numpy(tokens[idx].astype(np.int64))
