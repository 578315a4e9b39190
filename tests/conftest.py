"""Shared fixtures: offline wandb, tiny configs that train in about a second on CPU.

Tests that take over 5 s on 2 idle cores are marked ``slow``: ``pytest -m "not slow"``
is the quick loop, ``pytest`` (what CI runs) is everything."""
from __future__ import annotations

import os
import signal

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
from harness.config import make_config, register_configs  # noqa: E402

register_configs()

# A suite started in the background (``cmd &``, nohup) inherits SIGINT ignored, and the
# harness rightly leaves an ignored SIGINT alone; the interrupt tests need Ctrl-C's
# default, in this process and in the runs it starts.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TINY = {
    "model.width": 32, "model.depth": 1, "model.heads": 2, "model.context": 32,
    "data.tokens": 32 * 16 * 40, "data.eval_tokens": 2048, "data.vocab": 32, "data.n_facts": 256,
    "train.batch_size": 16, "train.progress": False, "train.lr": 1e-2, "train.threads": 1,
    "wandb.mode": "disabled",
}


def make_cfg(tmp_path, **overrides):
    """A structured RunConfig with tiny defaults; ``overrides`` are dotted keys."""
    return make_config(**{"results_dir": str(tmp_path / "results"), **TINY, **overrides})


def toy_record(config: dict, N: float, D: float, curve: list[dict]) -> dict:
    """A finished run's record for analysis tests, without training: N non-embedding
    parameters, D tokens, final losses the last curve point's ``val_loss``."""
    from harness.records import run_id

    final = float(curve[-1]["val_loss"])
    return {"run_id": run_id(config), "sweep": "toy", "status": "ok", "config": config,
            "params_total": int(N * 1.2), "params_embedding": int(N * 0.2), "params_nonembedding": int(N),
            "tokens": int(D), "flops_6nd": 6.0 * int(N) * int(D), "flops": 7.0 * N * D,
            "final_train_loss": final, "final_val_loss": final, "entropy_floor": 1.0,
            "curve": curve, "wall_time_s": 1.0, "tokens_per_s": 1.0, "mfu": None, "device": "cpu", "versions": {}}


@pytest.fixture
def tiny_cfg(tmp_path):
    return lambda **kw: make_cfg(tmp_path, **kw)
