"""The fit's input table, from run records or from any CSV.

Conventions (stated again in fit.json and report.md):

- Records: N = ``params_nonembedding`` (Kaplan's N), D = ``tokens`` (tokens actually
  seen), C = ``flops_6nd`` (= 6 N D), loss = ``final_val_loss`` in nats per token.
  Curve points use C = 6 * N * tokens-so-far and the held-out ``val_loss``. Runs whose
  status is not ``ok`` are excluded and listed.
- CSV: the columns the user names. With ``--c`` D = C / (6 N); with ``--d`` C = 6 N D.

Every problem with the input raises :class:`TableError` with a one-line message.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from harness.analysis.errors import TableError
from harness.records import family_id

MIN_ROWS = 6  # the Chinchilla law has 5 parameters


@dataclass
class Table:
    """One row per run (or CSV row) that the fit uses."""

    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    loss: np.ndarray
    ids: list  # run ids (records) or 0-based data-row indices (CSV)
    budget: np.ndarray  # FLOP budget of an iso-FLOP group, NaN when none
    curves: list[dict]  # per row: C, tokens, loss along the run, and D; points only in CSV mode
    entropy_floor: list[float]  # distinct non-null floors of the data sources (nats/token)
    conventions: dict[str, str]
    source: dict[str, Any]
    excluded: list[dict] = field(default_factory=list)  # [{run_id, status[, reason]}]
    skipped_files: list[dict] = field(default_factory=list)  # [{file, reason}]
    dropped: list[dict] = field(default_factory=list)  # rows the user asked to drop
    # per row, the record's per-bucket probes (see harness.probes) or None; empty for CSV:
    # {"kind", "buckets", "mass", "final": [per bucket], "curve": [{"tokens", "val_loss", "probes"}]}
    probes: list = field(default_factory=list)
    N_total: np.ndarray | None = None  # params_total per row (records only): another counting convention
    C_detailed: np.ndarray | None = None  # the detailed FLOP count ``flops`` per row (records only)
    floor: float | None = None  # the known irreducible loss F the fits fix E at, or None
    floor_source: str = "unknown: no floor recorded or given"
    U: np.ndarray | None = None  # unique tokens U_D per row (records: unique_tokens, D when null), or None
    family: list | None = None  # per row, the runs' family (records.family_id: same config but D), or None

    @property
    def repeated(self) -> np.ndarray:
        """Rows that saw some token more than once (D > U_D)."""
        return np.zeros(len(self), bool) if self.U is None else self.D > self.U * (1 + 1e-9)

    @property
    def repetitions_vary(self) -> bool:
        """Whether the runs that repeat data do so at two or more epoch counts D / U_D:
        with one, a law cannot tell how fast repeated tokens lose value (R_D*) from its
        other parameters."""
        ep = self.D[self.repeated] / self.U[self.repeated] if self.repeated.any() else np.array([])
        return len(np.unique(np.round(np.log(ep), 2))) >= 2

    @property
    def XU(self) -> np.ndarray:
        """(n, 3) array of N, D, U_D for the data-constrained laws (U_D = D when unknown)."""
        return np.column_stack([self.N, self.D, self.D if self.U is None else self.U])

    def __len__(self) -> int:
        return len(self.loss)

    @property
    def X(self) -> np.ndarray:
        """(n, 2) array of N, D for the two-variable laws."""
        return np.column_stack([self.N, self.D])


RECORD_CONVENTIONS = {
    "N": "params_nonembedding",
    "D": "tokens",
    "C": "flops_6nd",
    "loss": "final_val_loss",
    "loss_units": "nats per token",
    "C_definition": "6 * N * D",
    "curve_C": "6 * params_nonembedding * tokens (curve points)",
}


def _num(v: Any) -> float:
    if isinstance(v, bool) or v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _flop_budget(rec: dict) -> float:
    data = (rec.get("config") or {}).get("data") or {}
    return _num(data.get("flop_budget")) if isinstance(data, dict) else math.nan


def _probes(rec: dict) -> dict | None:
    """The record's probe results, or None when it has none (older records)."""
    pr = rec.get("probes")
    if not isinstance(pr, dict) or not pr.get("buckets") or not isinstance(pr.get("final"), list):
        return None
    curve = [{"tokens": _num(p.get("tokens")), "val_loss": _num(p.get("val_loss")), "probes": p["probes"]}
             for p in rec.get("curve") or [] if isinstance(p, dict) and isinstance(p.get("probes"), list)]
    return {"kind": pr.get("kind"), "buckets": list(pr["buckets"]), "mass": list(pr.get("mass") or []),
            "final": pr["final"], "curve": curve}


