"""Two-step skill prediction (harness.analysis.skills, harness-predict --skills): synthetic
skills whose exact match is a known sigmoid of a known loss law are predicted within their
intervals at held-out sizes; flags; bad input refused in one line, writing nothing."""
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import toy_record
from numerics import assert_same_numbers

from harness.analysis import fit_results_dir
from harness.analysis.cli import main as fit_main
from harness.analysis.predict import main as predict_main
from harness.analysis.report import skill_check
from harness.analysis.skills import MIN_RISE, NOISY, accuracy_of_loss, eval_noise
from harness.records import write_record

# bucket b's loss: E + f_b (A / N^alpha + B / D^beta); exact match: a fixed sigmoid of it
E, A, ALPHA, B, BETA = 0.8, 30.0, 0.35, 80.0, 0.3
SIG = {"lo": 0.01, "hi": 0.98, "k": 3.0, "L0": 2.5}
# easy, hard, always learned (no rising part), easy with eval-to-eval noise on exact match
SCALE = [1.0, 2.0, 0.3, 1.0]
ACC_NOISE = [0.01, 0.01, 0.01, 0.15]
NAMES = [f"bucket {b}" for b in range(len(SCALE))]


def bucket_loss(b, N, D):
    return E + SCALE[b] * (A / N ** ALPHA + B / D ** BETA)


def _record(N, D, rng, probes=True):
    config = {"model": {"n": float(N)}, "data": {"source": "zipf_facts", "tokens": float(D)}, "train": {"seed": 0}}
    tokens = D * np.linspace(0.1, 1.0, 8)
    val = (1.2 + 40 / N ** 0.4 + 100 / tokens ** 0.35) * np.exp(rng.normal(0, 0.002, len(tokens)))
    curve = [{"tokens": int(t), "flops": 6.0 * N * t, "train_loss": float(v), "val_loss": float(v)}
             for t, v in zip(tokens, val)]
    for p in curve:
        if not probes:
            continue
        row = []
        for b, name in enumerate(NAMES):
            lb = bucket_loss(b, N, p["tokens"]) * np.exp(rng.normal(0, 0.005))
            acc = float(np.clip(accuracy_of_loss(SIG, lb) + rng.normal(0, ACC_NOISE[b]), 0, 1))
            row.append({"bucket": name, "mass": 0.5 ** (b + 1), "n": 500, "loss": float(lb), "accuracy": acc,
                        "logprob": float(np.log(0.004 + 0.99 * acc))})
        p["probes"] = row
    rec = toy_record(config, N, D, curve)
    if probes:
        rec["probes"] = {"kind": "facts", "buckets": NAMES, "mass": [0.5 ** (b + 1) for b in range(len(NAMES))],
                         "final": curve[-1]["probes"], "time_s": 0.1, "time_fraction": 0.01}
    return rec


SIZES = np.geomspace(1e4, 1e6, 6)
DS = (1e7, 3e7, 1e8)


def _sweep(root, probes=True):
    rng = np.random.default_rng(0)
    for N in SIZES:
        for D in DS:
            write_record(_record(N, D, rng, probes), root)
    return root / "toy"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("skills")
    folder = _sweep(root)
    res = fit_results_dir(folder, n_resamples=100, n_jobs=2)
    return folder, res["fit"]


def test_eval_noise_is_sigma_for_independent_noise_and_ignores_persistent_offsets():
    rng = np.random.default_rng(1)
    run = np.repeat(np.arange(40), 10)
    offset = rng.normal(0, 0.3, 40)[run]  # a run that sits off the curve is not noise
    assert eval_noise(offset + rng.normal(0, 0.05, len(run)), run) == pytest.approx(0.05, rel=0.1)
    assert eval_noise(offset, run) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow  # about 30 s: the bucket laws are selected twice (all runs, and without the largest size)
