"""Seed noise that depends on size (harness/analysis/noise.py): the per-size spread and
its power law, the weighted fit with a misfit term, the generalised fit on the ladder
covariance, and what the pipeline and harness-predict make of them."""
import numpy as np
import pytest

from harness.analysis import noise
from harness.analysis.forms import CHINCHILLA, fit_form, residual_bootstrap
from harness.analysis.pipeline import analyze, to_json
from harness.analysis.predict import predict
from harness.analysis.table import Table

P = np.array([40.0, 400.0, 0.65, 0.65])  # A, B, alpha, beta
FLOOR = 1.3
SIZES = np.geomspace(4e3, 1e5, 6)
TOKENS = np.geomspace(5e5, 8e6, 5)


def _sigma(N):
    """A seed spread that falls 10x over the grid's N, like results/cpu's."""
    return 5e-3 * (np.asarray(N, float) / 4e3) ** (-np.log(10) / np.log(25))


def _grid(seeds: dict[int, int], rng, misfit: float = 0.0):
    """(N, D) rows, seeds[i] runs at size i; log loss = law + a per-(size, seed) offset of
    sd sigma(N) (seeds shift a whole ladder) + ``misfit`` x a smooth bend in ln N; and
    each row's family (its ladder)."""
    X, y, fam = [], [], []
    for i, n in enumerate(SIZES):
        for s in range(seeds.get(i, 1)):
            off = rng.normal(0, _sigma(n))
            for d in TOKENS:
                bend = misfit * np.cos(2.5 * np.log(n / SIZES[0]))
                X.append((n, d))
                fam.append(f"{i}/{s}")
                y.append(np.log(CHINCHILLA.loss(P, FLOOR, np.array([[n, d]]))[0, 0]) + off + bend)
    return np.array(X), np.exp(np.array(y)), fam


def _table(X, y, family=None):
    n = len(y)
    return Table(N=X[:, 0], D=X[:, 1], C=6 * X[:, 0] * X[:, 1], loss=y, ids=[f"r{i}" for i in range(n)],
                 budget=np.full(n, np.nan), curves=[], entropy_floor=[FLOOR] * n, conventions={}, source={},
                 family=family)


def test_the_per_size_spread_and_its_power_law_are_recovered():
    rng = np.random.default_rng(1)
    X, y, fam = _grid({0: 40, 2: 40, 5: 40}, rng)
    m = noise.by_size(X, y)
    assert [r["N"] for r in m["per_size"]] == pytest.approx(SIZES[[0, 2, 5]].tolist())
    assert all(r["dof"] == 39 * len(TOKENS) for r in m["per_size"])
    # the offsets are per ladder, so each size's spread rests on 40 draws (about 11% sd)
    for r in m["per_size"]:
        assert r["sigma_log"] == pytest.approx(_sigma(r["N"]), rel=0.3)
    assert m["b"] == pytest.approx(-np.log(10) / np.log(25), abs=0.2)
    # below the smallest replicated size the line goes on (more noise); above the largest it holds
    s = noise.seed_sigma(m, [SIZES[0] / 4, SIZES[5], SIZES[5] * 10])
    assert s[0] > noise.seed_sigma(m, [SIZES[0]])[0]
    assert s[2] == s[1]
    # one replicated size is no model of size dependence
    X1, y1, fam1 = _grid({0: 3}, rng)
    assert noise.by_size(X1, y1) is None


def test_tau_is_zero_when_the_seeds_explain_the_residuals_and_takes_up_a_misfit():
    r = np.array([1.0, -1.0, 0.5, -0.5])
    assert noise._tau2(r, np.full(4, 4.0), 2) == 0.0  # sum r^2 / 4 = 0.625 < 2 dof
    t2 = noise._tau2(r, np.full(4, 0.1), 2)
    assert np.sum(r * r / (0.1 + t2)) == pytest.approx(2.0, rel=1e-8)

    rng = np.random.default_rng(2)
    X, y, fam = _grid({0: 3, 2: 3, 5: 3}, rng, misfit=4e-3)
    s = noise.seed_sigma(noise.by_size(X, y), X[:, 0])
    fit = noise.fit_weighted(CHINCHILLA, X, y, FLOOR, None, s)
    assert fit.chi2_dof == pytest.approx(1.0, abs=0.02)
    assert fit.extra["noise_model"]["tau_log"] > 1e-3  # the bend, which no seed shows


