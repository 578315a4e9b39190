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
import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterable, Optional, TypedDict, get_type_hints

from harness.atomic import atomic_write_text
from harness.config import non_semantic_keys, null_unhashed_keys

STATUSES = ("ok", "diverged", "oom", "failed", "interrupted")

# Keys (and whole groups) that do not change what a run computes: marked
# ``semantic=False`` in harness.config, left out of the run id.
NON_SEMANTIC = frozenset(non_semantic_keys())
# Keys added later whose null means the old behaviour: hashed only when set.
NULL_UNHASHED = frozenset(null_unhashed_keys())

# What the loader checks and runs.csv shows, as annotations of the record's fields.
NUMBER = "number"  # a finite number when present and not null (analysis does math on it)
OK = "ok"  # ... and present, not null, in every ``ok`` record (N, D, C and the final loss)
CSV = "csv"  # a runs.csv column, in declaration order
REQUIRED = "required"  # in every record, whatever its status


class CurvePoint(TypedDict, total=False):
    """One evaluation along a run (losses in nats per token)."""

    step: int
    tokens: Annotated[int, NUMBER]  # training tokens seen
    flops: Annotated[float, NUMBER]  # 6 N tokens, Kaplan's N (as flops_6nd)
    train_loss: Annotated[float, NUMBER]  # mean training loss since the previous point
    val_loss: Annotated[float, NUMBER]  # held-out loss
    probes: list  # per-bucket probe metrics (harness.data.probe_sets), when the data has probes


class RunRecord(TypedDict, total=False):
    """``results/<sweep>/runs/<run_id>.json`` (DESIGN.md): the source of truth for analysis.

    ``run_id``, ``sweep``, ``status`` and ``config`` are always there; a run that ended
    before its setup finished has little else. Fields after ``device`` appear only
    when they apply."""

    run_id: Annotated[str, REQUIRED, CSV]
    sweep: Annotated[str, REQUIRED, CSV]
    status: Annotated[str, REQUIRED, CSV]  # one of STATUSES
    config: Annotated[dict, REQUIRED]  # the resolved config
    curve: list[CurvePoint]
    params_total: Annotated[int, NUMBER, CSV]
    params_embedding: Annotated[int, NUMBER, CSV]
    params_nonembedding: Annotated[int, NUMBER, OK, CSV]  # Kaplan's N
    tokens: Annotated[int, NUMBER, OK, CSV]  # training tokens seen (D): whole batches
    steps: int
    lr: float  # the resolved peak lr
    flops_6nd: Annotated[float, NUMBER, OK, CSV]  # 6 N D, Kaplan's N
    flops: Annotated[float, NUMBER, CSV]  # flops_per_token x D (harness.model: attention and head included)
    flops_per_token: float
    final_train_loss: Annotated[float, NUMBER, CSV]
    final_val_loss: Annotated[float, NUMBER, OK, CSV]
    entropy_floor: Annotated[Optional[float], NUMBER, CSV]  # the source's exact floor, or null
    # the exact Bayes loss of the run's own held-out windows (synthetic sources), or null;
    # not a runs.csv column, so committed runs.csv files keep their columns
    heldout_floor: Annotated[Optional[float], NUMBER]
    wall_time_s: Annotated[float, NUMBER, CSV]
    tokens_per_s: Annotated[float, NUMBER, CSV]
    mfu: Annotated[Optional[float], NUMBER, CSV]  # null on CPU and unknown GPUs
    device: Annotated[str, CSV]
    data_info: dict  # facts the data source reports (epochs over a corpus, ...)
    # U_D: the pool the run repeats (data.unique_tokens or D / data.epochs; on text with
    # neither, the corpus's training part), null when every token is fresh; not runs.csv
    # columns, so committed runs.csv files keep their bytes (their columns are fixed)
    unique_tokens: Annotated[Optional[int], NUMBER]
    epochs: Annotated[float, NUMBER]  # D / U_D; 1 when every token is fresh
    precision: str
    versions: dict  # torch, harness, git commit, python, cpu (the CPU model), cpu_capability (torch's ISA)
    torch_threads: Optional[int]  # CPU runs: bitwise reproducible for a fixed thread count and CPU model
    error: str  # when not ok
    first_step_s: float  # the first step's wall time (with torch.compile, its compilation)
    compile_s: float  # train.compile: the first step's time over a typical step's
    probes: dict  # per-skill probes at the end: kind, buckets, mass, final, time_s, time_fraction
    packed: dict  # sweep.pack: the pack's size and the other run ids
    resumed_from_step: int
    checkpoint_step: int  # an interrupted run: where train.resume=true continues
    checkpoint_error: str  # an unusable checkpoint that was ignored
    branched_from_step: int  # WSD ladders: started from a sibling's stable phase here
    tokens_shared: int  # ... so many of its tokens came from the sibling
    slurm_job_id: str  # inside a SLURM job (harness.slurm): the job (array task) id
    requeues: int  # ... and how many times SLURM requeued it


