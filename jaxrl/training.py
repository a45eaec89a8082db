"""The shape of every agent's training run: ``init`` once, then ``step`` per update.

``make_train(config, env, env_params)`` of every agent returns a ``Trainer``.
Called as ``trainer(key, hparams)`` it is the whole run, one pure function to
``jit`` and ``vmap``, as before. Its two halves are there for what a single call
cannot do: ``trainer.start(key, hparams)`` builds the complete training state
(parameters, optimizer state, env state, normaliser statistics, replay buffer,
RNG key), and ``trainer.chunk(n)`` continues any such state for ``n`` updates.
Long runs train in jitted chunks with a checkpoint after each
(``train_in_chunks``, with ``jaxrl.checkpoint.Checkpoints``); because ``step``
receives the absolute update index, ``init`` then chunks of ``n`` give the same
state as one call, bit for bit.

Metrics are logged for every update, or with ``log_every=k`` once per ``k``
updates (``dataclasses.replace(trainer, log_every=k)``): returns and episode
counts summed over the ``k`` updates, every other metric averaged, so the
metrics of a long run stay small whatever its length.

A run whose envs are split over devices (``jaxrl.parallel.EnvShards``) has a
per-device ``step`` and a ``state_spec`` saying which state leaves are split;
``init`` and ``chunk`` then run under ``jax.shard_map`` and take and return the
whole (global) state, so callers see no difference.

Health: every update also logs ``nonfinite_params`` (1 if it left a parameter NaN
or infinite), one reduction over the parameters; ``faults`` reads the metrics
on the host and names, per run, the first logged interval with a non-finite
metric (a loss, a return from NaN rewards, ...) or parameter, so that callers
(``train_in_chunks``) stop a diverged run instead of carrying
NaNs to a summary that looks normal.

Hyperparameters are passed to ``step`` on every update rather than captured at
``init``: they stay traced (sweeps are a ``vmap`` over them), and whatever an
agent derives from them (its optax transformation) is rebuilt from the same
values in every chunk, so nothing but arrays has to be saved.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import parallel, progress

if TYPE_CHECKING:  # only the type: checkpointing (orbax) is the caller's choice
    from jaxrl import checkpoint

Metrics = dict[str, jax.Array]

SUMMED = ("episode_return_sum", "episodes")
"""Metrics added up over the updates of a logging interval; the rest are averaged."""


HEALTH = "nonfinite_params"
"""The metric that flags an update leaving a non-finite parameter (averaged over a
logging interval like the others: > 0 if any update in it did)."""


def nonfinite_params(state: Any) -> jax.Array:
    """1.0 if any float leaf of ``state.params`` (every agent's learnt parameters;
    none for a state without them) is NaN or infinite, else 0.0."""
    leaves = jax.tree.leaves(getattr(state, "params", None))
    flags = [~jnp.isfinite(x).all() for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.stack(flags).any().astype(jnp.float32) if flags else jnp.float32(0.0)


@dataclasses.dataclass(frozen=True)
class Fault:
    """A run's first logged interval with a non-finite quantity."""

    run: int
    """Index along the runs axis (seed, or seed and hyperparameter row)."""
    update: int
    """First update of the interval (0-based, over the whole run)."""
    quantities: tuple[str, ...]
    """What was not finite there: metric names, "parameters" for ``HEALTH``."""


class Diverged(RuntimeError):
    """A run produced non-finite numbers (``faults``); ``last_good`` is the update of
    the newest checkpoint saved before them (None: none)."""

    def __init__(self, found: list[Fault], last_good: int | None, describe_run=str):
        self.faults, self.last_good = found, last_good
        first = min(found, key=lambda f: f.update)
        runs = ", ".join(describe_run(f.run) for f in found[:4])
        runs += " ..." if len(found) > 4 else ""
        kept = "no checkpoint" if last_good is None else f"last good checkpoint: update {last_good}"
        super().__init__(
            f"training diverged: {', '.join(first.quantities)} not finite in "
            f"{describe_run(first.run)} from update {first.update} ({len(found)} run(s) "
            f"affected: {runs}); stopped, {kept}"
        )


