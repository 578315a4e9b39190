"""harness-fit end to end on a small synthetic sweep and on CSV tables."""
import json

import numpy as np
import pandas as pd
import pytest

from harness.analysis import fit_results_dir
from harness.analysis.cli import main
from harness.analysis.compute_optimal import optimal_nd
from harness.records import run_id, write_record

TRUE = dict(E=2.0, A=60.0, B=200.0, alpha=0.35, beta=0.3)
FLOOR = TRUE["E"]  # the toy records' entropy_floor: the additive law's E
LAWS = ("chinchilla", "kaplan", "interaction", "product", "L_N", "L_D", "L_C")
LAW_KEYS = {"form", "params", "ci95", "r2_log", "rms_log", "n_points", "objective", "starts_agreeing", "residuals"}


def _loss(N, D):
    return TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]


def _record(N, D, budget=None, status="ok", rng=None):
    config = {"model": {"n": float(N)}, "data": {"source": "zipf_facts", "tokens": float(D), "flop_budget": budget},
              "train": {"seed": 0}}
    tokens = D * np.linspace(0.1, 1.0, 10)
    noise = np.exp(rng.normal(0, 0.003, len(tokens)))
    val = _loss(N, tokens) * noise
    rec = {"run_id": run_id(config), "sweep": "toy", "status": status, "config": config,
           "params_total": int(N * 1.2), "params_embedding": int(N * 0.2), "params_nonembedding": int(N),
           "tokens": int(D), "flops_6nd": 6.0 * int(N) * int(D), "flops": 7.0 * N * D,
           "final_train_loss": float(val[-1]), "final_val_loss": float(val[-1]), "entropy_floor": FLOOR,
           "curve": [{"tokens": int(t), "flops": 6.0 * N * t, "train_loss": float(v), "val_loss": float(v)}
                     for t, v in zip(tokens, val)],
           "wall_time_s": 1.0, "tokens_per_s": 1.0, "mfu": None, "device": "cpu", "versions": {}}
    if status != "ok":
        rec.update(final_val_loss=None, final_train_loss=None, error="loss exploded")
    return rec


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """16 grid runs, 3 IsoFLOP budgets of 5 sizes, a diverged run and a corrupt file."""
    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    recs = [_record(N, D, rng=rng) for N in np.geomspace(1e4, 1e6, 4) for D in np.geomspace(1e6, 1e8, 4)]
    for C in (3e11, 3e12, 3e13):
        n_star = optimal_nd(C, TRUE["A"], TRUE["B"], TRUE["alpha"], TRUE["beta"])[0]
        recs += [_record(n, C / (6 * int(n)), budget=C, rng=rng) for n in n_star * np.geomspace(0.25, 4, 5)]
    recs.append(_record(3e5, 3e6, status="diverged", rng=rng))
    for r in recs:
        write_record(r, root)
    folder = root / "toy"
    (folder / "runs" / "broken.json").write_text('{"run_id": "x", "sweep": ')
    return folder, recs


