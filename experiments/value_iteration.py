"""Solve a tabular environment exactly: value iteration, policy iteration (exact
evaluation) and modified policy iteration (iterative evaluation) on its
``tabular_model``, checked against each other and by simulating the greedy policy.

    python experiments/value_iteration.py --env GridWorld-FourRooms --out runs/vi
    python experiments/value_iteration.py --env Inventory --gamma 0.99 --x64 --out runs/vi-inv

Writes ``summary.json`` (per method: iterations, Bellman residual, compile and run
seconds; the largest disagreement between methods; V of the start state; the
greedy policy's mean simulated return) and ``values.png`` (a value heat map with
the greedy moves for grid worlds; values and actions by state otherwise).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

import envs
from jaxrl import experiment, planning
from jaxrl.agents import tabular
from jaxrl.evaluate import episode_limit, evaluate

ARROWS = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]])  # up, right, down, left as (dx, dy)


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Run directory: summary.json and values.png."""
    env: str = "GridWorld-FourRooms"
    """A registered env with a tabular model (GridWorld layouts, Inventory)."""
    gamma: float = 0.99
    """Discount factor, in [0, 1)."""
    tol: float = 1e-6
    """Stopping tolerance on the sup-norm change of V between sweeps."""
    x64: bool = False
    """Solve in float64 (for tolerances below float32's rounding of large values)."""
    eval_episodes: int = 256
    """Simulated episodes of the greedy policy."""
    seed: int = 0
    """Seed of the simulated episodes."""


def timed(fn, *args):
    """``(result, compile_seconds, run_seconds)`` of ``jax.jit(fn)(*args)``."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(*args))
    return result, compile_seconds, time.perf_counter() - start


def plot(path: Path, env, params, model, solution, title: str) -> None:
    from matplotlib.figure import Figure

    V, policy = np.asarray(solution.V), np.asarray(solution.policy)
    if hasattr(model, "positions"):  # a grid world: heat map and greedy moves
        walls = np.asarray(params.walls)
        grid = np.full(walls.shape, np.nan)
        rows, cols = np.asarray(model.positions).T
        grid[rows, cols] = V
        fig = Figure(figsize=(5, 5))
        ax = fig.add_subplot()
        image = ax.imshow(grid, cmap="viridis")
        fig.colorbar(image, ax=ax, label="V*(s)")
        live = ~np.asarray(model.terminal)
        dx, dy = ARROWS[policy[live]].T
        ax.quiver(cols[live], rows[live], dx, dy, angles="xy", scale_units="xy", scale=2.5)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        fig = Figure(figsize=(8, 3.5))
        ax, ax2 = fig.subplots(1, 2)
        ax.plot(V)
        ax.set_xlabel("state index")
        ax.set_ylabel("V*(s)")
        ax2.plot(policy, ".")
        ax2.set_xlabel("state index")
        ax2.set_ylabel("greedy action")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(args: Args) -> dict:
    if args.eval_episodes < 1:
        raise ValueError(f"eval_episodes={args.eval_episodes} is not allowed; it must be >= 1")
    env, params = envs.make(args.env)
    model = planning.tabular_model(env, params)
    dtype = jnp.float64 if args.x64 else jnp.float32
    with jax.enable_x64(args.x64):
        P, R = jnp.asarray(model.P, dtype), jnp.asarray(model.R, dtype)
        gamma = jnp.asarray(args.gamma, dtype)
        planning.check_mdp(P, R, gamma, "value_iteration.py")
        tol = args.tol
        methods = {
            "value_iteration": lambda P, R, g: planning.value_iteration(P, R, g, tol),
            "policy_iteration": lambda P, R, g: planning.policy_iteration(P, R, g, "exact", tol),
            "modified_policy_iteration": lambda P, R, g: planning.policy_iteration(
                P, R, g, "iterative", tol
            ),
        }
        results, report = {}, {}
        for name, solve in methods.items():
            solution, compile_seconds, run_seconds = timed(solve, P, R, gamma)
            results[name] = solution
            report[name] = {
                "iterations": int(solution.iterations),
                "residual": float(solution.residual),
                "compile_seconds": compile_seconds,
                "run_seconds": run_seconds,
            }
        V = np.asarray(results["value_iteration"].V, np.float64)
        difference = max(
            float(np.abs(np.asarray(s.V, np.float64) - V).max()) for s in results.values()
        )
        policy = results["value_iteration"].policy

    start = int(getattr(model, "start_index", getattr(model, "initial_state", 0)))
    eval_env, _ = envs.make(args.env, autoreset=False)
    act = tabular.table_policy(env, params, policy)
    limit = episode_limit(eval_env, params)
    returns = jax.jit(lambda key: evaluate(eval_env, params, act, key, args.eval_episodes, limit))
    eval_returns = np.asarray(returns(jax.random.key(args.seed)))

    print(f"{args.env}: S={P.shape[0]}, A={P.shape[1]}, gamma={args.gamma}, {dtype.__name__}")
    print(f"{'method':<28}{'iterations':>11}{'residual':>12}{'compile s':>11}{'run s':>9}")
    for name, row in report.items():
        print(
            f"{name:<28}{row['iterations']:>11}{row['residual']:>12.2e}"
            f"{row['compile_seconds']:>11.2f}{row['run_seconds']:>9.4f}"
        )
    print(f"largest |V difference| between methods: {difference:.2e}")
    print(
        f"V*(start) = {V[start]:.4f}; greedy policy, {args.eval_episodes} simulated episodes: "
        f"mean return {eval_returns.mean():.4f} (undiscounted, {limit}-step limit)"
    )

    args.out.mkdir(parents=True, exist_ok=True)
    plot(args.out / "values.png", env, params, model, results["value_iteration"], args.env)
    summary = {
        "algo": "value_iteration",
        "env": args.env,
        "gamma": args.gamma,
        "tol": args.tol,
        "dtype": dtype.__name__,
        "num_states": int(P.shape[0]),
        "num_actions": int(P.shape[1]),
        "methods": report,
        "max_value_difference": difference,
        "value_at_start": float(V[start]),
        "eval_return_mean": float(eval_returns.mean()),
        "eval_episodes": args.eval_episodes,
        **experiment.machine(),
    }
    experiment.write_json(args.out / "summary.json", summary)
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'values.png'}")
    return summary


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__.split("\n\n")[0]))
