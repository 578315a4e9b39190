"""Predict first, then train (results/predict_check): a run outside the cpu sweep.

    python scripts/predict_check.py predict   # harness-predict, saved before the run exists
    harness-train sweep=cpu sweep.name=predict_check model.width=128 data.tokens=18432000 \\
      "train.branch_tokens=[]" train.threads=2
    python scripts/predict_check.py check     # measured against predicted: check.json

The run is one size up (width 128, depth 2, eight 16-dim heads: N = 1.8x the sweep's
largest) on 2.25x its largest D (18.4M tokens against 8.19M), so 4.0x the sweep's largest
compute; everything else is the cpu preset's (lr by its rule, 0.192 / 128; WSD; batch
16 x 64; seed 0). It trains on 2 threads, which moves a final loss by ~1e-3 nats or less against 1 thread
(see the README). The check passes when the measured loss lies inside the 95%
prediction interval and the interval is narrower than the distance from the
prediction to the nearest trained point (the sweep's (N, D) closest in log N and log D;
its loss the mean of its seeds).

Earlier checks: results/predict_check_v1, from the 35-run cpu fit: width 128 at 8.19M
tokens (4x N); it failed (interval 0.026 wide, distance 0.0065). results/predict_check_v2,
from the cpu_v3 fit (results/cpu_v3): width 64 at 32.8M tokens (4x D); it passed. A
width-96 ladder predicted from that same fit (results/w96_check, scripts/w96_check.py)
came out below the interval at 3 of its 5 budgets. results/predict_check_v3, from the
60-run cpu fit before width 96 joined the preset: width 96 at 14.3M tokens (3.9x); it
passed.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from harness.model import GPTConfig, param_counts
from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "predict_check"
SWEEP = ROOT / "results" / "cpu"
WIDTH = 128
N_RUN = param_counts(GPTConfig(vocab=1, width=WIDTH, depth=2))["params_nonembedding"]  # the preset's depth
D = 18_432_000


def predict() -> None:
    if (OUT / "prediction.json").exists():
        sys.exit("prediction.json exists: a prediction is made once, before the run")
    if (OUT / "runs").exists() and any((OUT / "runs").glob("*.json")):
        sys.exit("the run already exists: the prediction must come first")
    out = subprocess.run(["harness-predict", str(SWEEP.relative_to(ROOT)), "--n", str(N_RUN), "--d", str(D), "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    pred = json.loads(out)
    recs = [r for r in load_records(SWEEP)[0] if r["status"] == "ok"]
    top = max(r["flops_6nd"] for r in recs)
    # nearest trained point: the closest (N, D) in (log N, log D); its loss: the mean of its seeds
    near = min(recs, key=lambda r: math.hypot(math.log(r["params_nonembedding"] / pred["N"]),
                                              math.log(r["tokens"] / pred["D"])))
    same = [r for r in recs if r["params_nonembedding"] == near["params_nonembedding"] and r["tokens"] == near["tokens"]]
    pred["check"] = {"run": {"model.width": WIDTH, "data.tokens": D}, "compute_over_sweep_max": pred["C"] / top,
                     "nearest_trained": {"run_ids": [r["run_id"] for r in same], "N": near["params_nonembedding"],
                                         "D": near["tokens"], "losses": [r["final_val_loss"] for r in same],
                                         "loss": sum(r["final_val_loss"] for r in same) / len(same)}}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "prediction.json").write_text(json.dumps(pred, indent=1) + "\n")
    print(json.dumps(pred, indent=1))


def check() -> None:
    pred = json.loads((OUT / "prediction.json").read_text())
    (rec,) = [r for r in load_records(OUT)[0]]
    assert rec["params_nonembedding"] == round(pred["N"]) and rec["tokens"] == round(pred["D"]), "not the predicted run"
    lo, hi = pred["interval"]
    loss = rec["final_val_loss"]
    near = pred["check"]["nearest_trained"]["loss"]
    distance = abs(pred["loss"] - near)
    res = {"predicted": pred["loss"], "interval": [lo, hi], "measured": loss, "error": loss - pred["loss"],
           "inside": lo <= loss <= hi, "interval_width": hi - lo, "distance_to_nearest_trained": distance,
           "narrower_than_distance": hi - lo < distance, "predicted_at": pred["predicted_at"],
           "run_id": rec["run_id"], "run_versions": rec.get("versions"), "torch_threads": rec.get("torch_threads")}
    res["passes"] = res["inside"] and res["narrower_than_distance"]
    (OUT / "check.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    {"predict": predict, "check": check}[sys.argv[1]]()
