"""Time to a result: seconds from starting a training process until its evaluated
return first reaches a threshold, jaxrl against its peers on the same machine.

For each task, every library trains ``--seeds`` seeds, one fresh process per seed
(interleaved: seed 0 of each library, then seed 1, ...), evaluating the policy
every ``eval_every`` env steps on ``eval_episodes`` episodes; a process's clock
starts when this script starts it, so imports, set-up and compiling count, as
they do for a user. The figure per (task, library) is the median over seeds of
the first evaluation at or above the threshold (a seed that never gets there
counts as never, and the number that got there is reported beside it).

- jaxrl: the task's preset (``jaxrl.presets``; its budget), trained through the
  public API as a script does (``make_train``, then ``trainer.chunk`` between
  greedy evaluations with ``jaxrl.evaluate``; one seed, the compile cache on as in
  ``jaxrl train``), stopping at the threshold: ``jaxrl`` with an empty cache (a
  first run), then ``jaxrl warm``, the same process again on the cache it filled
  (every later run);
- rejax 0.1.3: its shipped config for the same algorithm (``rejax_shim.REJAX``),
  ``jax.jit(algo.train)`` with its ``eval_callback`` evaluating ``eval_episodes``
  episodes with rejax's ``evaluate`` every ``eval_every`` steps and reporting the
  time through ``jax.debug.callback``; it runs its whole budget (rejax cannot stop
  early), which does not change when the threshold was first reached;
- brax.training 0.14.2 (Brax tasks): its PPO with brax's published settings
  scaled to this CPU (``bench_locomotion.BRAX_PPO``), its own deterministic
  evaluation, timed in ``progress_fn``.

Tasks (``TASKS``): CartPole-v1 475 and Acrobot-v1 -100 (PPO), Pendulum-v1 -200
(TD3), and brax ``ant`` 1,500 (PPO; about 10 minutes per seed for its three
processes on a 2-core CPU, so not among the defaults). Writes ``DIR/bench_solve.json``
(every evaluation of every process), ``DIR/summary.json`` (medians, ratios,
machine) and ``DIR/bench_solve.png`` (return against wall-clock seconds).

rejax and brax.training need ``pip install -e ".[bench]"`` (brax.training also
gets ``bench_locomotion.brax_shim``).

    python experiments/bench_solve.py --out runs/bench-solve
    python experiments/bench_solve.py --tasks ant --seeds 2 --out runs/bench-solve-ant
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

EXPERIMENTS = Path(__file__).resolve().parent


class Task(NamedTuple):
    env: str
    threshold: float
    algo: str
    eval_every: int
    """Env steps between evaluations."""
    eval_episodes: int
    peer: str
    """The library jaxrl is compared with: "rejax" (gymnax envs) or "brax"."""


TASKS = {
    "cartpole": Task("gymnax:CartPole-v1", 475.0, "ppo", 5_000, 32, "rejax"),
    "acrobot": Task("gymnax:Acrobot-v1", -100.0, "ppo", 5_000, 32, "rejax"),
    "pendulum": Task("gymnax:Pendulum-v1", -200.0, "td3", 500, 32, "rejax"),
    "ant": Task("brax:ant", 1500.0, "ppo", 204_800, 16, "brax"),
}
DEFAULT_TASKS = ("cartpole", "acrobot", "pendulum")
MARK = "EVAL "
"""Prefix of the lines a child process prints, one JSON object per evaluation."""


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for bench_solve.json, summary.json and bench_solve.png."""
    tasks: tuple[str, ...] = DEFAULT_TASKS
    """Tasks to run (``TASKS``: cartpole, acrobot, pendulum, ant)."""
    seeds: int = 3
    """Processes per task and library (one seed each)."""
    libs: tuple[str, ...] = ("jaxrl", "peer")
    """Which sides to run: jaxrl, and the task's peer (rejax or brax.training)."""


def report(seconds_since_start: float, env_steps: int, value: float) -> None:
    """Print one evaluation for the parent (``MARK`` line)."""
    line = {"seconds": seconds_since_start, "env_steps": env_steps, "return": value}
    print(MARK + json.dumps(line), flush=True)


