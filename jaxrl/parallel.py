"""Independent runs (seeds, hyperparameter rows) spread over devices.

``shard_runs(train)`` is ``jit(vmap(train))`` whose mapped arguments have their
leading (run) axis split over a one-dimensional device mesh with
``jax.sharding.NamedSharding``: each device trains its share of the runs, with
no communication between them (the progress reports are per device, see
``jaxrl.progress``). With one device it is exactly ``jit(vmap(train))``.

On a CPU host, forcing one XLA device per core
(``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>``, set before jax is
imported) runs the shares on separate cores: XLA:CPU otherwise keeps a vmapped
run of small networks on about one core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "runs"


def runs_mesh(num_devices: int | None = None) -> Mesh:
    """A one-axis mesh (``"runs"``) over the first ``num_devices`` local devices (all if None)."""
    devices = jax.local_devices()
    if num_devices is None:
        num_devices = len(devices)
    if not 1 <= num_devices <= len(devices):
        raise ValueError(
            f"num_devices={num_devices} is not allowed; this host has {len(devices)} "
            f"local devices ({jax.default_backend()})"
        )
    return Mesh(np.asarray(devices[:num_devices]), (AXIS,))


def devices_for(num_runs: int, num_devices: int | None = None) -> int:
    """``num_devices``, checked to divide ``num_runs``; None: the most local devices that do."""
    if num_devices is None:
        available = jax.local_device_count()
        return max(d for d in range(1, available + 1) if num_runs % d == 0)
    if num_runs % num_devices:
        raise ValueError(
            f"devices={num_devices} does not divide the number of runs ({num_runs}); "
            "each device trains an equal share"
        )
    return num_devices


def shard_runs(
    train: Callable[..., Any],
    num_runs: int,
    in_axes: Sequence[int | None] = (0, None),
    num_devices: int | None = None,
) -> Callable[..., Any]:
    """``jit(vmap(train, in_axes))`` with the runs split over devices.

    Args:
        train: e.g. an agent's ``train(key, hparams)``.
        num_runs: the size of the mapped axis (seeds, or seeds x hyperparameter rows).
        in_axes: per positional argument, 0 (one row per run, sharded) or None
            (shared by every run, replicated).
        num_devices: devices to use; None: the most local devices that divide
            ``num_runs`` (see ``devices_for``).

    Returns:
        The jitted function; call it, or ``.lower(*args).compile()`` it to time the
        compile apart. Outputs keep the run axis first, sharded like the inputs.
    """
    if any(axis not in (0, None) for axis in in_axes):
        raise ValueError(f"in_axes={tuple(in_axes)} is not allowed; each must be 0 or None")
    mesh = runs_mesh(devices_for(num_runs, num_devices))
    split, shared = NamedSharding(mesh, PartitionSpec(AXIS)), NamedSharding(mesh, PartitionSpec())
    shardings = tuple(shared if axis is None else split for axis in in_axes)
    return jax.jit(jax.vmap(train, in_axes=tuple(in_axes)), in_shardings=shardings)
