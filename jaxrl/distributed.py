"""One run over several processes (hosts) with JAX's own distributed runtime.

JAX is multi-controller: every host runs the same script, and after
``initialize`` each process sees every device of every host in
``jax.devices()`` (its own in ``jax.local_devices()``). A jitted function over a
mesh of all devices then runs on all hosts at once, and its collectives
(``lax.psum``, ``lax.pmean``) cross hosts: NCCL between GPUs, gloo over TCP
between CPUs (``jax_cpu_collectives_implementation``, whose default in jax 0.10
is already ``"gloo"``, so nothing here sets it). This module holds what a
training script needs around that: ``initialize`` (first, before any other JAX
call), ``is_main`` (only process 0 logs, prints and writes summaries) and
``to_host`` (a global array's value, as NumPy, on every process).
``jaxrl.checkpoint.Checkpoints`` works across processes: every process calls
``save`` and ``restore`` with the same arguments, on a directory that all hosts
share; orbax writes each shard from the process that holds it, and ``restore``
reads each array onto the sharding of its leaf in ``like``.

Launching by hand: the same command on every host, with the address of host 0
and a free port on it, the number of processes and each one's index (a script
passes them to ``initialize``)::

    python train.py --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0  # host 0
    python train.py --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 1  # host 1

Under SLURM (or Open MPI's ``mpirun``) leave all three unset: JAX reads them from
the job's environment and picks the coordinator port from the job id. On CPUs
run one task per host (``srun --nodes=2 --ntasks-per-node=1 python train.py``).
On GPUs JAX then gives each task one GPU, the one numbered by its
``SLURM_LOCALID``: run one task per GPU, each seeing all of its node's GPUs
(``--ntasks-per-node=8 --gpus-per-node=8``, not ``--gpus-per-task=1``), or pass
``local_device_ids`` for one process per host. One host with several GPUs needs
none of this: a single process sees all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: Sequence[int] | None = None,
    timeout_s: int = 300,
) -> None:
    """Join this process to the run: ``jax.distributed.initialize``.

    Call it before any JAX call that starts a backend, even ``jax.devices()``
    (importing is fine). Arguments left ``None`` are detected from SLURM or Open MPI.

    Args:
        coordinator_address: ``"host:port"`` of process 0, where it serves the
            coordinator; the same on every process.
        num_processes: how many processes take part.
        process_id: this process's index, in ``[0, num_processes)``.
        local_device_ids: the local accelerators this process uses (default: all,
            except one per task under SLURM and Open MPI on GPUs).
        timeout_s: how long to wait for the other processes to connect.
    """
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        local_device_ids=local_device_ids,
        initialization_timeout=timeout_s,
    )


def is_main() -> bool:
    """Whether this is process 0, the one that logs, prints and writes files."""
    return jax.process_index() == 0


def to_host(tree: Any) -> Any:
    """``tree`` with its arrays as NumPy arrays of their global values, on every process.

    A fully replicated array is read from a local copy; a sharded one is gathered
    from all processes, a collective, so every process must call this together.
    Typed PRNG keys: pass ``jaxrl.checkpoint.plain(tree)``.
    """

    def leaf(x):
        if not isinstance(x, jax.Array):
            return np.asarray(x)
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(leaf, tree)