def _tagged(schema: type, tag: str) -> tuple[str, ...]:
    hints = get_type_hints(schema, include_extras=True)
    return tuple(k for k, h in hints.items() if tag in getattr(h, "__metadata__", ()))


REQUIRED_FIELDS = _tagged(RunRecord, REQUIRED)
CSV_FIELDS = _tagged(RunRecord, CSV)
NUMBER_FIELDS = _tagged(RunRecord, NUMBER)
OK_FIELDS = _tagged(RunRecord, OK)
CURVE_FIELDS = _tagged(CurvePoint, NUMBER)
# main config keys, appended to runs.csv's columns
CSV_CONFIG_FIELDS = [
    "model.width", "model.depth", "model.heads", "model.context", "model.parametrization",
    "data.source", "data.tokens", "data.flop_budget", "data.seed", "train.lr", "train.schedule",
    "train.batch_size", "train.seed",
]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    # iterative, so a deeply nested (foreign) config cannot blow the stack
    out: dict[str, Any] = {}
    stack = [(prefix, d)]
    while stack:
        pre, node = stack.pop()
        for k, v in node.items():
            key = f"{pre}{k}"
            if isinstance(v, dict):
                stack.append((key + ".", v))
            else:
                out[key] = v
    return out


def semantic_config(config: dict) -> dict[str, Any]:
    flat = _flatten(config)
    return {
        k: v
        for k, v in sorted(flat.items())
        if k not in NON_SEMANTIC and k.split(".")[0] not in NON_SEMANTIC
        and not (v is None and k in NULL_UNHASHED)
    }


