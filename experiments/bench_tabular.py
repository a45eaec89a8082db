"""Tabular and bandit speed against plain NumPy, in one process.

    python experiments/bench_tabular.py --out runs/bench-tabular

Two workloads, each run by jaxrl (``jit(vmap(...))``, compile timed apart) and by
the same computation in NumPy (float32 as well), timed as the median of
``--repeats`` runs, with the results compared so a fast wrong answer cannot pass:

1. Value iteration on ``Inventory`` under ``--settings`` cost settings (holding
   cost x lost-sales penalty x fixed order cost x unit cost grid; the costs change
   ``R`` only, so ``P`` is shared). NumPy references: the settings vectorised
   (one batched sweep per iteration over the settings not yet converged; the
   strongest NumPy version) and a Python loop of the textbook sweep per setting.
2. UCB1 on ``Bandit-Bernoulli`` (10 arms), ``--runs`` independent runs of
   ``--pulls`` pulls. NumPy references: the runs vectorised, one array step per
   pull; and the textbook loop (run after run, pull after pull), timed on
   ``--loop-runs`` runs and scaled linearly to ``--runs``.

The loops' per-step Python overhead is what ``jit(vmap(...))`` removes; the
vectorised NumPy versions are the strongest NumPy reference, and the harder ratio.

``summary.json`` has per workload the seconds of each, the ratios (NumPy / jaxrl
run time) and the agreement checks.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

import envs
from envs import inventory
from jaxrl import bandits, experiment, planning


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Output directory for summary.json."""
    settings: int = 1024
    """Inventory cost settings solved at once (a multiple of 64)."""
    gamma: float = 0.99
    """Discount of the inventory problem."""
    tol: float = 1e-2
    """Value iteration tolerance (sup-norm change of V; the values are ~1e3, so this is
    a relative 1e-5, near float32's rounding, below which sweeps may cycle)."""
    max_iterations: int = 10_000
    """Most sweeps per setting, in both implementations."""
    runs: int = 4096
    """Independent UCB1 runs."""
    pulls: int = 10_000
    """Pulls per UCB1 run."""
    repeats: int = 3
    """Timed repetitions (the median is reported)."""
    loop_runs: int = 16
    """UCB1 runs timed in the per-run NumPy loop (scaled linearly to ``runs``)."""


def median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


# 1. Value iteration over cost settings --------------------------------------


