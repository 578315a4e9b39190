"""The GPU code paths that can be checked on CPU: tokens held on the device, no host
syncs in the step, torch.compile with CUDA-graph mode, and harness-bench.

A GPU makes none of these faster here; what is checked is that the paths run and
compute the same thing as the CPU defaults. Their speed is measured by harness-bench
on a GPU (see results/bench)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import harness
from harness.config import ConfigError
from harness.validation import validate
from harness.data import build_data
from harness.data.sampler import StreamSampler, WindowSampler
from harness.train import train, train_packed

HARNESS_DIR = str(Path(harness.__file__).parent)


def test_token_data_to_moves_every_token_tensor(tiny_cfg):
    cfg = tiny_cfg(**{"data.probe_records": 64})
    data = build_data(cfg, 32 * 16 * 4)
    moved = data.to("meta")  # a device with no storage: anything left on the host shows
    x, y = moved.train.batch(3)
    assert x.device.type == y.device.type == "meta" and x.dtype == torch.int64
    assert x.shape == y.shape == (16, 32)
    assert moved.val.device.type == "meta"
    p = moved.probe
    assert p is not None and {p.windows.device.type, p.bucket.device.type, p.answer.device.type} == {"meta"}
    # the original is untouched
    assert data.train.batch(3)[0].device.type == "cpu" and data.probe.windows.device.type == "cpu"


def test_window_sampler_slices_rows_in_order_then_reshuffles_each_later_epoch():
    """Batch s < 5 is rows [s*8, s*8 + 8) of 42 rows in batches of 8: the 2 rows past the
    last whole batch are never used. Step 5 starts epoch 1: the same 40 rows, each once,
    in a seeded order that differs from epoch 0 and from epoch 2, on host and device.
    Row i holds i*9 .. i*9+8, so a batch names the rows it came from."""
    rows = torch.arange(42 * 9, dtype=torch.int16).reshape(42, 9)
    host, dev = WindowSampler(rows, 8, seed=3), WindowSampler(rows, 8, seed=3).to("cpu")
    for step, want in {0: range(0, 8), 1: range(8, 16), 4: range(32, 40)}.items():
        full = torch.tensor([[9 * i + j for j in range(9)] for i in want])
        for sampler in (host, dev):
            x, y = sampler.batch(step)
            assert x.dtype == y.dtype == torch.int64
            assert torch.equal(x, full[:, :-1]) and torch.equal(y, full[:, 1:]), f"step {step}"
    epochs = [torch.cat([host.batch(e * 5 + s)[0][:, 0] // 9 for s in range(5)]).tolist() for e in range(3)]
    assert epochs[0] == list(range(40))
    for e in (1, 2):
        assert sorted(epochs[e]) == list(range(40)) and epochs[e] != epochs[0]  # every row once, reordered
    assert epochs[1] != epochs[2]
    for step in (5, 9, 13):
        assert torch.equal(host.batch(step)[0], dev.batch(step)[0])
        assert torch.equal(host.batch(step)[0], WindowSampler(rows, 8, seed=3).batch(step)[0])  # pure in step


def test_stream_sampler_device_gather_equals_host_gather():
    tokens = np.random.default_rng(0).integers(0, 3000, size=5000).astype(np.uint16)
    host = StreamSampler(tokens, context=16, batch_size=8, seed=3)
    dev = host.to("cpu")  # the torch gather path, run on the CPU
    assert dev._on_device is not None
    for step in (0, 1, 7, 1000):
        for a, b in zip(host.batch(step), dev.batch(step)):
            assert torch.equal(a, b) and b.dtype == torch.int64
    x, _ = host.to("meta").batch(2)
    assert x.device.type == "meta" and x.shape == (8, 16)


SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def count_harness_syncs(monkeypatch, run) -> int:
    """Calls made from harness code of the Tensor methods that wait for the device."""
    count = 0

    def wrap(name):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, **kw):
            nonlocal count
            if sys._getframe(1).f_code.co_filename.startswith(HARNESS_DIR):
                count += 1
            return original(self, *a, **kw)
        return counted

    with monkeypatch.context() as m:
        for name in SYNCS:
            m.setattr(torch.Tensor, name, wrap(name))
        rec = run()
    assert rec["status"] == "ok"
    return count


def test_the_step_reads_the_loss_back_only_every_ten_steps(tiny_cfg, monkeypatch):
    """40 more steps cost exactly 4 more host syncs: the loss check every 10 steps.
    Any per-step sync added to the loop, the sampler or the model fails this."""
    def run(steps):
        cfg = tiny_cfg(**{"data.tokens": 32 * 16 * steps, "train.eval_every": 10_000,
                          "train.seed": steps})
        return count_harness_syncs(monkeypatch, lambda: train(cfg))

    short, long = run(40), run(80)
    assert short > 0  # the counter sees the loop's syncs at all
    assert long - short == 4


def test_a_pack_reads_its_losses_back_once_per_check(tiny_cfg, monkeypatch):
    """Packed runs share the loop's syncs: 40 more steps of a pack of two cost 4 more
    host syncs (one per check for the whole pack), not one per run or per step."""
    def run(steps):
        cfgs = [tiny_cfg(**{"data.tokens": 32 * 16 * steps, "train.eval_every": 10_000, "train.seed": s})
                for s in (steps, steps + 1)]
        return count_harness_syncs(monkeypatch, lambda: train_packed(cfgs)[0])

    short, long = run(40), run(80)
    assert short > 0
    assert long - short == 4


def test_compile_mode_needs_compile(tiny_cfg):
    with pytest.raises(ConfigError, match="train.compile_mode=reduce-overhead needs train.compile=true"):
        validate(tiny_cfg(**{"train.compile_mode": "reduce-overhead"}))
    with pytest.raises(ConfigError, match="train.compile_mode"):
        validate(tiny_cfg(**{"train.compile": True, "train.compile_mode": "fast"}))


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_run_with_cuda_graph_mode_matches_eager(tiny_cfg, tmp_path):
    """reduce-overhead (CUDA graphs on a GPU; inductor skips the graphs on CPU) runs the
    loop's step marker and trains to eager's loss; the compile time lands in first_step_s."""
    eager = train(tiny_cfg(**{"data.tokens": 32 * 16 * 12}))
    comp = train(tiny_cfg(**{"data.tokens": 32 * 16 * 12, "train.compile": True,
                             "train.compile_mode": "reduce-overhead", "results_dir": str(tmp_path / "c")}))
    assert comp["status"] == "ok", comp.get("error")
    assert comp["run_id"] == eager["run_id"]  # how a run is compiled is not part of what it computes
    assert comp["final_val_loss"] == pytest.approx(eager["final_val_loss"], rel=1e-3)
    assert comp["first_step_s"] > eager["first_step_s"]
    assert 0 < comp["compile_s"] < comp["first_step_s"] and "compile_s" not in eager


def test_sweep_reports_the_share_of_wall_time_spent_compiling():
    from harness.sweep import compile_line

    recs = [{"compile_s": 3.0, "wall_time_s": 50.0}, {"compile_s": 1.0, "wall_time_s": 30.0},
            {"wall_time_s": 100.0}]  # an eager run does not count
    assert compile_line("gpu", recs) == "[gpu] torch.compile: 4.0 s of the 2 compiled runs' 80.0 s wall time (5.0%)"
    assert compile_line("gpu", recs[2:]) is None


@pytest.mark.slow
def test_bench_writes_json_and_markdown_naming_the_device(tmp_path):
    from harness.bench import main

    main(["--shapes", "16x1", "--steps", "6", "--batch-size", "4", "--context", "16", "--threads", "1",
          "--baseline", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "bench_cpu.json").read_text())
    (row,) = res["shapes"]
    assert res["device"].startswith("CPU") and res["sampler_device"] == "cpu"
    assert row["mfu"] is None and row["steady_tokens_per_s"] > 0 and row["baseline_tokens_per_s"] > 0
    # one block of width 16: (4 + 2*4)*16^2 matrices + (9 + 4)*16 biases and norms, + 2*16 final norm
    assert row["params_nonembedding"] == 12 * 16 * 16 + 13 * 16 + 2 * 16 == 3312
    assert row["step_ms"] > 0 and row["first_step_s"] > 0 and row["wall_s"] > 0
    md = (tmp_path / "bench_cpu.md").read_text()
    assert md.startswith("# harness-bench on CPU") and "| 16x1 |" in md


def test_bench_rejects_a_bad_shape_before_timing_anything(tmp_path, capsys):
    from harness.bench import main

    with pytest.raises(SystemExit) as e:
        main(["--shapes", "50x1", "--head-dim", "16", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "shape 50x1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_steady_state_and_compile_payback_arithmetic():
    from harness.bench import compile_payback, steady_tokens_per_s

    # 10 steps of 100 tokens in 2 s, the first taking 1.1 s: 900 tokens in 0.9 s
    assert steady_tokens_per_s(1000, 500.0, 1.1, 100) == pytest.approx(1000.0)
    eager = {"first_step_s": 0.1, "steady_step_ms": 10.0}
    assert compile_payback(eager, {"first_step_s": 5.1, "steady_step_ms": 8.0})["payback_steps"] == pytest.approx(2500)
    assert compile_payback(eager, {"first_step_s": 5.1, "steady_step_ms": 12.0})["payback_steps"] is None


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA L4", 121e12), ("NVIDIA L40S", 362e12),
    ("NVIDIA GeForce RTX 4090", 165e12),
    ("NVIDIA A10G", None), ("Tesla V100-SXM2-16GB", None),  # not in the table: no MFU, not a neighbour's
])
def test_peak_flops_matches_whole_words_of_the_device_name(name, peak):
    from harness.hardware import peak_flops_for

    assert peak_flops_for(name) == peak


# where the loop looks up the device's peak FLOP/s (None on CPU, so MFU is never computed there)
PEAK_LOOKUP = ("harness.train.loop", "peak_flops")


def test_mfu_arithmetic_with_a_fake_peak(tiny_cfg, monkeypatch, tmp_path):
    """MFU = flops_per_token (PaLM: 6 (N + vocab*width) + 12 L d T) x tokens/s / peak, in
    the record over the whole run and in harness-bench over the steady state."""
    import importlib

    from harness.bench import main

    peak = 2e9
    monkeypatch.setattr(importlib.import_module(PEAK_LOOKUP[0]), PEAK_LOOKUP[1], lambda device: peak)
    rec = train(tiny_cfg(**{"data.tokens": 32 * 16 * 8}))
    assert rec["status"] == "ok"
    # vocab 32, width 32, depth 1, context 32
    fpt = 6.0 * (rec["params_nonembedding"] + 32 * 32) + 12.0 * 1 * 32 * 32
    assert rec["flops_per_token"] == fpt
    assert rec["mfu"] == pytest.approx(fpt * rec["tokens_per_s"] / peak, rel=1e-12)
    assert rec["mfu"] > 0

    main(["--shapes", "16x1", "--steps", "6", "--batch-size", "4", "--context", "16", "--threads", "1",
          "--out", str(tmp_path)])
    (row,) = json.loads((tmp_path / "bench_cpu.json").read_text())["shapes"]
    assert row["flops_per_token"] == 6.0 * (3312 + 128 * 16) + 12.0 * 16 * 16  # default vocab 128
    assert row["mfu"] == pytest.approx(row["flops_per_token"] * row["steady_tokens_per_s"] / peak, rel=1e-9)
    assert row["mfu_whole_run"] == pytest.approx(row["flops_per_token"] * row["tokens_per_s"] / peak, rel=1e-9)
