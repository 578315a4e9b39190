"""The data interface: what every source hands the training loop."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional, Protocol

import torch


class Sampler(Protocol):
    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def to(self, device: torch.device | str) -> "Sampler": ...


@dataclass
class TokenData:
    """A built data source.

    - ``train``: batch ``step`` -> (inputs, targets), int64, shape (batch, context).
    - ``val``: held-out windows, shape (rows, context + 1); fixed per source and seed,
      never overlapping the training tokens.
    - ``entropy_floor``: the exact Bayes-optimal loss in nats per target token for
      windows of this context, or None when the source cannot know it.
    - ``info``: facts worth recording (epochs over a finite corpus, corpus size, ...).
    - ``probe``: per-skill probe windows (harness.data.probe_sets), or None when disabled.
    """

    vocab_size: int
    train: Sampler
    val: torch.Tensor
    entropy_floor: Optional[float]
    info: dict[str, Any] = field(default_factory=dict)
    probe: Optional[Any] = None

    def to(self, device: torch.device | str) -> "TokenData":
        """The same data with every token tensor (training stream, held-out windows,
        probes) copied to ``device`` once, so no step moves tokens from the host."""
        probe = self.probe.to(device) if self.probe is not None else None
        return replace(self, train=self.train.to(device), val=self.val.to(device), probe=probe)
