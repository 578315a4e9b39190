"""SLURM through Hydra's submitit launcher: which signal does what, requeues, job status.

``harness-sweep hydra/launcher=submitit_slurm`` submits each run as one task of a job
array; every task runs the Hydra job (and so :func:`harness.train.train`) inside
submitit's ``process_job``, which has already set its own handlers. In such a job
(``SUBMITIT_EXECUTOR=slurm``) the signals mean:

- ``SIGUSR2``: submitit's ``--signal=USR2@signal_delay_s``, sent by SLURM that many
  seconds before the time limit (and at preemption, with
  ``PreemptParameters=send_user_signal``). The loop finishes its step, checkpoints and
  records ``interrupted``; then submitit's own handler runs: it calls the launcher's
  ``checkpoint()`` (the same Hydra job, resubmitted), requeues the job with
  ``scontrol requeue`` and exits. submitit counts the requeues at a time limit against
  ``hydra.launcher.max_num_timeout`` (here 3, not Hydra's 0); past it, the run stays
  ``interrupted`` and the job ends.
- ``SIGTERM``: SLURM ending the job (``scancel``, the hard time limit, ``scontrol
  requeue``, preemption), ``KillWait`` seconds (30) before SIGKILL. submitit ignores
  it; the loop finishes its step, checkpoints and records ``interrupted``. If SLURM is
  requeueing the job (its restart count went up), the process exits without a result,
  so the launcher waits for the next attempt; otherwise the interrupted record is the
  job's result, and the sweep finishes and counts it.
- ``SIGINT``: as outside SLURM (stop after the step; a second one stops at once).
- ``SIGCONT``: submitit's (logged, ignored).

A requeued attempt (``SLURM_RESTART_COUNT`` > 0) resumes from the run's checkpoint
whatever ``train.resume`` says, and its record's ``requeues`` is that count.

Accounting: submitit polls ``sacct`` for job states. Where accounting is off (the
one-node cluster of ``scripts/slurm_local.sh``) ``sacct`` fails at every poll and a
job that ends without a result would be waited for forever; a sweep then reads job
states from ``squeue`` instead (:func:`on_multirun_start`).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

from harness import slurm_prestart

# --- in the job ----------------------------------------------------------------------

_submitit_usr2: Any = None  # submitit's SIGUSR2 handler, called once the loop has checkpointed


def in_job() -> bool:
    """True inside a task that submitit started on SLURM."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and "SLURM_JOB_ID" in os.environ


def requeues() -> int:
    """How many times SLURM has requeued this job (0 outside SLURM)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def job_info() -> dict:
    """Record fields for a run inside a SLURM job: its job id and requeue count."""
    if not in_job():
        return {}
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    return {"slurm_job_id": job, "requeues": requeues()}


def take_signals(request: dict) -> dict:
    """In a submitit SLURM job, make SIGTERM and SIGUSR2 ask the loop to stop (they set
    ``request``, never raise: SLURM's SIGKILL is the stop-now). Returns the handlers
    replaced, for the caller to restore."""
    global _submitit_usr2
    if not in_job():
        return {}

    def handler(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGUSR2:
            request["requeue"] = name  # whatever came first, submitit requeues after the checkpoint
        if "signal" not in request:
            request["signal"] = name
            print(f"\nharness: {name} from SLURM: stopping after this step (checkpoint and record)",
                  file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGUSR2)}
    _submitit_usr2 = previous[signal.SIGUSR2]
    while slurm_prestart.early:  # came while the job was starting: stop (and requeue) at once
        handler(slurm_prestart.early.pop(0), None)
    return previous


def after_stop(stop: dict, record: dict) -> None:
    """After the loop stopped on a signal and wrote its record: in a SLURM job, requeue
    through submitit (SIGUSR2), or exit for SLURM's own requeue (SIGTERM while the
    restart count went up). Returns when the job should end with the record as result."""
    if not in_job() or not stop or record.get("status") != "interrupted":
        return
    if "requeue" in stop and callable(_submitit_usr2):
        from submitit.core.utils import UncompletedJobError

        try:
            _submitit_usr2(signal.SIGUSR2, None)  # checkpoint() the Hydra job, scontrol requeue, exit
        except UncompletedJobError as e:  # not requeued (too many time-outs): the record stays
            print(f"harness: {e} The run is recorded as interrupted with a checkpoint; "
                  "re-run the sweep with train.resume=true to finish it.", file=sys.stderr, flush=True)
        return
    if _restart_count_now() > requeues():
        print("harness: SLURM is requeueing this job; the next attempt resumes from the checkpoint",
              file=sys.stderr, flush=True)
        raise SystemExit(-1)  # no result: submitit's launcher waits for the requeued attempt


def _restart_count_now() -> int:
    """The job's restart count as slurmctld has it now (``scontrol requeue`` raises it
    before the job's tasks get SIGTERM); -1 if it cannot be read."""
    try:
        out = subprocess.run(["scontrol", "-o", "show", "job", os.environ["SLURM_JOB_ID"]],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return -1
    for field in out.split():
        if field.startswith("Restarts="):
            return int(field.split("=", 1)[1])
    return -1


# --- in the launching process --------------------------------------------------------


@dataclass
class HarnessSlurmQueueConf(SlurmQueueConf):
    """Hydra's ``submitit_slurm`` launcher config with up to 3 requeues at a time limit
    (Hydra's default 0 would end a timed-out run instead: the harness resumes from its
    checkpoint, so requeueing is safe)."""

    max_num_timeout: int = 3


def register() -> None:
    """Store :class:`HarnessSlurmQueueConf` as ``hydra/launcher=submitit_slurm``. Hydra's
    plugin scan re-executes the plugin's own registration, so scan first, then store."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()
    ConfigStore.instance().store(group="hydra/launcher", name="submitit_slurm",
                                 node=HarnessSlurmQueueConf, provider="harness")


def on_multirun_start(config: Any) -> None:
    """Before a sweep launches through ``submitit_slurm``: where ``sacct`` does not work,
    submitit's job states come from ``squeue`` (Hydra only loads launchers from its
    ``hydra_plugins`` package, so this swaps submitit's watcher rather than the launcher)."""
    if not str(config.hydra.launcher.get("_target_", "")).endswith(".SlurmLauncher") or sacct_works():
        return
    from submitit.slurm import slurm

    if not isinstance(slurm.SlurmJob.watcher, SqueueWatcher):
        slurm.SlurmJob.watcher = SqueueWatcher(delay_s=slurm.SlurmJob.watcher._delay_s)


def sacct_works() -> bool:
    try:
        return subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _squeue_watcher_base() -> type:
    from submitit.slurm.slurm import SlurmInfoWatcher

    return SlurmInfoWatcher


class SqueueWatcher(_squeue_watcher_base()):  # type: ignore[misc]
    """submitit's status watcher reading ``squeue`` (every job slurmctld still holds:
    ``MinJobAge``, 300 s after it ended) in ``sacct``'s format."""

    def _make_command(self) -> list[str] | None:
        if not self._registered - self._finished:
            return None
        return ["squeue", "--array", "--noheader", "--states=all", "--format=%i|%T|%N"]

    def read_info(self, string: bytes | str) -> dict:
        text = string.decode() if isinstance(string, bytes) else string
        return super().read_info("JobID|State|NodeList\n" + text)