def jaxrl_child(task: Task, seed: int, started: float) -> None:
    """One seed of jaxrl's preset, evaluated every ``eval_every`` steps until the
    threshold is reached or the preset's budget is spent."""
    from jaxrl import parallel

    parallel.prepare_process(None, compile_cache=True)  # as jaxrl train; the cache is empty
    import jax
    import jax.numpy as jnp

    import envs
    from jaxrl import agents, experiment, presets
    from jaxrl.evaluate import episode_limit, evaluate

    agent = agents.get(task.algo)
    preset = presets.get(task.algo, task.env)
    config, hparams = preset.apply(agent.Config(), agent.HParams())
    hparams.validate()
    env, params = envs.make(task.env, **preset.env_params)
    eval_env, _ = envs.make(task.env, autoreset=False, **preset.env_params)
    trainer = dataclasses.replace(agent.make_train(config, env, params), report=False)
    steps_per_update = experiment.update_steps(config, env, params)
    # Updates between evaluations: the divisor of the run nearest to eval_every's
    # (one compiled chunk for all).
    wanted = task.eval_every / steps_per_update
    every = min(
        (d for d in range(1, trainer.num_updates + 1) if trainer.num_updates % d == 0),
        key=lambda d: abs(math.log(d / wanted)),
    )
    limit = episode_limit(eval_env, params)

    def greedy_return(state, key):
        act = agent.make_policy(config, env, params, state, True)
        return evaluate(eval_env, params, act, key, task.eval_episodes, limit).mean()

    start = jax.jit(lambda key, hp: trainer.start(key, hp, check=False))
    chunk = jax.jit(trainer.chunk(every))
    score = jax.jit(greedy_return)
    state, done = start(jax.random.key(seed), hparams), 0
    eval_key = jax.random.key(10_000 + seed)
    while done < trainer.num_updates:
        state, _ = chunk(state, hparams, jnp.int32(done))
        done += every
        value = float(score(state, jax.random.fold_in(eval_key, done)))
        report(time.time() - started, done * steps_per_update, value)
        if value >= task.threshold:
            break


def rejax_child(task: Task, seed: int, started: float) -> None:
    """One seed of rejax's shipped config, evaluated by its own ``eval_callback``."""
    sys.path.insert(0, str(EXPERIMENTS))
    import jax
    from rejax.evaluate import evaluate
    from rejax_shim import REJAX, create

    _, fields = REJAX[f"{task.algo}@{task.env}"]

    def host_report(step, value):
        report(time.time() - started, int(step), float(value))

    def eval_callback(algo, ts, rng):
        max_steps = algo.env_params.max_steps_in_episode
        _, returns = evaluate(
            algo.make_act(ts), rng, algo.env, algo.env_params, task.eval_episodes, max_steps
        )
        jax.debug.callback(host_report, ts.global_step, returns.mean())
        return returns.mean()

    algo = create(task.algo, task.env, fields, task.eval_every, eval_callback)
    jax.block_until_ready(jax.jit(algo.train)(jax.random.key(seed)))


def brax_child(task: Task, seed: int, started: float) -> None:
    """One seed of brax.training's PPO with ``bench_locomotion.BRAX_PPO``."""
    sys.path.insert(0, str(EXPERIMENTS))
    import bench_locomotion as loco

    loco.brax_shim()
    name = task.env.removeprefix("brax:")
    steps = BRAX_BUDGET[task.env]
    args = loco.Args(out=Path("."), envs=(name,), steps=steps, evals=steps // task.eval_every,
                     eval_episodes=task.eval_episodes)  # fmt: skip
    offset = time.time() - started  # run_brax times from its own start
    for point in loco.run_brax(name, args, seed)["curve"]:
        report(offset + point["wall_seconds"], point["env_steps"], point["eval_return"])


BRAX_BUDGET = {"brax:ant": 1_228_800}
"""brax.training's budget per Brax task: jaxrl's preset's (its ``total_steps``)."""

CHILDREN = {"jaxrl": jaxrl_child, "rejax": rejax_child, "brax": brax_child}


def run_child(lib: str, task_name: str, seed: int, cache: Path) -> dict[str, Any]:
    """Start one child process and collect its evaluations (seconds since its start).
    ``lib`` "jaxrl" compiles into the empty compile cache ``cache``; "jaxrl warm" is
    the same process again, served from the cache that run filled."""
    child = "jaxrl" if lib.startswith("jaxrl") else lib
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", child, task_name, str(seed)]
    env = dict(os.environ, BENCH_SOLVE_STARTED=repr(time.time()), PYTHONUNBUFFERED="1",
               JAXRL_CACHE_DIR=str(cache))  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{lib} {task_name} seed {seed} failed:\n{proc.stderr[-3000:]}")
    evals = [json.loads(line[len(MARK) :]) for line in proc.stdout.splitlines()
             if line.startswith(MARK)]  # fmt: skip
    threshold = TASKS[task_name].threshold
    reached = next((e["seconds"] for e in evals if e["return"] >= threshold), None)
    return {"seed": seed, "evals": evals, "seconds_to_threshold": reached, "wall_seconds": wall}


def median_time(runs: list[dict[str, Any]]) -> float | None:
    """Median seconds to the threshold over seeds, a seed that never got there counting
    as never (None where that is the median)."""
    times = [r["seconds_to_threshold"] for r in runs]
    value = statistics.median([math.inf if t is None else t for t in times])
    return None if math.isinf(value) else value