def test_harness_fit_on_a_results_dir(sweep, tmp_path, capsys):
    folder, recs = sweep
    out = tmp_path / "out"
    rc = main([str(folder), "--out", str(out), "--resamples", "30", "--jobs", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "broken.json" in captured.err  # the corrupt record is skipped, by name
    fit = json.loads((out / "fit.json").read_text())
    assert fit["conventions"]["N"] == "params_nonembedding" and fit["conventions"]["C"] == "flops_6nd"
    assert set(LAWS) <= set(fit["laws"])
    for name in LAWS:
        assert LAW_KEYS <= set(fit["laws"][name]), name
        assert fit["laws"][name]["params"] is not None, name
        assert set(fit["laws"][name]["ci95"]) == set(fit["laws"][name]["params"])
    assert fit["floor"]["value"] == FLOOR and "entropy_floor" in fit["floor"]["source"]
    ch = fit["laws"]["chinchilla"]
    assert ch["n_points"] == 31 and len(ch["residuals"]) == 31 and ch["fixed"] == {"E": FLOOR}
    assert ch["params"]["alpha"] == pytest.approx(TRUE["alpha"], rel=0.1)
    assert ch["free_E"]["E"] == pytest.approx(TRUE["E"], rel=0.1) and not ch["free_E"]["above_lowest_loss"]
    assert fit["selected"] in ("chinchilla", "interaction")  # additive data: additive, or the form nesting it
    co = fit["compute_optimal"]
    assert co["law"] == fit["selected"] and {"a", "b", "ci95", "at_compute"} <= set(co)
    assert co["a"] == pytest.approx(0.3 / 0.65, abs=0.05)
    iso = fit["isoflop"]
    assert iso is not None and len(iso["budgets"]) == 3 and iso["a"] == pytest.approx(0.3 / 0.65, abs=0.05)
    assert co["isoflop_agreement"]["agree"] is True
    ex = fit["extrapolation"]
    assert set(ex) == {"largest_N", "largest_D", "top_C"}
    assert len(ex["top_C"]["runs"]) == 7  # ceil(20% of 31)
    for h in ex.values():
        assert h["law"] == fit["selected"] and h["reducible_error"] < 0.1 and h["passes"] and not h["below_floor"]
        assert set(h["baselines"]) == {"best_trained", "largest_N_same_D"}
    for name in ("chinchilla", "kaplan", "interaction", "product"):
        assert set(fit["laws"][name]["heldout"]) == set(ex)
    assert fit["excluded_runs"] == [{"run_id": recs[-1]["run_id"], "status": "diverged"}]
    assert fit["skipped_files"][0]["file"] == "broken.json"
    assert fit["entropy_floor"] == FLOOR
    names = {p.name for p in (out / "figures").glob("*.png")}
    assert {"scaling_laws.png", "reducible_loss.png", "loss_vs_data_by_size.png", "residual_heatmap.png",
            "isoflop.png", "compute_optimal.png"} <= names
    assert sorted(fit["figures"]) == sorted(f"figures/{n}" for n in names)
    report = (out / "report.md").read_text()
    assert report.startswith("# Scaling-law fit") and "**Selected law:" in report.split("##")[0]
    for text in ("Floor F", "0.73", "Extrapolation", "diverged", "](figures/scaling_laws.png)", "IsoFLOP",
                 "can and cannot pin down", "L_inf(D"):
        assert text in report, text
    runs_csv = pd.read_csv(out / "runs.csv")
    assert len(runs_csv) == 32  # every readable record, the diverged one too


def test_fit_is_deterministic_and_independent_of_workers(sweep, tmp_path):
    folder, _ = sweep
    with pytest.warns(UserWarning, match="broken.json"):
        a = fit_results_dir(folder, tmp_path / "a", n_resamples=40, n_jobs=1, figures=False)
        b = fit_results_dir(folder, tmp_path / "b", n_resamples=40, n_jobs=2, figures=False)
    assert (tmp_path / "a" / "fit.json").read_bytes() == (tmp_path / "b" / "fit.json").read_bytes()
    assert a["fit"]["laws"]["chinchilla"]["bootstrap_resamples"] == 40
    assert a["fit_json"].exists() and a["report"].exists() and a["runs_csv"].exists()


def test_too_few_runs_is_one_line_and_exit_2(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for N in (1e4, 1e5, 1e6):
        write_record(_record(N, 1e7, rng=rng), tmp_path)
    rc = main([str(tmp_path / "toy"), "--resamples", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "at least 6" in err


def _csv(tmp_path, rows=12, **overrides):
    rng = np.random.default_rng(2)
    N = np.geomspace(1e4, 1e6, rows)
    D = np.geomspace(1e8, 1e6, rows) * rng.uniform(0.5, 2, rows)
    df = pd.DataFrame({"params": N, "tokens": D, "loss": _loss(N, D)})
    for col, (i, v) in overrides.items():
        df[col] = df[col].astype(object)
        df.loc[i, col] = v
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    return path


def test_csv_with_tokens_column(tmp_path, capsys):
    path = _csv(tmp_path)
    rc = main(["--csv", str(path), "--n", "params", "--d", "tokens", "--loss", "loss", "--out", str(tmp_path / "o"),
               "--resamples", "10", "--jobs", "1", "--no-figures"])
    assert rc == 0, capsys.readouterr().err
    fit = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert fit["conventions"]["N"] == "params" and fit["laws"]["chinchilla"]["n_points"] == 12
    assert fit["entropy_floor"] is None and fit["isoflop"] is None and fit["floor"]["value"] is None
    assert "E" in fit["laws"]["chinchilla"]["params"]  # no floor: E is fitted
    assert "obs (no known floor)" in fit["extrapolation"]["top_C"]["units"]


def test_csv_floor_fixes_e_and_shared_budgets_give_isoflop(tmp_path, capsys):
    """--floor F fixes E in every joint law; rows sharing a compute (within 1%, 3 or more)
    are IsoFLOP groups without --flop-budget, as published IsoFLOP tables are."""
    rows = []
    for C in (3e11, 3e12, 3e13):
        n_star = optimal_nd(C, TRUE["A"], TRUE["B"], TRUE["alpha"], TRUE["beta"])[0]
        for n in n_star * np.geomspace(0.25, 4, 5):
            rows.append({"N": n, "C": C * (1 + 0.002 * len(rows) % 3), "loss": _loss(n, C / (6 * n))})
    for N in np.geomspace(1e4, 1e6, 3):
        for D in (1e6, 4e6, 2.5e7):  # no three of these share a compute
            rows.append({"N": N, "C": 6 * N * D, "loss": _loss(N, D)})
    path = tmp_path / "iso.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "o"
    rc = main(["--csv", str(path), "--n", "N", "--c", "C", "--loss", "loss", "--floor", str(TRUE["E"]),
               "--out", str(out), "--resamples", "10", "--jobs", "1", "--no-figures"])
    assert rc == 0, capsys.readouterr().err
    fit = json.loads((out / "fit.json").read_text())
    assert fit["floor"] == {"value": TRUE["E"], "source": "given: --floor"}
    for name in ("chinchilla", "kaplan", "interaction", "product"):
        assert fit["laws"][name]["fixed"] == {"E": TRUE["E"]} and "E" not in fit["laws"][name]["params"]
    iso = fit["isoflop"]
    assert iso is not None and len(iso["budgets"]) == 3 and iso["n_budgets_used"] == 3
    assert iso["a"] == pytest.approx(0.3 / 0.65, abs=0.05)
    rc = main(["--csv", str(path), "--n", "N", "--c", "C", "--loss", "loss", "--floor", "5", "--out", str(out)])
    assert rc == 2 and "below every loss" in capsys.readouterr().err


@pytest.mark.parametrize("args,overrides,needle", [
    (["--n", "size", "--d", "tokens", "--loss", "loss"], {}, "'size'"),
    (["--n", "params", "--d", "tokens", "--loss", "loss"], {"loss": (3, -1.0)}, "non-positive"),
    (["--n", "params", "--d", "tokens", "--loss", "loss"], {"tokens": (2, 0.0)}, "non-positive"),
    (["--n", "params", "--d", "tokens", "--loss", "loss"], {"params": (1, "abc")}, "non-numeric"),
    (["--n", "params", "--c", "tokens", "--loss", "loss", "--drop-highest-loss", "8"], {}, "at least 6"),
])
def test_csv_errors_are_one_line_and_exit_2(tmp_path, capsys, args, overrides, needle):
    path = _csv(tmp_path, **overrides)
    rc = main(["--csv", str(path), *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "o" / "fit.json").exists()


def test_missing_csv_file_is_one_line(tmp_path, capsys):
    rc = main(["--csv", str(tmp_path / "nope.csv"), "--n", "a", "--c", "b", "--loss", "c"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "nope.csv" in err


def test_isoflop_optimum_outside_range_is_warned_everywhere(tmp_path, capsys):
    """Two budgets from --flop-budget; one is sampled only above its optimum."""
    rows = []
    for C, span in ((1e12, (0.25, 4.0)), (1e11, (4.0, 64.0))):
        n_star = optimal_nd(C, TRUE["A"], TRUE["B"], TRUE["alpha"], TRUE["beta"])[0]
        for n in n_star * np.geomspace(*span, 5):
            rows.append({"N": n, "C": C, "loss": _loss(n, C / (6 * n)), "budget": C})
    path = tmp_path / "iso.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "o"
    rc = main(["--csv", str(path), "--n", "N", "--c", "C", "--loss", "loss", "--flop-budget", "budget",
               "--out", str(out), "--resamples", "5", "--jobs", "1", "--no-figures"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "warning:" in err and "outside the sampled range" in err
    fit = json.loads((out / "fit.json").read_text())
    budgets = {b["C"]: b for b in fit["isoflop"]["budgets"]}
    assert budgets[1e11]["in_range"] is False and budgets[1e12]["in_range"] is True
    assert any("outside the sampled range" in w for w in fit["isoflop"]["warnings"])
    assert any("outside the sampled range" in w for w in fit["warnings"])
    assert "outside the sampled range" in (out / "report.md").read_text()


def test_unidentified_two_variable_laws_are_not_bootstrapped(tmp_path):
    """A width ladder (one D): the joint laws are fitted but not bootstrapped (their D
    terms are not identified), the one-variable L(N) is, and fit.json and the report say so."""
    rng = np.random.default_rng(3)
    for N in np.geomspace(1e4, 1e6, 6):
        write_record(_record(N, 1e7, rng=rng), tmp_path)
    with pytest.warns(UserWarning, match="no bootstrap intervals"):
        res = fit_results_dir(tmp_path / "toy", tmp_path / "out", n_resamples=20, n_jobs=1, figures=False)
    laws = res["fit"]["laws"]
    for name in ("chinchilla", "kaplan", "interaction", "product"):
        assert laws[name]["params"] is not None and laws[name]["ci95"] is None
        assert laws[name]["bootstrap_resamples"] == 0 and "1 distinct token counts D" in laws[name]["bootstrap_skipped"]
    assert laws["L_N"]["bootstrap_resamples"] == 20 and "bootstrap_skipped" not in laws["L_N"]
    assert "no intervals: only 1 distinct token counts D" in res["report"].read_text()
