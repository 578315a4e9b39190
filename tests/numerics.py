"""Comparing a recomputed result with a committed one across machines.

numpy picks its exp/log kernels by instruction set (harness.hardware.numpy_kernels), so
a fit made on a CPU with AVX-512 and refitted on one without can differ in the last of
its 6 printed digits, and a held-out error (a difference of two close numbers) a little
more, and a poorly identified parameter more again (measured, AVX-512 Xeon against AVX2
EPYC: up to 8e-4 relative, cpu_text's interaction A). ``assert_same_numbers`` compares
structure, strings and flags exactly and numbers to a relative 2e-3 (absolute 1e-6 near
zero): far below anything a fit's interval or the README states, above that drift. Where the kernels, numpy and scipy
match those that made the committed file, the byte-for-byte tests still apply.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from harness import hardware

REL, ABS = 2e-3, 1e-6
ROOT = Path(__file__).resolve().parent.parent


def differences(a, b, path: str = "", rel: float = REL, abs_: float = ABS) -> list[str]:
    """Where ``a`` and ``b`` differ beyond the tolerance (empty: the same numbers)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}", rel, abs_)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]", rel, abs_)]
    if isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return [] if a == b else [f"{path}: {a!r} != {b!r}"]
    if math.isnan(a) and math.isnan(b) or math.isclose(a, b, rel_tol=rel, abs_tol=abs_):
        return []
    return [f"{path}: {a!r} != {b!r}"]


def assert_same_numbers(a, b, rel: float = REL, abs_: float = ABS) -> None:
    d = differences(a, b, rel=rel, abs_=abs_)
    assert not d, f"{len(d)} differences, first: " + "; ".join(d[:5])


def fitted_here(sweep: str) -> tuple[bool, str]:
    """Whether this machine's numpy kernels (and numpy, scipy, where recorded) are those
    that fitted results/<sweep> (results/fitted_on.json), and if not, why not."""
    import numpy
    import scipy

    rec = json.loads((ROOT / "results" / "fitted_on.json").read_text())["sweeps"].get(sweep)
    if rec is None:
        return False, f"results/fitted_on.json does not say where results/{sweep} was fitted"
    here = {"numpy_kernels": hardware.numpy_kernels(), "numpy": numpy.__version__, "scipy": scipy.__version__}
    off = [f"{k} {rec[k]} there, {v} here" for k, v in here.items() if rec.get(k) is not None and rec[k] != v]
    return not off, "; ".join(off)
