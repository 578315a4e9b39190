"""Run BLAS single-threaded while fitting.

Why this exists: scipy's L-BFGS-B calls BLAS/LAPACK on matrices of a few dozen
entries. A multi-threaded OpenBLAS wakes its worker threads for them, and on busy
shared cores each iteration then costs milliseconds instead of tens of microseconds
(measured: about 100x slower on 2 loaded cores). Our fits are many small problems,
so one thread is right. ``threadpoolctl`` does this properly and is used when it is
installed; otherwise the OpenBLAS libraries already loaded in this process (numpy's
and scipy's wheels each bundle one) are told directly through their
``*_set_num_threads`` entry points. Anywhere else this is a no-op.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager
from typing import Iterator


def _openblas_handles() -> list[tuple]:
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        return []
    handles = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("", "64_"):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    handles.append((get, put))
                    break
            else:
                continue
            break
    return handles


@contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Limit BLAS to ``n`` threads inside the block, restoring the old settings after."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
        return
    handles = _openblas_handles()
    old = []
    for get, put in handles:
        try:
            old.append((put, int(get())))
            put(int(n))
        except Exception:  # a foreign library with the same name: leave it alone
            continue
    try:
        yield
    finally:
        for put, k in old:
            put(k)
