import subprocess
import sys

import pytest

from harness.config import ConfigError, resolve_lr
from harness.validation import validate

BAD = [
    ({"model.width": 65, "model.heads": 4}, "model.width=65 must be divisible by model.heads=4"),
    ({"model.context": 0}, "model.context"),
    ({"data.tokens": 100}, "data.tokens=100 is smaller than one batch"),
    ({"train.device": "tpu"}, "train.device='tpu' is not allowed"),
    ({"train.precision": "fp8"}, "train.precision='fp8' is not allowed"),
    ({"train.schedule": "linear"}, "train.schedule='linear' is not allowed"),
    ({"data.source": "imagenet"}, "data.source='imagenet' is not allowed"),
    ({"train.lr": -1.0}, "train.lr"),
    ({"train.lr": "fast"}, "train.lr"),
    ({"model.parametrization": "ntk"}, "model.parametrization"),
    ({"wandb.mode": "loud"}, "wandb.mode"),
    ({"data.n_facts": 10**9}, "data.n_facts"),
]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_values_give_one_line_naming_the_key(tiny_cfg, overrides, message):
    with pytest.raises(ConfigError) as e:
        validate(tiny_cfg(**overrides))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_good_config_passes(tiny_cfg):
    validate(tiny_cfg())


def test_kaplan_lr_rule():
    class T:
        lr = "kaplan"

    assert resolve_lr(T, 1e6) == pytest.approx(0.003239 - 0.0001395 * 13.8155, rel=1e-4)


def test_cli_rejects_bad_width_before_compute(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "from harness.cli import train_main; train_main()",
         "model.width=65", "model.heads=4", f"results_dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert lines == ["harness-train: error: model.width=65 must be divisible by model.heads=4 (allowed heads: 1, 5, 13, 65)"]
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("key", ["data.probe_records", "sweep.pack"])
def test_negative_counts_are_rejected(tiny_cfg, key):
    with pytest.raises(ConfigError, match=f"{key}=-1 must be >= 0"):
        validate(tiny_cfg(**{key: -1}))