def cost_grid(num: int) -> list[dict[str, float]]:
    """``num`` settings on a grid over four cost fields (num / 64 unit costs)."""
    holding = np.linspace(0.2, 2.0, 4)
    penalty = np.linspace(0.0, 6.0, 4)
    fixed = np.linspace(0.0, 15.0, 4)
    unit = np.linspace(2.0, 7.0, num // 64)
    return [
        dict(holding_cost=h, lost_sales_penalty=p, fixed_order_cost=f, unit_cost=u)
        for h, p, f, u in itertools.product(holding, penalty, fixed, unit)
    ]


def numpy_vi_batched(P, R, gamma, tol, max_iterations):
    """Value iteration of every setting at once; each stops at its own tolerance."""
    B, S, A = R.shape
    P2 = P.reshape(S * A, S)
    V = np.zeros((B, S), np.float32)
    iterations = np.zeros(B, np.int32)
    active = np.ones(B, bool)
    while active.any():
        idx = np.flatnonzero(active)
        new = (R[idx] + gamma * (V[idx] @ P2.T).reshape(len(idx), S, A)).max(axis=2)
        change = np.abs(new - V[idx]).max(axis=1)
        V[idx] = new
        iterations[idx] += 1
        active[idx] = (change > tol) & (iterations[idx] < max_iterations)
    return V, iterations


def numpy_vi_loop(P, R, gamma, tol, max_iterations):
    """The textbook loop, one setting after another."""
    out = np.zeros(R.shape[:2], np.float32)
    for b in range(R.shape[0]):
        V = np.zeros(R.shape[1], np.float32)
        for _ in range(max_iterations):
            new = (R[b] + gamma * P @ V).max(axis=1)
            done = np.abs(new - V).max() <= tol
            V = new
            if done:
                break
        out[b] = V
    return out


def bench_value_iteration(args: Args) -> dict:
    _, params = envs.make("Inventory")
    settings = cost_grid(args.settings)
    models = [inventory.tabular_model(params.replace(**s)) for s in settings]
    P = np.asarray(models[0].P)
    for m in models[1:]:
        assert np.array_equal(np.asarray(m.P), P), "costs must not change P"
    R = np.stack([np.asarray(m.R) for m in models])
    planning.check_mdp(P, R, args.gamma)
    P_j, R_j = jnp.asarray(P), jnp.asarray(R)

    def solve(P, R, gamma):
        return jax.vmap(planning.value_iteration, in_axes=(None, 0, None, None, None))(
            P, R, gamma, args.tol, args.max_iterations
        )

    start = time.perf_counter()
    compiled = jax.jit(solve).lower(P_j, R_j, args.gamma).compile()
    compile_seconds = time.perf_counter() - start
    jax_seconds, solution = median_seconds(lambda: compiled(P_j, R_j, args.gamma), args.repeats)
    batched_seconds, (V_np, iterations_np) = median_seconds(
        lambda: numpy_vi_batched(P, R, np.float32(args.gamma), args.tol, args.max_iterations),
        args.repeats,
    )
    loop_seconds, V_loop = median_seconds(
        lambda: numpy_vi_loop(P, R, np.float32(args.gamma), args.tol, args.max_iterations), 1
    )
    V_jax = np.asarray(solution.V)
    # Both stop within tol of the fixed point's neighbourhood: V agrees to
    # gamma * tol / (1 - gamma) plus float32 rounding of values ~1e3.
    bound = args.gamma * args.tol / (1 - args.gamma) + 1e-3
    difference = float(np.abs(V_jax - V_np).max())
    return {
        "workload": f"value iteration, Inventory (S={P.shape[0]}, A={P.shape[1]}), "
        f"{args.settings} cost settings, gamma={args.gamma}, tol={args.tol}",
        "jaxrl_compile_seconds": compile_seconds,
        "jaxrl_run_seconds": jax_seconds,
        "numpy_batched_seconds": batched_seconds,
        "numpy_loop_seconds": loop_seconds,
        "speedup_vs_numpy_batched": batched_seconds / jax_seconds,
        "speedup_vs_numpy_loop": loop_seconds / jax_seconds,
        "max_value_difference": difference,
        "value_difference_bound": bound,
        "agree": difference <= bound and float(np.abs(V_loop - V_np).max()) <= bound,
        "iterations_jaxrl_max": int(np.asarray(solution.iterations).max()),
        "iterations_numpy_max": int(iterations_np.max()),
        "value_range": [float(V_np.min()), float(V_np.max())],
    }


# 2. UCB1 runs ----------------------------------------------------------------


def numpy_ucb1(rng, means, pulls: int):
    """UCB1 (scale 1) on Bernoulli arms ``means [runs, K]``; cumulative pseudo-regret [runs]."""
    runs, K = means.shape
    counts = np.zeros((runs, K), np.float32)
    sums = np.zeros((runs, K), np.float32)
    regret = np.zeros(runs, np.float32)
    best = means.max(axis=1)
    rows = np.arange(runs)
    for t in range(pulls):
        if t < K:  # each arm once first
            action = np.full(runs, t)
        else:
            bonus = np.sqrt(2.0 * np.log(t) / counts)
            scores = sums / counts + bonus
            action = scores.argmax(axis=1)
        reward = (rng.random(runs, np.float32) < means[rows, action]).astype(np.float32)
        counts[rows, action] += 1
        sums[rows, action] += reward
        regret += best - means[rows, action]
    return regret


def numpy_ucb1_loop(rng, means, pulls: int):
    """The textbook loop: one run after another, one pull after another."""
    regret = np.zeros(len(means), np.float32)
    for r, arm_means in enumerate(means):
        K = len(arm_means)
        counts, sums, best = np.zeros(K), np.zeros(K), arm_means.max()
        for t in range(pulls):
            if t < K:
                action = t
            else:
                action = int(np.argmax(sums / counts + np.sqrt(2.0 * np.log(t) / counts)))
            counts[action] += 1
            sums[action] += float(rng.random() < arm_means[action])
            regret[r] += best - arm_means[action]
    return regret


def bench_ucb(args: Args) -> dict:
    env, params = envs.make("Bandit-Bernoulli")
    run = bandits.make_run(bandits.UCB1, env, params, args.pulls)
    hp = bandits.UCB1HParams()
    hp.validate()

    def total_regret(keys, hp):
        _, metrics = jax.vmap(run, in_axes=(0, None))(keys, hp)
        return metrics["regret"].sum(axis=1)

    keys = jax.random.split(jax.random.key(0), args.runs)
    start = time.perf_counter()
    compiled = jax.jit(total_regret).lower(keys, hp).compile()
    compile_seconds = time.perf_counter() - start
    jax_seconds, regret = median_seconds(lambda: compiled(keys, hp), args.repeats)

    rng = np.random.default_rng(0)
    means = rng.random((args.runs, params.num_arms), np.float32)
    numpy_seconds, regret_np = median_seconds(
        lambda: numpy_ucb1(rng, means, args.pulls), args.repeats
    )
    loop_runs = min(args.loop_runs, args.runs)
    loop_seconds, _ = median_seconds(lambda: numpy_ucb1_loop(rng, means[:loop_runs], args.pulls), 1)
    loop_seconds *= args.runs / loop_runs
    regret, regret_np = np.asarray(regret), np.asarray(regret_np)
    # Different random problems and rewards: compare the means within their standard errors.
    se = np.sqrt(regret.var() / len(regret) + regret_np.var() / len(regret_np))
    return {
        "workload": f"UCB1, Bandit-Bernoulli ({params.num_arms} arms), {args.runs} runs x "
        f"{args.pulls} pulls",
        "jaxrl_compile_seconds": compile_seconds,
        "jaxrl_run_seconds": jax_seconds,
        "numpy_seconds": numpy_seconds,
        "numpy_loop_seconds_extrapolated": loop_seconds,
        "numpy_loop_runs_timed": loop_runs,
        "speedup_vs_numpy": numpy_seconds / jax_seconds,
        "speedup_vs_numpy_loop": loop_seconds / jax_seconds,
        "pulls_per_second_jaxrl": args.runs * args.pulls / jax_seconds,
        "final_regret_mean_jaxrl": float(regret.mean()),
        "final_regret_mean_numpy": float(regret_np.mean()),
        "agree": bool(abs(regret.mean() - regret_np.mean()) <= 4 * se),
    }


def main(args: Args) -> dict:
    if args.settings < 64 or args.settings % 64:
        raise ValueError(f"settings={args.settings} is not allowed; it must be a multiple of 64")
    for name in ("runs", "pulls", "repeats", "max_iterations"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name}={getattr(args, name)} is not allowed; it must be >= 1")
    # Warm the process (imports, first allocations) before anything is timed.
    jax.block_until_ready(jax.jit(lambda x: x + 1)(jnp.zeros(3)))
    results = {"value_iteration": bench_value_iteration(args), "ucb1": bench_ucb(args)}
    for name, row in results.items():
        print(f"{name}: {row['workload']}")
        for key, value in row.items():
            if key != "workload":
                print(
                    f"  {key:<28} {value:.4g}"
                    if isinstance(value, float)
                    else f"  {key:<28} {value}"
                )
    summary = {
        "benchmark": "tabular",
        **results,
        **experiment.machine(),
        "numpy_version": np.__version__,
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(args).items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    experiment.write_json(args.out / "summary.json", summary)
    print(f"wrote {args.out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__.split("\n\n")[0]))