def describe(row: dict[str, Any]) -> str:
    """One task's line of the table: each library's median and how many seeds got there."""
    parts = []
    for lib, result in row.items():
        if isinstance(result, dict):
            median = result["median_seconds"]
            shown = "never" if median is None else f"{median:.1f} s"
            parts.append(f"{lib} {shown} ({result['reached']}/{result['seeds']} reached)")
    for side in ("jaxrl", "jaxrl_warm"):
        if f"peer_over_{side}" in row:
            parts.append(f"peer / {side} {row[f'peer_over_{side}']:.2f}x")
    return "  ".join(parts)


def plot(results: dict[str, dict[str, list[dict[str, Any]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.4), squeeze=False)
    for ax, (task_name, by_lib) in zip(axes[0], results.items(), strict=True):
        for color, (lib, runs) in zip(("C0", "C2", "C1"), by_lib.items(), strict=False):
            for i, run in enumerate(runs):
                xs = [e["seconds"] for e in run["evals"]]
                ys = [e["return"] for e in run["evals"]]
                ax.plot(xs, ys, color=color, alpha=0.8, label=lib if i == 0 else None)
        ax.axhline(TASKS[task_name].threshold, color="grey", ls="--", lw=1)
        ax.set(title=TASKS[task_name].env, xlabel="seconds since process start",
               ylabel="evaluation return")  # fmt: skip
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: Args) -> None:
    unknown = sorted(set(args.tasks) - set(TASKS))
    bad_libs = sorted(set(args.libs) - {"jaxrl", "peer"})
    if unknown or bad_libs or args.seeds < 1 or not args.tasks:
        raise SystemExit(
            f"--tasks {list(args.tasks)} / --libs {list(args.libs)} / --seeds {args.seeds} "
            f"not allowed; tasks from {sorted(TASKS)}, libs from ['jaxrl', 'peer'], seeds >= 1"
        )
    if "peer" in args.libs:
        for name in args.tasks:
            module = {"rejax": "rejax", "brax": "brax.training"}[TASKS[name].peer]
            if importlib.util.find_spec(module.split(".")[0]) is None:
                raise SystemExit(
                    f"{module} is not installed: pip install -e '.[bench]', or --libs jaxrl"
                )
    from jaxrl import experiment, presets

    missing = [n for n in args.tasks if presets.get(TASKS[n].algo, TASKS[n].env) is None]
    if missing:
        raise SystemExit(f"tasks {missing} have no jaxrl preset to run")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in args.tasks:
        task = TASKS[name]
        libs = [task.peer if lib == "peer" else lib for lib in args.libs]
        libs = [side for lib in libs for side in (("jaxrl", "jaxrl warm") if lib == "jaxrl"
                                                  else (lib,))]  # fmt: skip
        results[name] = {lib: [] for lib in libs}
        for seed in range(args.seeds):
            cache = Path(tempfile.mkdtemp(prefix="jaxrl-cache-"))
            for lib in libs:
                run = run_child(lib, name, seed, cache)
                results[name][lib].append(run)
                reached = run["seconds_to_threshold"]
                shown = "never" if reached is None else f"{reached:.1f} s"
                print(f"{name:<9} {lib:<10} seed {seed}: {task.threshold:g} reached: {shown} "
                      f"(process {run['wall_seconds']:.1f} s)", flush=True)  # fmt: skip
            shutil.rmtree(cache, ignore_errors=True)
    table = {}
    for name, by_lib in results.items():
        row = {lib: {"median_seconds": median_time(runs),
                     "reached": sum(r["seconds_to_threshold"] is not None for r in runs),
                     "seeds": len(runs)} for lib, runs in by_lib.items()}  # fmt: skip
        peer = TASKS[name].peer
        for side in ("jaxrl", "jaxrl warm"):
            if {side, peer} <= set(row) and None not in (
                row[side]["median_seconds"],
                row[peer]["median_seconds"],
            ):
                ratio = row[peer]["median_seconds"] / row[side]["median_seconds"]
                row[f"peer_over_{side.replace(' ', '_')}"] = ratio
        table[name] = row
        print(f"{name:<9} {describe(row)}", flush=True)
    meta = experiment.machine()
    tasks = {name: TASKS[name]._asdict() for name in args.tasks}
    summary = {"script": "bench_solve", "seeds": args.seeds, "tasks": tasks, "table": table,
               **meta}  # fmt: skip
    # Written at the end only: an interrupted benchmark leaves no partial results.
    plot(results, args.out / "bench_solve.png")
    experiment.write_json(args.out / "bench_solve.json", {"results": results, **summary})
    experiment.write_json(args.out / "summary.json", summary)
    print(f"wrote {args.out}/bench_solve.json, summary.json and bench_solve.png")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        lib, task_name, seed = sys.argv[2:5]
        CHILDREN[lib](TASKS[task_name], int(seed), float(os.environ["BENCH_SOLVE_STARTED"]))
    else:
        import tyro

        main(tyro.cli(Args))
