"""Sweeps end to end through the real CLI: resume, failure isolation, launchers, SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import records
from harness.sweep import grid_axes

SWEEP = [sys.executable, "-c", "from harness.cli import sweep_main; sweep_main()"]


def run_sweep(tmp_path, *overrides, timeout=300):
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    return subprocess.run([*SWEEP, "sweep=tiny", f"results_dir={tmp_path}", *overrides],
                          capture_output=True, text=True, timeout=timeout, env=env)


def snapshot(folder):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.glob("*.json"))}


def test_cli_axis_replaces_preset_axis():
    fixed, axes = grid_axes({"model.width": "16,32", "data.tokens": "100,200"}, ["model.width=8,64,128", "train.lr=0.1"])
    assert axes == {"model.width": ["8", "64", "128"], "data.tokens": ["100", "200"]}
    assert fixed == ["train.lr=0.1"]


@pytest.mark.slow
def test_sweep_writes_records_and_csv_then_resume_recomputes_nothing(tmp_path):
    out = run_sweep(tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = tmp_path / "tiny" / "runs"
    before = snapshot(runs)
    assert len(before) == 4
    assert all(json.loads(b)["status"] == "ok" for _, b in before.values())
    assert "4 ok" in out.stdout
    csv = (tmp_path / "tiny" / "runs.csv").read_text().splitlines()
    assert len(csv) == 5
    again = run_sweep(tmp_path)
    assert again.returncode == 0
    assert "all 4 runs over" in again.stdout and "already done; refitting them" in again.stdout
    assert "skipped" not in again.stdout.replace("skipped as already done", "")  # no line per run
    assert "runs done" not in again.stdout  # ... and no progress line per run: a finished sweep is quiet
    assert "4 ok" in again.stdout  # the summary still comes
    assert snapshot(runs) == before  # not one record rewritten


@pytest.mark.slow
def test_diverging_run_is_recorded_and_sweep_completes(tmp_path):
    out = run_sweep(tmp_path, "model.width=16", "data.tokens=16384", "train.lr=0.003,50",
                    "train.grad_clip=0", "train.warmup=0")
    assert out.returncode == 0, out.stderr[-2000:]
    recs, _ = records.load_records(tmp_path / "tiny")
    assert sorted(r["status"] for r in recs) == ["diverged", "ok"]
    assert "1 ok, 1 diverged" in out.stdout


def test_bad_grid_point_stops_before_compute(tmp_path):
    out = run_sweep(tmp_path, "model.width=16,33")
    assert out.returncode == 2
    assert "model.width=33 must be divisible by model.heads=2" in out.stderr
    assert not (tmp_path / "tiny" / "runs").exists()


@pytest.mark.slow
def test_submitit_local_two_jobs(tmp_path):
    """submitit ran the jobs: one job folder per run under the sweep's .submitit/, each
    with its pickled submission and result, and the job's own stdout log naming its run."""
    out = run_sweep(tmp_path, "hydra/launcher=submitit_local", "model.width=16")
    assert out.returncode == 0, out.stderr[-2000:]
    recs, problems = records.load_records(tmp_path / "tiny")
    assert len(recs) == 2 and not problems
    assert {r["status"] for r in recs} == {"ok"}
    # one folder per job id (submitit also keeps a "%j" folder for the batch submission)
    jobs = sorted(p for p in (tmp_path / "tiny" / "hydra").glob("*/.submitit/*") if p.name.isdigit())
    assert len(jobs) == 2, [str(p) for p in jobs]
    logged = {}
    for job in jobs:
        assert list(job.glob("*_submitted.pkl")) and list(job.glob("*_result.pkl")), sorted(job.iterdir())
        (log,) = job.glob("*_log.out")
        for r in recs:
            if f"[tiny] {r['run_id']}: ok" in log.read_text():
                logged.setdefault(r["run_id"], []).append(job.name)
    assert sorted(logged) == sorted(r["run_id"] for r in recs)  # each run trained in a job
    assert all(len(v) == 1 for v in logged.values())  # and in one job only


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun_finishes_with_no_corrupt_record(tmp_path):
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    cmd = [*SWEEP, "sweep=tiny", f"results_dir={tmp_path}", "model.width=16,24,32,40", "data.tokens=32768"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    runs = tmp_path / "tiny" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(runs.glob("*.json"))) < 1:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(runs.glob("*.json")))
    assert 0 < done_before < 4
    for p in runs.glob("*.json"):
        records.read_record(p)  # raises on a torn or corrupt file
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    recs, problems = records.load_records(runs)
    assert len(recs) == 4 and not problems
    assert all(r["status"] == "ok" for r in recs)
    assert f"{done_before} already done" in out.stdout


@pytest.mark.slow
def test_packed_sweep_writes_the_same_run_ids_as_unpacked(tmp_path):
    grid = ("model.width=16", "data.tokens=8192", "train.seed=0,1,2")
    packed = run_sweep(tmp_path / "p", "sweep.pack=4", *grid)
    assert packed.returncode == 0, packed.stderr[-2000:]
    plain = run_sweep(tmp_path / "u", *grid)
    assert plain.returncode == 0, plain.stderr[-2000:]
    a, _ = records.load_records(tmp_path / "p" / "tiny")
    b, _ = records.load_records(tmp_path / "u" / "tiny")
    assert sorted(r["run_id"] for r in a) == sorted(r["run_id"] for r in b)
    assert len(a) == 3 and all(r.get("packed") for r in a)
    loss = {r["run_id"]: r["final_val_loss"] for r in b}
    for r in a:
        assert r["final_val_loss"] == pytest.approx(loss[r["run_id"]], rel=1e-4)


def test_eta_weighs_runs_by_planned_flops(tmp_path, monkeypatch):
    """Half the planned FLOPs of this sweep's runs done in 60 s: 60 s to go, however
    many runs that is. A run done before the sweep began counts for nothing."""
    from harness import sweep

    plan = {"sweep": "s", "total": 5, "run_ids": ["a", "b", "c", "d", "old"], "already_done": 1,
            "done_at_start": ["old"], "flops": [8.0, 4.0, 2.0, 2.0, 100.0], "started": time.time() - 60}
    (tmp_path / "s").mkdir()
    sweep.ResultsLayout(tmp_path, "s").plan.write_text(json.dumps(plan))
    status = {"a": "ok", "old": "ok"}
    monkeypatch.setattr(sweep, "_status", lambda path: status.get(path.stem))
    t = sweep.tally(tmp_path, "s")
    assert (t["flops_new"], t["flops_left"], t["finished"], t["skipped"]) == (8.0, 8.0, 2, 1)
    assert "2/5 runs done" in sweep.progress_line(tmp_path, "s")
    assert "ETA 1m00s" in sweep.progress_line(tmp_path, "s")


def test_plan_records_each_runs_planned_flops(tmp_path):
    from harness.sweep import plan

    config_dir = str(Path(__file__).parents[1] / "configs")
    info = plan(config_dir, ["sweep=tiny", f"results_dir={tmp_path}"])
    saved = json.loads((tmp_path / "tiny" / "plan.json").read_text())
    assert len(saved["flops"]) == saved["total"] == 4 and saved["done_at_start"] == []
    widths = [int(c.model.width) for c in info["configs"]]
    tokens = [int(c.data.tokens) for c in info["configs"]]
    # more width or more tokens never costs less
    for i in range(4):
        for j in range(4):
            if widths[i] >= widths[j] and tokens[i] >= tokens[j]:
                assert saved["flops"][i] >= saved["flops"][j]
