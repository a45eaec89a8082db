"""Sweeps: seeds x a hyperparameter grid (x env params) in one compiled call.

``sweep(make_train, config, env_name, hparams, grid, num_seeds)`` trains every
combination of the grid's values with every seed. The runs are the rows of one
``lax.map`` with ``batch_size``: runs in a batch are vmapped together, batches run
one after another inside the same compiled call, so a sweep larger than memory
still runs in one compile, holding ``batch_size`` training states at a time.
With several devices the rows are split over a one-axis mesh (``jax.shard_map``)
and each device maps over its share.

Seed ``i`` is the same key at every grid point (common random numbers), so
differences between grid points are not differences between seeds. Env params
in ``env_grid`` are traced, like hyperparameters: the agent is built inside the
mapped function from each row's params (fields that fix shapes can't be swept).

The result is a tidy table, one row per run: the run's seed index, every swept
value, ``final_return`` (mean return of the episodes that ended in the last 5%
of updates), the mean of every other logged metric over those updates, and
``eval_return`` when a policy is given. ``SweepResult.save`` writes it as CSV
(and Parquet if ``pyarrow`` is installed) with the learning curves beside it;
``jaxrl.stats`` gives IQM and bootstrap intervals across seeds.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from jaxrl import experiment, parallel, training
from jaxrl.evaluate import episode_limit, evaluate


def grid_rows(grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The Cartesian product of ``grid``'s values, one dict per point, last name fastest."""
    for name, values in grid.items():
        if isinstance(values, str) or len(values) == 0:
            raise ValueError(f"grid[{name!r}]={values!r} is not allowed; give a non-empty list")
    names = list(grid)
    return [dict(zip(names, point, strict=True)) for point in itertools.product(*grid.values())]


def stack_hparams(base: Any, rows: list[dict[str, Any]]) -> Any:
    """``base`` (an agent's hyperparameters) with one row per point, each checked:
    hyperparameters of ``[len(rows)]`` arrays."""
    unknown = {name for row in rows for name in row} - set(base.fields())
    if unknown:
        raise ValueError(
            f"{sorted(unknown)} are not hyperparameters of {type(base).__name__}; "
            f"it has {list(base.fields())}"
        )
    points = [base.replace(**row) for row in rows]  # each checked as it is built
    return jax.tree.map(lambda *xs: jnp.asarray(xs, jnp.float32), *points)


