"""Training: runs from validated configs to run records.

- :mod:`~harness.train.loop`: ``train`` (one run), ``train_packed`` (K runs of one
  shape as one batched model) and the one loop both go through;
- :mod:`~harness.train.engine`: the models, optimizers and the step (single or packed);
- :mod:`~harness.train.run`: one run's setup, saved states and record;
- :mod:`~harness.train.state`: ``TrainState``, the loop's position in a run;
- :mod:`~harness.train.signals`: what SIGINT and SIGTERM do during training.
"""
from harness.train.engine import PACK_KEYS, pack_key
from harness.train.loop import train, train_packed, train_runs
from harness.train.state import TrainState

__all__ = ["PACK_KEYS", "TrainState", "pack_key", "train", "train_packed", "train_runs"]
