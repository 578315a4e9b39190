"""Atomic file writes: a reader, or a SIGKILL at any instant, sees the old file or the
new one, never a torn one. Records, checkpoints, plans and caches all go through here."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a unique temp file next to ``path``, fsync, then rename it
    over ``path`` (POSIX-atomic): readers and a SIGKILL at any instant see the old file
    or the new one, never a torn one. A failed write removes its temp file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results and caches are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable across a power cut; best effort (not every FS allows it)
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a unique temp file and rename (POSIX-atomic)."""
    atomic_write(path, lambda f: f.write(text.encode()))
