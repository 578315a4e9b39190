"""The end of a sweep: the joblib launcher that the cpu, isoflop, width_ladder, cpu_wsd
and lr_transfer presets use, through the real CLI, then the summary, runs.csv, the fit,
the figures and report.md on what it wrote."""
from __future__ import annotations

import csv
import functools
import json
import os
import subprocess
import sys

import pytest

from harness import records
from harness.cli import CONFIG_DIR
from harness.data.synthetic import heldout_bayes_loss

SWEEP = [sys.executable, "-c", "from harness.cli import sweep_main; sweep_main()"]
GRID = ["sweep=tiny", "train.threads=1", "data.probe_records=0", "model.width=16,24,32,40",
        "data.tokens=4096,8192,16384"]


@pytest.mark.slow
def test_joblib_sweep_then_its_end_fits_draws_and_reports(tmp_path, monkeypatch):
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    out = subprocess.run([*SWEEP, *GRID, f"results_dir={tmp_path}", "hydra/launcher=joblib",
                          "hydra.launcher.n_jobs=2"], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "Joblib.Parallel(n_jobs=2" in log and "is launching 12 jobs" in log  # joblib ran them
    root = tmp_path / "tiny"
    recs, problems = records.load_records(root)
    assert len(recs) == 12 and not problems and {r["status"] for r in recs} == {"ok"}
    assert "12 ok, 0 diverged, 0 oom, 0 failed, 0 interrupted, 0 not run" in out.stdout
    rows = list(csv.DictReader((root / "runs.csv").open()))
    assert sorted(r["run_id"] for r in rows) == sorted(r["run_id"] for r in recs)
    assert not (root / "fit.json").exists()  # the tiny preset sets sweep.fit=false

    # The same end of the sweep with sweep.fit=true, in this process, on those records;
    # 100 bootstrap resamples instead of 1000 (the sweep's default), to keep it short.
    from hydra import compose, initialize_config_dir

    import harness.analysis
    from harness.sweep import finish_sweep

    real = harness.analysis.fit_results_dir
    monkeypatch.setattr(harness.analysis, "fit_results_dir", functools.partial(real, n_resamples=100))
    monkeypatch.setenv("WANDB_MODE", "offline")  # the analysis run, to real wandb, read back below
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*GRID[:3], "sweep.fit=true", f"results_dir={tmp_path}"])
    finish_sweep(cfg)
    fit = json.loads((root / "fit.json").read_text())
    # only the fields DESIGN.md promises, so the analysis can grow without breaking this
    want = {"N": "params_nonembedding", "C": "flops_6nd", "loss": "final_val_loss"}
    assert {k: fit["conventions"][k] for k in want} == want
    # DESIGN.md's {"floor": {"value", "source"}}: the held-out windows' own exact Bayes loss
    cfg0 = recs[0]["config"]
    assert fit["floor"]["source"].startswith("held-out Bayes loss")
    assert fit["floor"]["value"] == pytest.approx(heldout_bayes_loss(cfg0["data"], cfg0["model"]["context"]), abs=1e-5)
    assert abs(fit["floor"]["value"] - recs[0]["entropy_floor"]) < 0.02  # sampling noise of a small set
    chin = fit["laws"]["chinchilla"]
    assert chin["n_points"] == 12 and set(chin["ci95"]) == set(chin["params"])
    for name, (lo, hi) in chin["ci95"].items():
        assert lo <= hi, name
    figures = {p.name: p.stat().st_size for p in (root / "figures").glob("*.png")}
    assert "scaling_laws.png" in figures and min(figures.values()) > 1000
    report = (root / "report.md").read_text()
    assert "](figures/scaling_laws.png)" in report

    # ... and one wandb run of job_type analysis: the selected law's parameters, the fit
    # table (every law's parameters), every figure, and the artifact
    from test_wandb_offline import read_runs

    (run,) = read_runs(root / "wandb")
    assert run["job_type"] == "analysis" and run["name"] == "tiny-analysis" and run["exit"] == 0
    selected = fit.get("selected") or "chinchilla"
    for name, value in fit["laws"][selected]["params"].items():
        assert run["summary"][f"fit/{name}"] == pytest.approx(value)
    n_params = sum(len(law.get("params") or {}) for law in fit["laws"].values())
    assert run["summary"]["fit.nrows"] == n_params and run["summary"]["runs.nrows"] == 12
    logged = {k.split(".")[0] for h in run["history"] for k in h}
    assert {f[:-4] for f in figures} <= logged
    (art,) = [a for a in run["artifacts"] if a["type"] == "analysis"]
    paths = {c["path"] for c in art["manifest"]["contents"]}
    assert {"fit.json", "runs.csv", "report.md"} <= paths and sum(p.startswith("runs/") for p in paths) == 12
    assert {f"figures/{f}" for f in figures} <= paths
