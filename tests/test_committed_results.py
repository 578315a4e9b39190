"""The committed reference results and the code cannot drift apart: refitting the
committed run records must reproduce the committed fit.json."""
import json
import math
from pathlib import Path

import pytest

from harness.analysis import fit_results_dir
from harness.records import load_records

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
