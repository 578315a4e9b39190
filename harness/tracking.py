"""wandb logging that never kills training.

Mode comes from ``wandb.mode`` (the ``WANDB_MODE`` environment variable wins, so
tests and CI can force ``disabled``). ``online`` without an API key falls back to
``offline`` with a warning, and so does an online ``wandb.init`` that fails (an
unreachable server, a rejected key): later runs in the same process then go straight
to offline instead of waiting on the server again. Any other wandb error disables
logging for the rest of the run with a warning. Offline runs land in
``<results_dir>/<sweep>/wandb/`` and can be uploaded later with ``wandb sync``.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
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


class Tracker:
    """A thin wrapper around one wandb run; every call is a no-op once disabled.

    ``resume_id`` (the ``id`` of an earlier, interrupted run) continues that wandb run
    when online, so a resumed training run stays one curve in wandb."""

    def __init__(self, wandb_cfg: Any, *, name: str, group: str, job_type: str, config: dict, directory: Path,
                 resume_id: str | None = None):
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
                tags=list(wandb_cfg.tags or []),
                name=name,
                group=group,
                job_type=job_type,
                config=config,
                dir=str(directory),
                reinit="finish_previous",
                settings=wandb.Settings(silent=True, console="off"),
            )
        except Exception as e:  # wandb trouble must never stop training
            self._fail(e)
            return
        try:
            if mode == "online" and resume_id:
                self.run = wandb.init(mode=mode, id=resume_id, resume="allow", **kwargs)
            else:
                self.run = wandb.init(mode=mode, **kwargs)
            return
        except Exception as e:
            if mode != "online":
                self._fail(e)
                return
            _online_failed = True
            warnings.warn(f"wandb online init failed ({type(e).__name__}: {e}): logging offline "
                          "(sync later with `wandb sync`)")
        try:
            self.run = wandb.init(mode="offline", **kwargs)
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

    def finish(self, exit_code: int = 0) -> None:
        if self.run is None:
            return
        try:
            self.run.finish(exit_code=exit_code)
        except Exception as e:
            self._fail(e)
        self.run = None
