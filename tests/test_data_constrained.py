"""Muennighoff et al.'s data-constrained law (harness.analysis.forms.EffectiveData) and
what the fit builds on it.

Reference: the 182 repeated-data C4 runs of Muennighoff et al. (2023). With E, A, B and
alpha = beta fixed at their published values, their fit (summed Huber, delta 1e-3, torch
L-BFGS from the 16 starts R_D*, R_N* in {0, 6.7, 13.3, 20}) gives R_D* = 15.39 and
R_N* = 5.31 at an objective of 0.0158259. The harness's objective is the same function
(it evaluates to their number at their estimates), the published point is a minimum of
it, and 11 of their 16 starts reach it with the harness's solver. But the objective is
flat along a valley that trades R_D* against R_N*: the other starts, and the harness's
own grid, end in a second basin at larger R_D* (50 to 160) and smaller R_N* (1.4 to 2.2)
whose objective is up to 0.13% lower. So these rows pin R_D* only jointly with R_N*;
the published 15.4 / 5.3 is the basin their starts found.
"""
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.analysis import fit_table
from harness.analysis.cli import main as fit_main
from harness.analysis.data_constrained import fresh_equivalent, fresh_law, value_per_repeat
from harness.analysis.forms import CHINCHILLA, MUENNIGHOFF, R_STAR_BOUNDS, fit_form
from harness.analysis.predict import main as predict_main
from harness.analysis.table import Table, from_csv

DATA = Path(__file__).parent / "data" / "datablations_182.csv"
LOG_A, LOG_B, LOG_E, ALPHA = 6.255414, 7.3049974, 0.6254804, 0.3526596  # utils/parametric_fit.ipynb
PUBLISHED = {"R_D*": 15.387756, "R_N*": 5.309743}
PUBLISHED_OBJECTIVE = 0.015825937  # the notebook's printed minimum (float32)
FIXED = dict(A=np.exp(LOG_A), B=np.exp(LOG_B), alpha=ALPHA, beta=ALPHA)


def _rows():
    df = pd.read_csv(DATA)
    return df[["N", "D", "unique_tokens"]].to_numpy(float), df["loss"].to_numpy(float)


def _fixed_fit(starts=None):
    X, y = _rows()
    form = MUENNIGHOFF.with_fixed(**FIXED)
    return fit_form(form, X, y, floor=np.exp(LOG_E), delta=1e-3,
                    starts=None if starts is None else form.theta(np.atleast_2d(starts)))


def test_reference_copy_is_complete():
    df = pd.read_csv(DATA)
    assert len(df) == 182 and {"N", "D", "unique_tokens", "epochs", "loss"} <= set(df.columns)
    np.testing.assert_allclose(df.epochs, df.D / df.unique_tokens, rtol=1e-12)
    assert (df.unique_tokens <= df.D).all() and df.epochs.max() > 1000


def test_the_published_estimates_are_a_minimum_of_the_same_objective():
    """Evaluated at their estimates, the harness's objective is their printed number, and
    refined from there its solver stays within the issue's tolerance (R_D* +-1, R_N* +-0.1)."""
    at = _fixed_fit(starts=[[PUBLISHED["R_D*"], PUBLISHED["R_N*"]]])
    assert at.params["R_D*"] == pytest.approx(PUBLISHED["R_D*"], abs=1.0)
    assert at.params["R_N*"] == pytest.approx(PUBLISHED["R_N*"], abs=0.1)
    assert at.objective == pytest.approx(PUBLISHED_OBJECTIVE, rel=1e-6)


def test_their_grid_of_starts_reaches_the_published_basin_and_a_flatter_one():
    grid = np.linspace(0, 20, 4)
    grid[0] = R_STAR_BOUNDS[0]  # R* = 0 divides by zero; the search's lower bound instead
    ends = [_fixed_fit(starts=[s]) for s in itertools.product(grid, grid)]
    near = [abs(f.params["R_D*"] - PUBLISHED["R_D*"]) < 1 and abs(f.params["R_N*"] - PUBLISHED["R_N*"]) < 0.1
            for f in ends]
    published = [f for f, k in zip(ends, near) if k]
    assert len(published) >= 10
    assert all(f.objective == pytest.approx(PUBLISHED_OBJECTIVE, rel=1e-6) for f in published)
    # the rest lie in a second basin: more R_D*, less R_N*, an objective within 0.2% (lower)
    other = [f for f, k in zip(ends, near) if not k]
    assert other and all(f.params["R_D*"] > 40 and f.params["R_N*"] < 2.5 for f in other)
    assert all(0.998 * PUBLISHED_OBJECTIVE < f.objective < PUBLISHED_OBJECTIVE for f in other)
    own = _fixed_fit()  # the harness's own start grid
    assert own.objective < PUBLISHED_OBJECTIVE and own.params["R_D*"] > 40


