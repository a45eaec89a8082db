"""Independent runs (seeds, hyperparameter rows) spread over devices, and one run's
parallel environments split over devices (data parallel).

``shard_runs(train)`` is ``jit(vmap(train))`` whose mapped arguments have their
leading (run) axis split over a one-dimensional device mesh (``jax.shard_map``
of the ``vmap``): each device trains its share of the runs, with no
communication between them (the progress reports are per device, see
``jaxrl.progress``). With one device it is exactly ``jit(vmap(train))``.

On a CPU host, one XLA device per core (``use_cpu_devices(cores)`` before jax
runs anything, the scripts' ``--cpu-devices``, or
``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>``) runs the shares on
separate cores: XLA:CPU otherwise keeps a vmapped run of small networks on about
one core.

``EnvShards`` is the other split: one run (PPO, PQN, DQN, A2C with
``num_devices > 1``) whose ``num_envs`` environments are divided over the
devices of a one-axis mesh (``"envs"``) with ``jax.shard_map``. Each device
steps its rows of the batch; gradients, normaliser statistics and logged
metrics are averaged (``lax.pmean``) so parameters stay identical everywhere.
Randomness is drawn per env (each env's row of keys split from the run's key,
see ``EnvShards.keys``), so the split run is the same run as on one device;
PPO and PQN, whose minibatches mix samples of every env, gather the rollout
(one ``all_gather`` per update) and give each device its part of every
minibatch, which makes them equal to the one-device run up to float rounding.
The mesh spans ``jax.devices()``: on several hosts (``jaxrl.distributed``) the
same code splits the envs over every host's devices.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "runs"
ENVS = "envs"


def prepare_process(cpu_devices: int | None, compile_cache: bool, every_core: bool = True) -> None:
    """What the command line sets up before jax runs anything: ``cpu_devices`` CPU
    devices (``use_cpu_devices``), else one per core (``use_every_core``) unless
    ``every_core`` is False; and jax's compile cache (``use_compile_cache``)."""
    if cpu_devices is not None:
        use_cpu_devices(cpu_devices)
    elif every_core:
        use_every_core()
    use_compile_cache(compile_cache)


def accelerator_likely() -> bool:
    """Whether this host has a GPU or TPU for jax, judged without starting jax: a
    ``JAX_PLATFORMS`` that does not start with cpu, an NVIDIA device node with jax's
    CUDA plugin installed, or a TPU device node (``/dev/accel*``, ``/dev/vfio``)."""
    import glob
    import importlib.util

    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return not platforms.split(",")[0].strip().startswith("cpu")
    cuda = any(importlib.util.find_spec(f"jax_cuda{v}_plugin") for v in (12, 13))
    return bool((cuda and glob.glob("/dev/nvidia[0-9]*")) or glob.glob("/dev/accel*"))


def use_every_core() -> int | None:
    """The default of the command line on a CPU-only host: one XLA CPU device per
    usable core (``provenance.usable_cores``: affinity and cgroup quota), so that
    seeds and sweep rows split over the cores (``devices_for``). Nothing where an
    accelerator is likely, where ``XLA_FLAGS`` sets the count, or where jax has
    already started (a notebook, a test): there it keeps what it has. Returns the
    count set, or None."""
    from jaxrl.provenance import usable_cores

    flags = os.environ.get("XLA_FLAGS", "")
    if accelerator_likely() or "xla_force_host_platform_device_count" in flags:
        return None
    count = usable_cores()
    try:
        use_cpu_devices(count)
    except RuntimeError:  # jax has started with another count
        return None
    return count


def use_cpu_devices(count: int) -> None:
    """Expose ``count`` XLA CPU devices, so that seeds (``shard_runs``) or envs
    (``EnvShards``) split over them run on separate cores of a CPU host.

    The same as ``XLA_FLAGS=--xla_force_host_platform_device_count=<count>``, which
    wins where it is set (this then does nothing). Call it before jax runs anything;
    afterwards a count other than the current one raises ``RuntimeError``. On an
    accelerator host the accelerators stay the default devices.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"cpu_devices={count!r} is not allowed; it must be an int >= 1")
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError as error:  # jax has started: fine if it already has that many
        if len(jax.devices("cpu")) != count:
            raise RuntimeError(
                f"cpu_devices={count}: jax has already started with "
                f"{len(jax.devices('cpu'))} CPU device(s); set it before jax runs anything "
                "(or set XLA_FLAGS=--xla_force_host_platform_device_count before starting)"
            ) from error


CACHE_MIN_COMPILE_SECONDS = 0.0
"""Compiles shorter than this are not written to the persistent cache (0: every one,
so that what is cached does not depend on how busy the machine was)."""


def use_compile_cache(enabled: bool = True) -> str | None:
    """Switch on jax's persistent compilation cache for this process, so that a run
    compiled once (same program, flags and versions) loads its executable instead of
    compiling it again; returns the directory (None: off).

    The directory is ``$JAXRL_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxrl/jax`` (by
    default ``~/.cache/jaxrl/jax``); ``JAXRL_CACHE_DIR=""`` or ``enabled=False``
    (``--no-compile-cache``) leaves it off. jax writes each entry under a temporary
    name and renames it, so processes may share the directory. Call it before the
    first compile: afterwards jax has decided whether it caches.
    """
    path = os.environ.get("JAXRL_CACHE_DIR")
    if not enabled or path == "":
        return None
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "jaxrl", "jax")
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    return path


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
    """``jit(vmap(train, in_axes))`` with the runs split over devices (each device
    vmaps its share, under ``jax.shard_map``).

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
    mapped = jax.vmap(train, in_axes=tuple(in_axes))
    if mesh.size == 1:
        return jax.jit(mapped)
    # shard_map, not a sharded jit of the vmap: each device vmaps its own runs, so
    # nothing batched over runs (the predicate of a while loop under vmap, such as
    # the minibatch shuffle's cycle walking) becomes a reduction across devices. A
    # sharded jit let XLA partition that with an all-reduce per loop iteration (and
    # all-gather the seeds for the orthogonal init): PPO, 8 seeds on 2 CPU devices,
    # 13.2 s there against 8.9 s here.
    specs = tuple(PartitionSpec() if axis is None else PartitionSpec(AXIS) for axis in in_axes)
    # No collectives in the body, so the varying-axes check has nothing to guard (and
    # would reject scans whose carries start from replicated values).
    per_device = jax.shard_map(
        mapped, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(AXIS), check_vma=False
    )
    split, shared = NamedSharding(mesh, PartitionSpec(AXIS)), NamedSharding(mesh, PartitionSpec())
    shardings = tuple(shared if axis is None else split for axis in in_axes)
    return jax.jit(per_device, in_shardings=shardings, out_shardings=split)