def run_id(config: dict) -> str:
    """12 hex digits of sha256 over the semantic keys of the resolved config."""
    blob = json.dumps(semantic_config(config), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def family_id(config: dict) -> str:
    """The run id with the token budget left out: runs of one family differ only in D
    (a WSD ladder's branches; a grid's runs of one size and seed). With ``data.epochs``
    set the pool D / epochs moves with D, so runs of different D share no batches and
    each is a family of its own."""
    base = dict(config)
    budget = ("tokens", "flop_budget") if config["data"].get("epochs") is None else ()
    base["data"] = {k: v for k, v in config["data"].items() if k not in budget}
    return run_id(base)


@dataclass(frozen=True)
class ResultsLayout:
    """Every path under ``<results_dir>/<sweep>/``: the one place that knows the layout.

    ``runs/<run_id>.json`` records, ``runs.csv``, ``plan.json`` (a sweep's pre-flight),
    ``checkpoints/<run_id>.pt``, ``branches/<family>_<step>.pt`` (WSD branch states) and
    ``wandb/`` (offline wandb runs; wandb adds the ``wandb`` folder to ``root``). The
    fit writes ``fit.json``, ``figures/`` and ``report.md`` next to them."""

    results_dir: Path
    sweep: str

    @classmethod
    def of(cls, cfg: Any) -> "ResultsLayout":
        return cls(Path(cfg.results_dir), cfg.sweep.name)

    @property
    def root(self) -> Path:
        return Path(self.results_dir) / self.sweep

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def record(self, rid: str) -> Path:
        return self.runs / f"{rid}.json"

    def checkpoint(self, rid: str) -> Path:
        return self.root / "checkpoints" / f"{rid}.pt"

    def branch(self, family: str, step: int) -> Path:
        return self.root / "branches" / f"{family}_{step}.pt"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def runs_csv(self) -> Path:
        return self.root / "runs.csv"


def write_record(record: dict, results_dir: str | Path) -> Path:
    """Write ``record`` as strict JSON: a NaN or inf anywhere becomes null, so writing a
    record (for instance of a diverged run) can never fail on a non-finite number."""
    path = ResultsLayout(Path(results_dir), record["sweep"]).record(record["run_id"])
    text = json.dumps(_finite(record), indent=1, allow_nan=False, default=_json_default)
    atomic_write_text(path, text)
    return path


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if hasattr(o, "item") and not isinstance(o, (str, bytes)):  # numpy / torch scalars
        try:
            return _finite(o.item())
        except (TypeError, ValueError, RuntimeError):
            return str(o)
    return o


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


class BadRecord(ValueError):
    pass


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_record(obj: Any) -> dict:
    """Return ``obj`` if it looks like a run record, else raise BadRecord saying why.

    Checks what downstream code relies on: the identifying fields are strings, the
    config an object, every known numeric field a finite number (or null), the curve
    a list of points with numeric (or null) fields; ``ok`` records carry N, D, C and
    the final loss."""
    if not isinstance(obj, dict):
        raise BadRecord("not a JSON object")
    for key in REQUIRED_FIELDS:
        if key not in obj:
            raise BadRecord(f"missing field {key!r}")
    for key in ("run_id", "sweep"):
        if not isinstance(obj[key], str) or not obj[key]:
            raise BadRecord(f"field {key!r} is not a non-empty string")
    if not isinstance(obj["status"], str) or obj["status"] not in STATUSES:
        raise BadRecord(f"unknown status {obj['status']!r}"[:200])
    if not isinstance(obj["config"], dict):
        raise BadRecord("field 'config' is not an object")
    for key in NUMBER_FIELDS:
        v = obj.get(key)
        if v is None:
            if obj["status"] == "ok" and key in OK_FIELDS:
                raise BadRecord(f"field {key!r} is not a number")
        elif not _is_number(v):
            raise BadRecord(f"field {key!r} is not a number")
    curve = obj.get("curve")
    if curve is not None:
        if not isinstance(curve, list):
            raise BadRecord("field 'curve' is not a list")
        for i, p in enumerate(curve):
            if not isinstance(p, dict):
                raise BadRecord(f"curve point {i} is not an object")
            for key in CURVE_FIELDS:
                if p.get(key) is not None and not _is_number(p[key]):
                    raise BadRecord(f"curve point {i}: {key!r} is not a number")
    return obj


def _no_constant(name: str) -> Any:
    # we write strict JSON (allow_nan=False), so NaN/Infinity literals mean a foreign file
    raise BadRecord(f"non-standard JSON constant {name}")


def read_record(path: str | Path) -> dict:
    """Parse and check one record file; raise BadRecord (never anything else) if unusable.
    Plain JSON only: reading a record can never execute code."""
    path = Path(path)
    try:
        if not path.is_file():
            raise BadRecord("not a regular file")
        obj = json.loads(path.read_bytes(), parse_constant=_no_constant)
    except BadRecord:
        raise
    # ValueError covers JSONDecodeError, UnicodeDecodeError and ints past Python's digit limit
    except (OSError, ValueError, RecursionError, MemoryError) as e:
        raise BadRecord(f"unreadable JSON ({type(e).__name__})") from e
    return check_record(obj)


def load_records(results_dir: str | Path, warn: bool = True) -> tuple[list[dict], list[tuple[Path, str]]]:
    """All records under ``results_dir/runs`` (or ``results_dir`` itself if it holds
    the JSON files). Corrupt, truncated or foreign files are skipped and returned as
    ``(path, reason)``, with a warning naming the file; this never raises for a bad file."""
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
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())
    return path
