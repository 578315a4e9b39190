"""Where a run executes: device and precision, peak FLOP/s for MFU, versions, OOM.

Everything here is a fact about the machine, not about the run; the loop, the bench
and the sweep import it, and it imports nothing of the harness but its version.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, ContextManager

import torch

import harness

# Peak dense bf16 FLOP/s for MFU (vendor datasheets, without sparsity). The first key
# whose words all appear, in order and whole, in the device name wins; an unknown
# device gets no MFU rather than a neighbour's peak.
PEAK_FLOPS = {
    "H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12,
    "L40S": 362e12, "L40": 181e12, "L4": 121e12, "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12,
}


def peak_flops_for(name: str) -> float | None:
    """Peak bf16 dense FLOP/s of a CUDA device called ``name``, or None if not in the table."""
    words = re.split(r"[\s\-_]+", name.lower())
    for key, value in PEAK_FLOPS.items():
        k = key.lower().split()
        if any(words[i : i + len(k)] == k for i in range(len(words))):
            return value
    return None


def peak_flops(device: torch.device) -> float | None:
    return peak_flops_for(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    return ("bf16" if device.type == "cuda" else "fp32") if name == "auto" else name


def autocast_for(precision: str, device: torch.device) -> Callable[[], ContextManager]:
    """A factory of the forward pass's autocast context: bf16 autocast, or nothing."""
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


def record_device(device: torch.device) -> str:
    """The record's ``device``: ``cpu``, or the CUDA device's name."""
    return str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)


def host_name(device: str) -> str:
    """A benchmark's device label: the GPU's name, or the CPU and its core count."""
    if torch.cuda.is_available() and device != "cpu":
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()}"


def sync(device: torch.device) -> None:
    """Wait for the device (for timing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform reports): on CPU a
    run is bitwise reproducible only on the same model and instruction set
    (:func:`cpu_capability`), since the math libraries pick their kernels by it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


# numpy's x86 kernels for exp, log and friends differ by instruction set (AVX-512 ones
# where the CPU has AVX512_SKX), so a fit's last digits follow the CPU's features
NUMPY_KERNEL_FEATURES = ("AVX512_SKX", "AVX512F", "AVX2", "FMA3", "ASIMD")


def numpy_kernels() -> str:
    """Which of numpy's instruction-set kernels this CPU gets, e.g. "AVX2 FMA3": refits
    of a sweep are byte-identical where this, numpy and scipy match; across CPUs with
    other kernels a fit's 6 printed digits can move in the last place."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    on = [f for f in NUMPY_KERNEL_FEATURES if feats.get(f)]
    return " ".join(on) or platform.machine() or "unknown"


def versions() -> dict:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"torch": torch.__version__, "harness": harness.__version__, "git": commit,
            "python": platform.python_version(), "cpu": cpu_model(), "cpu_capability": cpu_capability()}


def cpu_capability() -> str:
    """The instruction set torch's CPU kernels dispatch to (e.g. AVX2, AVX512): one model
    name can come with either (a virtual machine may hide AVX-512), and the two train to
    different bits."""
    return torch.backends.cpu.get_cpu_capability()


def is_oom(e: BaseException) -> bool:
    """CUDA OOM, including the allocator failures that surface as a plain RuntimeError."""
    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower()
    )