def test_synthetic_skills_are_predicted_within_their_intervals_at_held_out_sizes(fitted):
    folder, fit = fitted
    sk = fit["skills"]
    rows = {r["bucket"]: r for r in sk["buckets"]}
    assert rows["bucket 0"]["predictable"] and rows["bucket 1"]["predictable"]
    assert rows["bucket 2"]["flags"] == ["no rising part"] and "law" not in rows["bucket 2"]
    span = rows["bucket 2"]["observed_range"]
    assert span[1] - span[0] < MIN_RISE
    assert rows["bucket 3"]["flags"] == ["noisy"] and not rows["bucket 3"]["predictable"]
    assert rows["bucket 3"]["sigmoid"]["eval_noise"] == pytest.approx(ACC_NOISE[3], rel=0.25)
    assert rows["bucket 3"]["sigmoid"]["eval_noise"] > NOISY * (SIG["hi"] - SIG["lo"])
    for b in (0, 1):  # the sigmoid is recovered, inside its interval
        sig = rows[f"bucket {b}"]["sigmoid"]
        for k in ("L0", "k"):
            lo, hi = sig["ci95"][k]
            assert lo <= SIG[k] <= hi and sig["params"][k] == pytest.approx(SIG[k], rel=0.1)
    h = sk["heldout"]
    assert h["criterion"].startswith("every run of the largest model size") and len(h["held_out_runs"]) == len(DS)
    for r in h["per_bucket"]:
        if not r["predictable"]:
            continue
        assert r["inside"] == len(DS), r  # every held-out observation inside its 95% interval
        assert r["two_step_error"] < 0.05
        by_c = sorted(r["runs"], key=lambda x: x["N"] * x["D"])  # the baseline rises with C, run by run
        assert all(u["one_step"] <= v["one_step"] for u, v in zip(by_c, by_c[1:]))
        for x in r["runs"]:  # and the prediction is near the truth, not just wide
            b = NAMES.index(r["bucket"])
            truth = float(accuracy_of_loss(SIG, bucket_loss(b, x["N"], x["D"])))
            assert x["two_step"] == pytest.approx(truth, abs=0.05)
            assert x["interval"][1] - x["interval"][0] < 0.4
    s = h["summary"]["predictable"]
    assert s["buckets"] == ["bucket 0", "bucket 1"] and s["inside"] == s["n"] == 2 * len(DS)
    assert h["aggregate_loss"]["reducible_error"] is not None and s["one_step_error"] is not None
    report = (folder / "report.md").read_text()
    assert "## Predicting skills in two steps" in report and "(figures/skills_heldout.png)" in report
    assert (folder / "figures" / "skills_heldout.png").exists()