def faults(metrics: dict[str, Any], first_update: int = 0, log_every: int = 1) -> list[Fault]:
    """Per run (leading axis of ``metrics [runs, intervals]``, on the host) whose metrics
    hold a NaN or an infinity, or whose ``HEALTH`` flag is set: its first such
    interval (``first_update``: the update the first interval starts at)."""
    bad = {}
    for name, values in metrics.items():
        values = np.asarray(values)
        if not np.issubdtype(values.dtype, np.floating):
            continue
        flag = values > 0 if name == HEALTH else ~np.isfinite(values)
        bad["parameters" if name == HEALTH else name] = flag.reshape(flag.shape[0], -1)
    found = []
    if not bad:
        return found
    any_bad = np.logical_or.reduce(list(bad.values()))
    for run in np.flatnonzero(any_bad.any(axis=1)):
        first = int(np.argmax(any_bad[run]))
        names = tuple(name for name, flag in bad.items() if flag[run, first])
        found.append(Fault(int(run), first_update + first * log_every, names))
    return found


def summarize(metrics: Metrics) -> Metrics:
    """One logging interval's metrics ``[k]`` -> scalars (sums for ``SUMMED``, else means)."""
    return {k: v.sum(0) if k in SUMMED else v.mean(0) for k, v in metrics.items()}


