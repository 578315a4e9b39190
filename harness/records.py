"""Run records: ``results/<sweep>/runs/<run_id>.json``, the source of truth for analysis.

A run is identified by its resolved config: ``run_id`` is a short hash of the
semantic keys (those that change what is trained), so the same config is the same
run and a sweep can skip it. Records are written atomically (temp file in the same
folder, fsync, rename), so a killed process leaves either the old record or the new
one, never a torn file. Loading never executes anything: records are plain JSON.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

STATUSES = ("ok", "diverged", "oom", "failed", "interrupted")

# Keys that do not change what a run computes (where it runs, how it reports).
NON_SEMANTIC = {
    "train.device",
    "train.compile",
    "train.progress",
    "train.threads",
    "train.checkpoint_every",
    "train.resume",
    "data.cache_dir",
    "sweep.fit",
}
NON_SEMANTIC_GROUPS = {"wandb", "results_dir"}

# Scalar fields copied into runs.csv, in order; config columns are appended.
CSV_FIELDS = [
    "run_id", "sweep", "status", "params_total", "params_embedding", "params_nonembedding",
    "tokens", "flops_6nd", "flops", "final_train_loss", "final_val_loss", "entropy_floor",
    "wall_time_s", "tokens_per_s", "mfu", "device",
]
CSV_CONFIG_FIELDS = [
    "model.width", "model.depth", "model.heads", "model.context", "model.parametrization",
    "data.source", "data.tokens", "data.flop_budget", "data.seed", "train.lr", "train.schedule",
    "train.batch_size", "train.seed",
]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def semantic_config(config: dict) -> dict[str, Any]:
    flat = _flatten(config)
    return {
        k: v
        for k, v in sorted(flat.items())
        if k not in NON_SEMANTIC and k.split(".")[0] not in NON_SEMANTIC_GROUPS
    }


def run_id(config: dict) -> str:
    """12 hex digits of sha256 over the semantic keys of the resolved config."""
    blob = json.dumps(semantic_config(config), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def runs_dir(results_dir: str | Path, sweep: str) -> Path:
    return Path(results_dir) / sweep / "runs"


def record_path(results_dir: str | Path, sweep: str, rid: str) -> Path:
    return runs_dir(results_dir, sweep) / f"{rid}.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a unique temp file and rename (POSIX-atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_record(record: dict, results_dir: str | Path) -> Path:
    path = record_path(results_dir, record["sweep"], record["run_id"])
    atomic_write_text(path, json.dumps(record, indent=1, allow_nan=False, default=_json_default))
    return path


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


class BadRecord(ValueError):
    pass


def check_record(obj: Any) -> dict:
    """Return ``obj`` if it looks like a run record, else raise BadRecord saying why."""
    if not isinstance(obj, dict):
        raise BadRecord("not a JSON object")
    for key in ("run_id", "sweep", "status", "config"):
        if key not in obj:
            raise BadRecord(f"missing field {key!r}")
    if obj["status"] not in STATUSES:
        raise BadRecord(f"unknown status {obj['status']!r}")
    if obj["status"] == "ok":
        for key in ("params_nonembedding", "tokens", "flops_6nd", "final_val_loss"):
            v = obj.get(key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v == v:
                raise BadRecord(f"field {key!r} is not a number")
    return obj


def read_record(path: Path) -> dict:
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BadRecord(f"unreadable JSON ({type(e).__name__})") from e
    return check_record(obj)


def load_records(results_dir: str | Path, warn: bool = True) -> tuple[list[dict], list[tuple[Path, str]]]:
    """All records under ``results_dir/runs`` (or ``results_dir`` itself if it holds
    the JSON files). Corrupt, truncated or foreign files are skipped and returned as
    ``(path, reason)``, with a warning naming the file."""
    root = Path(results_dir)
    folder = root / "runs" if (root / "runs").is_dir() else root
    records, problems = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            records.append(read_record(path))
        except BadRecord as e:
            problems.append((path, str(e)))
            if warn:
                warnings.warn(f"skipping {path}: {e}", stacklevel=2)
    return records, problems


def csv_row(record: dict) -> dict[str, Any]:
    row = {k: record.get(k) for k in CSV_FIELDS}
    flat = _flatten(record.get("config", {}))
    for key in CSV_CONFIG_FIELDS:
        row[key] = flat.get(key)
    return row


def write_runs_csv(records: Iterable[dict], path: str | Path) -> Path:
    """One row per record, the scalar fields plus the main config keys."""
    rows = [csv_row(r) for r in sorted(records, key=lambda r: (r.get("flops_6nd") or 0, r["run_id"]))]
    fields = list(csv_row({}).keys())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())
    return path
