"""Runs logged to real wandb, offline, read back with wandb's own reader.

Every test trains with ``wandb.mode=offline`` (conftest forces ``disabled``: the tests
here lift it) and reads the run folders under ``results/<sweep>/wandb/`` with
``wandb leet inspect --json`` (one JSON record per line: run, metric, history,
summary, artifact, exit), the same transaction log ``wandb sync`` uploads."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from harness import records, tracking
from harness.train import train, train_packed
from harness.train import run as run_module

pytestmark = pytest.mark.skipif(shutil.which("wandb") is None, reason="needs the wandb CLI")

OFFLINE = {"wandb.mode": "offline", "data.tokens": 16 * 32 * 40, "train.eval_every": 4}  # 40 steps


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):  # artifact staging stays in tmp
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setattr(tracking, "_online_failed", False)


def read_runs(wandb_dir: Path) -> list[dict]:
    """Every offline run folder under ``wandb_dir``, oldest first, as wandb's reader sees it."""
    out = []
    for folder in sorted(wandb_dir.glob("offline-run-*")):
        lines = subprocess.run(["wandb", "leet", "inspect", "--json", str(folder)], capture_output=True,
                               text=True, check=True, timeout=60).stdout.splitlines()
        recs = [json.loads(line) for line in lines if line.strip()]
        run = next(r["run"] for r in recs if r["type"] == "run")
        summary: dict = {}
        config = {k: v for k, v in run.get("config", {}).get("update", {}).items()}
        for r in recs:
            if r["type"] == "summary":
                summary.update(r["summary"].get("update", {}))
            if r["type"] == "config":
                config.update(r["config"].get("update", {}))
        out.append({
            "id": run["run_id"], "name": run.get("display_name"), "tags": run.get("tags", []),
            "job_type": run.get("job_type"), "group": run.get("run_group"), "config": config,
            "history": [r["history"]["item"] for r in recs if r["type"] == "history"],
            "metrics": [r["metric"] for r in recs if r["type"] == "metric"],
            "artifacts": [r["artifact"] for r in recs if r["type"] == "artifact"],
            "summary": summary,
            "exit": next((r["exit"].get("exit_code", 0) for r in recs if r["type"] == "exit"), None),
        })
    return out


