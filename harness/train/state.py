"""The loop's state of one run: what a checkpoint holds besides the model and optimizer."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TrainState:
    """Where a run stands. The step is also the data position (batches are a pure
    function of the step), so this, the model and the optimizer resume a run exactly."""

    loss_sum: torch.Tensor  # training loss summed since the last curve point (0-d, on the device)
    step: int = 0
    loss_count: int = 0  # steps summed in loss_sum
    first_loss: float | None = None  # the first step's loss: the divergence reference
    curve: list[dict] = field(default_factory=list)  # the record's curve points so far

    @classmethod
    def fresh(cls, device: torch.device) -> "TrainState":
        return cls(loss_sum=torch.zeros((), device=device))

    def reset(self) -> None:
        """Back to step 0 (the curve list is kept, emptied: the record holds it)."""
        self.step, self.loss_count, self.first_loss = 0, 0, None
        self.loss_sum = torch.zeros((), device=self.loss_sum.device)
        self.curve.clear()

    def state_dict(self) -> dict:
        return {"step": self.step, "curve": list(self.curve), "loss_sum": self.loss_sum.detach().cpu(),
                "loss_count": self.loss_count, "first_loss": self.first_loss}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.curve[:] = state["curve"]
        self.loss_sum = state["loss_sum"].to(self.loss_sum.device)
        self.loss_count = int(state["loss_count"])
        self.first_loss = state["first_loss"]
