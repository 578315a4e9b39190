"""README claims that hold for a user on a laptop: harness-train end to end with the
default data (its floor, train.lr=kaplan, precision=auto, torch_threads in the record),
training on markov, the generic `failed` status, and harness-bench --compile/--parallel."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

from harness import records
from harness.data.synthetic import MarkovChain
from harness.model import GPT
from harness.train import train

TRAIN = [sys.executable, "-c", "from harness.cli import train_main; train_main()"]
ENV = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")


def test_harness_train_on_the_default_data_with_kaplan_lr(tmp_path):
    """One harness-train run, defaults everywhere but a small shape and budget: the
    default zipf_facts floor is 1.2936 nats/token; train.lr=kaplan gives Kaplan's
    lr(N) = 0.003239 - 0.0001395 ln N for this N; precision=auto is fp32 on CPU; the
    record notes torch's thread count."""
    out = subprocess.run([*TRAIN, "model.width=32", "model.depth=1", "model.heads=2", "data.tokens=16384",
                          "train.batch_size=16", "train.threads=1", "train.lr=kaplan", "train.progress=false",
                          f"results_dir={tmp_path}"], capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(entropy floor 1.2936)" in out.stdout
    (path,) = (tmp_path / "single" / "runs").glob("*.json")
    rec = records.read_record(path)
    assert rec["status"] == "ok" and rec["config"]["data"]["source"] == "zipf_facts"
    assert round(rec["entropy_floor"], 4) == 1.2936 and rec["final_val_loss"] > rec["entropy_floor"]
    assert rec["config"]["train"]["lr"] == "kaplan"
    n = rec["params_nonembedding"]
    assert n == 12 * 32 * 32 + 13 * 32 + 2 * 32
    assert rec["lr"] == pytest.approx(0.003239 - 0.0001395 * math.log(n), rel=1e-12)
    assert rec["config"]["train"]["precision"] == "auto" and rec["precision"] == "fp32"
    assert rec["device"] == "cpu" and rec["torch_threads"] == 1


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_precision_auto_is_fp32_on_cpu_and_torch_threads_is_recorded(tiny_cfg, tmp_path, restore_threads):
    kw = {"data.tokens": 16 * 32 * 4, "data.probe_records": 0}
    auto = train(tiny_cfg(**kw, **{"train.precision": "auto", "results_dir": str(tmp_path / "a")}))
    fp32 = train(tiny_cfg(**kw, **{"train.precision": "fp32", "results_dir": str(tmp_path / "b")}))
    bf16 = train(tiny_cfg(**kw, **{"train.precision": "bf16", "results_dir": str(tmp_path / "c")}))
    assert auto["precision"] == fp32["precision"] == "fp32" and bf16["precision"] == "bf16"
    assert auto["curve"] == fp32["curve"]  # auto on CPU computes exactly what fp32 does
    assert bf16["final_val_loss"] != fp32["final_val_loss"]  # and bf16 is a different computation
    two = train(tiny_cfg(**kw, **{"train.threads": 2, "results_dir": str(tmp_path / "d")}))
    assert auto["torch_threads"] == 1 and two["torch_threads"] == 2
    assert two["run_id"] == auto["run_id"]  # the thread count is not part of what a run is


def test_training_on_markov_learns_towards_its_entropy_rate(tiny_cfg):
    cfg = tiny_cfg(**{"data.source": "markov"})
    rec = train(cfg)
    assert rec["status"] == "ok"
    floor = MarkovChain(cfg.data.vocab, 4, cfg.data.seed).entropy_rate()
    assert rec["entropy_floor"] == pytest.approx(floor, rel=1e-12)
    assert rec["final_val_loss"] > floor
    assert rec["curve"][-1]["val_loss"] < rec["curve"][0]["val_loss"] - 0.3
    assert rec["probes"]["kind"] == "tokens"


def test_an_unexpected_error_is_recorded_as_failed_and_the_sweep_goes_on(tiny_cfg, monkeypatch):
    from harness.sweep import run_job

    original = GPT.forward

    def forward(self, idx, targets=None):
        if self.config.width == 16:
            raise ValueError("a bug in the model")
        return original(self, idx, targets)

    monkeypatch.setattr(GPT, "forward", forward)
    bad = run_job(tiny_cfg(**{"model.width": 16, "data.tokens": 16 * 32 * 4}))
    good = run_job(tiny_cfg(**{"data.tokens": 16 * 32 * 4}))
    assert bad["status"] == "failed" and bad["error"] == "ValueError: a bug in the model"
    assert good["status"] == "ok"
    on_disk = records.read_record(records.ResultsLayout(tiny_cfg().results_dir, "single").record(bad["run_id"]))
    assert on_disk["status"] == "failed" and on_disk["error"] == bad["error"]
    assert on_disk["params_nonembedding"] == 12 * 16 * 16 + 13 * 16 + 2 * 16  # what was known is kept


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                    reason="torch.compile on CPU needs a C++ compiler")
def test_bench_compile_and_parallel_at_a_tiny_shape(tmp_path):
    from harness.bench import main

    main(["--shapes", "16x1", "--steps", "6", "--batch-size", "4", "--context", "16", "--threads", "1",
          "--compile", "--parallel", "2", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "bench_cpu.json").read_text())
    (row,) = res["shapes"]
    comp, pay = row["compiled"], row["payback"]
    assert comp["compile"] is True and row["compile"] is False
    assert comp["params_nonembedding"] == row["params_nonembedding"]
    assert comp["first_step_s"] > row["first_step_s"]  # the compile is paid in the first step
    assert pay["compile_s"] == pytest.approx(comp["first_step_s"] - row["first_step_s"])
    assert pay["speedup"] == pytest.approx(row["steady_step_ms"] / comp["steady_step_ms"])
    par = res["parallel"]
    assert par["runs"] == 2 and par["shape"] == "16x1"
    assert par["sequential_tokens_per_s"] > 0 and par["parallel_tokens_per_s"] > 0
    assert par["speedup"] == pytest.approx(par["parallel_tokens_per_s"] / par["sequential_tokens_per_s"])
    md = (tmp_path / "bench_cpu.md").read_text()
    assert "| 16x1 |" in md
