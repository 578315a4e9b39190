"""SIGUSR2 before the loop is ready, in a submitit SLURM job.

submitit sets its signal handlers only after it has unpickled the job, and unpickling
imports the harness, Hydra and torch: 7 s on an idle node, more on a busy one. A
SIGUSR2 (time limit near, or preemption) in that window would kill the task, since the
default action of SIGUSR2 is to terminate. So the first import of ``harness`` in such a
job (``SUBMITIT_EXECUTOR=slurm``) installs :func:`_note`, which only remembers the
signal; :func:`harness.slurm.take_signals` replays it once the loop listens, and the
run then checkpoints at once and is requeued like any other. Standard library only: it
runs before anything else is imported.
"""
from __future__ import annotations

import os
import signal
from typing import Any

early: list[int] = []  # signals that came before the loop's handlers, in order


def _note(signum: int, frame: Any) -> None:
    early.append(signum)


def hold() -> None:
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL:
        signal.signal(signal.SIGUSR2, _note)
