"""Run directories: one process at a time on each (``lock(out)``), and a finished
run loaded back into Python (``load_run(out)``, also ``jaxrl.load_run``).

Two processes training into the same ``--out`` used to interleave their
checkpoints (one could delete a checkpoint the other was about to restore) and
both crashed with orbax errors. ``lock`` creates ``out/.jaxrl.lock`` atomically
(``O_CREAT | O_EXCL``) holding the owner's host, process id and start time, and
removes it when the block ends, however it ends. A second process on the same
directory is refused with a message naming the owner. A lock left by a process
that no longer runs (killed, or its machine rebooted) is stale: on the same host
that is checked (``os.kill(pid, 0)``), the lock is set aside as
``.jaxrl.lock.stale`` and taken over, and the message says so. A lock from
another host cannot be checked from here; the message says how to remove it by
hand once that run is gone.

Written here rather than with a file-locking library: ``fcntl``/``flock`` locks
are advisory, absent on some network file systems and released silently when a
process forks, and the packages built on them (``filelock``) do not tell a
stale lock from a live one across hosts either; an exclusive create is atomic on
local and NFSv3+ file systems and leaves a readable record of the owner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
import socket
import time
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

LOCK_NAME = ".jaxrl.lock"


class RunDirectoryInUse(ValueError):
    """Another live process holds the run directory (bad input: choose another --out)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _owner(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # half-written or unreadable: treated as held, see lock()


@contextlib.contextmanager
def lock(out: Path) -> Iterator[None]:
    """Hold ``out``'s lock for the block (see the module docstring); ``out`` must exist."""
    path = Path(out) / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    for _ in range(2):  # a second try after setting a stale lock aside
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(path)
            same_host = owner.get("host") == me["host"]
            pid = owner.get("pid")
            if same_host and isinstance(pid, int) and not _alive(pid):
                print(f"{out}: taking over a stale lock of process {pid}, which no longer runs")
                with contextlib.suppress(FileNotFoundError):  # another process took it first
                    path.replace(path.with_name(LOCK_NAME + ".stale"))
                continue
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
            who = f"process {pid} on {owner.get('host')} (since {since})" if owner else "a process"
            raise RunDirectoryInUse(
                f"{out} is in use by {who}; wait for it to finish or choose another --out "
                f"(if that run is gone, delete {path})"
            ) from None
        with os.fdopen(fd, "w") as file:
            json.dump(me, file)
        break
    else:
        raise RunDirectoryInUse(f"{out}: could not take its lock ({path}); try again")
    try:
        yield
    finally:
        if _owner(path).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def holding(out: Path, enabled: bool = True) -> Iterator[None]:
    """``lock(out)`` around the block, creating ``out`` first; a directory this made
    and the block left empty (bad input found before anything was written) is
    removed again. ``enabled=False``: no lock (a run's other processes, whose
    process 0 holds it)."""
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with lock(out) if enabled else contextlib.nullcontext():
            yield
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def locks(argument: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a function that writes a run directory, given as its parameter
    ``argument``, so that each call holds that directory (``holding``) on process 0
    of the run (``jaxrl.distributed``)."""

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            from jaxrl import distributed

            out = signature.bind(*args, **kwargs).arguments[argument]
            with holding(Path(out), enabled=distributed.is_main()):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


class Run(typing.NamedTuple):
    """A finished (or stopped) run, loaded by ``load_run``."""

    agent: Any
    """Its agent's record (``jaxrl.agents.Agent``): ``make_policy``, ``make_train``..."""
    config: Any
    """The config it trained with (on one device, whatever it trained on)."""
    hparams: Any
    """Its hyperparameters."""
    summary: dict[str, Any]
    """``summary.json``."""
    state: Any
    """The newest checkpoint's training state, every seed (leading axis ``num_seeds``)."""
    update: int
    """The update that checkpoint was written after."""


def load_run(run_dir: str | Path) -> Run:
    """A run directory written by ``jaxrl train`` or an ``experiments/`` script, loaded:
    the agent, the config and hyperparameters rebuilt from ``summary.json``, and the
    state of its newest checkpoint, restored onto one device. E.g. the greedy policy
    of seed 0::

        run = jaxrl.load_run("runs/ppo-cartpole")
        seed0 = jax.tree.map(lambda x: x[0], run.state)
        act = run.agent.make_policy(run.config, env, env_params, seed0, True)
    """
    import jax

    import envs
    from jaxrl import agents, checkpoint

    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise ValueError(f"{run_dir} is not a run directory: it has no summary.json")
    summary = json.loads(summary_path.read_text())
    name = summary["algo"]
    if name not in agents.registered():
        raise ValueError(
            f"{run_dir} holds a {name!r} run; jaxrl knows {sorted(agents.registered())}"
        )
    agent = agents.get(name)
    config = _rebuild(agent.Config, summary["config"])
    if getattr(config, "num_devices", 1) > 1:  # where it trained; restored onto one device
        config = dataclasses.replace(config, num_devices=1)
    hparams = agent.HParams(**summary["hparams"])
    env, env_params = envs.make(summary["env"], **summary.get("env_overrides", {}))
    trainer = agent.make_train(config, env, env_params)
    keys = jax.random.split(jax.random.key(summary["seed"]), summary["num_seeds"])
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    like = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one),
        jax.eval_shape(jax.vmap(trainer.init, in_axes=(0, None)), keys, hparams),
    )
    identity = checkpoint.run_identity(
        name, summary["env"], env_params, config, hparams, summary["num_seeds"], summary["seed"]
    )
    identity["log_every"] = summary.get("log_every", 1)
    ckpts = checkpoint.Checkpoints(run_dir / "checkpoints", identity)
    update, state, _ = ckpts.restore(like)
    return Run(agent, config, hparams, summary, state, update)


def _rebuild(cls: type, values: dict[str, Any]) -> Any:
    """A config dataclass from its JSON: lists back to tuples where the field is a tuple."""
    hints = typing.get_type_hints(cls)
    fields = {}
    for field in dataclasses.fields(cls):
        if field.name in values:
            value = values[field.name]
            origin = typing.get_origin(hints[field.name])
            fields[field.name] = tuple(value) if origin is tuple else value
    return cls(**fields)
