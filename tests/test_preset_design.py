"""The cpu preset's design, tested: runs repeating an (N, D) give the run-to-run spread that the
bootstrap intervals and harness-predict use; the held-out floor recorded at training
time; the lr rule resolver; grid points that collapse into one run are refused."""
import numpy as np
import pytest

from harness.analysis.forms import CHINCHILLA, fit_form, residual_bootstrap
from harness.analysis.pipeline import replicate_noise
from harness.analysis.predict import predict
from harness.analysis.table import Table, known_floor
from harness.cli import CONFIG_DIR
from harness import records
from harness.config import ConfigError, make_config, register_configs, to_container
from harness.data.synthetic import heldout_bayes_loss
from harness.sweep import plan
from harness.train import train

P = np.array([480.0, 2100.0, 0.35, 0.37])


def _table(loss, N, D):
    n = len(loss)
    return Table(N=np.asarray(N, float), D=np.asarray(D, float), C=6.0 * np.asarray(N) * np.asarray(D),
                 loss=np.asarray(loss, float), ids=list(range(n)), budget=np.full(n, np.nan), curves=[],
                 entropy_floor=[], conventions={}, source={})


def test_replicate_noise_is_the_pooled_within_group_spread():
    # two (N, D) points with 3 and 2 runs, one point alone (no information about noise)
    loss = [2.0, 2.1, 2.2, 3.0, 3.3, 5.0]
    t = _table(loss, [1, 1, 1, 2, 2, 3], [10, 10, 10, 10, 10, 10])
    a, b = np.log([2.0, 2.1, 2.2]), np.log([3.0, 3.3])
    ss = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
    got = replicate_noise(t)
    assert got["dof"] == 3 and got["groups"] == 2 and got["runs"] == 5
    assert got["sigma_log"] == pytest.approx(np.sqrt(ss / 3), rel=1e-12)
    assert got["max_range_log"] == pytest.approx(np.log(3.3 / 3.0))
    assert replicate_noise(_table([1.0, 2.0, 3.0], [1, 2, 3], [1, 1, 1])) is None


def test_bootstrap_never_assumes_less_noise_than_the_replicates_show():
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 5), np.geomspace(1e9, 1e12, 5)))
    X = np.column_stack([N, D])
    y = CHINCHILLA.loss(P, 1.8, X)[0] * np.exp(np.random.default_rng(0).normal(0, 1e-4, len(X)))
    plain = residual_bootstrap(fit_form(CHINCHILLA, X, y, 1.8), 60, seed=3)
    again = residual_bootstrap(fit_form(CHINCHILLA, X, y, 1.8), 60, seed=3, replicate_noise=None)
    np.testing.assert_array_equal(plain.boot, again.boot)  # no replicates: the same stream as before
    noisy = residual_bootstrap(fit_form(CHINCHILLA, X, y, 1.8), 60, seed=3, replicate_noise=(5e-3, 10))
    width = lambda f: np.subtract(*np.percentile(f.boot[:, -2], [97.5, 2.5]))  # noqa: E731 (alpha)
    assert width(noisy) > 10 * width(plain)  # 5e-3 replicate noise against 1e-4 residuals


def test_predict_uses_the_larger_of_residual_and_replicate_noise():
    fit = {"selected": "chinchilla", "floor": {"value": 1.8},
           "laws": {"chinchilla": {"params": dict(zip(CHINCHILLA.names, P.tolist())), "fixed": {"E": 1.8},
                                   "noise_log": 1e-3, "bootstrap_params": [P.tolist()] * 20}}}
    base = predict(fit, 1e8, 1e10)
    lo, hi = base["interval"]
    assert np.log(hi / base["loss"]) == pytest.approx(1.959964 * 1e-3, rel=1e-6)
    fit["replicate_noise"] = {"sigma_log": 4e-3, "dof": 10, "used": True}
    wide = predict(fit, 1e8, 1e10)
    assert np.log(wide["interval"][1] / wide["loss"]) == pytest.approx(1.959964 * 4e-3, rel=1e-6)
    assert wide["noise_log"] == 4e-3 and "replicates" in wide["interval_method"]


def test_the_held_out_floor_is_recorded_at_training_time(tiny_cfg):
    rec = train(tiny_cfg(**{"data.tokens": 16 * 32 * 2, "data.probe_records": 0}))
    cfg = rec["config"]
    assert rec["heldout_floor"] == heldout_bayes_loss(cfg["data"], cfg["model"]["context"])
    assert rec["heldout_floor"] != rec["entropy_floor"]
    # the fit takes the recorded value; records without it are recomputed from the generator
    fake = dict(rec, heldout_floor=1.25)
    assert known_floor([fake], [rec["entropy_floor"]])[0] == 1.25
    old = {k: v for k, v in rec.items() if k != "heldout_floor"}
    assert known_floor([old], [rec["entropy_floor"]])[0] == pytest.approx(rec["heldout_floor"], rel=1e-11)


def test_the_cpu_presets_lr_is_its_rule_at_every_grid_point(tmp_path):
    register_configs()
    info = plan(CONFIG_DIR, ["sweep=cpu", f"results_dir={tmp_path}"])
    widths = {c.model.width for c in info["configs"]}
    assert len(widths) >= 4
    for c in info["configs"]:
        assert c.train.lr == pytest.approx(0.192 / c.model.width, rel=1e-12)
        assert c.model.depth == 2 and c.train.schedule == "wsd"
    seeds = {}
    for c in info["configs"]:
        seeds.setdefault((c.model.width, c.data.tokens), set()).add(c.train.seed)
    assert sum(len(s) >= 3 for s in seeds.values()) >= 3  # 3 seeds at >= 3 grid points
    steps = min(c.data.tokens // (c.train.batch_size * c.model.context) for c in info["configs"])
    assert steps >= 500
    # the record holds the resolved number: the same run as giving that lr outright
    c0 = info["configs"][0]
    given = make_config(to_container(c0), **{"train.lr": 0.192 / c0.model.width})
    assert records.run_id(to_container(given)) == info["run_ids"][0]


def test_grid_points_that_are_one_run_are_refused_before_any_compute(tmp_path):
    register_configs()
    with pytest.raises(ConfigError, match="are the same run"):
        plan(CONFIG_DIR, ["sweep=cpu", f"results_dir={tmp_path}", "model.width=16,32"])


def test_iso_width_centres_each_budgets_sizes_on_its_optimum():
    from harness.config import iso_width

    def n_of(w):
        return 2 * (12 * w * w + 13 * w) + 2 * w

    for C in (3e10, 1e11, 1e12):
        n_opt = (C / (6 * 100.0)) ** 0.5
        ws = [iso_width(C, k, 100.0, 2) for k in (-2, -1, 0, 1, 2)]
        assert ws == sorted(ws) and all(w % 2 == 0 for w in ws)
        # the middle size is the width nearest the optimum; the outer ones bracket it by ~x2 in N
        assert abs(n_of(ws[2]) / n_opt - 1) < 0.2
        assert n_of(ws[0]) < n_opt < n_of(ws[-1])
        assert 1.5 < n_opt / n_of(ws[0]) < 2.6 and 1.5 < n_of(ws[-1]) / n_opt < 2.6
