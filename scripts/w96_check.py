"""One size up, predicted first: a width-96 ladder against the cpu_v3 fit (results/w96_check).

    harness-sweep sweep=cpu results_dir=<scratch> ladder=w96   # after prediction.json was committed
    python scripts/w96_check.py                                 # writes results/w96_check/check.json

results/w96_check/prediction.json holds harness-predict's loss and 95% interval for width
96 (depth 2, N = 223,872, 2.2x the largest N of that sweep) at each of the preset's 5 WSD
budgets of the time (0.51M .. 8.19M tokens), from results/cpu_v3/fit.json (then at
results/cpu; its sha256 is in the file), written and committed before the ladder was
trained (commit ba77681; cpu_v3/fit.json has been refitted since, by generalised least
squares, so today's file is not the one hashed). The records in results/w96_check/runs are that ladder (the
cpu preset's config with ladder=w96: lr 0.192 / 96, one thread, seed 0). The check is
per budget: is the measured loss inside the interval, and by how much, in nats and in
units of the interval's half-width (the sign: measured - predicted).
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "w96_check"
FIT = ROOT / "results" / "cpu_v3" / "fit.json"


def check() -> dict:
    pred = json.loads((OUT / "prediction.json").read_text())
    recs = {r["tokens"]: r for r in load_records(OUT)[0] if r["status"] == "ok"}
    sha = [p["fit_sha256"] for p in pred["predictions"]]
    # one fit made every prediction: cpu_v3's fit.json as committed in ba77681 (weighted least
    # squares); the pipeline has refitted it since (generalised least squares), so its bytes differ
    assert len(set(sha)) == 1, "the predictions come from different fits"
    rows = []
    for p in pred["predictions"]:
        r = recs[round(p["D"])]
        assert r["params_nonembedding"] == round(p["N"]), "not the predicted size"
        lo, hi = p["interval"]
        m = r["final_val_loss"]
        rows.append({"D": p["D"], "predicted": p["loss"], "interval": [lo, hi], "measured": m,
                     "error_nats": m - p["loss"], "error_half_widths": (m - p["loss"]) / ((hi - lo) / 2),
                     "inside": lo <= m <= hi, "run_id": r["run_id"]})
    return {"what": "measured against predicted, per budget (error = measured - predicted)",
            "N": pred["predictions"][0]["N"], "law": pred["predictions"][0]["law"], "fit": "results/cpu_v3/fit.json",
            "written_at": pred["written_at"], "budgets": rows, "inside": sum(r["inside"] for r in rows),
            "below": sum(r["measured"] < r["interval"][0] for r in rows),
            "above": sum(r["measured"] > r["interval"][1] for r in rows)}


def figure(res: dict, path: Path) -> None:
    """Loss against D: the width-96 prediction band and the measured ladder, with the
    sweep's two largest widths (seed means) for scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    b = res["budgets"]
    D = np.array([r["D"] for r in b])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sweep = [r for r in load_records(FIT.parent)[0] if r["status"] == "ok"]
    for w, c in ((48, "0.65"), (64, "0.4")):
        ds = sorted({r["tokens"] for r in sweep if r["config"]["model"]["width"] == w})
        ys = [np.mean([r["final_val_loss"] for r in sweep if r["config"]["model"]["width"] == w and r["tokens"] == d])
              for d in ds]
        ax.plot(ds, ys, "o-", color=c, ms=4, lw=1, label=f"width {w}, trained (mean of seeds)")
    lo, hi = np.array([r["interval"] for r in b]).T
    ax.fill_between(D, lo, hi, color="C0", alpha=0.25, label="width 96, predicted 95% interval")
    ax.plot(D, [r["predicted"] for r in b], "--", color="C0", lw=1)
    ax.plot(D, [r["measured"] for r in b], "s", color="C3", ms=6, label="width 96, measured afterwards")
    ax.set_xscale("log")
    ax.set_xticks(D, [f"{d / 1e6:.2g}M" for d in D])
    ax.minorticks_off()
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("final held-out loss (nats / token)")
    ax.set_title(f"One size up, predicted first: {res['inside']} of {len(b)} inside the interval, {res['below']} below it", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    res = check()
    (OUT / "check.json").write_text(json.dumps(res, indent=1) + "\n")
    figure(res, OUT / "w96_check.png")
    for r in res["budgets"]:
        print(f"D {r['D']:.3g}: predicted {r['predicted']:.4f} [{r['interval'][0]:.4f}, {r['interval'][1]:.4f}], "
              f"measured {r['measured']:.4f} ({r['error_nats']:+.4f} nats, {r['error_half_widths']:+.1f} half-widths)")
    print(f"{res['inside']} of {len(res['budgets'])} inside; {res['below']} below, {res['above']} above")


if __name__ == "__main__":
    main()
