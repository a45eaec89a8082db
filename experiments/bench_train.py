"""Training speed against rejax: same algorithm, hyperparameters, env and machine.

On gymnax CartPole-v1, jaxrl and rejax 0.1.3 in one process:
- PPO: 4 envs x 128 steps, 4 epochs, 4 minibatches, 500k steps;
- DQN, PQN, discrete SAC: rejax's shipped CartPole configs (configs/gymnax/
  cartpole.yaml: DQN 100k steps, 10 envs, dueling swish (64, 64), 5 gradient
  steps of 100 per env step, Polyak 0.98; PQN 524,288 steps, 16 envs x 128, 5
  epochs x 16 minibatches, LayerNorm; SAC 50k steps, 5 envs, 2 gradient steps of
  256, Polyak 0.95, target entropy 0.7 log 2), mirrored field by field;

and on gymnax Pendulum-v1 (``--algos sac_pendulum``): continuous SAC with rejax's
shipped Pendulum config (configs/gymnax/pendulum.yaml: 1 env, 10k steps, one
gradient step of 256 per env step, swish (64, 64), lr 0.01, Polyak 0.98,
observation normalisation), mirrored field by field.

Each at 1 seed and ``--seeds`` vmapped seeds; with several local devices (on a
CPU host: ``--cpu-devices 2`` for 2 cores),
the multi-seed runs are also timed split over the devices (``jaxrl.parallel``,
applied to both libraries' train functions alike). Compile time is reported
apart (``jit(...).lower().compile()``); runs are the median of ``--repeats``
after a warm-up call, or a single call for runs over 20 s. Training runs
without in-loop evaluation; each seed's final policy is then evaluated the same
way for both libraries, 128 episodes (policies sample; the Q-learners act
greedily for jaxrl and with rejax's epsilon 0.005 for rejax).

Differences that stay: rejax's DQN and PQN clip gradients element-wise
(``optax.clip``), jaxrl by global norm; rejax bootstraps on ``done``, jaxrl only
through truncation; rejax's SAC moves its target critics once per env step,
jaxrl once per gradient step (both by the same Polyak factor).

rejax needs ``pip install -e ".[bench]"``; it unpacks gymnax's old 5-value
``step``, so it gets ``gymnax.wrappers.LegacyStepAPIWrapper`` (subclassed so
that rejax's ``deepcopy`` of its config does not recurse forever).

    python experiments/bench_train.py --out runs/bench-train
    python experiments/bench_train.py --algos dqn --cpu-devices 2 --out runs/bench-dqn
"""

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import rejax_shim
import tyro

import envs
from jaxrl import experiment, parallel
from jaxrl.agents import dqn, ppo, pqn, sac
from jaxrl.evaluate import episode_limit, evaluate
from jaxrl.experiment import final_returns