def test_a_run_is_on_the_tokens_axis_with_detailed_curves_config_and_summary(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg(**OFFLINE)
    rec = train(cfg)
    assert rec["status"] == "ok"
    with monkeypatch.context() as m:  # logging leaves the numbers alone: bitwise the run without wandb
        m.setenv("WANDB_MODE", "disabled")
        quiet = train(tiny_cfg(**OFFLINE, results_dir=str(tmp_path / "quiet")))
    assert quiet["curve"] == rec["curve"] and quiet["final_val_loss"] == rec["final_val_loss"]
    (run,) = read_runs(Path(cfg.results_dir) / "single" / "wandb")
    # x-axes: tokens for train/, val/, probe/; flops_6nd defined as well; val/loss's summary is its min
    step_metric = {m.get("glob_name") or m.get("name"): m.get("step_metric") for m in run["metrics"]}
    assert step_metric["train/*"] == step_metric["val/*"] == step_metric["probe/*"] == "tokens"
    assert "flops_6nd" in step_metric
    assert any(m.get("name") == "val/loss" and m.get("summary") == {"min": True} for m in run["metrics"])
    # rows: every eval (4, 8, .., 40) and every 10-step loss check (10, 20, 30, 40), merged per step
    steps = [h["_step"] for h in run["history"]]
    assert steps == sorted({*range(4, 41, 4), *range(10, 41, 10)})
    assert all("tokens" in h and "flops_6nd" in h and "train/loss" in h for h in run["history"])
    assert sum("train/grad_norm" in h for h in run["history"]) == len(steps)
    assert [h["val/loss"] for h in run["history"] if "val/loss" in h] == [p["val_loss"] for p in rec["curve"]]
    assert sum("train/lr" in h for h in run["history"]) == len(steps)
    buckets = rec["probes"]["buckets"]
    for b in buckets:  # per-bucket probes at every eval
        assert sum(f"probe/{b}/accuracy" in h for h in run["history"]) == len(rec["curve"])
    # summary: the peak lr (not the last scheduled one), min and final val loss, status and throughput
    s = run["summary"]
    assert s["lr"] == rec["lr"] and s["lr"] > run["history"][-1]["train/lr"]
    assert s["val/loss"]["min"] == min(p["val_loss"] for p in rec["curve"])
    assert s["final_val_loss"] == rec["final_val_loss"] and s["status"] == "ok"
    assert s["steps"] == 40 and s["tokens_per_s"] > 0 and s["wall_time_s"] > 0
    # config: derived counts and ids; readable name; automatic tags
    c = run["config"]
    for k in ("params_total", "params_embedding", "params_nonembedding", "tokens", "flops_6nd", "lr_peak"):
        assert c[k] == (rec[k] if k != "lr_peak" else rec["lr"])
    assert c["run_id"] == rec["run_id"] and c["family_id"]
    assert "git_commit" in c
    assert run["name"] == "w32-d1-D20.5k-lr1e-02-s0"
    assert {"single", "cosine", "sp", "zipf_facts"} <= set(run["tags"])
    assert run["exit"] == 0
    assert [a["name"] for a in run["artifacts"]] == [f"record-{rec['run_id']}"]


def test_a_resumed_run_keeps_its_wandb_id_offline(tiny_cfg):
    cfg = tiny_cfg(**OFFLINE, **{"train.checkpoint_every": 3})

    def interrupt(point):
        if point["step"] >= 12:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_eval=interrupt)
    rec = train(tiny_cfg(**OFFLINE, **{"train.checkpoint_every": 3, "train.resume": True}))
    assert rec["status"] == "ok" and rec["resumed_from_step"] == 13
    first, second = read_runs(Path(cfg.results_dir) / "single" / "wandb")
    assert first["id"] == second["id"]  # one run: `wandb sync` joins the two folders
    assert first["exit"] == 130 and second["exit"] == 0
    steps = [h["_step"] for h in first["history"]] + [h["_step"] for h in second["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == 40  # continued, not replayed


@pytest.mark.slow  # 6 s on 2 busy cores
def test_packed_runs_and_failed_setups_get_a_wandb_run_each(tiny_cfg, monkeypatch):
    cfgs = [tiny_cfg(**OFFLINE, **{"train.seed": s}) for s in (0, 1)]
    recs = train_packed(cfgs)
    runs = read_runs(Path(cfgs[0].results_dir) / "single" / "wandb")
    assert sorted(r["config"]["run_id"] for r in runs) == sorted(r["run_id"] for r in recs)
    for run, rec in zip(sorted(runs, key=lambda r: r["config"]["run_id"]),
                        sorted(recs, key=lambda r: r["run_id"])):
        # the curve replayed from the record when the pack ends: one row per point
        assert [h["_step"] for h in run["history"]] == [p["step"] for p in rec["curve"]]
        assert [h["val/loss"] for h in run["history"]] == [p["val_loss"] for p in rec["curve"]]
        assert run["summary"]["status"] == "ok" and run["exit"] == 0

    def broken(*a, **k):
        raise OSError("corpus not found")

    monkeypatch.setattr(run_module, "_data", broken)
    cfg = tiny_cfg(**OFFLINE, **{"train.seed": 7})
    assert train(cfg)["status"] == "failed"
    failed = [r for r in read_runs(Path(cfg.results_dir) / "single" / "wandb") if r["exit"] == 1]
    assert len(failed) == 1 and failed[0]["summary"]["status"] == "failed"
    assert "corpus not found" in failed[0]["summary"]["error"]


def test_the_analysis_run_holds_summary_tables_plots_and_an_artifact(tiny_cfg, tmp_path):
    cfg = tiny_cfg(**OFFLINE)
    root = Path(cfg.results_dir) / "single"
    rec = train(cfg)
    records.write_runs_csv([rec], root / "runs.csv")
    fit = {"conventions": {"N": "params_nonembedding"}, "floor": {"value": 0.5, "source": "synthetic"},
           "selected": "chinchilla",
           "laws": {"chinchilla": {"params": {"E": 0.5, "A": 10.0, "alpha": 0.3, "B": 20.0, "beta": 0.28},
                                   "ci95": {"alpha": [0.2, 0.4]},
                                   "heldout": {"largest_N": {"reducible_error": 0.1, "nats": 0.02}}}},
           "compute_optimal": {"law": "chinchilla", "a": 0.48},
           "extrapolation": {"top_C": {"law": "chinchilla", "reducible_error": 0.12, "nats": 0.03}}}
    (root / "fit.json").write_text(json.dumps(fit))
    (root / "report.md").write_text("# report\n")
    import matplotlib.pyplot as plt

    (root / "figures").mkdir()
    plt.figure(figsize=(1, 1)).savefig(root / "figures" / "loss_vs_compute.png")
    plt.close("all")
    tracking.log_analysis(cfg.wandb, root, fit, [root / "figures" / "loss_vs_compute.png"], sweep="single")
    (analysis,) = [r for r in read_runs(root / "wandb") if r["job_type"] == "analysis"]
    s = analysis["summary"]
    assert s["fit/alpha"] == 0.3 and s["fit/E"] == 0.5 and s["fit/a"] == 0.48
    assert s["heldout/top_C/reducible_error"] == 0.12 and s["selected"] == "chinchilla"
    tables = {k.split(".")[0]: s[k] for k in s if k.endswith(".nrows")}
    assert tables == {"runs": 1, "fit": 5, "heldout": 1, "loss_vs_C_table": 1, "frontier_table": 1}
    (art,) = [a for a in analysis["artifacts"] if a["type"] == "analysis"]
    assert art["name"] == "single-analysis"
    assert sorted(c["path"] for c in art["manifest"]["contents"]) == sorted(
        ["figures/loss_vs_compute.png", "fit.json", "report.md", "runs.csv", f"runs/{rec['run_id']}.json"])
    assert any(k.startswith("loss_vs_compute") for h in analysis["history"] for k in h)  # the figure as an image
    assert analysis["config"]["inputs"] == [f"record-{rec['run_id']}:latest"]  # lineage, offline


def test_a_wsd_branch_replays_the_shared_curve(tiny_cfg):
    wsd = {"wandb.mode": "offline", "train.schedule": "wsd", "train.warmup": 5, "train.cooldown": 0.2,
           "train.branch_tokens": [16 * 32 * 30, 16 * 32 * 60], "train.eval_every": 6}
    train(tiny_cfg(**wsd, **{"data.tokens": 16 * 32 * 60}))
    branch = train(tiny_cfg(**wsd, **{"data.tokens": 16 * 32 * 30}))
    assert branch["branched_from_step"] == 24
    runs = read_runs(Path(branch["config"]["results_dir"]) / "single" / "wandb")
    (run,) = [r for r in runs if r["config"]["run_id"] == branch["run_id"]]
    evals = [h["_step"] for h in run["history"] if "val/loss" in h]
    assert evals == [p["step"] for p in branch["curve"]] and evals[0] == 6  # from the trunk's start, not step 24
    assert run["summary"]["branched_from_step"] == 24


def test_harness_fit_logs_the_analysis_run_when_asked(tmp_path):
    """``harness-fit RESULTS_DIR --wandb offline``: the same analysis run a sweep's end logs."""
    from harness.analysis.cli import main

    root = tmp_path / "cpu"
    shutil.copytree(Path(__file__).resolve().parent.parent / "results" / "cpu_v1" / "runs", root / "runs")
    assert main([str(root), "--resamples", "0", "--jobs", "1", "--no-figures", "--no-skills", "--wandb", "offline"]) == 0
    (analysis,) = [r for r in read_runs(root / "wandb") if r["job_type"] == "analysis"]
    fit = json.loads((root / "fit.json").read_text())
    sel = fit["selected"]
    assert analysis["summary"]["selected"] == sel
    assert analysis["summary"]["fit/alpha"] == pytest.approx(fit["laws"][sel]["params"]["alpha"])
    (art,) = [a for a in analysis["artifacts"] if a["type"] == "analysis"]
    paths = {c["path"] for c in art["manifest"]["contents"]}
    assert {"fit.json", "report.md", "runs.csv"} <= paths and sum(p.startswith("runs/") for p in paths) == 24
