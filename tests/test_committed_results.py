"""The committed reference results and the code cannot drift apart: refitting the
committed run records must reproduce the committed fit.json."""
import json
import math
from pathlib import Path

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


@pytest.mark.parametrize("sweep", COMMITTED)
def test_refit_of_committed_records_reproduces_committed_fit(sweep, tmp_path):
    folder = ROOT / "results" / sweep
    assert (folder / "fit.json").exists(), f"results/{sweep}/fit.json is not committed"
    records, problems = load_records(folder)
    assert records and not problems
    assert all(r["status"] == "ok" for r in records)
    refit = fit_results_dir(folder, out_dir=tmp_path, figures=False)["fit"]
    committed = json.loads((folder / "fit.json").read_text())
    refit.pop("figures", None)  # the refit draws none; the committed list names the committed PNGs
    figures = committed.pop("figures", [])
    assert all((folder / f).exists() for f in figures)
    assert_close(json.loads(json.dumps(refit)), committed)


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
