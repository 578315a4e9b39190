"""How much does the finite held-out set move a run's measured loss? (results/eval_noise)

The same runs (widths 16, 32, 64 at 1.02M tokens, the cpu preset's settings) are
trained once per held-out size, data.eval_tokens = 65,536, 262,144 and 1,048,576:
the training is bitwise the same (checked), and the larger sets extend the smaller
(the validation stream is chunked), so each run's excess loss over its own set's
exact Bayes loss, e(n) = L_val(n) - F(n), differs between sizes only by sampling.
e(65k) - e(1M) is the error that the default set adds to a run's reducible loss.

    harness-sweep sweep=lr_rule sweep.name=eval_noise data.tokens=1024000 "train.branch_tokens=[]" \
      model.width=64,32,16 data.eval_tokens=65536,262144,1048576 train.eval_every=1000 \
      data.probe_records=0 "train.lr='\\${over:0.192,\\${model.width}}'"
    python scripts/eval_noise.py
"""
from __future__ import annotations

import sys
from pathlib import Path

from harness.records import load_records

ROOT = Path(__file__).resolve().parent.parent


def main(folder: str = "results/eval_noise") -> None:
    recs, _ = load_records(ROOT / folder)
    by = {}
    for r in recs:
        assert r["status"] == "ok" and r["heldout_floor"] is not None
        by[(r["config"]["model"]["width"], r["config"]["data"]["eval_tokens"])] = r
    sizes = sorted({k[1] for k in by})
    widths = sorted({k[0] for k in by})
    big = sizes[-1]
    lines = ["# Held-out set size and the measured loss", "",
             "Each row is one model (trained once per held-out size, bitwise the same training: "
             "equal final training losses), scored on nested held-out sets. e(n) = L_val(n) - F(n), "
             "the excess over the set's own exact Bayes loss F(n); the last column is the reducible "
             f"loss e({big:,}). Nats per token. Made by `scripts/eval_noise.py`.", "",
             "| width | " + " | ".join(f"F({n:,})" for n in sizes) + " | "
             + " | ".join(f"e({n:,}) - e({big:,})" for n in sizes[:-1]) + f" | e({big:,}) |",
             "|" + "---|" * (1 + 2 * len(sizes)), ]
    worst = {n: 0.0 for n in sizes[:-1]}
    rel = {n: 0.0 for n in sizes[:-1]}
    for w in widths:
        rows = [by[(w, n)] for n in sizes]
        assert len({r["final_train_loss"] for r in rows}) == 1, f"width {w}: training differs between sizes"
        e = {n: by[(w, n)]["final_val_loss"] - by[(w, n)]["heldout_floor"] for n in sizes}
        for n in sizes[:-1]:
            worst[n] = max(worst[n], abs(e[n] - e[big]))
            rel[n] = max(rel[n], abs(e[n] - e[big]) / e[big])
        lines.append(f"| {w} | " + " | ".join(f"{by[(w, n)]['heldout_floor']:.5f}" for n in sizes) + " | "
                     + " | ".join(f"{e[n] - e[big]:+.5f}" for n in sizes[:-1]) + f" | {e[big]:.5f} |")
    lines += ["", "Largest |e(n) - e(1,048,576)|: " + ", ".join(
        f"{worst[n]:.5f} nats ({rel[n]:.2%} of the reducible loss) at n = {n:,}" for n in sizes[:-1]) + "."]
    text = "\n".join(lines) + "\n"
    (ROOT / folder / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
