"""Per-skill probes in the analysis: sigmoid fits, sharpness, learning order, the
prediction check, and harness-fit on synthetic records with and without probes."""
import json
import math

import numpy as np
import pytest
from conftest import toy_record

from harness.analysis import fit_results_dir
from harness.analysis.cli import main
from harness.analysis.probes import (SHARP, bucket_fits, envelope_crossing, fit_sigmoid, learning_order,
                                     largest_step_share, sharpness, sigmoid, tail_mass)
from harness.records import write_record

MASS = np.array([0.55, 0.25, 0.12, 0.05, 0.02, 0.01])
NAMES = [f"ranks {4 ** b}-{4 ** (b + 1) - 1}" for b in range(len(MASS))]
E, A, ALPHA, B, BETA = 1.2, 40.0, 0.4, 100.0, 0.35
# quantization-model thresholds: bucket b is learned when the aggregate loss falls below
# L*_b = THR_A + THR_C * tail_b (tail: mass of rarer buckets plus half its own)
THR_A, THR_C = 1.55, 1.5


def _loss(N, D):
    return E + A / N ** ALPHA + B / D ** BETA


def _probes(L, rng):
    tail = tail_mass(MASS)
    out = []
    for b, name in enumerate(NAMES):
        acc = 0.01 + 0.98 / (1 + np.exp(-40 * (THR_A + THR_C * tail[b] - L)))
        acc = float(np.clip(acc + rng.normal(0, 0.005), 0, 1))
        lp = float(np.log(0.004 + 0.99 * acc))
        out.append({"bucket": name, "mass": float(MASS[b]), "n": 500, "loss": -lp + 0.3, "accuracy": acc,
                    "logprob": lp})
    return out


def _record(N, D, rng, probes=True):
    config = {"model": {"n": float(N)}, "data": {"source": "zipf_facts", "tokens": float(D)}, "train": {"seed": 0}}
    tokens = D * np.linspace(0.1, 1.0, 8)
    val = _loss(N, tokens) * np.exp(rng.normal(0, 0.002, len(tokens)))
    curve = [{"tokens": int(t), "flops": 6.0 * N * t, "train_loss": float(v), "val_loss": float(v)}
             for t, v in zip(tokens, val)]
    rec = toy_record(config, N, D, curve)
    if probes:
        for p in curve:
            p["probes"] = _probes(p["val_loss"], rng)
        rec["probes"] = {"kind": "facts", "buckets": NAMES, "mass": MASS.tolist(), "final": curve[-1]["probes"],
                         "time_s": 0.1, "time_fraction": 0.01}
    return rec


def _sweep(root, probes=True, sizes=np.geomspace(1e4, 1e6, 6), Ds=(3e6, 1e8)):
    rng = np.random.default_rng(0)
    for N in sizes:
        for D in Ds:
            write_record(_record(N, D, rng, probes), root)
    return root / "toy"


# -- pure pieces -----------------------------------------------------------------------

@pytest.mark.parametrize("x10,x90,lo,hi", [(4.6, 5.4, 0.0, 1.0), (4.2, 5.9, 0.05, 0.9), (3.9, 4.3, 0.1, 0.6)])
def test_sharpness_is_the_10_to_90_width(x10, x90, lo, hi):
    """A logistic rise written by its 10% and 90% points (not through ``sigmoid``):
    lo + (hi - lo) / (1 + 9^-((2x - x10 - x90) / (x90 - x10))). Fitted, its sharpness is
    x90 - x10, and the fitted curve passes 10% and 90% of the way at x10 and x90."""
    from scipy.optimize import brentq

    x = np.linspace(3.0, 7.0, 41)
    y = lo + (hi - lo) / (1 + 9.0 ** -((2 * x - x10 - x90) / (x90 - x10)))
    p = fit_sigmoid(x, y)
    assert float(sharpness(p["k"])) == pytest.approx(x90 - x10, rel=1e-6)
    frac = lambda v, q: (sigmoid(v, p["lo"], p["hi"], p["k"], p["m"]) - p["lo"]) / (p["hi"] - p["lo"]) - q  # noqa: E731
    assert brentq(frac, 3.0, 7.0, args=(0.1,)) == pytest.approx(x10, abs=1e-6)
    assert brentq(frac, 3.0, 7.0, args=(0.9,)) == pytest.approx(x90, abs=1e-6)
    assert bucket_fits(x, y, n_boot=0)["sharpness_decades"] == pytest.approx(x90 - x10, rel=1e-6)


