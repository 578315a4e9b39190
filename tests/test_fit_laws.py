"""Closed-form checks of the pure pieces: the law forms, their fits, selection by
held-out error, compute-optimal allocation, IsoFLOP parabolas, envelopes and frontiers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from harness.analysis import compute_optimal as co
from harness.analysis import selection
from harness.analysis.errors import AnalysisWarning
from harness.analysis.forms import (CHINCHILLA, INTERACTION, JOINT, KAPLAN, POWER, PRODUCT, fit_form,
                                    residual_bootstrap)
from harness.analysis.frontier import (best_per_value, envelope_by, frontier_points, line_fit, lower_envelope)
from harness.analysis.isoflop import fit_isoflop, parabola_vertex

TRUE = dict(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
P_ADD = np.array([TRUE["A"], TRUE["B"], TRUE["alpha"], TRUE["beta"]])


def _grid(nN=6, nD=6):
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, nN), np.geomspace(1e9, 1e12, nD)))
    return np.column_stack([N, D])


def _data(form, p, E=1.8, nN=6, nD=6, sigma=0.0, seed=0):
    X = _grid(nN, nD)
    rng = np.random.default_rng(seed)
    return X, form.loss(np.asarray(p, float), E, X)[0] * np.exp(rng.normal(0, sigma, len(X)))


# -- forms -------------------------------------------------------------------------------

def test_forms_match_their_formulas():
    X = _grid(3, 3)
    N, D = X[:, 0], X[:, 1]
    np.testing.assert_allclose(CHINCHILLA.loss(P_ADD, 1.8, X)[0], 1.8 + 480 / N ** 0.35 + 2100 / D ** 0.37, rtol=1e-12)
    np.testing.assert_allclose(KAPLAN.loss(np.array([6.4e13, 1.8e13, 0.076, 0.103]), 0.5, X)[0],
                               0.5 + ((6.4e13 / N) ** (0.076 / 0.103) + 1.8e13 / D) ** 0.103, rtol=1e-12)
    g = 0.5
    np.testing.assert_allclose(INTERACTION.loss(np.append(P_ADD, g), 1.8, X)[0],
                               1.8 + ((480 / N ** 0.35) ** (1 / g) + (2100 / D ** 0.37) ** (1 / g)) ** g, rtol=1e-12)
    np.testing.assert_allclose(PRODUCT.loss(np.array([3e3, 0.2, 0.1]), 1.8, X)[0], 1.8 + 3e3 / (N ** 0.2 * D ** 0.1),
                               rtol=1e-12)
    np.testing.assert_allclose(POWER.loss(np.array([300.0, 0.3]), 1.7, N[:, None])[0], 1.7 + 300 * N ** -0.3,
                               rtol=1e-12)
    # interaction nests the additive form at gamma = 1 and tends to the max as gamma -> 0
    np.testing.assert_allclose(INTERACTION.loss(np.append(P_ADD, 1.0), 1.8, X), CHINCHILLA.loss(P_ADD, 1.8, X))
    np.testing.assert_allclose(INTERACTION.loss(np.append(P_ADD, 0.02), 0.0, X)[0],
                               np.maximum(480 / N ** 0.35, 2100 / D ** 0.37), rtol=0.02)


@pytest.mark.parametrize("name,p", [("chinchilla", P_ADD), ("kaplan", [6.4e13, 1.8e13, 0.076, 0.103]),
                                    ("interaction", [480.0, 2100.0, 0.35, 0.37, 0.5]), ("product", [3e3, 0.2, 0.1])])
@pytest.mark.parametrize("floor", [True, False])
def test_noise_free_forms_are_recovered(name, p, floor):
    form = JOINT[name]
    E = 0.5 if name == "kaplan" else 1.8
    X, y = _data(form, p, E)
    fit = fit_form(form, X, y, E if floor else None)
    assert fit.rms_log < 1e-6
    got = fit.params
    for k, v in zip(form.names, p):
        assert got[k] == pytest.approx(v, rel=0.05 if (not floor and k in ("A", "B", "N_c", "D_c")) else 2e-3), k
    if not floor:
        assert got["E"] == pytest.approx(E, rel=2e-3)


def test_residual_bootstrap_is_deterministic_and_keeps_every_point():
    X, y = _data(CHINCHILLA, P_ADD, sigma=0.01, nN=4, nD=4, seed=1)
    a = residual_bootstrap(fit_form(CHINCHILLA, X, y, 1.8), 30, seed=7).boot
    b = residual_bootstrap(fit_form(CHINCHILLA, X, y, 1.8), 30, seed=7).boot
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and len(np.unique(a[:, 2])) == 30
    f = residual_bootstrap(fit_form(POWER, X[:3, 0], y[:3], 1.8), 30)  # 3 points for 2 parameters
    assert f.boot is not None
    f = residual_bootstrap(fit_form(POWER, X[:2, 0], y[:2], 1.8), 30)
    assert f.boot is None and "2 points for 2 parameters" in f.extra["bootstrap_skipped"]


def test_residual_bootstrap_intervals_contain_the_truth():
    """One noisy draw (1% noise, 16 rows): every parameter's interval contains its true
    value and not the whole search range (coverage over many draws: test_fit_coverage)."""
    X, y = _data(CHINCHILLA, P_ADD, sigma=0.01, nN=4, nD=4, seed=1)
    fit = residual_bootstrap(fit_form(CHINCHILLA, X, y, 1.8), 100, seed=0)
    ci = fit.ci95()
    for k, v in zip(CHINCHILLA.names, P_ADD):
        assert ci[k][0] < v < ci[k][1], (k, ci[k], v)
        assert ci[k][1] / ci[k][0] < (10 if k in ("A", "B") else 2), (k, ci[k])


def test_an_intervals_monte_carlo_error_is_the_spread_over_bootstrap_seeds():
    """ci95_mc_sd, read off one bootstrap's draws, sizes how far the interval's endpoints
    move when the bootstrap is redrawn with another seed: over the four parameters' eight
    endpoints the two agree to within a factor of 2 on average, and both shrink with more draws."""
    X, y = _data(CHINCHILLA, P_ADD, sigma=0.01, nN=4, nD=4, seed=1)
    fit = fit_form(CHINCHILLA, X, y, 1.8)
    ends = np.array([[v for k in CHINCHILLA.names for v in residual_bootstrap(fit, 150, seed=s).ci95()[k]]
                     for s in range(10)])
    measured = ends.std(axis=0, ddof=1)
    est = residual_bootstrap(fit, 150, seed=99).ci95_mc_sd()
    estimated = np.array([v for k in CHINCHILLA.names for v in est[k]])
    ratio = np.exp(np.mean(np.log(estimated / measured)))
    assert 0.5 < ratio < 2.0, (ratio, estimated, measured)
    more = residual_bootstrap(fit, 600, seed=99).ci95_mc_sd()
    assert np.mean([v for k in CHINCHILLA.names for v in more[k]]) < 0.75 * estimated.mean()


# -- selection by held-out error ----------------------------------------------------------

def _selection(form, p, sigma=0.005, seed=0):
    X, y = _data(form, p, nN=6, nD=5, sigma=sigma, seed=seed)
    N, D = X[:, 0], X[:, 1]
    held, base = selection.refit_all(JOINT, N, D, 6 * N * D, y, list(range(len(y))), 1.8)
    scores = {k: selection.mean_error(v) for k, v in held.items()}
    return selection.select(scores, {k: len(f.names) for k, f in JOINT.items()}), held, base


def test_interaction_data_do_not_select_the_additive_form():
    """gamma = 0.5 (the drop bought by data depends on N), 0.5% noise."""
    sel, held, base = _selection(INTERACTION, [480.0, 2100.0, 0.35, 0.37, 0.5])
    assert sel != "chinchilla"
    assert held[sel]["top_C"]["reducible_error"] < held["chinchilla"]["top_C"]["reducible_error"]
    ex = selection.extrapolation(sel, held[sel], base, 1.8)
    assert all(e["passes"] for e in ex.values())


def test_additive_data_select_the_additive_form():
    sel, held, _ = _selection(CHINCHILLA, P_ADD)
    assert sel == "chinchilla", {k: selection.mean_error(v) for k, v in held.items()}


def test_select_breaks_near_ties_by_fewer_parameters():
    assert selection.select({"a": 0.100, "b": 0.095, "c": 0.2}, {"a": 3, "b": 5, "c": 1}) == "a"
    assert selection.select({"a": 0.100, "b": 0.05}, {"a": 3, "b": 5}) == "b"
    assert selection.select({"a": None}, {"a": 3}) is None


def test_holdouts_and_baselines_on_a_hand_made_grid():
    N = np.array([1, 2, 4, 1, 2, 4.0])
    D = np.array([10, 10, 10, 20, 20, 20.0])
    L = np.array([3.0, 2.5, 2.2, 2.8, 2.3, 2.0])
    m = selection.holdouts(N, D, 6 * N * D)
    assert m["largest_N"].tolist() == [False, False, True, False, False, True]
    assert m["largest_D"].tolist() == [False, False, False, True, True, True]
    assert m["top_C"].tolist() == [False, False, True, False, False, True]  # ceil(20% of 6); ties by position
    b = selection.baselines(N, D, L, m["largest_N"])
    assert b["best_trained"].tolist() == [2.3, 2.3]
    assert b["largest_N_same_D"].tolist() == [2.5, 2.3]
    assert np.isnan(selection.baselines(N, D, L, m["largest_D"])["largest_N_same_D"]).all()
    e = selection.errors(np.array([2.1, 1.9]), np.array([2.2, 2.0]), 1.5, 0.1)
    assert e["reducible_error"] == pytest.approx(np.mean([0.1 / 0.7, 0.1 / 0.5]))
    assert e["nats"] == pytest.approx(0.1) and e["gap_units"] == pytest.approx(1.0)


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
    assert a + b == pytest.approx(1.0) and a == pytest.approx(beta / (alpha + beta))
    # the numerical minimum on the surface agrees with the closed form
    num = co.numeric_n_opt(CHINCHILLA, np.array([[A, B, alpha, beta]]), C, (n_opt / 10, n_opt * 10))[0]
    assert num == pytest.approx(n_opt, rel=1e-3)


def test_compute_optimal_summary_numeric_and_none():
    P = {"A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37, "gamma": 0.5}
    truth = co.summarize("interaction", INTERACTION, P, None, (1e18, 1e20), (1e7, 1e10))
    assert 0.3 < truth["a"] < 0.7 and truth["ci95"] == {}
    # fitted to noisy data from that law, the bootstrap interval of a contains the true a
    X, y = _data(INTERACTION, list(P.values()), sigma=0.005, seed=0)
    fit = residual_bootstrap(fit_form(INTERACTION, X, y, 1.8), 40, seed=0)
    out = co.summarize("interaction", INTERACTION, fit.params, fit.boot_params(), (1e18, 1e20), (1e7, 1e10))
    lo, hi = out["ci95"]["a"]
    assert lo < truth["a"] < hi and hi - lo < 0.1, (lo, truth["a"], hi)
    assert out["a"] != truth["a"]  # noisy data: the estimate is off, the interval says by how much
    row = next(r for r in out["at_compute"] if r["label"] == "sweep max")
    assert row["N_opt"] * row["D_opt"] * 6 == pytest.approx(1e20)
    n_true = next(r for r in truth["at_compute"] if r["label"] == "sweep max")["N_opt"]
    assert row["ci95"]["N_opt"][0] < n_true < row["ci95"]["N_opt"][1]
    ch = co.summarize("chinchilla", CHINCHILLA, P, None, (1e18, 1e20), (1e7, 1e10))
    assert ch["a"] == pytest.approx(0.37 / 0.72)
    # the product form falls forever toward larger N at fixed C when alpha > beta: no optimum
    none = co.summarize("product", PRODUCT, {"A": 3e3, "alpha": 0.3, "beta": 0.1}, None, (1e18, 1e20), (1e7, 1e10))
    assert none["a"] is None and "larger N" in none["reason"]


def test_isoflop_agreement():
    co_ = {"a": 0.5, "ci95": {"a": [0.45, 0.55]}}
    assert co.agreement(co_, {"a": 0.52, "a_ci95": [0.5, 0.54]})["agree"] is True
    assert co.agreement(co_, {"a": 0.7, "a_ci95": [0.6, 0.8]})["agree"] is False
    assert co.agreement(co_, None) is None


# -- frontier ---------------------------------------------------------------------------

def test_frontier_points_and_dominance():
    C = np.array([1, 2, 3, 4, 5, 6.0])
    L = np.array([3.0, 2.9, 3.1, 2.5, 2.6, 2.0])
    N = np.array([1, 1, 2, 1, 2, 3.0])
    fr = frontier_points(C, L, N)
    assert fr["run"].tolist() == [0, 1, 3, 5] and fr["dominant_share"] == pytest.approx(0.75)


def test_line_fit_recovers_gamma():
    C = np.geomspace(1e10, 1e14, 9)
    fit = line_fit(C, 1.3 + 50 * C ** -0.25, 1.3)
    assert fit["gamma"] == pytest.approx(0.25, rel=1e-9) and fit["A"] == pytest.approx(50, rel=1e-9)
    noisy = line_fit(C, 1.3 + 50 * C ** -0.25 * np.exp(np.random.default_rng(0).normal(0, 0.03, 9)), 1.3)
    assert noisy["gamma_ci95"][0] < 0.25 < noisy["gamma_ci95"][1]


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
    L = CHINCHILLA.loss(P_ADD, TRUE["E"], np.column_stack([N, C / (6 * N)]))[0]
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


def test_intervals_cut_by_a_search_bound_are_flagged():
    X, y = _data(CHINCHILLA, P_ADD, sigma=0.01, nN=4, nD=4, seed=2)
    fit = residual_bootstrap(fit_form(CHINCHILLA, X, y, 1.8), 40, seed=0)
    assert fit.at_bound() == []
    fit.boot[:4, 2] = 5.0  # alpha at its upper search bound in 10% of the draws
    assert fit.at_bound() == ["alpha"]
