"""What progress reporting costs a training run, measured on one compiled PPO run.

    python experiments/bench_progress.py --out runs/bench-progress

Five builds of the same run (PPO, ``gymnax:CartPole-v1``, ``--num-seeds`` seeds
vmapped), each compiled apart and timed as the median of ``--repeats`` runs:

1. ``no_reports``: the loop compiled without the report call (``Trainer.report=False``;
   the baseline);
2. ``reports_unwatched``: the loop with ``progress.REPORTS`` (50) host callbacks per
   run, with no ``Progress`` open (each callback returns at once);
3. ``progress_and_logs``: that loop inside a ``Progress`` that prints plain lines and
   writes every row to CSV and JSON Lines loggers (a notebook's route);
4. ``host_reports``: ``training.train_in_chunks`` inside that ``Progress``, as
   ``jaxrl train`` and the scripts run: pieces of the run with no callback, reported
   from the host between them (timed from the first piece to the end, without
   compiling);
5. ``no_health``: build 2 without the per-update health check
   (``Trainer.health=False``: no non-finite-parameter flag).

The targets: ``progress_and_logs`` and ``host_reports`` at most 5% slower than
``no_reports``, and the health check (``reports_unwatched`` against ``no_health``)
at most 2%.
``summary.json`` has the seconds, the ratios and the machine.
"""

from __future__ import annotations

import dataclasses
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import tyro

import envs
from jaxrl import checkpoint, experiment, loggers, progress, training
from jaxrl.agents import ppo


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Output directory for summary.json."""
    num_seeds: int = 8
    """Seeds vmapped in the run."""
    total_steps: int = 500_000
    """Env steps per seed."""
    repeats: int = 3
    """Timed runs per build (median)."""


def build(config, env, params, num_seeds: int, reports: bool, health: bool = True):
    """``jit(vmap(train))`` compiled, with or without the report call in its loop, with
    or without the health check."""
    trainer = dataclasses.replace(
        ppo.make_train(config, env, params), health=health, report=reports
    )
    train = jax.jit(jax.vmap(trainer, in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    return train.lower(keys, ppo.PPOHParams()).compile(), keys


class Timed(NamedTuple):
    """A build's result and the seconds it timed itself (``host_reports``)."""

    result: Any
    seconds: float


def timed(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, the runs interleaved (ABCABC...) so that a busy
    spell of a shared machine falls on every build alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            out = jax.block_until_ready(fn())
            seconds = time.perf_counter() - start
            times[name].append(out.seconds if isinstance(out, Timed) else seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def main(args: Args) -> dict:
    env, params = envs.make("gymnax:CartPole-v1")
    config = ppo.PPOConfig(total_steps=args.total_steps)
    hp = ppo.PPOHParams()
    bare, keys = build(config, env, params, args.num_seeds, reports=False)
    shipped, _ = build(config, env, params, args.num_seeds, reports=True)
    unchecked, _ = build(config, env, params, args.num_seeds, reports=True, health=False)

    def watched(run):
        with tempfile.TemporaryDirectory() as tmp:
            logs = [loggers.CSVLogger(f"{tmp}/p.csv"), loggers.JSONLLogger(f"{tmp}/p.jsonl")]
            bar = progress.Progress(
                config.num_updates, config.batch_size, args.num_seeds, stream=io.StringIO(),
                loggers=logs,
            )  # fmt: skip
            with bar:
                result = jax.block_until_ready(run())
            for log in logs:
                log.close()
            return result

    def host_reported():
        trainer = ppo.make_train(config, env, params)
        state, metrics, info = training.train_in_chunks(trainer, keys, hp, config.num_updates)
        return Timed((state, metrics), info.run_seconds)

    builds = {
        "no_reports": lambda: bare(keys, hp),
        "reports_unwatched": lambda: shipped(keys, hp),
        "progress_and_logs": lambda: watched(lambda: shipped(keys, hp)),
        "host_reports": lambda: watched(host_reported),
        "no_health": lambda: unchecked(keys, hp),
    }
    seconds = timed(builds, args.repeats)
    # Reporting must change nothing but the time: the builds' results are identical.
    same = (
        all(
            bool((a == b).all())
            for a, b in zip(
                jax.tree.leaves(checkpoint.plain(bare(keys, hp))),
                jax.tree.leaves(checkpoint.plain(shipped(keys, hp))),
                strict=True,
            )
        )
        and all(  # nor do the host's reports
            bool((np.asarray(a) == np.asarray(b)).all())
            for a, b in zip(
                jax.tree.leaves(checkpoint.plain(bare(keys, hp))),
                jax.tree.leaves(checkpoint.plain(host_reported().result)),
                strict=True,
            )
        )
        and all(  # the health check changes no state either
            bool((a == b).all())
            for a, b in zip(
                jax.tree.leaves(checkpoint.plain(shipped(keys, hp)[0])),
                jax.tree.leaves(checkpoint.plain(unchecked(keys, hp)[0])),
                strict=True,
            )
        )
    )
    ratios = {name: value / seconds["no_reports"] for name, value in seconds.items()}
    summary = {
        "algo": "ppo",
        "env": "gymnax:CartPole-v1",
        "num_seeds": args.num_seeds,
        "total_env_steps": config.num_updates * config.batch_size,
        "reports_per_run": -(-config.num_updates // progress.report_every(config.num_updates)),
        "run_seconds": seconds,
        "ratio_to_no_reports": ratios,
        "overhead_percent": 100 * (ratios["progress_and_logs"] - 1),
        "host_overhead_percent": 100 * (ratios["host_reports"] - 1),
        # None: no piece fits the run, which then reports from inside (as build 3)
        "host_piece": progress.host_piece(config.num_updates, 1, {config.num_updates}),
        "health_overhead_percent": 100 * (seconds["reports_unwatched"] / seconds["no_health"] - 1),
        "results_identical": same,
        **experiment.machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    experiment.write_json(args.out / "summary.json", summary)
    for name, value in seconds.items():
        print(f"{name:<20} {value:7.2f} s   x{ratios[name]:.3f}")
    return summary


if __name__ == "__main__":
    main(tyro.cli(Args))