def test_the_law_in_closed_form():
    """D' and N' by hand at the published values: N_opt(U_D) = 0.050987 U_D, D' = U_D at
    one epoch and U_D (1 + R_D*) at infinitely many, and two inputs (N, D) are fresh data
    (Chinchilla's law where N is at most N_opt(D); above it, as in the paper, N' < N)."""
    law = MUENNIGHOFF.with_fixed(**FIXED, R_D_star=15.4, R_N_star=5.3)
    assert law.names == ()
    full = law._full(np.zeros(0))
    U = 1e9
    x = np.log(np.array([[0.0509 * U, U, U], [0.2 * U, U, U], [1e8, U * 4, U], [1e8, U * 1e6, U]]))
    lNe, lDe = law.effective(full, x)
    assert lNe[0] == pytest.approx(x[0, 0], abs=1e-12)  # below N_opt(U_D): no excess parameters
    UN = 0.050987 * U  # above it: U_N = N_opt(U_D), R_N = N / U_N - 1
    RN = 0.2 * U / UN - 1
    assert np.exp(lNe[1]) == pytest.approx(UN * (1 + 5.3 * (1 - np.exp(-RN / 5.3))), rel=1e-4)
    assert np.exp(lDe[2]) == pytest.approx(U * (1 + 15.4 * (1 - np.exp(-3 / 15.4))), rel=1e-12)
    assert np.exp(lDe[3]) == pytest.approx(U * 16.4, rel=1e-9)
    assert value_per_repeat(3, 15.4) == pytest.approx(15.4 * (1 - np.exp(-3 / 15.4)) / 3, rel=1e-12)
    assert value_per_repeat(0, 15.4) == 1.0
    N, D = np.array([[1e6, 1e8], [1e9, 2e10]]).T  # fresh, N below N_opt(D): Chinchilla's law itself
    p = [FIXED[k] for k in ("A", "B", "alpha", "beta")]
    np.testing.assert_allclose(MUENNIGHOFF.loss(p + [15.4, 5.3], 1.87, np.column_stack([N, D, D])),
                               CHINCHILLA.loss(p, 1.87, np.column_stack([N, D])), rtol=1e-12)


def _synthetic(R_D=4.0, noise=0.003, seed=0):
    """A grid of fresh and repeated runs from a known law with D' (R_D* = R_D)."""
    rng = np.random.default_rng(seed)
    rows = [(n, d, d / e) for n in (1e4, 3e4, 1e5, 3e5) for d in (1e6, 4e6, 1.6e7) for e in (1, 2, 4, 8, 16, 32)]
    X = np.array(rows)
    p = {"A": 30.0, "B": 300.0, "alpha": 0.5, "beta": 0.45}
    law = MUENNIGHOFF.with_fixed(R_N_star=1e3)  # N' = N for these sizes: R_N* far beyond any R_N
    y = law.loss([p["A"], p["B"], p["alpha"], p["beta"], R_D], 1.3, X)[0] * np.exp(noise * rng.standard_normal(len(X)))
    return X, y, p


def _table(X, y, floor):
    n = len(y)
    return Table(N=X[:, 0], D=X[:, 1], C=6 * X[:, 0] * X[:, 1], loss=y, ids=list(range(n)),
                 budget=np.full(n, np.nan), curves=[], entropy_floor=[floor], conventions={"N": "N"},
                 source={"kind": "csv", "file": "synthetic", "n_rows": n}, floor=floor, floor_source="given",
                 U=X[:, 2])


def test_a_known_R_D_star_is_recovered_and_the_law_is_selected(tmp_path):
    X, y, _ = _synthetic(R_D=4.0)
    fit = fit_table(_table(X, y, 1.3), tmp_path, n_resamples=60, n_jobs=1, figures=True)["fit"]
    dc = fit["data_constrained"]
    assert fit["selected"] in ("muennighoff", "muennighoff_interaction")
    lo, hi = dc["R_D*_ci95"]
    assert lo < 4.0 < hi and hi / lo < 3
    assert "most_epochs" in fit["extrapolation"] and fit["extrapolation"]["most_epochs"]["passes"]
    assert fit["laws"]["muennighoff"]["heldout"]["most_epochs"]["reducible_error"] < \
        fit["laws"]["chinchilla"]["heldout"]["most_epochs"]["reducible_error"]
    v4 = next(v for v in dc["value_of_a_repeated_token"] if v["epochs"] == 4)
    assert v4["ci95"][0] < float(value_per_repeat(3, 4.0)) < v4["ci95"][1]
    # observed value: the fresh D at which the fresh-data law predicts the run's loss, here near the law's
    obs = np.array([r["value_observed"] for r in dc["runs"]], float)
    law = np.array([r["value_law"] for r in dc["runs"]])
    assert np.median(np.abs(obs - law)) < 0.15
    a = next(r for r in dc["allocation"] if r["constrained"] and r["fresh"])
    assert a["constrained"]["loss"] >= a["fresh"]["loss"] - 1e-9  # a pool can only cost loss
    assert {"loss_vs_epochs.png", "repeated_token_value.png"} <= {p.name for p in (tmp_path / "figures").glob("*")}
    assert "## Repeated data" in (tmp_path / "report.md").read_text()


