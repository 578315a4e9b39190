"""Coverage: residual-bootstrap 95% intervals on data drawn from known laws with
multiplicative log-normal noise: a joint law with E fixed at the floor, and few-row
one-variable laws (6 points) with the floor fixed and with a free asymptote, where
resampling rows would break down.

Per case and per parameter, two checks over DRAWS independent data sets:

- coverage, two-sided: the share of draws whose interval contains the true value lies in
  [0.85, 0.99]. With 200 draws and a true coverage of 0.93 to 0.95 the binomial chance
  of falling outside is below 0.5% either way; intervals that are too wide (coverage 1)
  fail the upper side.
- width: the median interval width over 3.92 standard deviations of the point estimates
  across draws (the width a normal interval at the true sampling spread would have) lies
  in [0.6, 1.6]. Student-t intervals on 4 or 3 degrees of freedom are expected at about
  1.3 to 1.5; coverage bought by wild widths, or intervals far narrower than the real
  spread, fail. Scale parameters (A, B) are compared in log.

Percentile intervals from 60 to 100 resamples are a little noisier than the production
400, which if anything lowers coverage. About 40 s on 2 idle cores: marked slow.
"""
import numpy as np
import pytest
from joblib import Parallel, delayed

from harness.analysis._threads import blas_threads
from harness.analysis.forms import CHINCHILLA, POWER, fit_form, residual_bootstrap

SIGMA = 0.005  # about the committed CPU sweep's residual scale
DRAWS = 200
COVERAGE = (0.85, 0.99)
WIDTH_RATIO = (0.6, 1.6)
LOG_SCALE = ("A", "B")
CASES = {
    # name: (form, true reported params, E, fixed floor?, inputs, resamples)
    "chinchilla_fixed_floor": (CHINCHILLA, {"A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}, 1.8, True,
                               np.column_stack([a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 5),
                                                                               np.geomspace(1e9, 1e12, 5))]), 100),
    # the committed CPU sweep's L(N): six sizes, 0.14 -> 0.007 nats above the asymptote
    "L_N_6_rows_fixed_floor": (POWER, {"A": 72.0, "alpha": 0.7}, 1.33, True, np.geomspace(6.6e3, 4e5, 6)[:, None], 60),
    "L_N_6_rows_free_asymptote": (POWER, {"A": 72.0, "alpha": 0.7}, 1.33, False, np.geomspace(6.6e3, 4e5, 6)[:, None],
                                  60),
}


def _truth(case: str) -> dict:
    _, p, E, fixed, *_ = CASES[case]
    return dict(p) if fixed else {"E": E, **p}


def _one_draw(case: str, seed: int) -> np.ndarray:
    """(3, k): point estimate, interval low, interval high, per true parameter."""
    form, p, E, fixed, X, R = CASES[case]
    rng = np.random.default_rng(1000 + seed)
    y = form.loss(np.array(list(p.values())), E, X)[0] * np.exp(rng.normal(0, SIGMA, len(X)))
    with blas_threads(1):  # tiny problems: BLAS threads cost more than they give (see _threads)
        fit = residual_bootstrap(fit_form(form, X, y, E if fixed else None), R, seed=seed)
    ci, est = fit.ci95(), fit.params
    return np.array([[est[k], *ci[k]] for k in _truth(case)]).T


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_residual_bootstrap_intervals_cover_the_truth_at_the_right_width(case):
    truth = _truth(case)
    d = np.array(Parallel(n_jobs=2)(delayed(_one_draw)(case, s) for s in range(DRAWS)))  # (draws, 3, k)
    v = np.array(list(truth.values()))
    covered = ((d[:, 1] <= v) & (v <= d[:, 2])).mean(0)
    logs = np.array([k in LOG_SCALE for k in truth])
    t = np.where(logs, np.log(d), d)
    ratio = np.median(t[:, 2] - t[:, 1], axis=0) / (3.92 * t[:, 0].std(axis=0, ddof=1))
    print(f"{case}: coverage {dict(zip(truth, covered.round(3)))}, width ratio {dict(zip(truth, ratio.round(2)))}")
    for k, c, r in zip(truth, covered, ratio):
        assert COVERAGE[0] <= c <= COVERAGE[1], (k, c)
        assert WIDTH_RATIO[0] <= r <= WIDTH_RATIO[1], (k, r)