@dataclasses.dataclass
class SweepResult:
    table: Any
    """pandas DataFrame, one row per run."""
    curves: dict[str, np.ndarray]
    """Every logged metric, ``[runs, updates]``."""
    info: dict[str, Any]
    """Timings and what was swept (written to ``sweep.json``)."""

    def save(self, directory: str | Path) -> Path:
        """Write ``runs.csv`` (and ``runs.parquet`` with pyarrow), ``curves.npz`` and
        ``sweep.json`` to ``directory``, each to a temporary name first."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "runs.csv.tmp"
        self.table.to_csv(tmp, index=False)
        tmp.replace(directory / "runs.csv")
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            pass
        else:
            self.table.to_parquet(directory / "runs.parquet.tmp", index=False)
            (directory / "runs.parquet.tmp").replace(directory / "runs.parquet")
        with open(directory / "curves.npz.tmp", "wb") as f:
            np.savez_compressed(f, **self.curves)
        (directory / "curves.npz.tmp").replace(directory / "curves.npz")
        experiment.write_json(directory / "sweep.json", self.info)
        return directory


def sweep(
    make_train: Callable,
    config: Any,
    env_name: str,
    hparams: Any,
    grid: dict[str, Sequence[float]] | None = None,
    num_seeds: int = 1,
    seed: int = 0,
    env_grid: dict[str, Sequence[Any]] | None = None,
    batch_size: int | None = None,
    devices: int | None = 1,
    make_policy: Callable | None = None,
    eval_episodes: int = 16,
    env_overrides: dict[str, Any] | None = None,
) -> SweepResult:
    """Train ``num_seeds`` seeds at every point of ``grid`` x ``env_grid`` in one call.

    Args:
        make_train: an agent's ``make_train(config, env, env_params)``.
        config: the agent's config (static, shared by every run).
        env_name: a registered env; ``env_grid`` values override its params.
        hparams: the agent's hyperparameters; ``grid`` names the ones to sweep.
        grid: ``{"lr": [1e-4, 3e-4], ...}``; every combination is trained.
        num_seeds: seeds per grid point.
        env_grid: env params to sweep, e.g. ``{"slip": [0.0, 0.1]}``, crossed with ``grid``.
        batch_size: runs vmapped together; batches run in sequence inside the same
            compiled call (``lax.map``). None: all runs (of a device) at once.
        devices: local devices to split the runs over (None: the most that divide them).
        make_policy: the agent's ``make_policy``; if given, every run's final policy is
            evaluated greedily on ``eval_episodes`` episodes (the same keys for all).
        env_overrides: env params fixed for every run (not swept, not traced).

    Returns:
        ``SweepResult`` with the table, the learning curves and timings.
    """
    hp_rows = grid_rows(grid or {})
    env_rows = grid_rows(env_grid or {})
    if num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds} is not allowed; it must be >= 1")
    # Each env point is built (and validated) by envs.make before anything compiles.
    fixed = env_overrides or {}
    built = [envs.make(env_name, **(fixed | row)) for row in env_rows]
    env = built[0][0]
    env_params = jax.tree.map(lambda *xs: jnp.stack(xs), *(params for _, params in built))
    stacked = stack_hparams(hparams, hp_rows)
    num_points = len(env_rows) * len(hp_rows)
    num_runs = num_points * num_seeds
    devices = parallel.devices_for(num_runs, devices)
    per_device = num_runs // devices
    if batch_size is not None and not 1 <= batch_size <= per_device:
        raise ValueError(
            f"batch_size={batch_size} is not allowed; it must be in [1, {per_device}] "
            f"(the runs per device: {num_runs} runs on {devices} devices)"
        )

    # Run r: env point r // (H * S), hyperparameter point (r // S) % H, seed r % S.
    runs = np.arange(num_runs)
    env_index = runs // (len(hp_rows) * num_seeds)
    hp_index = (runs // num_seeds) % len(hp_rows)
    seed_index = runs % num_seeds
    keys = jax.random.split(jax.random.key(seed), num_seeds)[seed_index]
    run_hparams = jax.tree.map(lambda x: x[hp_index], stacked)
    # Unswept env params stay constants of the compiled call (fewer traced values).
    run_env_params = jax.tree.map(lambda x: x[env_index], env_params) if env_grid else None
    eval_env = envs.make(env_name, autoreset=False, **fixed)[0] if make_policy else None
    eval_key = jax.random.key(seed + 1)

    static_params = None if env_grid else built[0][1]

    def train_one(row):
        key, hp, params = row
        params = static_params if static_params is not None else params
        # The rows were checked when stacked, and nobody watches progress: no host
        # callback, so that jax's persistent cache can keep the program.
        trainer = dataclasses.replace(make_train(config, env, params), report=False)
        final_state, metrics = trainer(key, hp, check=False)
        out = {"metrics": metrics}
        if make_policy is not None:
            act = make_policy(config, env, params, final_state, True)
            limit = episode_limit(eval_env, params)
            out["eval_return"] = evaluate(
                eval_env, params, act, eval_key, eval_episodes, limit
            ).mean()
        return out

    def train_share(keys, hps, params):
        return jax.lax.map(train_one, (keys, hps, params), batch_size=batch_size)

    if devices == 1:
        compiled_fn = jax.jit(train_share)
    else:
        mesh = parallel.runs_mesh(devices)
        spec = jax.sharding.PartitionSpec(parallel.AXIS)
        # Each device maps over its own rows with no collectives; the agents' scans mix
        # constants (unvarying over the mesh) into their carries, which the check refuses.
        compiled_fn = jax.jit(
            jax.shard_map(train_share, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
        )
    start = time.perf_counter()
    compiled = compiled_fn.lower(keys, run_hparams, run_env_params).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.device_get(jax.block_until_ready(compiled(keys, run_hparams, run_env_params)))
    run_seconds = time.perf_counter() - start

    curves = {k: np.asarray(v) for k, v in out["metrics"].items()}
    table = _table(curves, hp_rows, env_rows, hp_index, env_index, seed_index, out)
    info = {
        "env": env_name,
        "grid": grid or {},
        "env_grid": env_grid or {},
        "env_overrides": fixed,
        "num_seeds": num_seeds,
        "num_runs": num_runs,
        "batch_size": batch_size or per_device,
        "devices_used": devices,
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
        "config": dataclasses.asdict(config),
        "hparams": {k: float(v) for k, v in hparams.asdict().items()},
        **experiment.machine(),
    }
    return SweepResult(table, curves, info)


def _table(curves, hp_rows, env_rows, hp_index, env_index, seed_index, out):
    import pandas as pd

    columns: dict[str, Any] = {"run": np.arange(len(seed_index)), "seed": seed_index}
    for name in env_rows[0]:
        columns[name] = [env_rows[i][name] for i in env_index]
    for name in hp_rows[0]:
        columns[name] = [hp_rows[i][name] for i in hp_index]
    if "episodes" in curves:
        columns["final_return"] = experiment.final_returns(curves)
    if "eval_return" in out:
        columns["eval_return"] = np.asarray(out["eval_return"])
    # A run whose numbers stopped being finite (training.faults): the first update of
    # the first bad interval and what went bad; -1 and "none" for healthy runs.
    diverged = {fault.run: fault for fault in training.faults(curves)}
    columns["diverged_at"] = [diverged[i].update if i in diverged else -1 for i in columns["run"]]
    columns["diverged"] = [
        " ".join(diverged[i].quantities) if i in diverged else "none" for i in columns["run"]
    ]
    some = next(iter(curves.values()))
    tail = max(1, int(round(some.shape[-1] * experiment.FINAL_FRACTION)))
    for name, values in curves.items():
        if name not in ("episodes", "episode_return_sum"):
            columns[name] = values[:, -tail:].mean(-1)
    return pd.DataFrame(columns)
