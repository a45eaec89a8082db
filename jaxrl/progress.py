"""Progress of a jitted training run, reported from inside the compiled loop.

``scan_updates(update_step, state, num_updates)`` is the outer loop of every
agent: a ``lax.scan`` over updates that, ``REPORTS`` times per run, hands the
update's metrics to the host with ``jax.debug.callback``. Under ``vmap`` (seeds,
hyperparameters, nested or not) the callback fires once per report with every
run's metrics stacked, not once per run: a ``custom_vmap`` rule lifts the batch
axes into the callback's arguments. The loop counter is the scan's own
(unbatched) input, so the report is a real ``lax.cond`` even under ``vmap``.

On the host, ``Progress`` is a context manager around the compiled call: a
rich bar on a terminal, one plain line per tenth otherwise (CI logs), each
with env steps per second (all runs together) and the mean return of the
episodes that ended in the reported update, over all runs. Outside a
``Progress`` the callback returns at once, so a run pays ``REPORTS`` host calls
and nothing else.

What a report costs a run on CPU, about 1 ms: the callback (~0.3 ms), jax's copy
of each of its arguments into a jax.Array (~0.5 ms apiece mid-run, when the
caches are the run's), so the update and the metrics cross as one int32 array
``[1 + metric, *runs]``, and the host's sums, line and logger rows (~0.3 ms with
CSV and JSON Lines). A 3 s run (PPO, one seed, ``REPORTS`` = 50) is 2-4% slower
with progress and those logs than without reports, 8 seeds ~1%
(``experiments/bench_progress.py``). The rich bar redraws 4 times a second, from
a thread of its own that holds the GIL while it renders (~0.5 ms).

Reports from the host instead: a program holding a host callback is never
written to jax's persistent compilation cache (``jax._src.compiler``: "uses host
callbacks"), so the CLI and scripts, which cache their compiles
(``jaxrl.parallel.prepare_process``), train with ``report=False`` in compiled
pieces of about ``report_every`` updates and report each piece's last update
from the host between them (``host_piece`` chooses the piece;
``jaxrl.training.train_in_chunks`` does this inside a ``Progress``). The next
piece is dispatched before the last one's metrics are read, so the device does
not wait on the host; a piece costs about what an in-graph report does.

Why not ``jax-tqdm``: under ``vmap`` it draws one bar per run, indexed by hand,
and knows nothing of returns; a sweep of 256 runs needs one bar for all of them.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

REPORTS = 50
"""Host reports per run, at most (fewer if the run has fewer updates), plus the last.
Each costs a CPU run about 1 ms (module docstring): 100 made a 3 s run 5% slower."""

_active: list[Progress] = []
_lock = threading.Lock()


def _to_host(names: tuple[str, ...], packed: Any) -> None:
    # Devices report from their own threads: one report at a time.
    with _lock:
        if _active:
            values = np.asarray(packed)
            update, runs = int(values[0].flat[0]), values[0].size
            metrics = values[1:].view(np.float32).reshape(len(names), runs)
            sums = metrics.sum(1, dtype=np.float64).tolist()
            _active[-1]._add(update, runs, dict(zip(names, sums, strict=True)))


@jax.custom_batching.custom_vmap
def _report(update: jax.Array, metrics: dict[str, jax.Array]) -> jax.Array:
    # One argument, as each costs a copy (module docstring): an int32 array
    # [1 + metric, *runs], row 0 the update (exact past 2**24, unlike a float32), then
    # the metrics' float32 bits (bitcast: no float op on the way can round them).
    names = tuple(sorted(metrics))
    runs = jnp.shape(metrics[names[0]]) if names else ()
    rows = [jnp.broadcast_to(jnp.asarray(update, jnp.int32), runs)]
    for name in names:
        value = jnp.asarray(metrics[name], jnp.float32)
        rows.append(jax.lax.bitcast_convert_type(value, jnp.int32))
    # partitioned: when runs are sharded over devices (jaxrl.parallel), each device
    # reports its own runs (the trailing axes) and Progress adds the shares up; no
    # all-gather in the run.
    jax.debug.callback(functools.partial(_to_host, names), jnp.stack(rows), partitioned=True)
    return update


@_report.def_vmap
def _report_batched(axis_size, in_batched, update, metrics):
    update_batched, metrics_batched = in_batched
    if update_batched:
        update = update[0]
    metrics = jax.tree.map(
        lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *x.shape)),
        metrics,
        metrics_batched,
    )
    return _report(update, metrics), False


def active() -> Progress | None:
    """The innermost ``Progress`` being shown (None outside every ``with Progress``)."""
    with _lock:
        return _active[-1] if _active else None


def report_every(total: int) -> int:
    """Updates between reports in a run of ``total`` updates, rounded up so that at most
    ``REPORTS`` updates are its multiples (976 updates: every 20th, and the last, 49
    reports; rounded down, every 19th, 52); the last update is reported too."""
    return max(1, -(-total // REPORTS))


def host_piece(total: int, log_every: int, sizes: Iterable[int]) -> int | None:
    """Updates per compiled call when a run of ``total`` updates, called in chunks of
    ``sizes`` updates, reports its progress from the host between calls: the multiple
    of ``log_every`` dividing every size (so that one program serves every call) that
    is nearest to ``report_every(total)``, or None where none lies within a factor of
    4 of it (then the run reports from inside the compiled loop instead, as before:
    fewer than about 12 reports, or more than 200 calls)."""
    every = report_every(total)
    common = math.gcd(*sizes)
    pieces = [d for d in range(log_every, common + 1, log_every) if common % d == 0]
    near = [d for d in pieces if every / 4 <= d <= every * 4]
    return min(near, key=lambda d: abs(math.log(d / every))) if near else None


def scan_updates(
    update_step: Callable[[Any, Any], tuple[Any, dict[str, jax.Array]]],
    state: Any,
    num_updates: int,
    start: Any = 0,
    total: int | None = None,
    axis_name: str | None = None,
    report: bool = True,
) -> tuple[Any, dict[str, jax.Array]]:
    """``lax.scan(update_step, state, start + jnp.arange(num_updates))``, reporting progress.

    Args:
        update_step: ``(state, update) -> (state, metrics)``, where ``update`` is the
            0-based update index, unbatched even under ``vmap`` (so a ``lax.cond``
            on it stays a branch); metrics are scalars per update, with
            ``episode_return_sum`` and ``episodes`` if the agent logs returns.
        num_updates: static number of updates.
        start: index of the first update (a chunk of a longer run; may be traced).
        total: updates in the whole run (default ``num_updates``): reports fall on
            the same updates whether the run is one scan or several chunks.
        axis_name: inside ``shard_map`` over devices that all hold the same metrics
            (one run's envs split over them), only the first device reports.
        report: False compiles no reports (and no host callback) into the loop: the
            caller reports from the host, or nobody watches.

    Returns:
        ``(final_state, metrics)`` with metrics stacked ``[num_updates]``.
    """
    total = num_updates if total is None else total
    every = report_every(total)

    def body(state, update):
        state, metrics = update_step(state, update)
        if not report:
            return state, metrics

        def emit():
            _report(update + 1, metrics)

        done = update + 1
        due = (done % every == 0) | (done == total)
        if axis_name is not None:
            due = due & (jax.lax.axis_index(axis_name) == 0)
        jax.lax.cond(due, emit, lambda: None)
        return state, metrics

    updates = jnp.arange(num_updates, dtype=jnp.int32) + jnp.asarray(start, jnp.int32)
    return jax.lax.scan(body, state, updates)


class Progress:
    """Shows the progress of the compiled training calls made inside ``with``.

    Args:
        num_updates: updates per run (the bar's total).
        steps_per_update: env steps per update and run.
        num_runs: runs trained together (seeds x hyperparameters), for steps/s; when
            the runs are split over devices, a report is shown once shares covering
            ``num_runs`` runs have arrived.
        description: the bar's label.
        stream: where the bar (a terminal) or plain lines (otherwise) go; default stdout.
        loggers: ``jaxrl.loggers`` objects; each report is logged to them as one row:
            update, env steps per run, steps/s, episodes ended and their mean return,
            and every other metric averaged over the runs.
    """

    def __init__(
        self,
        num_updates: int,
        steps_per_update: int,
        num_runs: int = 1,
        description: str = "training",
        stream: Any = None,
        loggers: Sequence[Any] = (),
    ):
        self.num_updates = num_updates
        self.steps_per_update = steps_per_update
        self.num_runs = num_runs
        self.description = description
        self.loggers = list(loggers)
        self.stream = stream if stream is not None else sys.stdout
        self.history: list[tuple[int, float]] = []
        """(update, mean return) of every report that saw finished episodes."""
        self.updates_seen = 0
        self._bar = None
        self._next_line = 1  # tenths of the run: the next plain line is due at this one
        self._first: tuple[float, int] | None = None  # (time, update) of the first report
        # update -> (runs reported, sum of each metric) while devices' shares arrive
        self._partial: dict[int, tuple[int, dict[str, float]]] = {}

    def __enter__(self) -> Progress:
        if getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                refresh_per_second=4,  # rich's 10 takes ~0.5% of a core from the run
                console=Console(file=self.stream),
            )
            self._task = self._bar.add_task(self.description, total=self.num_updates, status="")
            self._bar.start()
        with _lock:
            _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            _active.remove(self)
        if self._bar is not None:
            self._bar.stop()

    def rate(self) -> float:
        """Env steps per second, all runs together, since the first report (so that
        compiling inside ``with`` does not count)."""
        elapsed = time.perf_counter() - self._first[0]
        updates = self.updates_seen - self._first[1]
        return updates * self.steps_per_update * self.num_runs / elapsed if updates else 0.0

    def status(self) -> str:
        text = f"{self.rate():,.0f} steps/s"
        if self.history:
            text += f"  return {self.history[-1][1]:.1f}"
        return text

    def report(self, update: int, metrics: dict[str, Any]) -> None:
        """Shows the metrics of one update (``[runs]`` each): of every run, or of one
        device's share of the runs (then shown once all ``num_runs`` have reported).
        ``_to_host`` calls it from the compiled run, ``train_in_chunks`` from the host."""
        runs = int(np.size(next(iter(metrics.values())))) if metrics else self.num_runs
        sums = {name: float(np.sum(values, dtype=np.float64)) for name, values in metrics.items()}
        with _lock:
            self._add(update, runs, sums)

    def _add(self, update: int, runs: int, share: dict[str, float]) -> None:
        """``report`` with each metric already summed over the ``runs`` reported."""
        seen, sums = self._partial.pop(update, (0, {}))
        seen += runs
        for name, total in share.items():
            sums[name] = sums.get(name, 0.0) + total
        if seen < self.num_runs:
            self._partial[update] = (seen, sums)
            return
        if self._first is None:
            self._first = (time.perf_counter(), update)
        self.updates_seen = update
        episodes = sums.get("episodes", 0.0)
        if episodes > 0:
            self.history.append((update, sums["episode_return_sum"] / episodes))
        if self.loggers:
            self._log(update, sums, episodes)
        if self._bar is not None:
            self._bar.update(self._task, completed=update, status=self.status())
        elif 10 * update >= self._next_line * self.num_updates or update == self.num_updates:
            print(
                f"{self.description}: {update}/{self.num_updates} updates  {self.status()}",
                file=self.stream,
                flush=True,
            )
            while self._next_line * self.num_updates <= 10 * update:
                self._next_line += 1

    def _log(self, update: int, sums: dict[str, float], episodes: float) -> None:
        row = {
            "update": update,
            "env_steps": update * self.steps_per_update,
            "steps_per_second": self.rate(),
            "episodes": episodes,
            "return_mean": sums["episode_return_sum"] / episodes if episodes else float("nan"),
        }
        row |= {
            name: total / self.num_runs
            for name, total in sums.items()
            if name not in ("episodes", "episode_return_sum")
        }
        for logger in self.loggers:
            logger.log(row)