ENV = "gymnax:CartPole-v1"
LONG = 20.0
"""Seconds beyond which a run is timed once (see ``time_compiled``)."""


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for bench_train.json and summary.json."""
    algos: tuple[str, ...] = ("ppo", "dqn", "pqn", "sac")
    """Algorithms to measure."""
    seeds: tuple[int, ...] = (1, 16)
    """Numbers of vmapped seeds to measure."""
    repeats: int = 3
    """Timed runs per measurement (median reported)."""
    cpu_devices: int | None = None
    """CPU devices to expose before jax starts (jaxrl.parallel.use_cpu_devices); with
    more than one, multi-seed runs are also timed split over them."""


class Algo(NamedTuple):
    """One algorithm in both libraries, with the same hyperparameters."""

    module: Any  # the jaxrl agent
    config: Any
    hparams: Any
    stochastic_eval: bool  # jaxrl policy samples (as rejax's does) or acts greedily
    rejax: Callable[[], Any]  # builds the rejax algorithm (no in-loop evaluation)
    env: str = ENV


def _rejax(name: str, total_steps: int, env_name: str = ENV, **kwargs) -> Any:
    return rejax_shim.create(name, env_name, kwargs | {"total_timesteps": total_steps})


PPO_CONFIG = ppo.PPOConfig(num_envs=4, rollout_len=128, num_epochs=4, num_minibatches=4)
PPO_HP = ppo.PPOHParams(lr=2.5e-4, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01)
DQN_CONFIG = dqn.DQNConfig(
    num_envs=10, total_steps=100_000, hidden_sizes=(64, 64), activation="silu",
    dueling=True, double=True, buffer_size=50_000, learning_starts=5_000,
    minibatch_size=100, gradient_steps=5, target_update_every=1,
)  # fmt: skip
DQN_HP = dqn.DQNHParams(lr=1e-3, tau=0.02, max_grad_norm=10.0, eps_decay_fraction=0.5)
PQN_CONFIG = pqn.PQNConfig(
    num_envs=16, rollout_len=128, total_steps=524_288, num_epochs=5, num_minibatches=16,
    anneal_lr=False,
)  # fmt: skip
PQN_HP = pqn.PQNHParams(lr=3e-4, td_lambda=0.9, eps_decay_fraction=0.5, max_grad_norm=10.0)
SAC_CONFIG = sac.SACConfig(
    num_envs=5, total_steps=50_000, hidden_sizes=(64, 64), activation="tanh",
    buffer_size=10_000, learning_starts=1_000, minibatch_size=256, gradient_steps=2,
)  # fmt: skip
SAC_HP = sac.SACHParams(lr=1e-3, tau=0.05, alpha=1.0)
# rejax's SAC config for Pendulum-v1 (configs/gymnax/pendulum.yaml): one env, one
# gradient step of 256 per env step, swish (64, 64), lr 0.01, Polyak 0.98,
# observation normalisation, the entropy target -action_dim (rejax's None).
SAC_PENDULUM_CONFIG = sac.SACConfig(
    num_envs=1, total_steps=10_000, hidden_sizes=(64, 64), activation="silu",
    buffer_size=10_000, learning_starts=256, minibatch_size=256, gradient_steps=1,
    normalize_obs=True,
)  # fmt: skip
SAC_PENDULUM_HP = sac.SACHParams(lr=0.01, tau=0.02, alpha=1.0)

ALGOS = {
    "ppo": Algo(ppo, PPO_CONFIG, PPO_HP, True, lambda: _rejax(
        "ppo", PPO_CONFIG.total_steps, num_envs=4, num_steps=128, num_epochs=4,
        num_minibatches=4, learning_rate=2.5e-4, gamma=0.99, gae_lambda=0.95, clip_eps=0.2,
        ent_coef=0.01, vf_coef=PPO_HP.vf_coef, max_grad_norm=PPO_HP.max_grad_norm,
    )),
    "dqn": Algo(dqn, DQN_CONFIG, DQN_HP, False, lambda: _rejax(
        "dqn", DQN_CONFIG.total_steps, agent="DuelingQNetwork",
        agent_kwargs={"activation": "swish"}, num_envs=10, buffer_size=50_000,
        fill_buffer=5_000, batch_size=100, max_grad_norm=10, learning_rate=1e-3,
        num_epochs=5, polyak=0.98, eps_start=1, eps_end=0.05, exploration_fraction=0.5,
        gamma=0.99, ddqn=True,
    )),
    "pqn": Algo(pqn, PQN_CONFIG, PQN_HP, False, lambda: _rejax(
        "pqn", PQN_CONFIG.total_steps, num_envs=16, num_steps=128, num_minibatches=16,
        max_grad_norm=10, learning_rate=3e-4, num_epochs=5, eps_start=1, eps_end=0.05,
        exploration_fraction=0.5, gamma=0.99, td_lambda=0.9,
    )),
    "sac": Algo(sac, SAC_CONFIG, SAC_HP, True, lambda: _rejax(
        "sac", SAC_CONFIG.total_steps, agent_kwargs={"activation": "tanh"}, num_envs=5,
        buffer_size=10_000, fill_buffer=1_000, batch_size=256, learning_rate=1e-3,
        num_epochs=2, gamma=0.99, polyak=0.95, target_entropy_ratio=0.7,
    )),
    "sac_pendulum": Algo(sac, SAC_PENDULUM_CONFIG, SAC_PENDULUM_HP, True, lambda: _rejax(
        "sac", SAC_PENDULUM_CONFIG.total_steps, "gymnax:Pendulum-v1",
        agent_kwargs={"activation": "swish"}, num_envs=1, buffer_size=10_000,
        fill_buffer=256, batch_size=256, learning_rate=0.01, num_epochs=1, gamma=0.99,
        polyak=0.98, target_entropy_ratio=None, normalize_observations=True,
    ), env="gymnax:Pendulum-v1"),
}  # fmt: skip


def time_compiled(jitted, *args, repeats):
    """Compile time, and the median run time of ``repeats`` calls after a warm-up
    call; runs longer than ``LONG`` seconds are timed once, warm-up included (first-call
    overhead is then well under 1% of the run)."""
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    first = time.perf_counter() - start
    if first > LONG:
        return out, compile_seconds, first
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return out, compile_seconds, statistics.median(times)


def eval_returns(act_of_state, states, num_seeds, env_name=ENV):
    """128 episodes of each seed's final policy, the same keys for both libraries."""
    episode_env, params = envs.make(env_name, autoreset=False)
    limit = episode_limit(episode_env, params)
    shape = episode_env.action_space(params).shape  # rejax squeezes actions

    def eval_seed(state, key):
        act = act_of_state(state)

        def policy(key, obs):
            return act(key, obs).reshape(obs.shape[0], *shape)

        return evaluate(episode_env, params, policy, key, 128, limit).mean()

    keys = jax.random.split(jax.random.key(99), num_seeds)
    return np.asarray(jax.jit(jax.vmap(eval_seed))(states, keys))


