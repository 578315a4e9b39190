__version__ = "0.1.0"

from harness import slurm_prestart as _prestart  # noqa: E402  (a SIGUSR2 while importing must not kill a SLURM task)

_prestart.hold()