@dataclasses.dataclass(frozen=True)
class Trainer:
    """An agent's training run, split into its initial state and its update step.

    Attributes:
        init: ``(key, hparams) -> state``, the complete training state before update 0
            (per device with ``shards``; use ``start``, which also works without).
        step: ``(state, hparams, update) -> (state, metrics)``; ``update`` is the
            0-based index of the update over the whole run, unbatched under ``vmap``
            (a ``lax.cond`` on it stays a branch); metrics are scalars (the same on
            every device with ``shards``).
        num_updates: updates in a whole run (static).
        log_every: updates per logged row of metrics; must divide ``num_updates``.
        shards: how the run's envs are split over devices; None: one device.
        state_spec: with ``shards``, the state's ``PartitionSpec`` tree (a prefix):
            ``parallel.SPLIT`` for leaves with a leading env axis, else ``SHARED``.
        health: log ``HEALTH`` (non-finite parameters) for every update; False leaves it
            out (``experiments/bench_progress.py`` measures what it costs).
        report: report progress from inside the compiled loop (``jaxrl.progress``); False
            compiles no host callback, so that jax's persistent cache can keep the
            program (``train_in_chunks`` then reports from the host).
    """

    init: Callable[[jax.Array, Any], Any]
    step: Callable[[Any, Any, jax.Array], tuple[Any, Metrics]]
    num_updates: int
    log_every: int = 1
    shards: parallel.EnvShards | None = None
    state_spec: Any = None
    health: bool = True
    report: bool = True

    def __post_init__(self):
        if self.log_every < 1 or self.num_updates % self.log_every:
            raise ValueError(
                f"log_every={self.log_every} is not allowed; it must be >= 1 and divide "
                f"the run's {self.num_updates} updates"
            )
        if self.split:
            if self.state_spec is None:
                raise ValueError("Trainer: a run split over devices needs its state_spec")
            parallel.envs_mesh(self.num_devices)  # enough devices? (before compiling)

    @property
    def split(self) -> bool:
        """Whether the envs are split over more than one device."""
        return self.shards is not None and self.shards.num_devices > 1

    @property
    def num_devices(self) -> int:
        """Devices one run trains on (1 unless its envs are split)."""
        return self.shards.num_devices if self.split else 1

    def start(self, key: jax.Array, hparams: Any, check: bool = True) -> Any:
        """The whole initial state (``init``, under ``shard_map`` when split), after
        checking the hyperparameters (``hparams.validate()``: at once where they are
        concrete, when the program runs where they are traced, by a host callback).
        ``check=False`` skips that, for callers that checked the concrete values first."""
        if check and hasattr(hparams, "validate"):
            hparams.validate()
        if not self.split:
            return self.init(key, hparams)
        P = parallel.SHARED
        return self.shards.run(self.init, (P, P), self.state_spec)(key, hparams)

    def __call__(self, key: jax.Array, hparams: Any, check: bool = True) -> tuple[Any, Metrics]:
        """The whole run: ``(final_state, metrics)``, metrics stacked
        ``[num_updates // log_every]`` (``check`` as in ``start``)."""
        return self.chunk(self.num_updates)(self.start(key, hparams, check), hparams, 0)

    def chunk(self, num_updates: int) -> Callable[[Any, Any, Any], tuple[Any, Metrics]]:
        """``run(state, hparams, start) -> (state, metrics [num_updates // log_every])``:
        updates ``start`` ... ``start + num_updates - 1`` from a state whose next update
        is ``start`` (an int32 scalar, traced; under ``vmap`` give it ``in_axes=None``)."""
        k = self.log_every
        if not 1 <= num_updates <= self.num_updates or num_updates % k:
            raise ValueError(
                f"chunk num_updates={num_updates} is not allowed; it must be in "
                f"[1, {self.num_updates}] (the run's updates) and a multiple of log_every={k}"
            )

        def checked_step(state: Any, hparams: Any, update: Any) -> tuple[Any, Metrics]:
            state, metrics = self.step(state, hparams, update)
            return state, metrics | {HEALTH: nonfinite_params(state)} if self.health else metrics

        def updates(state: Any, hparams: Any, start: Any, n: int) -> tuple[Any, Metrics]:
            return progress.scan_updates(
                lambda state, update: checked_step(state, hparams, update),
                state,
                n,
                start=start,
                total=self.num_updates,
                axis_name=parallel.ENVS if self.split else None,
                report=self.report,
            )

        def run(state: Any, hparams: Any, start: Any) -> tuple[Any, Metrics]:
            if k == 1:
                return updates(state, hparams, start, num_updates)

            def interval(state, interval_start):
                state, metrics = updates(state, hparams, interval_start, k)
                return state, summarize(metrics)

            starts = jnp.asarray(start, jnp.int32) + k * jnp.arange(num_updates // k)
            return jax.lax.scan(interval, state, starts.astype(jnp.int32))

        if not self.split:
            return run
        P = parallel.SHARED
        return self.shards.run(run, (self.state_spec, P, P), (self.state_spec, P))


@dataclasses.dataclass
class ChunkedRun:
    """What ``train_in_chunks`` returns besides the state and metrics."""

    start_update: int
    """The update the run started from (0, or the restored checkpoint's)."""
    compile_seconds: float
    run_seconds: float
    saved: list[int] = dataclasses.field(default_factory=list)
    """Updates at which checkpoints were saved in this call."""


def train_in_chunks(
    trainer: Trainer,
    keys: jax.Array,
    hparams: Any,
    chunk: int,
    hparams_axis: int | None = None,
    checkpoints: checkpoint.Checkpoints | None = None,
    until: int | None = None,
    devices: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    on_compiled: Callable[[float], None] | None = None,
    describe_run: Callable[[int], str] = lambda run: f"run {run}",
) -> tuple[Any, dict[str, np.ndarray], ChunkedRun]:
    """Train every run (one per key) in compiled chunks of ``chunk`` updates.

    Args:
        trainer: an agent's ``make_train(...)``.
        keys: ``[num_runs]`` typed keys.
        hparams: shared by every run (``hparams_axis=None``) or one row per run (0).
        chunk: updates per compiled call; a checkpoint is saved after each.
        checkpoints: where to save; if it holds a checkpoint of this run, training
            resumes from the newest one (an error if it is of another run).
        until: stop once this many updates are done (e.g. the end of a job's time
            slot; run again to continue); default: the whole run.
        devices: split the runs over this many local devices (``jaxrl.parallel``).
        on_chunk: called with the updates done after each chunk (and its save).
        on_compiled: called with the compile seconds once compiling is done.
        describe_run: names run ``i`` in messages (e.g. its seed and hyperparameters).

    Raises:
        training.Diverged: a chunk's metrics or parameters hold NaN or infinity
            (``training.faults``); its checkpoint is not saved, so the newest one
            left is the last good state.

    Returns:
        ``(state, metrics, info)``: state and metrics with a leading run axis,
        metrics ``[num_runs, updates done // log_every]`` on the host, including
        restored ones.
    """
    total = trainer.num_updates
    until = total if until is None else until
    if not 1 <= chunk <= total:
        raise ValueError(f"chunk={chunk} is not allowed; it must be in [1, {total}]")
    if not 1 <= until <= total:
        raise ValueError(f"until={until} is not allowed; it must be in [1, {total}]")
    k = trainer.log_every
    if chunk % k or until % k:
        raise ValueError(
            f"chunk={chunk} and until={until} must be multiples of log_every={k}, "
            "so that every logged interval lies within one chunk"
        )
    num_runs = len(keys)
    if trainer.split and devices not in (None, 1):
        raise ValueError(
            f"devices={devices} is not allowed: each run's envs are already split over "
            f"num_devices={trainer.num_devices} devices, so the runs are not split further"
        )

    def mapped(fn, axes):
        """``jit(vmap(fn))``, the runs split over ``devices`` unless each run is split."""
        if trainer.split:
            return jax.jit(jax.vmap(fn, in_axes=axes))
        return parallel.shard_runs(fn, num_runs, axes, devices)

    if hasattr(hparams, "validate"):
        hparams.validate()  # concrete here: no check left for the compiled start
    start = time.perf_counter()
    init = mapped(functools.partial(trainer.start, check=False), (0, hparams_axis))
    init = init.lower(keys, hparams).compile()
    compile_seconds = time.perf_counter() - start
    # The state's shapes with the shardings this run uses: a checkpoint restores into
    # them whatever the layout it was saved from (1 device or 4, one host or several).
    like = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), init.out_info
    )
    compiled: dict[int, Any] = {}

    def chunk_fn(size: int):
        nonlocal compile_seconds
        if size not in compiled:
            start = time.perf_counter()
            fn = mapped(trainer.chunk(size), (0, hparams_axis, None))
            compiled[size] = fn.lower(like, hparams, jnp.int32(0)).compile()
            compile_seconds += time.perf_counter() - start
        return compiled[size]

    metrics: dict[str, list[np.ndarray]] = {}
    if checkpoints is not None and checkpoints.newest_good() is not None:
        done, state, restored = checkpoints.restore(like)
        metrics = {k: [np.asarray(v)] for k, v in restored.items()}
    else:
        done, state = 0, init(keys, hparams)
    info = ChunkedRun(done, 0.0, 0.0)
    # Every chunk size this call needs (at most two; none when the restored checkpoint
    # is already at or past ``until``). Inside a ``Progress``, the chunks run in pieces
    # that report from the host (``progress.host_piece``), one program for all, which
    # jax's persistent cache can keep; where no piece fits, the chunks report from
    # inside. Outside, nothing reports.
    remaining = max(0, until - done)
    sizes = {min(chunk, remaining), remaining % chunk} - {0}
    bar = progress.active()
    piece = progress.host_piece(total, k, sizes) if bar is not None and sizes else None
    trainer = dataclasses.replace(trainer, report=bar is not None and piece is None)
    for size in {piece} if piece else sizes:
        chunk_fn(size)
    if on_compiled is not None:
        on_compiled(compile_seconds)

    def read(at: int, size: int, new: dict[str, jax.Array]) -> dict[str, np.ndarray]:
        """The metrics of updates ``at ... at + size - 1`` on the host, after checking
        them (``Diverged``) and reporting the last update to ``bar``."""
        new = {name: np.asarray(values) for name, values in jax.device_get(new).items()}
        found = faults(new, at, trainer.log_every)
        if found:
            last_good = checkpoints.latest() if checkpoints is not None else None
            raise Diverged(found, last_good, describe_run)
        if piece is not None:
            bar.report(at + size, {name: values[:, -1] for name, values in new.items()})
        return new

    start = time.perf_counter()
    while done < until:
        size = min(chunk, until - done)
        step = piece or size
        # Each call is dispatched before the previous one's metrics are read, so the
        # device does not wait on the host.
        pending, parts = None, []
        for at in range(done, done + size, step):
            state, new = chunk_fn(step)(state, hparams, jnp.int32(at))
            if pending is not None:
                parts.append(read(*pending))
            pending = (at, step, new)
        parts.append(read(*pending))
        for name in parts[0]:
            metrics.setdefault(name, []).extend(part[name] for part in parts)
        done += size
        if checkpoints is not None:
            so_far = {name: np.concatenate(values, 1) for name, values in metrics.items()}
            checkpoints.save(done, state, so_far)
            info.saved.append(done)
        if on_chunk is not None:
            on_chunk(done)
    jax.block_until_ready(state)
    info.run_seconds = time.perf_counter() - start
    info.compile_seconds = compile_seconds
    return state, {k: np.concatenate(v, 1) for k, v in metrics.items()}, info