def bench_jaxrl(algo: Algo, keys, devices, repeats):
    env, params = envs.make(algo.env)
    train = algo.module.make_train(algo.config, env, params)
    jitted = parallel.shard_runs(train, len(keys), (0, None), devices)
    (state, metrics), compile_s, run_s = time_compiled(jitted, keys, algo.hparams, repeats=repeats)

    def act_of_state(state):
        return algo.module.make_policy(algo.config, env, params, state, not algo.stochastic_eval)

    evals = eval_returns(act_of_state, state, len(keys), algo.env)
    return compile_s, run_s, final_returns(metrics), evals


def bench_rejax(algo: Algo, keys, devices, repeats):
    rejax_algo = algo.rejax()
    jitted = parallel.shard_runs(rejax_algo.train, len(keys), (0,), devices)
    (ts, _), compile_s, run_s = time_compiled(jitted, keys, repeats=repeats)

    def act_of_state(ts):
        act = jax.vmap(rejax_algo.make_act(ts))
        return lambda key, obs: act(obs, jax.random.split(key, obs.shape[0]))

    return compile_s, run_s, None, eval_returns(act_of_state, ts, len(keys), algo.env)


def measure(args: Args) -> list[dict[str, Any]]:
    rows = []
    for name in args.algos:
        algo = ALGOS[name]
        for n in args.seeds:
            keys = jax.random.split(jax.random.key(0), n)
            device_counts = sorted({1, parallel.devices_for(n)})
            for devices in device_counts:
                for library, bench in (("jaxrl", bench_jaxrl), ("rejax", bench_rejax)):
                    compile_s, run_s, train_returns, evals = bench(
                        algo, keys, devices, args.repeats
                    )
                    steps = algo.config.total_steps
                    rows.append({
                        "library": library, "algo": name, "env": algo.env, "num_seeds": n,
                        "devices": devices, "total_env_steps": steps,
                        "compile_seconds": compile_s, "run_seconds": run_s,
                        "env_steps_per_second": n * steps / run_s,
                        "final_return_mean": None if train_returns is None
                        else float(np.nanmean(train_returns)),
                        "eval_return_mean": float(evals.mean()),
                        "eval_return_per_seed": evals.tolist(),
                    })  # fmt: skip
                    print(
                        f"{name:<4} {library:<6} {n:>2} seeds {devices} device(s)  compile "
                        f"{compile_s:5.1f} s  run {run_s:7.2f} s  eval return {evals.mean():6.1f}",
                        flush=True,
                    )
    return rows


def ratios_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per algorithm, seeds and devices: jaxrl's speed-up over rejax and compile ratio;
    per algorithm and library: the cost of n seeds relative to 1 seed."""

    def row(library, algo, n, devices):
        return next(
            (r for r in rows if (r["library"], r["algo"], r["num_seeds"], r["devices"])
             == (library, algo, n, devices)), None,
        )  # fmt: skip

    ratios: dict[str, Any] = {}
    for r in rows:
        if r["library"] != "jaxrl":
            continue
        algo, n, devices = r["algo"], r["num_seeds"], r["devices"]
        theirs = row("rejax", algo, n, devices)
        entry = {
            "run_speedup_vs_rejax": theirs["run_seconds"] / r["run_seconds"],
            "compile_ratio_vs_rejax": r["compile_seconds"] / theirs["compile_seconds"],
        }
        for library, ours in (("jaxrl", r), ("rejax", theirs)):
            single = row(library, algo, 1, 1)
            if single is not None and n > 1:
                entry[f"{library}_cost_vs_1_seed"] = ours["run_seconds"] / single["run_seconds"]
        ratios[f"{algo}/{n}_seeds/{devices}_devices"] = entry
        print(f"{algo} {n} seeds {devices} device(s): " + "  ".join(
            f"{k} {v:.2f}" for k, v in entry.items()))  # fmt: skip
    return ratios


def main(args: Args) -> None:
    unknown = set(args.algos) - set(ALGOS)
    if unknown:
        raise ValueError(f"--algos {sorted(unknown)} not allowed; choose from {sorted(ALGOS)}")
    if args.cpu_devices is not None:
        parallel.use_cpu_devices(args.cpu_devices)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = measure(args)
    ratios = ratios_of(rows)
    meta = experiment.machine()
    configs = {
        name: {"config": dataclasses.asdict(ALGOS[name].config),
               "hparams": ALGOS[name].hparams.asdict()}
        for name in args.algos
    }  # fmt: skip
    # Written at the end only: an interrupted benchmark leaves no partial results.
    for filename, content in (
        ("bench_train.json", {"rows": rows, "ratios": ratios, **meta}),
        ("summary.json", {"script": "bench_train", "algos": configs, "ratios": ratios, **meta}),
    ):
        experiment.write_json(args.out / filename, content)


if __name__ == "__main__":
    main(tyro.cli(Args))
