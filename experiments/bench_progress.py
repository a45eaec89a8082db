"""What progress reporting costs a training run, measured on one compiled PPO run.

    python experiments/bench_progress.py --out runs/bench-progress

Three builds of the same run (PPO, ``gymnax:CartPole-v1``, ``--num-seeds`` seeds
vmapped), each compiled apart and timed as the median of ``--repeats`` runs:

1. ``no_reports``: the loop compiled with the report call taken out (the baseline);
2. ``reports_unwatched``: the shipped loop, ``progress.REPORTS`` (50) host callbacks
   per run, with no ``Progress`` open (each callback returns at once);
3. ``progress_and_logs``: the shipped loop inside a ``Progress`` that prints plain
   lines and writes every row to CSV and JSON Lines loggers, as the scripts do;
4. ``no_health``: the shipped loop without the per-update health check
   (``Trainer.health=False``: no non-finite-parameter flag).

The targets: ``progress_and_logs`` at most 5% slower than ``no_reports``, and the
health check (``reports_unwatched`` against ``no_health``) at most 2%.
``summary.json`` has the seconds, the ratios and the machine.
"""

from __future__ import annotations

import dataclasses
import io
import statistics
import tempfile
import time
from pathlib import Path

import jax
import tyro

import envs
from jaxrl import checkpoint, experiment, loggers, progress
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
    original = progress._report
    if not reports:
        progress._report = lambda update, metrics: update  # traced away: no callback
    try:
        trainer = dataclasses.replace(ppo.make_train(config, env, params), health=health)
        train = jax.jit(jax.vmap(trainer, in_axes=(0, None)))
        keys = jax.random.split(jax.random.key(0), num_seeds)
        return train.lower(keys, ppo.PPOHParams()).compile(), keys
    finally:
        progress._report = original


def timed(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, the runs interleaved (ABCABC...) so that a busy
    spell of a shared machine falls on every build alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(args: Args) -> dict:
    env, params = envs.make("gymnax:CartPole-v1")
    config = ppo.PPOConfig(total_steps=args.total_steps)
    hp = ppo.PPOHParams()
    bare, keys = build(config, env, params, args.num_seeds, reports=False)
    shipped, _ = build(config, env, params, args.num_seeds, reports=True)
    unchecked, _ = build(config, env, params, args.num_seeds, reports=True, health=False)

    def watched():
        with tempfile.TemporaryDirectory() as tmp:
            logs = [loggers.CSVLogger(f"{tmp}/p.csv"), loggers.JSONLLogger(f"{tmp}/p.jsonl")]
            bar = progress.Progress(
                config.num_updates, config.batch_size, args.num_seeds, stream=io.StringIO(),
                loggers=logs,
            )  # fmt: skip
            with bar:
                result = jax.block_until_ready(shipped(keys, hp))
            for log in logs:
                log.close()
            return result

    builds = {
        "no_reports": lambda: bare(keys, hp),
        "reports_unwatched": lambda: shipped(keys, hp),
        "progress_and_logs": watched,
        "no_health": lambda: unchecked(keys, hp),
    }
    seconds = timed(builds, args.repeats)
    # Reporting must change nothing but the time: the builds' results are identical.
    same = all(
        bool((a == b).all())
        for a, b in zip(
            jax.tree.leaves(checkpoint.plain(bare(keys, hp))),
            jax.tree.leaves(checkpoint.plain(shipped(keys, hp))),
            strict=True,
        )
    ) and all(  # the health check changes no state either
        bool((a == b).all())
        for a, b in zip(
            jax.tree.leaves(checkpoint.plain(shipped(keys, hp)[0])),
            jax.tree.leaves(checkpoint.plain(unchecked(keys, hp)[0])),
            strict=True,
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
