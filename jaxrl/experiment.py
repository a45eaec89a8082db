"""What every single-file training script shares: build the env, compile
``jit(vmap(train))`` over seeds once (timed apart from the run), summarise the
returns, print a table, write ``summary.json`` and a learning-curve PNG.

``final_return`` of a seed is the mean return of the episodes that finished in
the last 5% of its updates; confidence intervals across seeds are percentile
bootstraps (10,000 resamples of the seeds).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from jaxrl import parallel
from jaxrl.evaluate import evaluate
from jaxrl.progress import Progress

FINAL_FRACTION = 0.05


def machine() -> dict[str, Any]:
    """What every summary.json records about where it ran."""
    return {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
    }


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to a temporary name, then rename it onto ``path``, so a
    failed or interrupted run never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def final_returns(metrics: dict[str, Any], fraction: float = FINAL_FRACTION) -> np.ndarray:
    """Per seed: mean return of episodes finished in the last ``fraction`` of updates."""
    sums, counts = np.asarray(metrics["episode_return_sum"]), np.asarray(metrics["episodes"])
    tail = max(1, int(round(sums.shape[-1] * fraction)))
    with np.errstate(invalid="ignore"):
        return sums[..., -tail:].sum(-1) / counts[..., -tail:].sum(-1)


def bootstrap_ci(
    values: np.ndarray, level: float = 0.95, resamples: int = 10_000
) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(0)
    means = rng.choice(values, (resamples, len(values))).mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def learning_curve(metrics: dict[str, Any]) -> np.ndarray:
    """[seeds, updates] mean return of episodes finished in each update (NaN where none)."""
    sums, counts = np.asarray(metrics["episode_return_sum"]), np.asarray(metrics["episodes"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def plot_curve(curve: np.ndarray, steps_per_update: int, title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    x = (np.arange(curve.shape[1]) + 1) * steps_per_update
    with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)
        mean = np.nanmean(curve, axis=0)
        low, high = np.nanpercentile(curve, 2.5, axis=0), np.nanpercentile(curve, 97.5, axis=0)
    ax.plot(x, mean, label=f"mean of {curve.shape[0]} seeds")
    ax.fill_between(x, low, high, alpha=0.25, label="2.5-97.5 percentile of seeds")
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def episode_limit(env: Any, env_params: Any) -> int:
    """The longest episode of ``env``: its ``TimeLimit``, or gymnax's own limit param."""
    limit = env.find(envs.wrappers.TimeLimit) if isinstance(env, envs.Wrapper) else None
    if limit is not None:
        return limit.max_episode_steps
    return int(env_params.max_steps_in_episode)


def update_steps(config: Any, env: Any, env_params: Any) -> int:
    """Env steps per update and run: ``config.steps_per_update(env, env_params)`` where the
    config defines it (CEM: a generation's episodes, each stepped to the time limit),
    else ``num_envs * rollout_len``."""
    if hasattr(config, "steps_per_update"):
        return config.steps_per_update(env, env_params)
    return config.num_envs * config.rollout_len


