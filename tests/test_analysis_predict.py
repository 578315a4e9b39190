"""harness-predict reads fit.json only: on the committed CPU results, quickly."""
import json
import time
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.forms import JOINT
from harness.analysis.predict import main, optimal, predict, train_line

CPU = Path(__file__).resolve().parent.parent / "results" / "cpu"


@pytest.fixture(scope="module")
def fit():
    return json.loads((CPU / "fit.json").read_text())


def test_json_prediction_at_a_trained_run_matches_the_law_and_the_record(fit, capsys):
    law = fit["laws"][fit["selected"]]
    i = int(np.argmax(np.abs(law["residuals"]) < 1e-3))  # a run the law fits closely
    run = json.loads(next((CPU / "runs").glob(f"{law['point_ids'][i]}.json")).read_text())
    t0 = time.perf_counter()
    assert main([str(CPU), "--n", str(run["params_nonembedding"]), "--d", str(run["tokens"]), "--json"]) == 0
    assert time.perf_counter() - t0 < 2.0
    out = json.loads(capsys.readouterr().out)
    assert {"law", "N", "D", "loss", "interval"} <= set(out) and out["law"] == fit["selected"]
    assert out["loss"] == pytest.approx(run["final_val_loss"], rel=2e-3)
    lo, hi = out["interval"]
    assert lo < out["loss"] < hi and lo < run["final_val_loss"] < hi and hi / lo < 1.1


def test_named_law_and_unknown_law(fit):
    a = predict(fit, 4e5, 1e7, "chinchilla")
    p = fit["laws"]["chinchilla"]["params"]
    closed = fit["floor"]["value"] + p["A"] / 4e5 ** p["alpha"] + p["B"] / 1e7 ** p["beta"]
    assert a["law"] == "chinchilla" and a["loss"] == pytest.approx(closed, rel=1e-5)
    with pytest.raises(SystemExit, match="no fitted joint law"):
        predict(fit, 4e5, 1e7, "nope")


def test_compute_optimal_prediction_and_train_line(fit, capsys):
    C = 1e12
    out = optimal(fit, C)
    assert out["N"] * out["D"] * 6 == pytest.approx(C)
    form = JOINT[out["law"]]
    P = np.array([[fit["laws"][out["law"]]["params"][k] for k in form.names]])
    E = fit["floor"]["value"]
    near = form.loss(P, E, np.array([[n, C / (6 * n)] for n in out["N"] * np.array([0.7, 1.0, 1.4])]))[0]
    assert near[1] < near[0] and near[1] < near[2]  # a minimum along C = 6 N D
    assert main([str(CPU), "--c", str(C)]) == 0
    text = capsys.readouterr().out
    assert "harness-train model.width=" in text and "data.tokens=" in text
    assert train_line(396800, 4e6).startswith("harness-train model.width=128 model.depth=2 model.heads=8")


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main([str(CPU), "--n", "1e5"])
    with pytest.raises(SystemExit, match="no fit.json"):
        main([str(CPU / "runs"), "--n", "1e5", "--d", "1e6"])
