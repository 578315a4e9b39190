"""The cpu preset's lr rule against the measured optima (results/lr_rule).

Reads the records of ``scripts/lr_rule.sh`` (SP, lr = c / width for several c, WSD,
batch 16 x 64) and writes ``figures/lr_rule.png`` and ``summary.md``: per width and
token budget, the final held-out loss at each c, the best c, and how many x2 grid
steps the rule's c (``--rule``, the preset's) lies from it. The rule passes at a
(width, D) when it is within one grid step of the best and the best is interior (a
neighbour on each side was run), so the true optimum is bracketed.

    python scripts/lr_rule_plot.py [results/lr_rule] [--rule 0.192]
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.records import load_records  # noqa: E402


def load(folder: Path) -> dict:
    """grid[(width, tokens)][c] = final held-out loss, c = lr * width rounded to 4 digits."""
    grid: dict = defaultdict(dict)
    for r in load_records(folder)[0]:
        if r["status"] == "ok":
            w = r["config"]["model"]["width"]
            grid[(w, r["tokens"])][round(r["lr"] * w, 4)] = r["final_val_loss"]
    return grid


def verdict(losses: dict[float, float], rule: float) -> dict:
    cs = sorted(losses)
    best = min(cs, key=losses.get)
    i = cs.index(best)
    steps = abs(math.log2(rule / best))
    interior = 0 < i < len(cs) - 1
    return {"best": best, "steps": steps, "interior": interior, "passes": steps <= 1 + 1e-9 and interior,
            "gap": losses.get(rule, math.nan) - losses[best]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder", nargs="?", default="results/lr_rule")
    p.add_argument("--rule", type=float, default=0.192)
    a = p.parse_args()
    folder = Path(a.folder)
    grid = load(folder)
    cs = sorted({c for v in grid.values() for c in v})
    lines = ["# The cpu preset's learning-rate rule, validated", "",
             f"SP, lr = c / width; the preset's rule is c = {a.rule}. zipf_facts, depth 2, 16-dim heads (one "
             "24-dim head at width 24), batch 16 x 64 tokens, WSD (warmup 20 steps, 20% 1-sqrt cooldown), "
             "one seed. Each cell is the final held-out loss (nats/token); the best c per row is bold. "
             "Steps: |log2(rule / best)|, in x2 grid steps. Passes: within one step and the best is "
             "bracketed by a run on each side. Made by `scripts/lr_rule.sh` and `scripts/lr_rule_plot.py`.", "",
             "| width | D (steps) | " + " | ".join(f"c = {c:g}" for c in cs) + " | best c | rule's loss - best | steps | passes |",
             "|" + "---|" * (len(cs) + 6)]
    checks = []
    for (w, D) in sorted(grid):
        row = grid[(w, D)]
        v = verdict(row, a.rule)
        checks.append(v["passes"])
        cells = [("**%.4f**" if c == v["best"] else "%.4f") % row[c] if c in row else "–" for c in cs]
        lines.append(f"| {w} | {D:,} ({D // 1024:,}) | " + " | ".join(cells)
                     + f" | {v['best']:g} | {v['gap']:+.4f} | {v['steps']:g} | {'yes' if v['passes'] else '**no**'} |")
    lines += ["", f"The rule passes at {sum(checks)} of {len(checks)} (width, D) cells."]
    text = "\n".join(lines) + "\n"
    (folder / "summary.md").write_text(text)
    print(text)

    tokens = sorted({D for _, D in grid})
    fig, axes = plt.subplots(1, len(tokens), figsize=(4.2 * len(tokens), 3.6), sharey=False)
    for ax, D in zip(list(axes) if len(tokens) > 1 else [axes], tokens):
        for w in sorted({w for w, d in grid if d == D}):
            row = grid[(w, D)]
            xs = sorted(row)
            ax.plot(xs, [row[c] for c in xs], "o-", label=f"width {w}")
        ax.axvline(a.rule, color="k", ls="--", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("c = lr x width")
        ax.set_title(f"D = {D / 1e6:.2f}M tokens ({D // 1024:,} steps)")
        ax.set_ylabel("final held-out loss (nats/token)")
        ax.legend(fontsize=7)
    fig.suptitle(f"SP lr = c / width; dashed: the preset's rule c = {a.rule}")
    fig.tight_layout()
    (folder / "figures").mkdir(exist_ok=True)
    fig.savefig(folder / "figures" / "lr_rule.png", dpi=110)


if __name__ == "__main__":
    main()