@pytest.mark.parametrize("true", [dict(lo=0.02, hi=0.95, k=4.0, m=4.8), dict(lo=0.0, hi=1.0, k=12.0, m=5.3),
                                  dict(lo=0.1, hi=0.7, k=1.5, m=4.5)])
def test_sigmoid_fit_recovers_known_parameters(true):
    rng = np.random.default_rng(1)
    x = np.linspace(3.5, 6.5, 16)
    y = np.clip(sigmoid(x, **true) + rng.normal(0, 0.005, len(x)), 0, 1)
    p = fit_sigmoid(x, y)
    assert p["m"] == pytest.approx(true["m"], abs=0.03)
    assert p["k"] == pytest.approx(true["k"], rel=0.1)
    assert p["lo"] == pytest.approx(true["lo"], abs=0.02) and p["hi"] == pytest.approx(true["hi"], abs=0.02)


def test_bucket_flags_unidentified_rises():
    x = np.log10(np.geomspace(1e4, 1e6, 6))
    assert bucket_fits(x, np.full(6, 0.99), n_boot=0)["status"] == "learned at every size"
    never = bucket_fits(x, np.full(6, 0.01), n_boot=0)
    assert never["status"] == "not learned in range" and not never["identified"]
    # a jump between two adjacent sizes: no size inside the rise, so only an upper bound
    jump = bucket_fits(x, np.array([0.01, 0.01, 0.01, 0.98, 0.99, 0.99]), n_boot=0)
    assert jump["status"] == "learned in range" and not jump["identified"] and jump["sharpness_bound"] == "upper"
    assert jump["sharpness_upper_decades"] == pytest.approx(x[3] - x[2])
    # a resolved rise
    smooth = bucket_fits(x, sigmoid(x, 0.02, 0.98, 3.0, 5.0), n_boot=0)
    assert smooth["identified"] and smooth["sharpness_decades"] == pytest.approx(SHARP / 3.0, rel=0.05)


def test_bucket_intervals_contain_the_true_rise():
    """Noisy accuracies around a known rise (m = 5, k = 3 per decade): the bootstrap
    intervals of the midpoint and the sharpness contain the true values, and are
    narrower than the sampled range."""
    x = np.log10(np.geomspace(1e4, 1e6, 12))
    y = np.clip(sigmoid(x, 0.02, 0.98, 3.0, 5.0) + np.random.default_rng(3).normal(0, 0.03, len(x)), 0, 1)
    f = bucket_fits(x, y, n_boot=200)
    assert f["identified"] and f["midpoint_log10N"] != 5.0
    lo, hi = f["ci95"]["midpoint_log10N"]
    assert lo < 5.0 < hi and hi - lo < 0.5, (lo, hi)
    lo, hi = f["ci95"]["sharpness_decades"]
    assert lo < SHARP / 3.0 < hi and hi - lo < 1.5, (lo, hi)


