"""Coverage: residual-bootstrap 95% intervals should contain the true parameters at
least 90% of the time, on data drawn from known laws with multiplicative log-normal
noise, pooled over parameters and draws: a joint law with E fixed at the floor, and
few-row one-variable laws (6 points) with the floor fixed and with a free asymptote,
where resampling rows would break down.

Sizes are chosen for speed: percentile intervals from 60 to 100 resamples are a
little noisier than the production 400, which if anything lowers coverage. Measured
with 200 draws of 100 resamples: 93% for both six-row cases.
"""
import numpy as np
import pytest
from joblib import Parallel, delayed

from harness.analysis.forms import CHINCHILLA, POWER, fit_form, residual_bootstrap

SIGMA = 0.005  # about the committed CPU sweep's residual scale
CASES = {
    # name: (form, true reported params, E, fixed floor?, inputs, draws, resamples)
    "chinchilla_fixed_floor": (CHINCHILLA, {"A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}, 1.8, True,
                               np.column_stack([a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 5),
                                                                               np.geomspace(1e9, 1e12, 5))]), 30, 100),
    # the committed CPU sweep's L(N): six sizes, 0.14 -> 0.007 nats above the asymptote
    "L_N_6_rows_fixed_floor": (POWER, {"A": 72.0, "alpha": 0.7}, 1.33, True, np.geomspace(6.6e3, 4e5, 6)[:, None],
                               120, 60),
    "L_N_6_rows_free_asymptote": (POWER, {"A": 72.0, "alpha": 0.7}, 1.33, False, np.geomspace(6.6e3, 4e5, 6)[:, None],
                                  100, 60),
}


def _one_draw(case: str, seed: int) -> list[bool]:
    form, p, E, fixed, X, _, R = CASES[case]
    rng = np.random.default_rng(1000 + seed)
    y = form.loss(np.array(list(p.values())), E, X)[0] * np.exp(rng.normal(0, SIGMA, len(X)))
    fit = residual_bootstrap(fit_form(form, X, y, E if fixed else None), R, seed=seed)
    ci = fit.ci95()
    truth = dict(p) if fixed else {"E": E, **p}
    return [ci[k][0] <= v <= ci[k][1] for k, v in truth.items()]


@pytest.mark.parametrize("case", list(CASES))
def test_residual_bootstrap_intervals_cover_the_truth(case):
    draws = CASES[case][5]
    covered = np.array(Parallel(n_jobs=2)(delayed(_one_draw)(case, s) for s in range(draws)))
    print(f"{case}: pooled coverage {covered.mean():.3f}, per parameter {covered.mean(0).round(3)}")
    assert covered.mean() >= 0.90, covered.mean(0)
