"""Where a result came from: the package versions and the machine a run used.

Every ``summary.json`` records ``machine()`` and the test suite prints it in its
header, because a training trajectory is bit-exact only for the same package
versions on the same kind of CPU with the same number of threads: XLA:CPU picks
its kernels (vector width, how a reduction is split over threads) from the
instruction set and the thread count, and RL training amplifies a rounding-level
difference into another trajectory. docs/learning-targets.md (reproducibility) has
the measurements.

Standard library only, so it is cheap to import (the test header uses it).
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

STACK = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "chex",
    "gymnax",
    "brax",
    "mujoco",
    "flashbax",
    "orbax-checkpoint",
    "numpy",
    "scipy",
    "ml_dtypes",
    "jaxrl",
)
"""Distributions whose versions decide what a run computes."""

ISA_FLAGS = ("avx512_fp16", "avx512_bf16", "amx_tile", "avx512f", "avx2", "fma", "avx", "sse4_2")
"""CPU features XLA:CPU chooses kernels by (recorded when present)."""


def stack_versions() -> dict[str, str | None]:
    """``{distribution: installed version or None}`` for ``STACK`` plus Python."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in STACK:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu() -> dict[str, Any]:
    """The CPU model, the instruction-set features in ``ISA_FLAGS`` it has, and the
    cores this process may run on (affinity; ``os.cpu_count`` where unknown)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {
        "model": model,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "usable_cores": usable_cores(),
    }


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may run on: its CPU affinity (``os.cpu_count`` where unknown),
    capped by a cgroup CPU quota where one is set (a container limited to 1.5 CPUs
    gets 1): cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    quota = None
    try:
        text = (cgroup / "cpu.max").read_text().split()
        if text and text[0] != "max":
            quota = int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        try:
            q = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
            p = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
            quota = q / p if q > 0 and p > 0 else None
        except (OSError, ValueError):
            pass
    return max(1, min(cores, int(quota))) if quota else cores


def machine() -> dict[str, Any]:
    """What every summary.json records about where it ran: the stack's versions, the
    CPU, jax's backend and device count (this starts jax's backend)."""
    import jax

    return {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu(),
        "versions": stack_versions(),
    }


def header() -> str:
    """One line for logs (the test suite's header): versions and CPU, no jax start."""
    versions = " ".join(f"{k}={v}" for k, v in stack_versions().items() if v is not None)
    c = cpu()
    return f"{versions} | cpu: {c['model']} [{','.join(c['isa'])}] x{c['usable_cores']}"
