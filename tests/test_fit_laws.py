"""Closed-form checks of the pure pieces: law gradients, the grid's NNLS, compute-optimal
allocation, IsoFLOP parabolas, envelopes, and recovery of known parameters."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar, nnls

from harness.analysis import compute_optimal as co
from harness.analysis.errors import AnalysisWarning
from harness.analysis.fit import (Grid, Objective, bootstrap, bootstrap_all, fit_law, huber, local_minima,
                                  nnls_small, objective)
from harness.analysis.frontier import best_per_value, compute_frontier, envelope_by, lower_envelope, thin_log
from harness.analysis.isoflop import fit_isoflop, parabola_vertex
from harness.analysis.laws import CHINCHILLA, KAPLAN, L_N

TRUE = dict(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)


def _grid_data(nN=8, nD=8, sigma=0.0, seed=0, params=TRUE):
    rng = np.random.default_rng(seed)
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, nN), np.geomspace(1e9, 1e12, nD)))
    X = np.column_stack([N, D])
    y = CHINCHILLA.predict(CHINCHILLA.theta_from_params(**params), X) * np.exp(rng.normal(0, sigma, len(N)))
    return X, y


# -- laws ------------------------------------------------------------------------------

def test_law_values_match_their_formulas():
    X, _ = _grid_data(3, 3)
    N, D = X[:, 0], X[:, 1]
    p = TRUE
    np.testing.assert_allclose(CHINCHILLA.predict(CHINCHILLA.theta_from_params(**p), X),
                               p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"], rtol=1e-12)
    th = np.array([np.log(6.4e13), np.log(1.8e13), 0.076, 0.103])  # Kaplan et al. eq. 1.5
    np.testing.assert_allclose(KAPLAN.predict(th, X), ((6.4e13 / N) ** (0.076 / 0.103) + 1.8e13 / D) ** 0.103,
                               rtol=1e-12)
    assert KAPLAN.params(th) == pytest.approx({"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103})
    th = L_N.theta_from_params(E=1.7, A=300.0, alpha=0.3)
    np.testing.assert_allclose(L_N.predict(th, N), 1.7 + 300.0 * N ** -0.3, rtol=1e-12)


@pytest.mark.parametrize("law,theta", [
    (CHINCHILLA, np.array([np.log(480), np.log(2100), np.log(1.8), 0.35, 0.37])),
    (KAPLAN, np.array([np.log(6.4e13), np.log(1.8e13), 0.076, 0.103])),
    (L_N, np.array([np.log(300), np.log(1.7), 0.3])),
])
def test_gradients_match_finite_differences(law, theta):
    X, y = _grid_data(4, 4, sigma=0.05)
    lx = np.log(X[:, :law.n_inputs]) - np.log(X[:, :law.n_inputs]).mean(0)
    ly, w = np.log(y), np.arange(1.0, len(y) + 1)
    lp, jac = law.log_pred_grad(theta, lx)
    np.testing.assert_allclose(lp, law.log_pred(theta, lx), rtol=1e-12)
    f, g = objective(theta, law, lx, ly, w, delta=0.05)  # a delta the residuals straddle
    eps = 1e-6
    num = [(objective(theta + eps * e, law, lx, ly, w, 0.05)[0] - objective(theta - eps * e, law, lx, ly, w, 0.05)[0])
           / (2 * eps) for e in np.eye(len(theta))]
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("law,theta", [
    (CHINCHILLA, np.array([np.log(480), np.log(2100), np.log(1.8), 0.35, 0.37])),
    (KAPLAN, np.array([np.log(6.4e13), np.log(1.8e13), 0.076, 0.103])),
    (L_N, np.array([np.log(300), np.log(1.7), 0.3])),
])
@pytest.mark.parametrize("delta", [1e-3, 0.05, 10.0])
def test_fast_objective_matches_the_reference(law, theta, delta):
    """The optimizer's Objective (design matrix or Jacobian-vector product) is the
    summed Huber objective over delta^2, to rounding."""
    X, y = _grid_data(4, 4, sigma=0.05)
    lx = np.log(X[:, :law.n_inputs]) - np.log(X[:, :law.n_inputs]).mean(0)
    ly, w = np.log(y), np.arange(1.0, len(y) + 1) % 3
    f, g = Objective(law, lx, ly, w, delta)(theta)
    f0, g0 = objective(theta, law, lx, ly, w, delta)
    assert f * delta ** 2 == pytest.approx(f0, rel=1e-12)
    np.testing.assert_allclose(g * delta ** 2, g0, rtol=1e-10, atol=1e-14 * np.abs(g0).max())


def test_recenter_is_exact():
    X, _ = _grid_data(3, 3)
    c = np.log(X).mean(0)
    for law, th in [(CHINCHILLA, np.array([1.0, 2.0, 0.5, 0.3, 0.4])), (KAPLAN, np.array([2.0, 3.0, 0.1, 0.2])),
                    (L_N, np.array([1.0, 0.5, 0.3]))]:
        lx = np.log(X[:, :law.n_inputs])
        np.testing.assert_allclose(law.log_pred(law.recenter(th, c[:law.n_inputs]), lx),
                                   law.log_pred(th, lx - c[:law.n_inputs]), rtol=1e-12)


def test_huber_matches_scipy():
    from scipy.special import huber as sp_huber

    r = np.linspace(-0.01, 0.01, 41)
    np.testing.assert_allclose(huber(r, 1e-3)[0], sp_huber(1e-3, r), rtol=1e-12, atol=1e-18)


# -- the grid --------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 3))
def test_nnls_small_matches_scipy(seed, k):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(12, k)) * rng.uniform(0.1, 10, size=k)
    b = rng.normal(size=12)
    c, rss = nnls_small((A.T @ A)[None], (A.T @ b)[None], np.array([b @ b]))
    ref, rnorm = nnls(A, b)
    assert rss[0] == pytest.approx(rnorm ** 2, rel=1e-6, abs=1e-9)
    # a coefficient the exact solution drops is floored at a negligible size, not 0
    np.testing.assert_allclose(A @ c[0], A @ ref, rtol=1e-5, atol=1e-5)


def test_local_minima_on_a_known_surface():
    x = np.linspace(-2, 2, 21)
    xx, yy = np.meshgrid(x, x, indexing="ij")
    f = np.minimum((xx - 1) ** 2 + (yy - 1) ** 2, (xx + 1) ** 2 + (yy + 1) ** 2 + 0.5)
    idx = local_minima(f.ravel(), f.shape)
    assert len(idx) == 2
    assert (xx.ravel()[idx[0]], yy.ravel()[idx[0]]) == pytest.approx((1, 1))
    assert (xx.ravel()[idx[1]], yy.ravel()[idx[1]]) == pytest.approx((-1, -1))


def test_reweighted_grid_ignores_an_outlier():
    """Noise-free Chinchilla data at exponents on the grid, with one wild point: least
    squares at the true exponents is pulled off the true coefficients; the Huber
    reweighting steps (weights delta/|r| for large residuals) put them back."""
    X, _ = _grid_data(5, 5)
    lx = np.log(X) - np.log(X).mean(0)
    grid = Grid(CHINCHILLA, lx, np.ones(len(X)))
    g = int(np.argmin(np.abs(grid.points - [0.35, 0.37]).sum(1)))
    al, be = grid.points[g]
    y = 1.8 + 480.0 / X[:, 0] ** al + 2100.0 / X[:, 1] ** be
    y[3] *= 1.5
    grid = Grid(CHINCHILLA, lx, y)
    true = CHINCHILLA.recenter(CHINCHILLA.theta_from_params(1.8, 480.0, 2100.0, al, be)[None], -np.log(X).mean(0))[0]
    w = np.ones((len(y), 1))
    ls = grid.thetas(grid.solve(w, irls_steps=0)[0], [g])[0]
    hub = grid.thetas(grid.solve(w)[0], [g])[0]
    err = lambda th: np.abs(np.exp(th[:3] - true[:3]) - 1).max()
    assert err(ls) > 0.05
    assert err(hub) < err(ls) / 10


# -- fits ------------------------------------------------------------------------------

def test_noise_free_chinchilla_is_recovered_exactly():
    X, y = _grid_data(6, 6)
    fit = fit_law(CHINCHILLA, X, y)
    for k, v in TRUE.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-4), k
    assert fit.r2_log > 0.999999
    assert fit.starts_agreeing >= 2


def test_noisy_chinchilla_is_recovered_within_its_intervals():
    X, y = _grid_data(8, 8, sigma=0.005, seed=3)
    fit = bootstrap(fit_law(CHINCHILLA, X, y), n_resamples=100, seed=0)
    ci = fit.ci95()
    for k, v in TRUE.items():
        assert fit.params[k] == pytest.approx(v, rel=0.15 if k in "AB" else 0.03), k
        assert ci[k][0] < fit.params[k] < ci[k][1]
    assert fit.params["beta"] / (fit.params["alpha"] + fit.params["beta"]) == pytest.approx(0.37 / 0.72, abs=0.02)


def test_kaplan_form_is_recovered():
    X, _ = _grid_data(6, 6)
    th = np.array([np.log(6.4e13), np.log(1.8e13), 0.076, 0.103])
    y = KAPLAN.predict(th, X)
    fit = fit_law(KAPLAN, X, y)
    assert fit.params["alpha_N"] == pytest.approx(0.076, rel=1e-3)
    assert fit.params["alpha_D"] == pytest.approx(0.103, rel=1e-3)
    assert fit.params["N_c"] == pytest.approx(6.4e13, rel=0.02)


def test_bootstrap_is_deterministic_and_worker_independent():
    X, y = _grid_data(4, 4, sigma=0.02, seed=1)
    a = bootstrap(fit_law(L_N, X[:, 0], y), n_resamples=64, seed=7, n_jobs=1).boot_thetas
    b = bootstrap(fit_law(L_N, X[:, 0], y), n_resamples=64, seed=7, n_jobs=1).boot_thetas
    np.testing.assert_array_equal(a, b)
    # several laws through one pool of two workers: the same numbers, law by law
    fits = [fit_law(L_N, X[:, 0], y), fit_law(CHINCHILLA, X, y)]
    bootstrap_all(fits, n_resamples=64, seed=7, n_jobs=2)
    np.testing.assert_array_equal(fits[0].boot_thetas, a)
    np.testing.assert_array_equal(fits[1].boot_thetas, bootstrap(fit_law(CHINCHILLA, X, y), 64, 7, 1).boot_thetas)


def test_log_e_floor_stops_the_crawl_to_zero():
    """Data with no constant term: E's optimum is 0, at log E = -inf. The fit ends with
    a negligible E, never below the floor (a term of 2e-9 of the smallest loss)."""
    from harness.analysis.laws import NEGLIGIBLE_LOG

    X, _ = _grid_data(5, 5)
    y = 480.0 / X[:, 0] ** 0.35 + 2100.0 / X[:, 1] ** 0.37
    fit = fit_law(CHINCHILLA, X, y)
    assert np.log(y.min()) - NEGLIGIBLE_LOG - 1e-9 <= np.log(fit.params["E"]) < np.log(y.min()) - 15
    assert fit.params["alpha"] == pytest.approx(0.35, rel=1e-4)
    assert fit.params["beta"] == pytest.approx(0.37, rel=1e-4)


# -- compute-optimal -------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(st.floats(0.2, 0.6), st.floats(0.2, 0.6), st.floats(50, 5000), st.floats(50, 5000), st.floats(1e18, 1e25))
def test_compute_optimal_matches_brute_force(alpha, beta, A, B, C):
    def loss(logn):
        n = np.exp(logn)
        return A / n ** alpha + B / (C / (6 * n)) ** beta

    res = minimize_scalar(loss, bounds=(np.log(1e2), np.log(C / 6 / 1e2)), method="bounded",
                          options={"xatol": 1e-10})
    n_opt, d_opt = co.optimal_nd(C, A, B, alpha, beta)
    assert np.log(n_opt) == pytest.approx(res.x, abs=1e-4)
    assert n_opt * d_opt * 6 == pytest.approx(C, rel=1e-10)
    a, b, G = co.allocation(A, B, alpha, beta)
    assert a + b == pytest.approx(1.0)
    assert a == pytest.approx(beta / (alpha + beta))
    assert G == pytest.approx((alpha * A / (beta * B)) ** (1 / (alpha + beta)))


def test_compute_optimal_summary_intervals():
    p = dict(TRUE)
    boot = np.array([[1.8, 480, 2100, 0.35, 0.37], [1.8, 400, 2500, 0.33, 0.39], [1.8, 520, 1900, 0.36, 0.36]])
    out = co.summarize(p, boot, co.budgets(1e18, 1e20))
    assert out["a"] == pytest.approx(0.37 / 0.72)
    assert out["ci95"]["a"][0] <= out["a"] <= out["ci95"]["a"][1]
    row = next(r for r in out["at_compute"] if r["label"] == "sweep max")
    assert row["C"] == 1e20
    assert row["tokens_per_param"] == pytest.approx(row["D_opt"] / row["N_opt"])
    assert set(row["ci95"]) == {"N_opt", "D_opt", "tokens_per_param"}


# -- IsoFLOP ---------------------------------------------------------------------------

def test_parabola_recovers_a_known_vertex():
    x = np.log(np.geomspace(1e6, 1e8, 7))
    x0 = np.log(3e7)
    v = parabola_vertex(x, 2.0 + 0.05 * (x - x0) ** 2)
    assert np.exp(v["lnN_opt"]) == pytest.approx(3e7, rel=1e-8)
    assert v["loss_opt"] == pytest.approx(2.0)


def test_isoflop_recovers_the_chinchilla_exponent():
    rows = []
    for C in (1e18, 1e19, 1e20, 1e21):
        n_star = co.optimal_nd(C, TRUE["A"], TRUE["B"], TRUE["alpha"], TRUE["beta"])[0]
        for n in n_star * np.geomspace(0.25, 4, 9):
            rows.append((n, C))
    N, C = map(np.array, zip(*rows))
    L = CHINCHILLA.predict(CHINCHILLA.theta_from_params(**TRUE), np.column_stack([N, C / (6 * N)]))
    out = fit_isoflop(N, L, C)
    assert out["n_budgets_used"] == 4 and not out["warnings"]
    # the loss is not exactly a parabola in ln N, so the vertex is close, not exact
    assert out["a"] == pytest.approx(0.37 / 0.72, abs=0.01)
    for b in out["budgets"]:
        n_star = co.optimal_nd(b["C"], TRUE["A"], TRUE["B"], TRUE["alpha"], TRUE["beta"])[0]
        assert b["N_opt"] == pytest.approx(n_star, rel=0.1)
        assert b["in_range"]


def test_isoflop_warns_when_the_optimum_is_outside_the_sampled_range():
    N = np.geomspace(1e6, 1e7, 5)
    rows_N = np.concatenate([N, N * 10])
    C = np.repeat([1e18, 1e19], 5)
    L = np.concatenate([0.05 * (np.log(N) - np.log(3e7)) ** 2 + 2,  # vertex at 3e7, sampled up to 1e7
                        0.05 * (np.log(N * 10) - np.log(3e7)) ** 2 + 2])
    with pytest.warns(AnalysisWarning, match="outside the sampled range"):
        out = fit_isoflop(rows_N, L, C)
    assert out["budgets"][0]["in_range"] is False
    assert out["budgets"][1]["in_range"] is True
    assert any("outside" in w for w in out["warnings"])


def test_no_isoflop_groups_gives_none():
    assert fit_isoflop(np.ones(5), np.ones(5), np.full(5, np.nan)) is None


# -- envelopes -------------------------------------------------------------------------

def test_lower_envelope_on_hand_made_points():
    x = np.array([1, 2, 2, 3, 4, 5, 6])
    y = np.array([5, 4, 3, 3.5, 2, 2, 1])
    assert lower_envelope(x, y).tolist() == [0, 2, 4, 6]


def test_best_per_value_and_envelope_by():
    N = np.array([10, 10, 20, 20, 40, 40.2])
    L = np.array([3.0, 2.5, 2.4, 2.2, 2.3, 2.1])
    assert best_per_value(N, L).tolist() == [1, 3, 5]
    assert envelope_by(N, L).tolist() == [1, 3, 5]
    L2 = np.array([3.0, 2.0, 2.4, 2.2, 2.3, 2.1])  # size 20 no better than size 10
    assert envelope_by(N, L2).tolist() == [1]


def test_compute_frontier_on_hand_made_curves():
    # two runs: a small model that is better early, a big one that wins later
    small = {"id": "s", "N": 1.0, "D": 100.0, "tokens": np.array([10, 50, 100.0]), "loss": np.array([3.0, 2.5, 2.4])}
    big = {"id": "b", "N": 10.0, "D": 100.0, "tokens": np.array([5, 10, 50, 100.0]), "loss": np.array([3.5, 2.6, 2.0, 1.8])}
    for cv in (small, big):
        cv["C"] = 6 * cv["N"] * cv["tokens"]
    fr = compute_frontier([small, big], min_fraction=0.1, per_decade=None)
    # C: small 60, 300, 600; big (5 tokens < 10% of D: dropped) 600, 3000, 6000
    assert fr["C"].tolist() == [60, 300, 600, 3000, 6000]
    assert fr["loss"].tolist() == [3.0, 2.5, 2.4, 2.0, 1.8]
    assert fr["run"].tolist() == [0, 0, 0, 1, 1]
    thinned = compute_frontier([small, big], min_fraction=0.1, per_decade=1)
    assert thinned["C"].tolist() == [60, 600, 6000]  # lowest loss per decade


def test_thin_log_keeps_lowest_point_per_bin():
    x = np.array([1.0, 2.0, 5.0, 11.0, 50.0])
    y = np.array([3.0, 2.0, 2.5, 1.9, 1.8])
    assert thin_log(x, y, per_decade=1).tolist() == [1, 4]