def run(
    algo: str,
    make_train: Callable,
    config: Any,
    hparams: Any,
    env_name: str,
    num_seeds: int,
    seed: int,
    out: Path,
    steps_per_update: int | None = None,
    env_overrides: dict[str, Any] | None = None,
    make_policy: Callable | None = None,
    eval_episodes: int = 32,
    devices: int | None = None,
    extra_summary: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train ``num_seeds`` seeds in one compiled call and write the run directory.

    With ``make_policy`` (an agent's ``make_policy(config, env, env_params, state,
    deterministic)`` returning ``act(key, obs)``), each seed's final policy is then
    evaluated greedily on ``eval_episodes`` episodes, the same eval keys for every seed.
    The seeds are split over ``devices`` local devices (``jaxrl.parallel``; None: the
    most that divide ``num_seeds``). ``steps_per_update`` None: ``update_steps``.
    ``extra_summary(summary, config, env, env_params, final_state, hparams) -> dict``
    adds algorithm-specific fields to ``summary.json`` (``summary`` holds the common
    fields; ``final_state`` has a leading seed axis).
    """
    if num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds} is not allowed; it must be >= 1")
    devices = parallel.devices_for(num_seeds, devices)
    hparams.validate()
    env, env_params = envs.make(env_name, **(env_overrides or {}))
    train = make_train(config, env, env_params)
    if steps_per_update is None:
        steps_per_update = update_steps(config, env, env_params)
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    steps = config.num_updates * steps_per_update
    print(
        f"{algo} on {env_name}: {num_seeds} seeds x {steps:,} steps on "
        f"{devices} {jax.default_backend()} device(s), compiling ..."
    )
    start = time.perf_counter()
    sharded = parallel.shard_runs(train, num_seeds, (0, None), devices)
    compiled = sharded.lower(keys, hparams).compile()
    compile_seconds = time.perf_counter() - start
    print(f"compiled in {compile_seconds:.1f} s; training ...")
    start = time.perf_counter()
    with Progress(config.num_updates, steps_per_update, num_seeds, f"{algo} {env_name}"):
        final_state, metrics = jax.block_until_ready(compiled(keys, hparams))
    run_seconds = time.perf_counter() - start
    metrics = jax.device_get(metrics)
    eval_return = None
    if make_policy is not None:
        eval_env, _ = envs.make(env_name, autoreset=False, **(env_overrides or {}))
        gru_size = getattr(config, "gru_size", 0)
        policy_carry = jnp.zeros((eval_episodes, gru_size)) if gru_size else None

        def evaluate_seed(state, key):
            act = make_policy(config, env, env_params, state, True)
            limit = episode_limit(eval_env, env_params)
            return evaluate(
                eval_env, env_params, act, key, eval_episodes, limit, policy_carry
            ).mean()

        eval_key = jax.random.key(seed + 1)
        evals = jax.jit(jax.vmap(evaluate_seed, in_axes=(0, None)))(final_state, eval_key)
        eval_return = float(np.mean(jax.device_get(evals)))

    per_seed = final_returns(metrics)
    total_steps = int(np.asarray(metrics["episodes"]).shape[-1]) * steps_per_update
    low, high = bootstrap_ci(per_seed)
    rate = total_steps * num_seeds / run_seconds
    print(f"trained in {run_seconds:.1f} s ({rate:,.0f} env steps/s, all seeds)")
    width = max(10, len(algo) + 2)
    print(f"{'algo':<{width}}{'env':<28}{'seeds':>6}{'final return':>14}{'95% CI':>22}")
    ci = f"[{low:.1f}, {high:.1f}]"
    print(f"{algo:<{width}}{env_name:<28}{num_seeds:>6}{per_seed.mean():>14.1f}{ci:>22}")
    if eval_return is not None:
        print(
            f"greedy evaluation, {eval_episodes} episodes per seed: mean return {eval_return:.1f}"
        )

    out.mkdir(parents=True, exist_ok=True)
    plot_curve(
        learning_curve(metrics), steps_per_update, f"{algo} on {env_name}", out / "curve.png"
    )
    summary = {
        "algo": algo,
        "env": env_name,
        "num_seeds": num_seeds,
        "total_env_steps": total_steps,
        "final_return_mean": float(per_seed.mean()),
        "final_return_ci95": [low, high],
        "final_return_per_seed": per_seed.tolist(),
        "eval_return_mean": eval_return,
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
        "env_steps_per_second": rate,
        **machine(),
        "devices_used": devices,
        "config": dataclasses.asdict(config),
        "hparams": {k: float(v) for k, v in hparams._asdict().items()},
    }
    if extra_summary is not None:
        summary |= extra_summary(summary, config, env, env_params, final_state, hparams)
    write_json(out / "summary.json", summary)
    print(f"wrote {out / 'summary.json'} and {out / 'curve.png'}")
    return summary


@dataclasses.dataclass(frozen=True)
class RunArgs:
    out: Path
    """Run directory: summary.json and curve.png."""
    env: str = "gymnax:CartPole-v1"
    """A name from envs.registered()."""
    num_seeds: int = 8
    """Seeds trained in parallel (one vmap)."""
    seed: int = 0
    """Seed of the first key; seeds are split from it."""
    devices: int | None = None
    """Local devices to split the seeds over; None: the most that divide num_seeds."""
    env_param: tuple[str, ...] = ()
    """Env params to override, as name=value (e.g. slip=0.2), validated by the env."""


def parse_env_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("slip=0.2", "obs_mode='image'")`` -> ``{"slip": 0.2, "obs_mode": "image"}``;
    values are Python literals, or plain strings where they are not."""
    import ast

    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--env-param {pair!r} is not allowed; it must be name=value")
        try:
            overrides[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            overrides[name.strip()] = value.strip()
    return overrides


def main(
    algo: str,
    config_cls: type,
    hparams_cls: type,
    make_train: Callable,
    make_policy: Callable,
    default_env: str = RunArgs.env,
    extra_summary: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The command line of ``experiments/<algo>.py``: the run flags above plus every
    config field and hyperparameter as a flag, then ``run`` (``extra_summary`` as there)."""
    import tyro

    env_help = tyro.conf.arg(help="A name from envs.registered().")
    args_cls = dataclasses.make_dataclass(
        f"{algo.upper()}Args",
        [
            ("env", Annotated[str, env_help], dataclasses.field(default=default_env)),
            (
                "config",
                Annotated[config_cls, tyro.conf.OmitArgPrefixes],
                dataclasses.field(default=config_cls()),
            ),
            (
                "hparams",
                Annotated[hparams_cls, tyro.conf.OmitArgPrefixes],
                dataclasses.field(default=hparams_cls()),
            ),
        ],
        bases=(RunArgs,),
        frozen=True,
    )
    args = tyro.cli(args_cls, description=f"Train {algo} on a registered environment.")
    return run(
        algo, make_train, args.config, args.hparams, args.env, args.num_seeds, args.seed, args.out,
        make_policy=make_policy, devices=args.devices, extra_summary=extra_summary,
        env_overrides=parse_env_params(args.env_param),
    )  # fmt: skip