def envs_mesh(num_devices: int) -> Mesh:
    """A one-axis mesh (``"envs"``) over the first ``num_devices`` of ``jax.devices()``
    (every process's devices when several hosts run together)."""
    devices = jax.devices()
    if not 1 <= num_devices <= len(devices):
        raise ValueError(
            f"num_devices={num_devices} is not allowed; it must be in [1, {len(devices)}], "
            f"the devices available ({jax.default_backend()}, {jax.process_count()} process(es))"
        )
    return Mesh(np.asarray(devices[:num_devices]), (ENVS,))


@dataclasses.dataclass(frozen=True)
class EnvShards:
    """The parallel envs of one run, split into equal shares over ``num_devices``.

    Agents call these helpers in their per-device code (which runs under
    ``jax.shard_map`` over ``envs_mesh`` when ``num_devices > 1``); with one device
    every helper is the identity, so the same agent code serves both.

    Attributes:
        num_envs: envs of the whole run.
        num_devices: devices sharing them; must divide ``num_envs``.
    """

    num_envs: int
    num_devices: int = 1

    def __post_init__(self):
        if self.num_devices < 1 or self.num_envs % self.num_devices:
            raise ValueError(
                f"num_devices={self.num_devices} is not allowed; it must be >= 1 and divide "
                f"num_envs={self.num_envs} (each device steps an equal share of the envs)"
            )

    @property
    def local_envs(self) -> int:
        """Envs stepped by each device."""
        return self.num_envs // self.num_devices

    @property
    def axis_name(self) -> str | None:
        """The mesh axis of the split, None on one device."""
        return ENVS if self.num_devices > 1 else None

    def local(self, x: jax.Array, axis: int = 0) -> jax.Array:
        """This device's rows of ``x``, whose ``axis`` runs over all ``num_envs`` envs."""
        if self.num_devices == 1:
            return x
        start = jax.lax.axis_index(ENVS) * self.local_envs
        return jax.lax.dynamic_slice_in_dim(x, start, self.local_envs, axis)

    def keys(
        self, key: jax.Array, shape: tuple[int, ...] = (), per_env: tuple[int, ...] = ()
    ) -> jax.Array:
        """Keys ``[*shape, local_envs, *per_env]``: this device's columns of
        ``split(key, (*shape, num_envs, *per_env))``, so every env gets the keys it
        would get on one device."""
        keys = jax.random.split(key, (*shape, self.num_envs, *per_env))
        return self.local(keys, len(shape))

    def device_key(self, key: jax.Array) -> jax.Array:
        """``key`` made different on every device (``fold_in`` of the device index), for
        draws each device makes from its own data; ``key`` itself on one device."""
        if self.num_devices == 1:
            return key
        return jax.random.fold_in(key, jax.lax.axis_index(ENVS))

    def mean(self, tree):
        """Average over devices (``lax.pmean``)."""
        return tree if self.num_devices == 1 else jax.lax.pmean(tree, ENVS)

    def sum(self, tree):
        """Sum over devices (``lax.psum``)."""
        return tree if self.num_devices == 1 else jax.lax.psum(tree, ENVS)

    def gather(self, tree, axis: int = 0):
        """Every device's share put back together along ``axis`` (``all_gather``)."""
        if self.num_devices == 1:
            return tree
        return jax.tree.map(lambda x: jax.lax.all_gather(x, ENVS, axis=axis, tiled=True), tree)

    def part(self, tree, axis: int = 0):
        """This device's equal part of ``axis`` of every leaf (e.g. of a minibatch that
        every device holds whole), so the devices split its work."""
        if self.num_devices == 1:
            return tree
        d = jax.lax.axis_index(ENVS)

        def take(x):
            size = x.shape[axis] // self.num_devices
            return jax.lax.dynamic_slice_in_dim(x, d * size, size, axis)

        return jax.tree.map(take, tree)

    def run(self, fn, in_specs, out_specs):
        """``fn`` (per-device code) under ``jax.shard_map`` over ``envs_mesh``; ``fn``
        itself on one device. Specs name ``ENVS`` for split axes, ``P()`` otherwise."""
        if self.num_devices == 1:
            return fn
        return jax.shard_map(
            fn,
            mesh=envs_mesh(self.num_devices),
            in_specs=in_specs,
            out_specs=out_specs,
            check_vma=False,
        )


SPLIT = PartitionSpec(ENVS)
"""Spec of a state leaf whose leading axis runs over envs."""
SHARED = PartitionSpec()
"""Spec of a state leaf every device holds whole (parameters, optimizer state, keys)."""
