"""A first look at the environment suite: a uniformly random policy on a
gridworld, run as thousands of parallel environments in one compiled call,
compared with the shortest-path optimum, plus a GIF of one episode.

    python experiments/gridworld_demo.py --out runs/demo
"""

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import tyro

import envs
from envs.gridworld import render_rollout, save_gif
from envs.vector import VecEnv
from jaxrl.experiment import write_json
from jaxrl.provenance import machine


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for summary.json and rollout.gif."""
    env: str = "GridWorld-FourRooms"
    """A fixed-layout gridworld: GridWorld-Empty-8x8 or GridWorld-FourRooms."""
    num_envs: int = 4096
    """Parallel environments."""
    num_steps: int = 1000
    """Steps per environment."""
    seed: int = 0


def random_rollout(env, params, num_envs, num_steps):
    venv = VecEnv(env, num_envs, max_resets=max(1, num_envs // 32))

    def run(key):
        reset_key, key = jax.random.split(key)
        state, _ = venv.reset(reset_key, params)

        def body(state, key):
            act_key, step_key = jax.random.split(key)
            actions = jax.random.randint(act_key, (num_envs,), 0, 4)
            state, ts = venv.step(step_key, state, actions, params)
            info = ts.info
            return state, (
                info["episode_done"],
                info["episode_return"],
                ts.terminated,
                ts.reward > 0,
            )

        _, (done, ret, term, positive) = jax.lax.scan(body, state, jax.random.split(key, num_steps))
        episodes = done.sum()
        return {
            "episodes": episodes,
            "mean_return": jnp.where(done, ret, 0.0).sum() / jnp.maximum(episodes, 1),
            "success_rate": (term & positive).sum() / jnp.maximum(episodes, 1),
        }

    return run


def main(args: Args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    env, params = envs.make(args.env, autoreset=False)
    raw = env.unwrapped
    limit = env.find(envs.wrappers.TimeLimit).max_episode_steps
    key = jax.random.key(args.seed)

    start = time.perf_counter()
    run = jax.jit(random_rollout(env, params, args.num_envs, args.num_steps)).lower(key).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    stats = jax.device_get(jax.block_until_ready(run(key)))
    run_seconds = time.perf_counter() - start
    steps = args.num_envs * args.num_steps

    shortest = raw.shortest_path_length(params)
    optimal_return = float(params.goal_reward) - float(params.step_cost) * shortest
    frames = jax.jit(lambda k: render_rollout(raw, k, params, num_steps=60))(key)
    save_gif(frames, args.out / "rollout.gif")

    print(f"{args.env}: {args.num_envs} parallel envs x {args.num_steps} steps, time limit {limit}")
    rate = steps / run_seconds
    print(f"  compile {compile_seconds:.2f} s, run {run_seconds:.2f} s, {rate:,.0f} env steps/s")
    print(f"  {'policy':<16}{'mean return':>12}{'reaches goal':>14}")
    print(f"  {'random':<16}{stats['mean_return']:>12.3f}{stats['success_rate']:>13.1%}")
    print(f"  {'shortest path':<16}{optimal_return:>12.3f}{1.0:>13.1%}  ({shortest} steps)")
    print(f"  wrote {args.out / 'rollout.gif'} and {args.out / 'summary.json'}")

    summary = {
        "algo": "random",
        "env": args.env,
        "num_seeds": 1,
        "total_env_steps": steps,
        "episodes": int(stats["episodes"]),
        "final_return_mean": float(stats["mean_return"]),
        "success_rate": float(stats["success_rate"]),
        "optimal_return": optimal_return,
        "shortest_path_length": shortest,
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
        "env_steps_per_second": steps / run_seconds,
        **machine(),
        "config": {k: str(v) for k, v in dataclasses.asdict(args).items()},
    }
    write_json(args.out / "summary.json", summary)


if __name__ == "__main__":
    main(tyro.cli(Args))
