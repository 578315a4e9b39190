"""wandb logging that never kills training.

Mode comes from ``wandb.mode`` (the ``WANDB_MODE`` environment variable wins, so
tests and CI can force ``disabled``). ``online`` without an API key falls back to
``offline`` with a warning, and so does an online ``wandb.init`` that fails (an
unreachable server, a rejected key): later runs in the same process then go straight
to offline instead of waiting on the server again. Any other wandb error disables
logging for the rest of the run with a warning. Offline runs land in
``<results_dir>/<sweep>/wandb/`` and can be uploaded later with ``wandb sync``.

Works with wandb 0.17 and later (the pin in pyproject.toml): no ``reinit`` argument,
whose accepted values changed across versions; an open run is finished first instead.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

# Set once an online wandb.init has failed in this process (see module docstring).
_online_failed = False


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    netrc = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return host in netrc.read_text(errors="replace")
    except OSError:
        return False


def resolve_mode(mode: str) -> str:
    mode = os.environ.get("WANDB_MODE", mode)
    if mode in ("dryrun",):
        mode = "offline"
    if mode == "online" and not _has_api_key():
        warnings.warn("wandb.mode=online but no API key is set: logging offline (sync later with `wandb sync`)")
        mode = "offline"
    return mode


def _settings(wandb: Any, mode: str) -> Any:
    """Quiet settings. Offline, tables reference their files by path: wandb 0.18 to
    0.19.4 otherwise ask the server for its version when a table is logged, and retry
    for minutes on a machine without network (wandb issue #8957)."""
    kw: dict[str, Any] = {"silent": True, "console": "off"}
    if mode == "offline" and hasattr(wandb.Settings(), "allow_offline_artifacts"):
        kw["allow_offline_artifacts"] = False
    return wandb.Settings(**kw)


class Tracker:
    """A thin wrapper around one wandb run; every call is a no-op once disabled.

    ``resume_id`` (the ``id`` of an earlier, interrupted run) continues that wandb run,
    online and offline (an offline resume writes a second run folder with the same id,
    which ``wandb sync`` joins), so a resumed training run stays one run in wandb.
    ``tags`` are added to ``wandb.tags``."""

    def __init__(self, wandb_cfg: Any, *, name: str, group: str, job_type: str, config: dict, directory: Path,
                 resume_id: str | None = None, tags: list[str] = ()):
        global _online_failed
        self.run = None
        mode = resolve_mode(wandb_cfg.mode)
        if mode == "disabled":
            return
        if mode == "online" and _online_failed:
            mode = "offline"
        try:
            import wandb  # 0.6 s to import: only when logging is on

            directory.mkdir(parents=True, exist_ok=True)
            kwargs = dict(
                project=wandb_cfg.project,
                entity=wandb_cfg.entity,
                tags=list(dict.fromkeys([*(wandb_cfg.tags or []), *tags])),
                name=name,
                group=group,
                job_type=job_type,
                config=config,
                dir=str(directory),
            )
        except Exception as e:  # wandb trouble must never stop training
            self._fail(e)
            return
        if resume_id:
            kwargs.update(id=resume_id, resume="allow")
        try:
            if getattr(wandb, "run", None) is not None:  # one run per process: a stray open run would swallow this one
                wandb.finish()
            self.run = wandb.init(mode=mode, settings=_settings(wandb, mode), **kwargs)
            return
        except Exception as e:
            if mode != "online":
                self._fail(e)
                return
            _online_failed = True
            warnings.warn(f"wandb online init failed ({type(e).__name__}: {e}): logging offline "
                          "(sync later with `wandb sync`)")
        try:
            self.run = wandb.init(mode="offline", settings=_settings(wandb, "offline"), **kwargs)
        except Exception as e:
            self._fail(e)

    @property
    def id(self) -> str | None:
        """The wandb run id, or None when not logging."""
        try:
            return None if self.run is None else str(self.run.id)
        except Exception:
            return None

    def _fail(self, e: Exception) -> None:
        warnings.warn(f"wandb disabled for this run: {type(e).__name__}: {e}")
        self.run = None

    def log(self, data: dict, step: int | None = None) -> None:
        if self.run is None:
            return
        try:
            self.run.log(data, step=step)
        except Exception as e:
            self._fail(e)

    def summary(self, data: dict) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update(data)
        except Exception as e:
            self._fail(e)

    def log_images(self, paths: list[Path]) -> None:
        if self.run is None:
            return
        try:
            import wandb  # imported already: a run is open

            self.log({p.stem: wandb.Image(str(p)) for p in paths})
        except Exception as e:
            self._fail(e)

    def log_table(self, key: str, columns: list[str], rows: list[list]) -> None:
        if self.run is None:
            return
        try:
            import wandb  # imported already: a run is open

            self.log({key: wandb.Table(columns=columns, data=rows)})
        except Exception as e:
            self._fail(e)

    def _safely(self, fn):
        """``fn(run)``, or nothing once disabled; a wandb error disables the tracker."""
        if self.run is None:
            return None
        try:
            return fn(self.run)
        except Exception as e:
            self._fail(e)
            return None

    def define_metrics(self) -> None:
        """x-axes: ``tokens`` (the step metric of every ``train/``, ``val/`` and ``probe/``
        key) and ``flops_6nd`` (6·N·tokens); ``val/loss`` is summarised as its min."""
        def define(run):
            run.define_metric("tokens")
            run.define_metric("flops_6nd")
            for glob in ("train/*", "val/*", "probe/*"):
                run.define_metric(glob, step_metric="tokens")
            run.define_metric("val/loss", step_metric="tokens", summary="min")
        self._safely(define)

    def config(self, data: dict) -> None:
        self._safely(lambda run: run.config.update(data, allow_val_change=True))

    def log_artifact(self, name: str, kind: str, files: dict[Path, str]) -> None:
        """One artifact holding ``files`` (local path -> name in the artifact)."""
        def log(run):
            import wandb

            art = wandb.Artifact(name, type=kind)
            for path, as_name in files.items():
                art.add_file(str(path), name=as_name)
            run.log_artifact(art)
        self._safely(log)

    def use_artifacts(self, names: list[str]) -> None:
        """Lineage: mark ``names`` (``name:alias``) as inputs. Online only: wandb refuses
        ``use_artifact`` offline (TypeError), so offline runs list them in config instead."""
        def use(run):
            if getattr(run, "offline", False) or getattr(run.settings, "mode", None) == "offline":
                run.config.update({"inputs": names}, allow_val_change=True)
                return
            for n in names:
                run.use_artifact(n)
        self._safely(use)

    def log_scatter(self, key: str, columns: list[str], rows: list[list], x: str, y: str, title: str) -> None:
        """An interactive ``wandb.plot.scatter`` of the table's ``y`` against ``x``."""
        def log(run):
            import wandb

            table = wandb.Table(columns=columns, data=rows)
            run.log({key: wandb.plot.scatter(table, x, y, title=title)})
        self._safely(log)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is None:
            return
        try:
            self.run.finish(exit_code=exit_code)
        except Exception as e:
            self._fail(e)
        self.run = None


# --- the analysis run -------------------------------------------------------------------------

RUNS_COLUMNS = ["run_id", "N", "D", "C", "loss", "status"]


def wandb_settings(mode: str, project: str = "scaling-harness", entity: str | None = None,
                   tags: list[str] = ()) -> SimpleNamespace:
    """What :class:`Tracker` reads from ``cfg.wandb``, for callers without a run config
    (``harness-fit --wandb MODE``)."""
    return SimpleNamespace(mode=mode, project=project, entity=entity, tags=list(tags))


def log_analysis(wandb_cfg: Any, root: Path, fit: dict, figures: list[Path], sweep: str | None = None,
                 out: Path | None = None) -> None:
    """One wandb run of job_type ``analysis`` for the fit of the records under ``root``
    (``root/runs/*.json``; the fit's outputs in ``out``, default ``root``): the selected law's exponents, E, a and held-out errors as
    summary scalars, a runs table with scatter plots of loss against C (all runs, and the
    frontier: the lowest loss so far by C), every law's parameters with 95% intervals,
    the figures, and an artifact of the records, runs.csv, fit.json, report.md and
    figures. ``fit`` is read by the field names of DESIGN.md; a missing field is skipped.
    Used by harness-sweep at the end of a sweep and by ``harness-fit --wandb MODE``."""
    root = Path(root)
    out = Path(out) if out is not None else root
    sweep = sweep or root.name
    recs = []
    for p in sorted((root / "runs").glob("*.json")):
        try:
            recs.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    tracker = Tracker(wandb_cfg, name=f"{sweep}-analysis", group=sweep, job_type="analysis",
                      config={"sweep": sweep, "conventions": fit.get("conventions"), "selected": fit.get("selected"),
                              "floor": fit.get("floor"), "n_runs": len(recs)},
                      directory=root, tags=["analysis"])
    if tracker.run is None:
        return
    tracker.summary(analysis_summary(fit))
    rows = [[r.get("run_id"), r.get("params_nonembedding"), r.get("tokens"), r.get("flops_6nd"),
             r.get("final_val_loss"), r.get("status")] for r in recs]
    tracker.log_table("runs", RUNS_COLUMNS, rows)
    ok = sorted((r for r in rows if r[5] == "ok" and r[3] and r[4] is not None), key=lambda r: r[3])
    tracker.log_scatter("loss_vs_C", ["C", "loss"], [[r[3], r[4]] for r in ok], "C", "loss",
                        "final val loss against C = 6ND")
    frontier, best = [], float("inf")
    for r in ok:
        if r[4] < best:
            best = r[4]
            frontier.append([r[3], r[4], r[0]])
    tracker.log_scatter("frontier", ["C", "loss", "run_id"], frontier, "C", "loss",
                        "compute frontier: lowest loss so far by C")
    law_rows, held_rows = [], []
    for law, res in (fit.get("laws") or {}).items():
        ci = res.get("ci95") or {}
        for name, value in (res.get("params") or {}).items():
            lo, hi = (list(ci.get(name) or []) + [None, None])[:2]
            law_rows.append([law, name, value, lo, hi])
        for hold, h in (res.get("heldout") or {}).items():
            held_rows.append([law, hold, h.get("reducible_error"), h.get("nats")])
    tracker.log_table("fit", ["law", "param", "value", "ci95_lo", "ci95_hi"], law_rows)
    if held_rows:
        tracker.log_table("heldout", ["law", "holdout", "reducible_error", "nats"], held_rows)
    tracker.log_images([Path(p) for p in figures])
    files = {p: f"runs/{p.name}" for p in sorted((root / "runs").glob("*.json"))}
    files.update({p: p.name for p in (out / "runs.csv", out / "fit.json", out / "report.md") if p.exists()})
    files.update({Path(p): f"figures/{Path(p).name}" for p in figures if Path(p).exists()})
    tracker.log_artifact(f"{sweep}-analysis", "analysis", files)
    tracker.use_artifacts([f"record-{r['run_id']}:latest" for r in recs if r.get("run_id")])
    tracker.finish()


def analysis_summary(fit: dict) -> dict:
    """Summary scalars: the selected law's parameters (exponents, E, ...), the
    compute-optimal exponent ``a`` and the extrapolation's held-out errors. A fit without
    ``selected`` reports chinchilla's (DESIGN.md: ``laws.chinchilla`` is always present)."""
    out: dict[str, Any] = {}
    selected = fit.get("selected") or ("chinchilla" if "chinchilla" in (fit.get("laws") or {}) else None)
    law = (fit.get("laws") or {}).get(selected) or {}
    if selected:
        out["selected"] = selected
    for name, value in (law.get("params") or {}).items():
        if isinstance(value, (int, float)):
            out[f"fit/{name}"] = value
    for name, value in (law.get("fixed") or {}).items():
        if isinstance(value, (int, float)):
            out[f"fit/{name}"] = value
    co = fit.get("compute_optimal") or {}
    if isinstance(co.get("a"), (int, float)):
        out["fit/a"] = co["a"]
    for hold, h in (fit.get("extrapolation") or {}).items():
        if isinstance(h, dict) and isinstance(h.get("reducible_error"), (int, float)):
            out[f"heldout/{hold}/reducible_error"] = h["reducible_error"]
        if isinstance(h, dict) and isinstance(h.get("nats"), (int, float)):
            out[f"heldout/{hold}/nats"] = h["nats"]
    floor = fit.get("floor")
    if isinstance(floor, dict) and isinstance(floor.get("value"), (int, float)):
        out["floor"] = floor["value"]
    return out
