"""The committed reference results and the code cannot drift apart: refitting the
committed run records must reproduce the committed fit.json. And the committed CPU
sweep's selected law must describe its data: log-loss RMS at most 0.01, residuals with
no pattern over (N, D), every hold-out predicted better than both naive baselines."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.analysis import fit_results_dir
from harness import records
from harness.config import make_config
from harness.records import load_records
from harness.train import train

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ["cpu", "isoflop"]


def assert_close(a, b, path="fit"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys differ"
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-9), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module", params=COMMITTED)
def refit(request, tmp_path_factory):
    folder = ROOT / "results" / request.param
    assert (folder / "fit.json").exists(), f"results/{request.param}/fit.json is not committed"
    records, problems = load_records(folder)
    assert records and not problems and all(r["status"] == "ok" for r in records)
    out = tmp_path_factory.mktemp(request.param)
    return request.param, records, fit_results_dir(folder, out_dir=out, figures=False)["fit"]


def test_refit_of_committed_records_reproduces_committed_fit(refit):
    sweep, _, fit = refit
    folder = ROOT / "results" / sweep
    committed = json.loads((folder / "fit.json").read_text())
    fit = json.loads(json.dumps(fit))
    fit.pop("figures", None)  # the refit draws none; the committed list names the committed PNGs
    figures = committed.pop("figures", [])
    assert all((folder / f).exists() for f in figures)
    assert_close(fit, committed)


def _pattern_r2(fit: dict, law: str, records: list[dict]) -> float:
    """Share of the residuals' variance a quadratic surface in (ln N, ln D) explains."""
    by_id = {r["run_id"]: r for r in records}
    ids = fit["laws"][law]["point_ids"]
    r = np.array(fit["laws"][law]["residuals"])
    a = np.log([by_id[i]["params_nonembedding"] for i in ids])
    b = np.log([by_id[i]["tokens"] for i in ids])
    a, b = a - a.mean(), b - b.mean()
    M = np.column_stack([np.ones_like(a), a, b, a * b, a * a, b * b])
    c = np.linalg.lstsq(M, r, rcond=None)[0]
    return 1 - float(np.sum((r - M @ c) ** 2) / np.sum((r - r.mean()) ** 2))


def test_the_cpu_sweeps_selected_law_describes_its_data(refit):
    sweep, records, fit = refit
    if sweep != "cpu":
        pytest.skip("the check is on the CPU grid sweep")
    assert fit["floor"]["source"].startswith("held-out Bayes loss")
    sel = fit["selected"]
    assert fit["laws"][sel]["rms_log"] <= 0.01
    assert _pattern_r2(fit, sel, records) < 0.3
    assert _pattern_r2(fit, "chinchilla", records) > 0.5  # the additive form's twist, for contrast
    for h, e in fit["extrapolation"].items():
        assert e["law"] == sel and e["reducible_error"] is not None and not e["below_floor"], h
        assert set(e["baselines"]) == {"best_trained", "largest_N_same_D"}
        assert e["passes"], h

def test_retraining_a_committed_cpu_run_reproduces_its_final_losses_bitwise(tmp_path):
    """The smallest committed cpu run (width 16, 245 steps, ~5 s), trained again from its
    record's config with the same torch and thread count, ends on the same bits."""
    old = records.read_record(ROOT / "results" / "cpu" / "runs" / "cf76fca22308.json")
    if old["versions"]["torch"] != torch.__version__:
        pytest.skip(f"recorded with torch {old['versions']['torch']}, this is {torch.__version__}")
    new = train(make_config(old["config"], **{"results_dir": str(tmp_path), "train.progress": False,
                                              "train.resume": False, "wandb.mode": "disabled"}))
    assert new["run_id"] == old["run_id"] and new["config"]["train"]["threads"] == 1
    assert new["final_val_loss"] == old["final_val_loss"]
    assert new["final_train_loss"] == old["final_train_loss"]
    assert [p["val_loss"] for p in new["curve"]] == [p["val_loss"] for p in old["curve"]]


def test_every_committed_record_keeps_its_run_id():
    """Run ids hash the semantic keys (harness.config fields not marked semantic=False):
    every committed record's config still hashes to its own run_id."""
    paths = sorted((ROOT / "results").glob("*/runs/*.json"))
    assert len(paths) > 50
    for path in paths:
        rec = records.read_record(path)
        assert records.run_id(rec["config"]) == rec["run_id"], path
