"""harness-compare on synthetic sweeps with a known compute multiplier, and its refusals."""
import json

import numpy as np
import pytest

from harness.analysis.compare import main
from harness.records import run_id, write_record

F, A, GAMMA = 1.5, 40.0, 0.12  # L(C) = F + A C^-gamma, the base law
DATA = {"source": "text", "path": "corpus.txt", "tokenizer_vocab": 2048, "eval_tokens": 65536, "seed": 0,
        "val_fraction": 0.05}


def _record(sweep, N, D, k, gamma, noise, rng, data=None, context=64):
    """A run whose final loss is the base law at k C (times log-normal noise)."""
    config = {"model": {"n": float(N), "context": context}, "data": {**(data or DATA), "tokens": float(D)},
              "train": {"seed": 0}, "sweep": sweep}
    C = 6.0 * int(N) * int(D)
    loss = float((F + A * (k * C) ** -gamma) * np.exp(rng.normal(0, noise)))
    return {"run_id": run_id(config), "sweep": sweep, "status": "ok", "config": config,
            "params_total": int(N * 1.2), "params_embedding": int(N * 0.2), "params_nonembedding": int(N),
            "tokens": int(D), "flops_6nd": C, "flops": 7.0 * C, "final_train_loss": loss, "final_val_loss": loss,
            "entropy_floor": F, "curve": [], "wall_time_s": 1.0, "tokens_per_s": 1.0, "mfu": None,
            "device": "cpu", "versions": {}}


def _sweep(root, name, k=1.0, gamma=GAMMA, seed=0, noise=0.004, **kw):
    """14 runs over three decades of compute, each its own C (so each is on the frontier
    unless noise hides it)."""
    rng = np.random.default_rng(seed)
    for C in np.geomspace(1e11, 1e14, 14):
        N = 0.1 * C ** 0.5
        write_record(_record(name, N, C / (6 * int(N)), k, gamma, noise, rng, **kw), root)
    return root / name


def _run(base, variant, out, capsys, resamples=300):
    rc = main([str(base), str(variant), "--out", str(out), "--resamples", str(resamples)])
    return rc, capsys.readouterr()


def test_half_compute_variant_is_a_shift_of_one_half(tmp_path, capsys):
    base, variant = _sweep(tmp_path, "base", seed=1), _sweep(tmp_path, "half", k=0.5, seed=2)
    out = tmp_path / "cmp"
    rc, cap = _run(base, variant, out, capsys)
    assert rc == 0, cap.err
    c = json.loads((out / "compare.json").read_text())
    m = c["multiplier"]
    lo, hi = m["geomean_ci95"]
    assert lo < 0.5 < hi and hi < 1, m  # covers the true k, excludes "no difference"
    assert m["geomean"] == pytest.approx(0.5, rel=0.25)
    d = c["exponent_difference"]
    assert d["ci95"][0] < 0 < d["ci95"][1]
    assert c["verdict"].startswith("shift:") and c["verdict"] in cap.out
    # the curve covers the shared loss range only, against the base's compute
    cur = m["curve"]
    assert min(cur["loss"]) == pytest.approx(c["shared_loss_range"][0])
    assert max(cur["loss"]) == pytest.approx(c["shared_loss_range"][1])
    assert len(cur["m"]) == len(cur["C_base"]) == len(cur["ci95_low"])
    assert all(a <= b for a, b in zip(cur["ci95_low"], cur["ci95_high"]))
    assert c["floor"]["value"] == F and c["bootstrap"]["used"] > 250
    md = (out / "compare.md").read_text()
    assert c["verdict"] in md and "compare_multiplier.png" in md
    assert sorted(c["figures"]) == ["figures/compare_frontiers.png", "figures/compare_multiplier.png"]
    assert all((out / f).stat().st_size > 10_000 for f in c["figures"])


def test_identical_variant_covers_one(tmp_path, capsys):
    base, variant = _sweep(tmp_path, "base", seed=3), _sweep(tmp_path, "same", seed=4)
    rc, cap = _run(base, variant, tmp_path / "cmp", capsys)
    assert rc == 0, cap.err
    c = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    lo, hi = c["multiplier"]["geomean_ci95"]
    assert lo < 1 < hi
    assert c["verdict"].startswith("no detectable difference")


def test_steeper_variant_is_a_slope_change(tmp_path, capsys):
    base, variant = _sweep(tmp_path, "base", seed=5), _sweep(tmp_path, "steep", gamma=0.16, k=0.02, seed=6)
    rc, cap = _run(base, variant, tmp_path / "cmp", capsys, resamples=200)
    assert rc == 0, cap.err
    c = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    d = c["exponent_difference"]
    assert d["ci95"][0] < 0.04 < d["ci95"][1] and d["ci95"][0] > 0
    assert c["verdict"].startswith("slope change:")
    m = c["multiplier"]["curve"]["m"]  # steeper: the multiplier grows with compute (falls with loss)
    assert m[0] > m[-1]


