"""Extrapolation check: does the law predict runs bigger than the ones it saw?

The runs with the highest compute (the top ``fraction`` by C, at least one) are held
out, the Chinchilla law is refitted on the rest (same method, no bootstrap), and the
held-out losses are predicted. ``rel_error`` is mean |pred - obs| / obs over them.
"""
from __future__ import annotations

import math

import numpy as np

from harness.analysis.fit import fit_law
from harness.analysis.laws import CHINCHILLA, Law
from harness.analysis.table import MIN_ROWS

HOLDOUT_FRACTION = 0.2


def holdout_check(N, D, C, loss, ids, fraction: float = HOLDOUT_FRACTION, law: Law = CHINCHILLA) -> dict:
    N, D, C, loss = (np.asarray(v, float) for v in (N, D, C, loss))
    n = len(loss)
    m = max(1, math.ceil(fraction * n))
    order = np.lexsort((np.arange(n), -C))  # highest compute first, ties by position
    held, train = np.sort(order[:m]), np.sort(order[m:])
    out = {"law": law.name, "criterion": f"top {fraction:.0%} of runs by C (at least 1) held out",
           "held_out_runs": [ids[i] for i in held], "n_train": int(len(train)),
           "rel_error": None, "max_rel_error": None, "runs": [], "params": None}
    if len(train) < MIN_ROWS:
        out["skipped"] = f"only {len(train)} runs left to fit; need {MIN_ROWS}"
        return out
    fit = fit_law(law, np.column_stack([N[train], D[train]]), loss[train])
    pred = fit.predict(np.column_stack([N[held], D[held]]))
    rel = np.abs(pred - loss[held]) / loss[held]
    out.update(rel_error=float(rel.mean()), max_rel_error=float(rel.max()), params=fit.params,
               train_C_max=float(C[train].max()))
    out["runs"] = [{"id": ids[i], "N": float(N[i]), "D": float(D[i]), "C": float(C[i]),
                    "observed": float(loss[i]), "predicted": float(p), "rel_error": float(r)}
                   for i, p, r in zip(held, pred, rel)]
    return out