def from_records(records: Iterable[dict], problems: Iterable[tuple] = (), source: str = "") -> Table:
    """The table of ``ok`` runs; other statuses go to ``excluded``."""
    records = list(records)  # read twice (rows, then the floor): a generator would leave the floor unread
    rows, curves, excluded, floors, probes = [], [], [], set(), []
    for rec in sorted(records, key=lambda r: str(r["run_id"])):
        if rec.get("status") != "ok":
            excluded.append({"run_id": rec["run_id"], "status": rec.get("status")})
            continue
        n, d, c, loss = (_num(rec.get(k)) for k in ("params_nonembedding", "tokens", "flops_6nd", "final_val_loss"))
        if not all(math.isfinite(v) and v > 0 for v in (n, d, c, loss)):
            excluded.append({"run_id": rec["run_id"], "status": "ok",
                             "reason": "non-positive or non-finite N, D, C or final_val_loss"})
            continue
        u = _num(rec.get("unique_tokens"))
        rows.append((rec["run_id"], n, d, c, loss, _flop_budget(rec), _num(rec.get("params_total")),
                     _num(rec.get("flops")), u if math.isfinite(u) and u > 0 else d, _family(rec)))
        tok, cl = [], []
        for p in rec.get("curve") or []:
            if not isinstance(p, dict):
                continue
            t, v = _num(p.get("tokens")), _num(p.get("val_loss"))
            if math.isfinite(t) and math.isfinite(v) and t > 0 and v > 0:
                tok.append(t), cl.append(v)
        tok.append(d), cl.append(loss)  # the final evaluation is a curve point too
        tok = np.asarray(tok)
        curves.append({"id": rec["run_id"], "N": n, "D": d, "tokens": tok, "C": 6.0 * n * tok, "loss": np.asarray(cl)})
        probes.append(_probes(rec))
        ef = _num(rec.get("entropy_floor"))
        if math.isfinite(ef):
            floors.add(ef)
    skipped = [{"file": Path(p).name, "reason": str(why)} for p, why in problems]
    if len(rows) < MIN_ROWS:
        raise TableError(f"{len(rows)} usable ok runs{' in ' + source if source else ''}; "
                         f"the fit needs at least {MIN_ROWS} ({len(excluded)} excluded, {len(skipped)} unreadable)")
    ids, N, D, C, L, B, NT, CD, U, FAM = zip(*rows)
    NT, CD, U = np.array(NT), np.array(CD), np.array(U)
    other = all(np.all(np.isfinite(v) & (v > 0)) for v in (NT, CD))
    ok = [rec for rec in records if rec.get("status") == "ok" and rec["run_id"] in set(ids)]
    floor, floor_source = known_floor(ok, sorted(floors))
    return Table(N=np.array(N), D=np.array(D), C=np.array(C), loss=np.array(L), ids=list(ids),
                 budget=np.array(B), curves=curves, entropy_floor=sorted(floors),
                 conventions={**RECORD_CONVENTIONS, **({"U_D": "unique_tokens (D when null)"} if np.any(
                     np.array(D) > U * (1 + 1e-9)) else {})},
                 source={"kind": "records", "n_records": len(rows) + len(excluded)},
                 excluded=excluded, skipped_files=skipped, probes=probes, floor=floor, floor_source=floor_source,
                 N_total=NT if other else None, C_detailed=CD if other else None,
                 U=U if np.any(np.array(D) > U * (1 + 1e-9)) else None,
                 family=list(FAM) if all(f is not None for f in FAM) else None)


def _family(rec: dict) -> str | None:
    """The record's family (runs that differ only in D share init and data order), or None."""
    cfg = rec.get("config")
    try:
        return family_id(cfg) if isinstance(cfg, dict) and isinstance(cfg.get("data"), dict) else None
    except (TypeError, ValueError):
        return None


def known_floor(records: list[dict], floors: list[float]) -> tuple[float | None, str]:
    """The floor F the fits fix E at, and where it comes from.

    Every run evaluates on its held-out windows, whose exact Bayes loss differs from the
    source's entropy rate by sampling noise (about 0.008 nats at 65k tokens): when every
    run shares one such loss, F is it. Runs record it (``heldout_floor``); for older
    records the generator recomputes it.
    Otherwise the records' common ``entropy_floor``; otherwise none."""
    from harness.data.synthetic import heldout_bayes_loss

    cache: dict[str, float | None] = {}
    for rec in records:
        cfg = rec.get("config") or {}
        data, ctx = cfg.get("data"), (cfg.get("model") or {}).get("context")
        key = repr((sorted((data or {}).items()), ctx))
        recorded = _num(rec.get("heldout_floor"))
        if math.isfinite(recorded):  # recorded at training time
            cache[key + repr(recorded)] = recorded
        elif key not in cache:  # older records: regenerate the windows
            try:
                cache[key] = heldout_bayes_loss(data, int(ctx)) if isinstance(data, dict) and ctx else None
            except (KeyError, TypeError, ValueError):
                cache[key] = None
    values = {round(v, 12) for v in cache.values() if v is not None}
    if len(values) == 1 and None not in cache.values():
        return values.pop(), "held-out Bayes loss: the exact Bayes-optimal loss of the validation windows"
    if len(floors) == 1 and all(math.isfinite(_num(r.get("entropy_floor"))) for r in records):
        return floors[0], "entropy_floor: the data source's entropy rate (the validation set's own Bayes loss unknown)"
    return None, ("unknown: runs report different floors" if len(floors) > 1 or len(values) > 1
                  else "unknown: no floor recorded")