@pytest.mark.parametrize("change, what", [
    (dict(data={**DATA, "path": "other.txt"}), "different data source"),
    (dict(data={**DATA, "tokenizer_vocab": 4096}), "different tokenizer or vocabulary"),
    (dict(data={**DATA, "eval_tokens": 32768}), "held-out sets that differ"),
    (dict(context=128), "held-out sets that differ"),
])
def test_incomparable_sweeps_are_refused_in_one_line(tmp_path, capsys, change, what):
    base, variant = _sweep(tmp_path, "base"), _sweep(tmp_path, "other", **change)
    out = tmp_path / "cmp"
    rc, cap = _run(base, variant, out, capsys, resamples=10)
    assert rc == 2 and not out.exists()
    assert what in cap.err and len(cap.err.strip().splitlines()) == 1 and cap.out == ""


@pytest.mark.parametrize("bad", ["empty", "missing"])
def test_a_folder_without_records_is_refused(tmp_path, capsys, bad):
    base = _sweep(tmp_path, "base")
    variant = tmp_path / bad
    if bad == "empty":
        (variant / "runs").mkdir(parents=True)
    out = tmp_path / "cmp"
    for args in ((base, variant), (variant, base)):
        rc, cap = _run(*args, out, capsys, resamples=10)
        assert rc == 2 and not out.exists()
        assert len(cap.err.strip().splitlines()) == 1 and str(variant) in cap.err


def test_the_readme_comparison_of_wsd_against_cosine(tmp_path):
    """README: harness-compare results/cpu_v1 results/cpu_wsd (the old cosine grid and its WSD twin,
    the same lr and held-out set), on the committed records."""
    from pathlib import Path

    from harness.analysis.compare import compare_dirs

    root = Path(__file__).resolve().parents[1] / "results"
    c = compare_dirs(root / "cpu_v1", root / "cpu_wsd", tmp_path / "cmp", figures=False)["compare"]
    m, d = c["multiplier"], c["exponent_difference"]
    assert round(m["geomean"], 2) == 1.27 and [round(v, 2) for v in m["geomean_ci95"]] == [0.97, 1.60]
    assert round(d["value"], 3) == -0.045 and [round(v, 3) for v in d["ci95"]] == [-0.091, 0.006]
    assert c["base"]["n_runs"] == c["variant"]["n_runs"] == 24
    assert c["verdict"].startswith("no detectable difference")


def test_frontiers_without_a_shared_loss_range_are_refused(tmp_path, capsys):
    base, variant = _sweep(tmp_path, "base"), _sweep(tmp_path, "far", k=1e-6)  # all its losses above the base's
    out = tmp_path / "cmp"
    rc, cap = _run(base, variant, out, capsys, resamples=10)
    assert rc == 2 and not out.exists() and "share no loss range" in cap.err


@pytest.mark.slow  # about 10 s: 1000 resamples of two 35-run sweeps
def test_the_committed_comparison_of_untied_against_tied_embeddings_refits(tmp_path):
    """results/compare_cpu_untied (harness-compare results/cpu_v2 results/cpu_untied: the
    35-run tied sweep that cpu_untied mirrors run for run) is
    what the committed records give, and the README quotes its multiplier, exponent
    difference and verdict."""
    from pathlib import Path

    from harness.analysis.compare import compare_dirs

    root = Path(__file__).resolve().parents[1]
    committed = json.loads((root / "results" / "compare_cpu_untied" / "compare.json").read_text())
    compare_dirs(root / "results" / "cpu_v2", root / "results" / "cpu_untied", tmp_path / "cmp", figures=False)
    fresh = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    for c in (fresh, committed):  # the folders as typed on the command line
        c.pop("figures"), c["base"].pop("dir"), c["variant"].pop("dir")
    assert fresh == committed
    m, d = committed["multiplier"], committed["exponent_difference"]
    readme = (root / "README.md").read_text()
    assert f"m = {m['geomean']:.2f} [{m['geomean_ci95'][0]:.2f}, {m['geomean_ci95'][1]:.2f}]" in readme
    assert f"{d['value']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" in readme
    assert committed["verdict"] in " ".join(readme.split())
    readme = " ".join(readme.split())
    assert committed["base"]["n_runs"] == committed["variant"]["n_runs"] == 35
    cur = committed["multiplier"]["curve"]  # ordered by increasing loss: [-1] is the highest loss
    for i, C in ((-1, "3.9e10"), (0, "5.8e12")):
        assert f"{cur['m'][i]:.2f} [{cur['ci95_low'][i]:.2f}, {cur['ci95_high'][i]:.2f}] at C = {C}" in readme, i
        assert f"{cur['C_base'][i]:.1e}".replace("e+", "e") == C
    assert cur["ci95_low"][-1] > 1 and cur["ci95_low"][0] < 1 and all(m > 1 for m in cur["m"])