def test_envelope_crossing_and_step_share():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert envelope_crossing(x, np.array([0.1, 0.3, 0.7, 0.9]))["x"] == pytest.approx(2.5)
    assert envelope_crossing(x, np.array([0.6, 0.7, 0.8, 0.9]))["bound"] == "below"
    assert envelope_crossing(x, np.array([0.1, 0.2, 0.3, 0.4]))["bound"] == "above"
    assert largest_step_share(np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert largest_step_share(np.array([0.0, 1.0, 2.0, 3.0])) == pytest.approx(1 / 3)


def test_learning_order_frequent_first_and_reversed():
    mass = MASS
    first = [{"x": v, "bound": None} for v in (9.0, 10.0, 11.0, 12.0)] + [{"x": None, "bound": "above"}] * 2
    assert learning_order(mass, first)["spearman_rho"] == pytest.approx(1.0, abs=0.05)
    last = [{"x": v, "bound": None} for v in (15.0, 14.0, 13.0, 12.0, 11.0, 10.0)]
    assert learning_order(mass, last)["spearman_rho"] == pytest.approx(-1.0)
    tied = [{"x": None, "bound": "above"}] * 6
    assert learning_order(mass, tied)["spearman_rho"] is None


def test_tail_mass():
    np.testing.assert_allclose(tail_mass(np.array([0.5, 0.3, 0.2])), [0.75, 0.35, 0.1])
    np.testing.assert_allclose(tail_mass(np.array([0.2, 0.5, 0.3])), [0.1, 0.75, 0.35])


# -- end to end ------------------------------------------------------------------------

@pytest.mark.slow  # about 8 s: three probe figures and the full report
def test_harness_fit_with_probes_writes_figures_and_sharpness_table(tmp_path, capsys):
    folder = _sweep(tmp_path)
    out = tmp_path / "out"
    assert main([str(folder), "--out", str(out), "--resamples", "20", "--jobs", "1", "--no-skills"]) == 0
    capsys.readouterr()
    fit = json.loads((out / "fit.json").read_text())
    pr = fit["probes"]
    assert pr["kind"] == "facts" and pr["buckets"] == NAMES and pr["runs"] == 12
    assert pr["series"]["D"] == pytest.approx(1e8, rel=0.01) and len(pr["series"]["N"]) == 6
    rows = {r["bucket"]: r for r in pr["per_bucket"]}
    assert rows[NAMES[0]]["status"] == "learned at every size"
    assert any(r["status"] == "learned in range" for r in pr["per_bucket"])
    for r in pr["per_bucket"]:
        assert {"sigmoid", "sharpness_decades", "midpoint_N", "identified", "learned_at_C", "why"} <= set(r)
    # frequent buckets are learned first, by construction
    assert pr["learning_order"]["by_C"]["spearman_rho"] > 0.9
    # the thresholds follow the quantization model exactly, so the prediction lands
    p = pr["prediction"]
    assert p["testable"], p.get("reason")
    assert p["predicted_L_star"] == pytest.approx(THR_A + THR_C * tail_mass(MASS)[NAMES.index(p["next_bucket"])],
                                                  abs=0.02)
    assert abs(p["error_decades"]) < 0.1 and abs(p["error_L_star"]) < 0.02
    names = {f.name for f in (out / "figures").glob("probes_*.png")}
    assert names == {"probes_vs_size.png", "probes_vs_compute.png", "probes_order.png"}
    report = (out / "report.md").read_text()
    assert "## Skills next to loss" in report and "10→90% width" in report
    for name in NAMES:
        assert f"| {name} |" in report
    assert "](figures/probes_vs_size.png)" in report and "Spearman" in report


def test_records_without_probes_skip_cleanly(tmp_path):
    folder = _sweep(tmp_path, probes=False)
    res = fit_results_dir(folder, tmp_path / "out", n_resamples=5, n_jobs=1)
    assert res["fit"]["probes"] is None
    assert not list((tmp_path / "out" / "figures").glob("probes_*"))
    assert "Skills next to loss" not in res["report"].read_text()


def test_prediction_not_testable_with_few_sizes(tmp_path):
    folder = _sweep(tmp_path, sizes=np.geomspace(1e4, 1e6, 4))
    res = fit_results_dir(folder, tmp_path / "out", n_resamples=5, n_jobs=1, figures=False, skills=False)
    p = res["fit"]["probes"]["prediction"]
    assert not p["testable"] and "not testable on this sweep" in p["reason"]
    assert "not testable on this sweep" in res["report"].read_text()
