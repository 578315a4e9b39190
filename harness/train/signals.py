"""Signal handling for training: the one place that decides what SIGINT and SIGTERM do.

While :func:`deferred_stop` is active, a first SIGINT (or SIGTERM, when nobody else
handles it) only asks the loop to stop: it finishes the current step, checkpoints
every run still training and records them ``interrupted``. A second signal stops at
once. Inside a SLURM job SIGTERM and SIGUSR2 stop the loop too, and the job is then
requeued or ends: :mod:`harness.slurm` says which signal does what.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from harness import slurm


@contextmanager
def deferred_stop() -> Iterator[dict[str, str]]:
    """Yields the stop request: empty until a signal came, then ``{"signal": NAME}``."""
    request: dict[str, str] = {}

    def handler(signum: int, frame: Any) -> None:
        if request:
            raise KeyboardInterrupt
        request["signal"] = signal.Signals(signum).name
        print(f"\nharness: {request['signal']}: stopping after this step (checkpoint and record); "
              "send it again to stop now", file=sys.stderr, flush=True)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
            if signal.getsignal(sig) is default:
                previous[sig] = signal.signal(sig, handler)
        previous.update(slurm.take_signals(request))  # a submitit SLURM job: SIGTERM, SIGUSR2
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
