"""Sweeps: a preset grid from ``configs/sweep/`` run through Hydra multirun.

Hydra expands the grid and launches the jobs (basic, joblib or submitit launcher);
this module adds what Hydra does not do on its own:

- a pre-flight (:func:`plan`) that composes and validates every grid point before
  any compute is spent, and writes ``results/<sweep>/plan.json`` (run ids, total,
  start time) for progress and the summary;
- resume: a job whose record already says ``ok`` is skipped, matched by run_id
  (failed, diverged, OOM and interrupted runs are redone);
- failure isolation: a job never raises, so one bad run cannot stop the sweep;
- progress with an ETA after every job, and at the end a summary, ``runs.csv``, the
  fit and figures, and one wandb run of job_type ``analysis``.

Grid axes: the preset's ``hydra.sweeper.params``; a command-line sweep axis
(``model.width=64,128``) replaces the preset's axis of the same key.
"""
from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from harness import records, slurm
from harness.atomic import atomic_write_text
from harness.config import ConfigError, to_container
from harness.validation import validate
from harness.model import flops_per_token, gpt_config, planned_tokens
from harness.records import ResultsLayout
from harness import tracking
from harness.train import pack_key, train, train_packed


def grid_axes(preset_params: dict | None, cli_overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split overrides into fixed ones and sweep axes; CLI axes replace preset axes."""
    parser = OverridesParser.create()
    axes: dict[str, list[str]] = {}
    for key, value in (preset_params or {}).items():
        (o,) = parser.parse_overrides([f"{key}={value}"])
        axes[key] = list(o.sweep_string_iterator()) if o.is_sweep_override() else [str(o.value())]
    fixed = []
    for o in parser.parse_overrides(cli_overrides):
        key = o.get_key_element()
        if o.is_sweep_override():
            axes[key] = list(o.sweep_string_iterator())
        elif key in axes:
            axes[key] = [o.get_value_element_as_str()]
        else:
            fixed.append(o.input_line)
    return fixed, axes


def plan(config_dir: str, overrides: list[str]) -> dict:
    """Compose and validate every grid point; raise ConfigError on the first bad one."""
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        fixed, _ = grid_axes({}, overrides)
        base = compose("config", overrides=fixed, return_hydra_config=True)
        fixed, axes = grid_axes(dict(base.hydra.sweeper.params or {}), overrides)
        keys = list(axes)
        run_ids, points, configs = [], [], []
        for values in itertools.product(*(axes[k] for k in keys)):
            point = [f"{k}={v}" for k, v in zip(keys, values)]
            cfg = compose("config", overrides=fixed + point)
            try:
                validate(cfg)
            except ConfigError as e:
                raise ConfigError(f"{e} (grid point: {' '.join(point)})") from None
            rid = records.run_id(to_container(cfg))
            if rid in run_ids:  # e.g. a command-line axis overriding a key a preset's group axis sets
                twin = points[run_ids.index(rid)]
                raise ConfigError(f"grid points {' '.join(twin)} and {' '.join(point)} are the same run ({rid}): "
                                  "an axis sets a key that another axis or override also sets")
            run_ids.append(rid)
            points.append(point)
            configs.append(cfg)
        sweep_name, results_dir = cfg.sweep.name, cfg.results_dir
    done = [
        rid for rid in run_ids
        if _status(ResultsLayout(results_dir, sweep_name).record(rid)) == "ok"
    ]
    info = {
        "sweep": sweep_name, "results_dir": results_dir, "total": len(run_ids), "run_ids": run_ids,
        "points": points, "already_done": len(done), "done_at_start": done, "started": time.time(),
        "axes": axes, "flops": [planned_flops(c) for c in configs],
    }
    atomic_write_text(ResultsLayout(results_dir, sweep_name).plan, json.dumps(info, indent=1))
    return {**info, "configs": configs}


def run_packs(configs: list, pack: int) -> None:
    """``sweep.pack=K``: instead of one Hydra job per run, train the unfinished runs in
    packs of up to K runs of one shape (harness.train.train_packed), shortest first within a shape.
    Packed runs write the same records (same run ids) as unpacked ones."""
    todo = [c for c in configs
            if _status(ResultsLayout.of(c).record(records.run_id(to_container(c)))) != "ok"]
    groups: dict[tuple, list] = {}
    for c in todo:
        groups.setdefault(pack_key(c), []).append(c)
    for group in groups.values():
        group.sort(key=planned_tokens)
        for i in range(0, len(group), pack):
            chunk = group[i : i + pack]
            for rec in train_packed(chunk):
                print(outcome_line(rec))
            print(progress_line(chunk[0].results_dir, chunk[0].sweep.name))


def _status(path: Path) -> str | None:
    try:
        return records.read_record(path)["status"]
    except records.BadRecord:
        return None


def run_job(cfg: DictConfig) -> dict | None:
    """One sweep job: validate, skip if done, train. Never raises, except on Ctrl-C."""
    try:
        validate(cfg)
    except ConfigError as e:
        print(f"harness-sweep: error: {e}", file=sys.stderr)
        return None
    rid = records.run_id(to_container(cfg))
    path = ResultsLayout.of(cfg).record(rid)
    if _status(path) == "ok":
        print(f"[{cfg.sweep.name}] {rid}: already done, skipped")
        result = records.read_record(path)
    else:
        result = train(cfg)
        print(outcome_line(result))
    print(progress_line(cfg.results_dir, cfg.sweep.name))
    return result


def outcome_line(rec: dict) -> str:
    """``[sweep] run_id: status, val loss X`` (or the error when not ok)."""
    loss = rec.get("final_val_loss")
    return (f"[{rec['sweep']}] {rec['run_id']}: {rec['status']}"
            + (f", val loss {loss:.4f}" if loss is not None else f" ({rec.get('error')})"))


def _fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def planned_flops(cfg: Any) -> float:
    """A run's planned training FLOPs (flops_per_token, PaLM convention, times D): the
    weight of a run in the sweep's ETA."""
    vocab = cfg.data.tokenizer_vocab if cfg.data.source == "text" else cfg.data.vocab
    return float(flops_per_token(gpt_config(cfg, vocab)) * planned_tokens(cfg))


def tally(results_dir: str | Path, sweep: str) -> dict:
    """Statuses of the planned runs, how many were done before this sweep began, and
    the planned FLOPs finished by this sweep and still to run."""
    layout = ResultsLayout(Path(results_dir), sweep)
    info = json.loads(layout.plan.read_text())
    counts: dict[str, int] = {s: 0 for s in records.STATUSES}
    counts["missing"] = 0
    at_start = set(info.get("done_at_start", []))
    flops = info.get("flops") or [1.0] * info["total"]
    flops_new = flops_left = 0.0
    for rid, f in zip(info["run_ids"], flops):
        status = _status(layout.record(rid))
        counts[status or "missing"] += 1
        if status is None:
            flops_left += f
        elif rid not in at_start:
            flops_new += f
    finished = info["total"] - counts["missing"]
    return {**counts, "total": info["total"], "finished": finished, "skipped": info["already_done"],
            "elapsed_s": time.time() - info["started"], "flops_new": flops_new, "flops_left": flops_left}


def progress_line(results_dir: str | Path, sweep: str) -> str:
    """Runs done, elapsed time and an ETA that weighs the runs by their planned FLOPs.
    Small models run below their FLOP rate, so late in a largest-first sweep the ETA
    is optimistic."""
    try:
        t = tally(results_dir, sweep)
    except (OSError, ValueError, KeyError):
        return f"[{sweep}] progress unknown (no plan.json)"
    left = t["total"] - t["finished"]
    eta = (_fmt_time(t["elapsed_s"] * t["flops_left"] / t["flops_new"])
           if t["flops_new"] > 0 and left > 0 else "-")
    return (f"[{sweep}] {t['finished']}/{t['total']} runs done ({t['skipped']} skipped as already done)"
            f" · elapsed {_fmt_time(t['elapsed_s'])} · ETA {eta}")


def compile_line(sweep: str, recs: list[dict]) -> str | None:
    """What torch.compile cost the sweep's compiled runs: their summed compile time
    (record ``compile_s``) as a share of their summed wall time."""
    compiled = [r for r in recs if r.get("compile_s") is not None]
    if not compiled:
        return None
    spent = sum(r["compile_s"] for r in compiled)
    wall = sum(r.get("wall_time_s", 0.0) for r in compiled)
    return (f"[{sweep}] torch.compile: {spent:.1f} s of the {len(compiled)} compiled runs' "
            f"{wall:.1f} s wall time ({spent / max(wall, 1e-9):.1%})")


def finish_sweep(cfg: Any) -> dict:
    """Summary, runs.csv, fit, figures and the wandb analysis run."""
    results_dir, sweep = cfg.results_dir, cfg.sweep.name
    layout = ResultsLayout.of(cfg)
    out = layout.root
    t = tally(results_dir, sweep)
    print(
        f"[{sweep}] sweep finished in {_fmt_time(t['elapsed_s'])}: {t['ok']} ok, {t['diverged']} diverged, "
        f"{t['oom']} oom, {t['failed']} failed, {t['interrupted']} interrupted, {t['missing']} not run "
        f"({t['skipped']} of {t['total']} skipped as already done)"
    )
    recs, _ = records.load_records(out)
    shared = sum(r.get("tokens_shared", 0) for r in recs)
    if shared:
        total = sum(r.get("tokens", 0) for r in recs)
        print(f"[{sweep}] WSD branching: {shared:,} of {total:,} training tokens came from a sibling's "
              f"stable phase, so the sweep trained {1 - shared / total:.0%} of the tokens independent runs need")
    line = compile_line(sweep, recs)
    if line:
        print(line)
    records.write_runs_csv(recs, layout.runs_csv)
    print(f"[{sweep}] wrote {layout.runs_csv} ({len(recs)} records)")
    if not cfg.sweep.fit:
        return t
    # imported here: the fit pulls in scipy and matplotlib, which harness-train never needs
    from harness.analysis import fit_results_dir

    try:
        result = fit_results_dir(out)
    except Exception as e:  # too few runs, or a failed fit, must not lose the sweep's records
        print(f"[{sweep}] fit skipped: {type(e).__name__}: {e}", file=sys.stderr)
        return t
    print(f"[{sweep}] fit, figures and report in {out}")
    log_analysis(cfg, result["fit"], [Path(p) for p in result["figures"]])
    return t


def log_analysis(cfg: Any, fit: dict, figures: list[Path]) -> None:
    """The sweep's wandb analysis run (harness.tracking.log_analysis)."""
    tracking.log_analysis(cfg.wandb, ResultsLayout.of(cfg).root, fit, figures, sweep=cfg.sweep.name)


class SweepCallback(Callback):
    """Hydra callback: the end-of-sweep summary and fit, in the launching process."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        slurm.on_multirun_start(config)  # job states from squeue where SLURM has no sacct (harness/slurm.py)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if ResultsLayout.of(config).plan.exists():
            finish_sweep(config)
