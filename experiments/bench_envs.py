"""Env-only throughput: every built-in env at 1, 256 and 4096 parallel envs.

Each measurement compiles a ``lax.scan`` over batched steps with random actions
and auto-reset, reports compile time apart, and times the run as the median of
``--repeats``. Rewards and observations are summed into the carry so no env
computation is dead code. Two ways of batching are measured for our envs:

* ``vmap``: ``jax.vmap`` over ``envs.make``'s stack (``AutoReset`` inside),
  which computes a reset for every env on every step;
* ``vecenv``: ``envs.vector.VecEnv`` over ``envs.make(autoreset=False)``,
  which resets only the envs whose episode ended (at most ``num_envs // 32``
  per step, exact fallback beyond), what the agents use.

gymnax's own ``CartPole-v1`` (its jitted ``step`` with built-in auto-reset)
runs in the same process as the reference.

    python experiments/bench_envs.py --out runs/bench-envs
"""

import dataclasses
import json
import statistics
import time
from pathlib import Path

import gymnax
import jax
import jax.numpy as jnp
import tyro

import envs
from envs.vector import VecEnv
from jaxrl import experiment


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for bench_envs.json and summary.json."""
    num_envs: tuple[int, ...] = (1, 256, 4096)
    """Parallel environment counts to measure."""
    env_steps: int = 2_000_000
    """Approximate env steps per timed run (between 200 and 20,000 scan iterations)."""
    repeats: int = 3
    """Timed runs per measurement; the median is reported."""
    names: tuple[str, ...] = ()
    """Envs to measure (default: every built-in)."""


def rollout_fn(reset, step, sample, num_envs, iterations):
    def run(key):
        reset_key, key = jax.random.split(key)
        state, obs = jax.vmap(reset)(jax.random.split(reset_key, num_envs))

        def body(carry, key):
            state, total = carry
            act_key, step_key = jax.random.split(key)
            actions = jax.vmap(sample)(jax.random.split(act_key, num_envs))
            state, obs, reward = jax.vmap(step)(
                jax.random.split(step_key, num_envs), state, actions
            )
            total = total + reward.sum() + jnp.sum(obs.astype(jnp.float32))
            return (state, total), None

        (_, total), _ = jax.lax.scan(
            body, (state, jnp.zeros(())), jax.random.split(key, iterations)
        )
        return total

    return run


def ours_vecenv(name, num_envs, iterations):
    env, params = envs.make(name, autoreset=False)
    venv = VecEnv(env, num_envs, max(1, num_envs // 32))
    sample = env.action_space(params).sample

    def run(key):
        reset_key, key = jax.random.split(key)
        state, _ = venv.reset(reset_key, params)

        def body(carry, key):
            state, total = carry
            act_key, step_key = jax.random.split(key)
            actions = jax.vmap(sample)(jax.random.split(act_key, num_envs))
            state, ts = venv.step(step_key, state, actions, params)
            total = total + ts.reward.sum() + jnp.sum(ts.obs.astype(jnp.float32))
            return (state, total), None

        (_, total), _ = jax.lax.scan(
            body, (state, jnp.zeros(())), jax.random.split(key, iterations)
        )
        return total

    return run


def ours_vmap(name, num_envs, iterations):
    env, params = envs.make(name)

    def reset(key):
        state, ts = env.reset(key, params)
        return state, ts.obs

    def step(key, state, action):
        state, ts = env.step(key, state, action, params)
        return state, ts.obs, ts.reward

    return rollout_fn(reset, step, env.action_space(params).sample, num_envs, iterations)


def gymnax_reference(env_id, num_envs, iterations):
    env, params = gymnax.make(env_id)

    def reset(key):
        obs, state = env.reset(key, params)
        return state, obs

    def step(key, state, action):
        obs, state, reward, *_ = env.step(key, state, action, params)
        return state, obs, reward

    return rollout_fn(reset, step, env.action_space(params).sample, num_envs, iterations)


def measure(build, label, num_envs, args):
    iterations = min(max(200, args.env_steps // num_envs), 20_000)
    key = jax.random.key(0)
    start = time.perf_counter()
    compiled = jax.jit(build(label, num_envs, iterations)).lower(key).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(key))  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(key))
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "env": label,
        "num_envs": num_envs,
        "steps_per_second": num_envs * iterations / seconds,
        "compile_seconds": compile_seconds,
        "run_seconds": seconds,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
    }


def main(args: Args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    names = list(args.names) or envs.builtin_names()
    rows = []
    for n in args.num_envs:
        ref = measure(gymnax_reference, "CartPole-v1", n, args)
        ref["env"] = "gymnax CartPole-v1 (reference)"
        rows.append(ref)
        print(f"{ref['env']:<34} {n:>5} envs {ref['steps_per_second']:>12,.0f} steps/s")
        for name in names:
            for batching, build in (("vmap", ours_vmap), ("vecenv", ours_vecenv)):
                row = measure(build, name, n, args)
                row["batching"] = batching
                row["ratio_to_gymnax_cartpole"] = row["steps_per_second"] / ref["steps_per_second"]
                rows.append(row)
                rate, ratio = row["steps_per_second"], row["ratio_to_gymnax_cartpole"]
                print(
                    f"{name:<26} {batching:<6} {n:>5} envs {rate:>12,.0f} steps/s"
                    f"  x{ratio:.2f}  (compile {row['compile_seconds']:.1f} s)"
                )
    (args.out / "bench_envs.json").write_text(json.dumps(rows, indent=2))
    largest = max(args.num_envs)
    at_largest = [r for r in rows if r["num_envs"] == largest and r.get("batching") == "vecenv"]
    summary = {
        "script": "bench_envs",
        **experiment.machine(),
        "config": dataclasses.asdict(args) | {"out": str(args.out)},
        f"vecenv_ratio_to_gymnax_cartpole_at_{largest}": {
            r["env"]: r["ratio_to_gymnax_cartpole"] for r in at_largest
        },
        "slower_than_reference": [
            r["env"] for r in at_largest if r["ratio_to_gymnax_cartpole"] < 1
        ],
    }
    experiment.write_json(args.out / "summary.json", summary)
    print(f"wrote {args.out / 'bench_envs.json'}")


if __name__ == "__main__":
    main(tyro.cli(Args))