def test_weighting_by_the_seed_noise_pins_the_exponents_better_than_equal_weights():
    err_w, err_u = [], []
    for k in range(8):
        X, y, fam = _grid({0: 3, 2: 3, 5: 3}, np.random.default_rng(100 + k))
        s = noise.seed_sigma(noise.by_size(X, y), X[:, 0])
        w = noise.fit_weighted(CHINCHILLA, X, y, FLOOR, None, s)
        u = fit_form(CHINCHILLA, X, y, FLOOR)
        err_w.append(abs(w.params["alpha"] - P[2]))
        err_u.append(abs(u.params["alpha"] - P[2]))
    assert np.mean(err_w) < 0.8 * np.mean(err_u)


def test_the_pipeline_weights_by_size_and_predict_reads_the_noise_at_n():
    X, y, fam = _grid({0: 3, 2: 3, 5: 3}, np.random.default_rng(3))
    f = to_json(analyze(_table(X, y, fam), n_resamples=60, n_jobs=1, skills=False))
    reps = f["replicate_noise"]
    assert reps["weighted_fit"] and len(reps["by_size"]["per_size"]) == 3
    # every seed shifts its whole ladder here, so the offset share is near 1 at every size
    assert all(r["rho"] > 0.8 and r["families"] == 3 for r in reps["ladder_share"]["per_size"])
    law = f["laws"]["chinchilla"]
    assert set(law["noise_model"]) == {"tau_log", "chi2_dof", "fit"}
    assert law["noise_model"]["fit"].startswith("generalised least squares")
    assert law["bootstrap"]["method"] == "ladder" and law["bootstrap"]["n_effective"] < 0.5 * len(y)
    assert "sigma_i" in f["settings"]["objective"]
    # drawn per run with the weights held, the same fit claims a much narrower alpha
    s = noise.seed_sigma(reps["by_size"], X[:, 0])
    iid = residual_bootstrap(noise.fit_weighted(CHINCHILLA, X, y, FLOOR, None, s), 60, seed=0,
                             replicate_noise=(1.0, reps["dof"]))
    lo, hi = np.percentile(iid.boot_params()[:, 2], [2.5, 97.5])
    assert np.subtract(*law["ci95"]["alpha"][::-1]) > 1.3 * (hi - lo)
    small, large = (predict(f, n, 4e6, "chinchilla") for n in (SIZES[0], SIZES[-1]))
    assert small["noise_log"] > 2 * large["noise_log"]
    assert "noise model at N" in large["interval_method"]
    # without replicates at two sizes nothing is weighted and the old rule holds
    X1, y1, fam1 = _grid({0: 3}, np.random.default_rng(4))
    f1 = to_json(analyze(_table(X1, y1, fam1), n_resamples=20, n_jobs=1, skills=False))
    assert not f1["replicate_noise"]["weighted_fit"] and "noise_model" not in f1["laws"]["chinchilla"]


def test_the_generalised_fit_reads_the_d_slope_along_ladders_where_seed_offsets_cancel():
    """Seeds that shift whole ladders (rho near 1, a little noise of each run's own): the
    generalised fit on the ladder covariance recovers both exponents from 10 synthetic
    sweeps more tightly than weighted least squares with the same per-run sigma, whose
    estimates the offsets push around; the covariance itself has the ladder structure."""
    wls, gls = [], []
    for k in range(10):
        rng = np.random.default_rng(100 + k)
        X, y, fam = _grid({0: 3, 2: 3, 5: 3}, rng)
        y = y * np.exp(rng.normal(0, 0.15 * _sigma(X[:, 0])))  # each run's own part: rho about 0.98
        sd = _sigma(X[:, 0])
        rho = np.full(len(y), 0.95)
        w = noise.fit_weighted(CHINCHILLA, X, y, FLOOR, None, sd)
        wls.append(w.params_array(w.theta)[2:])
        g = noise.fit_weighted(CHINCHILLA, X, y, FLOOR, None, sd, fam, rho)
        assert g.cov is not None and g.extra["noise_model"]["fit"].startswith("generalised")
        gls.append(g.params_array(g.theta)[2:])
    err_w, err_g = (np.sqrt(np.mean((np.array(e) - P[2:]) ** 2, axis=0)) for e in (wls, gls))
    assert np.all(err_g < err_w)
    assert err_g[1] < 0.5 * err_w[1]  # the D exponent most: it is read within ladders
    C = noise.ladder_cov(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 1.0]), ["a", "a", "b"], tau=0.1)
    assert C[0, 1] == pytest.approx(0.5 * 2.0) and C[0, 2] == 0 and C[2, 2] == pytest.approx(9.01)
    assert np.all(np.linalg.eigvalsh(noise.ladder_cov(np.ones(3), np.ones(3), ["a"] * 3)) > 0)  # rho capped