def test_fresh_equivalent_inverts_the_fresh_law():
    X, y, p = _synthetic()
    fit = fit_form(MUENNIGHOFF.with_fixed(R_N_star=1e3), X, y, floor=1.3)
    N, D = 3e4, 2.5e6
    loss = float(fit.predict(np.array([[N, D, D]]))[0])
    assert fresh_equivalent(fit, N, loss, D_max=D, U=D / 8) == pytest.approx(D, rel=1e-4)
    fresh, what = fresh_law(fit)
    assert fresh.form.name == "chinchilla" and "fitted on the 12 fresh runs" in what
    assert fresh_equivalent(fit, N, 1.3001, D_max=D, U=D / 8) is None  # below infinite fresh data's loss


def test_one_repetition_count_fits_no_data_constrained_law(tmp_path):
    """Every repeated run at 4 epochs: R_D* cannot be told from B and beta, so the fit
    leaves the data-constrained laws out and says why."""
    X, y, _ = _synthetic()
    keep = (X[:, 1] == X[:, 2]) | (X[:, 1] == 4 * X[:, 2])
    fit = fit_table(_table(X[keep], y[keep], 1.3), tmp_path, n_resamples=0, n_jobs=1, figures=False)["fit"]
    assert "data_constrained" not in fit and "muennighoff" not in fit["laws"]
    assert "most_epochs" not in fit["extrapolation"]
    assert any("all at about 4 epochs: one repetition count" in w for w in fit["warnings"])


def test_no_data_constrained_law_without_repeated_data(tmp_path):
    X, y, _ = _synthetic()
    fresh = X[:, 1] == X[:, 2]
    t = _table(X[fresh], y[fresh], 1.3)
    fit = fit_table(t, tmp_path, n_resamples=0, n_jobs=1, figures=False)["fit"]
    assert "data_constrained" not in fit and "muennighoff" not in fit["laws"]
    assert set(fit["extrapolation"]) == {"largest_N", "largest_D", "top_C"}


# ----- harness-fit --csv --d-unique and harness-predict --u -----

def test_cli_fits_the_datablations_table_and_predict_reads_it(tmp_path, capsys):
    out = tmp_path / "fit"
    rc = fit_main(["--csv", str(DATA), "--n", "N", "--d", "D", "--d-unique", "unique_tokens", "--loss", "loss",
                   "--id", "name", "--out", str(out), "--resamples", "20", "--jobs", "1", "--no-figures"])
    assert rc == 0
    fit = json.loads((out / "fit.json").read_text())
    assert fit["conventions"]["U_D"] == "unique_tokens"
    dc = fit["data_constrained"]
    assert dc["R_D*"] > 0 and dc["R_D*_ci95"] and len(dc["runs"]) == 153
    for law in ("muennighoff", "muennighoff_interaction"):
        assert "most_epochs" in fit["laws"][law]["heldout"] and fit["laws"][law]["ci95"]
    assert "repeated data" in capsys.readouterr().out
    law = dc["law"]
    assert predict_main([str(out), "--law", law, "--n", "1e9", "--d", "4e10", "--u", "4e9", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["epochs"] == 10 and rep["interval"][0] < rep["loss"] < rep["interval"][1]
    assert predict_main([str(out), "--law", law, "--n", "1e9", "--d", "4e10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] < rep["loss"]  # fresh tokens beat repeated ones
    assert predict_main([str(out), "--law", law, "--c", "1e21", "--u", "1e9", "--json"]) == 0
    opt = json.loads(capsys.readouterr().out)
    assert opt["epochs"] == pytest.approx(opt["D"] / 1e9) and opt["N"] > 0
    with pytest.raises(SystemExit, match="--u needs a data-constrained law"):
        predict_main([str(out), "--law", "chinchilla", "--n", "1e9", "--d", "4e10", "--u", "4e9"])


def _bad_csv(tmp_path, value):
    df = pd.read_csv(DATA)
    df.loc[7, "unique_tokens"] = value
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case, message", [
    ("missing", "column --d-unique 'U' not found"),
    ("negative", "column 'unique_tokens' has 1 non-positive values (first on line 9: -5)"),
    ("zero", "column 'unique_tokens' has 1 non-positive values (first on line 9: 0)"),
])
def test_bad_d_unique_stops_with_one_line_and_writes_nothing(tmp_path, capsys, case, message):
    path = DATA if case == "missing" else _bad_csv(tmp_path, {"negative": -5, "zero": 0}[case])
    out = tmp_path / "out"
    rc = fit_main(["--csv", str(path), "--n", "N", "--d", "D", "--loss", "loss", "--out", str(out),
                   "--d-unique", "U" if case == "missing" else "unique_tokens"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_d_unique_without_csv_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        fit_main([str(tmp_path), "--d-unique", "unique_tokens"])
    assert e.value.code == 2 and "--d-unique names a CSV column" in capsys.readouterr().err
