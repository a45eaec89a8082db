"""Training speed against rejax, same algorithm, hyperparameters, env and machine.

PPO on gymnax CartPole-v1 (4 envs x 128 steps, 4 epochs, 4 minibatches, 500k
steps), 1 seed and 8 vmapped seeds, jaxrl and rejax 0.1.3 in one process.
Compile time is reported apart (``jit(...).lower().compile()``), runs are the
median of ``--repeats``. Both libraries train without in-loop evaluation and
are then evaluated the same way: 128 episodes of each seed's final policy
(sampled actions, as rejax's ``act`` samples).

rejax needs ``pip install -e ".[bench]"``; it unpacks gymnax's old 5-value
``step``, so it gets ``gymnax.wrappers.LegacyStepAPIWrapper`` (subclassed so
that rejax's ``deepcopy`` of its config does not recurse forever).

    python experiments/bench_train.py --out runs/bench-train
"""

import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import tyro
from gymnax.wrappers.compat import LegacyStepAPIWrapper

import envs
from jaxrl.agents import ppo
from jaxrl.evaluate import evaluate
from jaxrl.experiment import final_returns


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for bench_train.json and summary.json."""
    seeds: tuple[int, ...] = (1, 8)
    """Numbers of vmapped seeds to measure."""
    total_steps: int = 500_000
    repeats: int = 3
    """Timed runs per measurement (median reported)."""


CONFIG = ppo.PPOConfig(num_envs=4, rollout_len=128, num_epochs=4, num_minibatches=4)
HPARAMS = ppo.PPOHParams(lr=2.5e-4, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01)


class _LegacyStep(LegacyStepAPIWrapper):
    def __getattr__(self, name):
        if name == "_env" or name.startswith("__"):
            raise AttributeError(name)
        return super().__getattr__(name)


def time_compiled(fn, *args, repeats):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    out = jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return out, compile_seconds, statistics.median(times)


def bench_jaxrl(keys, config, repeats):
    env, params = envs.make("gymnax:CartPole-v1")
    train = jax.vmap(ppo.make_train(config, env, params), in_axes=(0, None))
    (state, metrics), compile_s, run_s = time_compiled(train, keys, HPARAMS, repeats=repeats)
    eval_env, _ = envs.make("gymnax:CartPole-v1", autoreset=False)

    def eval_seed(state, key):
        act = ppo.make_policy(config, env, params, state, deterministic=False)
        return evaluate(eval_env, params, act, key, 128, 500).mean()

    evals = jax.jit(jax.vmap(eval_seed))(state, jax.random.split(jax.random.key(99), len(keys)))
    return compile_s, run_s, final_returns(metrics), np.asarray(evals)


def bench_rejax(keys, total_steps, repeats):
    from rejax import PPO

    env, params = gymnax.make("CartPole-v1")
    algo = PPO.create(
        env=_LegacyStep(env),
        env_params=params,
        num_envs=CONFIG.num_envs,
        num_steps=CONFIG.rollout_len,
        num_epochs=CONFIG.num_epochs,
        num_minibatches=CONFIG.num_minibatches,
        total_timesteps=total_steps,
        learning_rate=HPARAMS.lr,
        gamma=HPARAMS.gamma,
        gae_lambda=HPARAMS.gae_lambda,
        clip_eps=HPARAMS.clip_eps,
        ent_coef=HPARAMS.ent_coef,
        vf_coef=HPARAMS.vf_coef,
        max_grad_norm=HPARAMS.max_grad_norm,
        eval_freq=total_steps,
        skip_initial_evaluation=True,
    )
    # No evaluation inside the timed run; both libraries are evaluated afterwards.
    algo = algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))
    train = jax.vmap(algo.train)
    (ts, _), compile_s, run_s = time_compiled(train, keys, repeats=repeats)

    def eval_seed(ts, key):
        act = jax.vmap(algo.make_act(ts))
        episode_env = envs.make("gymnax:CartPole-v1", autoreset=False)[0]
        return evaluate(
            episode_env,
            params,
            lambda k, obs: act(obs, jax.random.split(k, obs.shape[0])),
            key,
            128,
            500,
        ).mean()

    evals = jax.jit(jax.vmap(eval_seed))(ts, jax.random.split(jax.random.key(99), len(keys)))
    return compile_s, run_s, None, np.asarray(evals)


def main(args: Args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(CONFIG, total_steps=args.total_steps)
    rows = []
    for n in args.seeds:
        keys = jax.random.split(jax.random.key(0), n)
        for library, run in (
            ("jaxrl", lambda keys: bench_jaxrl(keys, config, args.repeats)),
            ("rejax", lambda keys: bench_rejax(keys, args.total_steps, args.repeats)),
        ):
            compile_s, run_s, train_returns, evals = run(keys)
            row = {
                "library": library,
                "algo": "ppo",
                "env": "gymnax:CartPole-v1",
                "num_seeds": n,
                "total_env_steps": args.total_steps,
                "compile_seconds": compile_s,
                "run_seconds": run_s,
                "env_steps_per_second": n * args.total_steps / run_s,
                "final_return_mean": None if train_returns is None else float(train_returns.mean()),
                "eval_return_mean": float(evals.mean()),
                "eval_return_per_seed": evals.tolist(),
            }
            rows.append(row)
            print(
                f"{library:<6} {n:>2} seeds  compile {compile_s:5.1f} s  run {run_s:6.2f} s  "
                f"eval return {evals.mean():6.1f}"
            )
    ratios = {}
    for n in args.seeds:
        ours, theirs = (
            next(r for r in rows if r["library"] == lib and r["num_seeds"] == n)
            for lib in ("jaxrl", "rejax")
        )
        ratios[f"{n}_seeds"] = {
            "run_speedup_vs_rejax": theirs["run_seconds"] / ours["run_seconds"],
            "compile_ratio_vs_rejax": ours["compile_seconds"] / theirs["compile_seconds"],
        }
        speedup = ratios[f"{n}_seeds"]["run_speedup_vs_rejax"]
        print(f"{n} seeds: jaxrl runs {speedup:.2f}x faster than rejax")
    meta = {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
    }
    (args.out / "bench_train.json").write_text(
        json.dumps({"rows": rows, "ratios": ratios, **meta}, indent=2)
    )
    summary = {
        "script": "bench_train",
        "config": dataclasses.asdict(config),
        "hparams": HPARAMS._asdict(),
        "ratios": ratios,
        **meta,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Args))