def from_csv(path: str | Path, n: str, loss: str, d: str | None = None, c: str | None = None,
             drop_highest_loss: int = 0, id_col: str | None = None, budget_col: str | None = None,
             floor: float | None = None, d_unique: str | None = None) -> Table:
    """A table from a CSV with the named columns (exactly one of ``d`` and ``c``);
    ``d_unique``: the column of unique tokens U_D (repeated data; D / U_D epochs)."""
    import pandas as pd

    path = Path(path)
    if (d is None) == (c is None):
        raise TableError("give exactly one of --d (tokens) and --c (compute) columns")
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise TableError(f"no such file: {path}") from None
    except Exception as e:  # pandas raises many types for unreadable input
        raise TableError(f"cannot read {path} as CSV: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    wanted = {"--n": n, "--loss": loss, ("--d" if d else "--c"): d or c}
    if id_col:
        wanted["--id"] = id_col
    if budget_col:
        wanted["--flop-budget"] = budget_col
    if d_unique:
        wanted["--d-unique"] = d_unique
    missing = [f"{flag} {col!r}" for flag, col in wanted.items() if col not in df.columns]
    if missing:
        raise TableError(f"{path.name}: column {', '.join(missing)} not found; columns are {list(map(str, df.columns))}")
    cols = {}
    for flag, col in [("--n", n), ("--loss", loss), ("--d" if d else "--c", d or c)] + \
            ([("--d-unique", d_unique)] if d_unique else []):
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(v))
        if len(bad):
            raise TableError(f"{path.name}: column {col!r} has {len(bad)} missing or non-numeric values "
                             f"(first on line {bad[0] + 2}: {df[col].iloc[bad[0]]!r})")
        bad = np.flatnonzero(v <= 0)
        if len(bad):
            raise TableError(f"{path.name}: column {col!r} has {len(bad)} non-positive values "
                             f"(first on line {bad[0] + 2}: {v[bad[0]]:g}); N, D, C, U_D and loss must be > 0")
        cols[flag] = v
    N, L = cols["--n"], cols["--loss"]
    if d:
        D = cols["--d"]
        C = 6.0 * N * D
    else:
        C = cols["--c"]
        D = C / (6.0 * N)
    budget = (pd.to_numeric(df[budget_col], errors="coerce").to_numpy(dtype=float)
              if budget_col else np.full(len(N), np.nan))
    ids = [str(v) for v in df[id_col]] if id_col else list(range(len(N)))
    keep = np.arange(len(N))
    dropped = []
    if drop_highest_loss:
        if drop_highest_loss < 0:
            raise TableError("--drop-highest-loss must be >= 0")
        order = np.lexsort((np.arange(len(L)), -L))  # highest loss first, ties by row
        drop = np.sort(order[:drop_highest_loss])
        dropped = [{"row": ids[i], "loss": float(L[i]), "reason": "highest loss"} for i in drop]
        keep = np.setdiff1d(keep, drop)
    if len(keep) < MIN_ROWS:
        raise TableError(f"{path.name}: {len(keep)} usable rows; the fit needs at least {MIN_ROWS}")
    if floor is not None and not (0 < floor < L[keep].min()):
        raise TableError(f"--floor {floor:g} must be positive and below every loss (lowest {L[keep].min():.6g})")
    if budget_col is None:
        budget = shared_budgets(C)
    U = cols["--d-unique"][keep] if d_unique else None
    curves = [{"id": ids[i], "N": N[i], "D": D[i], "C": np.array([C[i]]), "loss": np.array([L[i]])} for i in keep]
    conv = {"N": n, "D": d if d else f"{c} / (6 * {n})", "C": f"6 * {n} * {d}" if d else c, "loss": loss,
            "loss_units": "as given (nats per token for language models)", "C_definition": "6 * N * D",
            **({"U_D": d_unique} if d_unique else {})}
    return Table(N=N[keep], D=D[keep], C=C[keep], loss=L[keep], ids=[ids[i] for i in keep], budget=budget[keep],
                 curves=curves, entropy_floor=[] if floor is None else [float(floor)], conventions=conv,
                 source={"kind": "csv", "file": path.name, "n_rows": int(len(N))}, dropped=dropped,
                 floor=None if floor is None else float(floor),
                 floor_source="given: --floor" if floor is not None else "unknown: no --floor given",
                 U=U if U is not None and np.any(D[keep] > U * (1 + 1e-9)) else None)


def shared_budgets(C: np.ndarray, rtol: float = 0.01, min_runs: int = 3) -> np.ndarray:
    """Each row's IsoFLOP budget where at least ``min_runs`` rows share a compute within
    ``rtol`` (as published IsoFLOP tables do), else NaN."""
    from harness.analysis.frontier import group_values

    labels = group_values(C, rtol)
    out = np.full(len(C), np.nan)
    for g in np.unique(labels):
        idx = labels == g
        if idx.sum() >= min_runs:
            out[idx] = float(np.median(C[idx]))
    return out
