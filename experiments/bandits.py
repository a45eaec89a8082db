"""Every bandit algorithm of ``jaxrl.bandits`` that applies to a bandit environment,
each vmapped over runs in one compiled call; every algorithm sees the same problem
instances (the same run keys). Prints a table of the final cumulative regret and
writes ``summary.json`` and ``regret.png`` (mean cumulative regret, 95% bootstrap
bands over runs).

    python experiments/bandits.py --env ContextualBandit-Linear --out runs/bandits-linear
"""

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
import tyro

import envs
from jaxrl import bandits, experiment
from jaxrl.config import check_positive
from jaxrl.experiment import bootstrap_ci

PLOT_POINTS = 200


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Run directory: summary.json and regret.png."""
    env: str = "Bandit-Bernoulli"
    """Bandit-Bernoulli, Bandit-Gaussian or ContextualBandit-Linear."""
    num_runs: int = 256
    """Runs (problem instances) per algorithm, vmapped."""
    num_steps: int = 10_000
    """Pulls per run."""
    seed: int = 0
    """Seed of the first key; the runs' keys are split from it."""


def plot(curves: dict[str, np.ndarray], title: str, path: Path) -> None:
    """Mean cumulative regret with 95% bootstrap bands; ``curves`` are (runs, steps)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for name, cumulative in curves.items():
        steps = np.unique(np.linspace(0, cumulative.shape[1] - 1, PLOT_POINTS).astype(int))
        band = np.array([bootstrap_ci(cumulative[:, t], resamples=1000) for t in steps])
        ax.plot(steps + 1, cumulative[:, steps].mean(0), label=name)
        ax.fill_between(steps + 1, band[:, 0], band[:, 1], alpha=0.25)
    ax.set_xlabel("pulls")
    ax.set_ylabel("cumulative regret")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(args: Args) -> dict:
    check_positive("Args", num_runs=args.num_runs, num_steps=args.num_steps)
    env, env_params = envs.make(args.env, raw=True)
    algorithms = [
        a for a in bandits.ALGORITHMS if not bandits.unsupported_reason(a, env, env_params)
    ]
    if not algorithms:
        raise ValueError(bandits.unsupported_reason(bandits.UCB1, env, env_params))
    keys = jax.random.split(jax.random.key(args.seed), args.num_runs)
    print(f"{args.num_runs} runs x {args.num_steps:,} pulls on {args.env}, {jax.default_backend()}")
    results, curves, compile_seconds, run_seconds = {}, {}, 0.0, 0.0
    for algorithm in algorithms:
        run = bandits.make_run(algorithm, env, env_params, args.num_steps)
        start = time.perf_counter()
        compiled = jax.jit(jax.vmap(run, in_axes=(0, None))).lower(keys, algorithm.hparams)
        compiled = compiled.compile()
        compiled_at = time.perf_counter()
        _, metrics = jax.block_until_ready(compiled(keys, algorithm.hparams))
        done_at = time.perf_counter()
        compile_seconds += compiled_at - start
        run_seconds += done_at - compiled_at
        cumulative = np.cumsum(np.asarray(metrics["regret"], np.float64), axis=1)
        curves[algorithm.name] = cumulative
        results[algorithm.name] = {
            "final_regret_mean": float(cumulative[:, -1].mean()),
            "final_regret_ci95": list(bootstrap_ci(cumulative[:, -1])),
            "optimal_fraction_last_10pct": float(
                np.asarray(metrics["optimal"])[:, -max(1, args.num_steps // 10) :].mean()
            ),
            "compile_seconds": compiled_at - start,
            "run_seconds": done_at - compiled_at,
            "hparams": {k: float(v) for k, v in algorithm.hparams.asdict().items()},
        }
    print(f"{'algorithm':<20}{'final regret':>14}{'95% CI':>22}{'optimal (last 10%)':>20}")
    for name, r in results.items():
        ci = "[{:.1f}, {:.1f}]".format(*r["final_regret_ci95"])
        mean, optimal = r["final_regret_mean"], r["optimal_fraction_last_10pct"]
        print(f"{name:<20}{mean:>14.1f}{ci:>22}{optimal:>20.3f}")

    args.out.mkdir(parents=True, exist_ok=True)
    plot(curves, f"{args.env}, {args.num_runs} runs", args.out / "regret.png")
    summary = {
        "algo": "bandits",
        "env": args.env,
        "num_runs": args.num_runs,
        "num_steps": args.num_steps,
        "seed": args.seed,
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
        **experiment.machine(),
        "regret_plot": "regret.png",
        "algorithms": results,
    }
    experiment.write_json(args.out / "summary.json", summary)
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'regret.png'}")
    return summary


if __name__ == "__main__":
    main(tyro.cli(Args, description="Bandit algorithms on a bandit environment."))