@pytest.mark.slow
def test_harness_predict_skills_at_a_new_size(fitted, capsys):
    """Beyond the largest trained size, each predictable bucket's exact match is the
    known sigmoid of the known law, inside the printed interval; flagged buckets say why."""
    folder, fit = fitted
    N, D = 2e6, 5e7
    assert predict_main([str(folder), "--n", str(N), "--d", str(D), "--skills", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    got = {b["bucket"]: b for b in out["skills"]}
    for b in (0, 1):
        p = got[f"bucket {b}"]
        truth_loss = bucket_loss(b, N, D)
        truth = float(accuracy_of_loss(SIG, truth_loss))
        assert p["loss_interval"][0] <= truth_loss <= p["loss_interval"][1]
        assert p["accuracy_interval"][0] <= truth <= p["accuracy_interval"][1]
        assert p["accuracy"] == pytest.approx(truth, abs=0.05)
    assert got["bucket 2"]["loss"] is None and "no rising part" in got["bucket 2"]["why"]
    assert predict_main([str(folder), "--n", str(N), "--d", str(D), "--skills"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert len(text) == 1 + len(NAMES) and text[1].startswith("  bucket 0: loss ")
    assert "flagged: noisy" in text[4] and "no prediction (no rising part" in text[3]


def _listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_skills_on_records_without_probes_is_refused_in_one_line(tmp_path, capsys):
    folder = _sweep(tmp_path, probes=False)
    fit = fit_results_dir(folder, n_resamples=0, n_jobs=1, figures=False)["fit"]
    assert fit["skills"] is None and "Predicting skills" not in (folder / "report.md").read_text()
    before = _listing(folder)
    with pytest.raises(SystemExit) as e:
        predict_main([str(folder), "--n", "1e6", "--d", "1e7", "--skills"])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("harness-predict: error: --skills:") and "no per-skill probes" in msg
    assert capsys.readouterr().out == "" and _listing(folder) == before
    # without --skills the same folder predicts the loss as before
    assert predict_main([str(folder), "--n", "1e6", "--d", "1e7"]) == 0


def test_a_folder_without_records_is_refused_and_nothing_is_written(tmp_path, capsys):
    folder = tmp_path / "empty"
    (folder / "runs").mkdir(parents=True)
    before = _listing(folder)
    with pytest.raises(SystemExit, match="no fit.json"):
        predict_main([str(folder), "--n", "1e6", "--d", "1e7", "--skills"])
    assert fit_main([str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("harness-fit: error: 0 usable ok runs")
    assert _listing(folder) == before  # no runs.csv, fit.json or report.md


ROOT = Path(__file__).resolve().parents[1]
# what depends on the bootstrap draws (or on how many were asked for)
DRAWN = {"ci95", "ci95_mc_sd", "bootstrap_params", "bootstrap_resamples", "bootstrap_skipped", "noise_log", "interval",
         "loss_interval", "accuracy_interval", "inside", "resamples", "ci95_at_bound"}


def _point(obj):
    if isinstance(obj, dict):
        return {k: _point(v) for k, v in obj.items() if k not in DRAWN}
    if isinstance(obj, list):
        return [_point(v) for v in obj]
    return obj


def test_the_readme_quotes_the_committed_cpu_skill_check():
    """The README's skill check is fit.json's, rendered as report.md renders it."""
    committed = json.loads((ROOT / "results" / "cpu" / "fit.json").read_text())
    text = skill_check(committed["skills"])
    assert text in (ROOT / "results" / "cpu" / "report.md").read_text()
    assert text in (ROOT / "README.md").read_text(), "README's skill check is stale: paste skill_check(fit['skills'])"


@pytest.mark.slow  # about 30 s: every bucket's law selected twice
def test_the_committed_cpu_skill_check_refits(tmp_path):
    """Refitting the committed cpu records gives the committed skill fits and check
    (every point estimate; the draws are left to the byte-for-byte refit test)."""
    committed = json.loads((ROOT / "results" / "cpu" / "fit.json").read_text())
    fit = fit_results_dir(ROOT / "results" / "cpu", out_dir=tmp_path, n_resamples=0, figures=False)["fit"]
    assert_same_numbers(_point(fit["skills"]), _point(committed["skills"]))  # exact where fitted (numerics.py)


def test_the_readme_reading_of_the_committed_skill_check_holds():
    """Each statement of the README's paragraph under the skill check, on the committed file."""
    h = json.loads((ROOT / "results" / "cpu" / "fit.json").read_text())["skills"]["heldout"]
    s, rows = h["summary"]["predictable"], h["per_bucket"]
    assert h["aggregate_loss"]["relative_error"] < min(r["loss_error"]["relative"] for r in rows if r["predictable"])
    errs = [r["two_step_error"] for r in rows if r["predictable"]]  # buckets most frequent first
    assert errs == sorted(errs)
    assert s["two_step_error"] >= s["one_step_error"]  # "no better than the one-step baseline"
    assert s["inside"] < 0.95 * s["n"]
    worst = max((r for r in rows if r["predictable"]), key=lambda r: len(r["runs"]) - r["inside"])
    assert worst["bucket"] == [r["bucket"] for r in rows if r["predictable"]][-1]  # "mostly the rarest"
    assert [r["flags"] for r in rows[:2] + rows[-2:]] == [["no rising part"]] * 4
    full = json.loads((ROOT / "results" / "cpu" / "fit.json").read_text())["skills"]["buckets"]
    assert all(r["observed_range"][0] > 0.9 and not r["predictable"] for r in full[:2])
    assert full[-1]["observed_range"][1] < 0.05 and not full[-1]["predictable"]
    # ranks 1024-4095: rises (to under 25%) only at the held-out size
    assert full[-2]["predictable"] and full[-2]["observed_range"][1] < 0.25 and not rows[-2]["predictable"]
