"""Coverage: bootstrap 95% intervals should contain the true parameters about 95% of the
time. Data are drawn from known Chinchilla parameters with multiplicative log-normal
noise; the assertion pools all five parameters over all draws.

Sizes are chosen for speed (the production default is 1000 resamples): percentile
intervals from 100 resamples are a little noisier, which if anything lowers coverage.
"""
import numpy as np
from joblib import Parallel, delayed

from harness.analysis.fit import bootstrap, fit_law
from harness.analysis.laws import CHINCHILLA

TRUE = dict(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
DRAWS, RESAMPLES, SIGMA = 30, 100, 0.02


def _one_draw(seed: int) -> list[bool]:
    rng = np.random.default_rng(1000 + seed)
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e9, 1e12, 6)))
    X = np.column_stack([N, D])
    y = CHINCHILLA.predict(CHINCHILLA.theta_from_params(**TRUE), X) * np.exp(rng.normal(0, SIGMA, len(N)))
    ci = bootstrap(fit_law(CHINCHILLA, X, y), n_resamples=RESAMPLES, seed=seed).ci95()
    return [ci[k][0] <= TRUE[k] <= ci[k][1] for k in CHINCHILLA.names]


def test_bootstrap_intervals_cover_the_truth():
    covered = np.array(Parallel(n_jobs=2)(delayed(_one_draw)(s) for s in range(DRAWS)))
    frac = covered.mean()
    print(f"pooled coverage {frac:.3f}; per parameter {dict(zip(CHINCHILLA.names, covered.mean(0).round(3)))}")
    assert frac >= 0.90, covered.mean(0)
