"""Retrain committed run records and compare their final losses bit for bit.

    python scripts/reproduce_runs.py results/cpu_v1/runs/cf76fca22308.json [...]

Each record's own config is trained again into a temporary results_dir (same run_id,
same semantic keys); CPU runs are bitwise reproducible for the same torch version and
``train.threads``. Exits 1 if any final loss differs.
"""
from __future__ import annotations

import json
import sys
import tempfile

from harness.config import make_config
from harness.records import read_record
from harness.train import train


def retrain(record: dict, results_dir: str) -> dict:
    """Train ``record["config"]`` again (progress and wandb off) into ``results_dir``."""
    cfg = make_config(record["config"], **{"results_dir": results_dir, "train.progress": False,
                                           "train.resume": False, "wandb.mode": "disabled"})
    return train(cfg)


def main(paths: list[str]) -> int:
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            old = read_record(path)
            new = retrain(old, tmp)
            same = (new["run_id"] == old["run_id"]
                    and all(new[k] == old[k] for k in ("final_train_loss", "final_val_loss")))
            bad += not same
            print(json.dumps({"run_id": old["run_id"], "width": old["config"]["model"]["width"],
                              "tokens": old["tokens"], "same_run_id": new["run_id"] == old["run_id"],
                              "final_val_loss": [old["final_val_loss"], new["final_val_loss"]],
                              "final_train_loss": [old["final_train_loss"], new["final_train_loss"]],
                              "bitwise": same, "wall_time_s": round(new["wall_time_s"], 1)}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
