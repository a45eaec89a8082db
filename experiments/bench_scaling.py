"""What splitting PPO over devices costs: one run's envs, and a sweep's seeds, at
1, 2 and 4 devices, for the same work (issue 7).

    python experiments/bench_scaling.py --out runs/bench-scaling

Two cases on gymnax CartPole-v1 (PPO defaults: 128 steps per env and update, 4
epochs of 4 minibatches), each at every ``--devices`` count D:

1. ``single_run``: one run of ``--num-envs`` envs for ``--total-steps`` steps, its
   envs split over D devices (``PPOConfig.num_devices``: ``jax.shard_map``, one
   ``all_gather`` of the rollout per update and a ``pmean`` per minibatch);
2. ``sweep``: ``--num-seeds`` independent runs of ``num_envs / num_seeds`` envs and
   ``total_steps / num_seeds`` steps each, the seeds split over D devices
   (``parallel.shard_runs``): the same env steps, envs stepped at once and
   updates as the single run.

Each build is compiled apart (``.lower().compile()``), called once to warm up, then
timed as the median of ``--repeats`` calls, the D builds of a case interleaved so a
busy spell of a shared machine falls on each alike. Per case and D: compile and run
seconds, env steps/s, ``overhead`` (run seconds over those at 1 device) and the final
return. ``bench_scaling.json`` and ``summary.json`` hold the same, with the machine.

On a CPU host the devices are forced (``--force-cpu-devices``, default 4,
``jaxrl.parallel.use_cpu_devices`` before jax starts its backend; a
``--xla_force_host_platform_device_count`` already in ``XLA_FLAGS`` wins) and share
the cores, so the figure is the overhead: the target is a 4-device run costing at
most 1.25x the 1-device run (``target_met`` per case). On a multi-GPU host the
GPUs are the devices; pass ``--force-cpu-devices 0`` (the setting only touches the
CPU backend, so this just leaves it alone), and an overhead below 1 is a speed-up:

    python experiments/bench_scaling.py --out runs/bench-scaling --force-cpu-devices 0
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import jax
import numpy as np
import tyro

import envs
from jaxrl import experiment, parallel
from jaxrl.agents import ppo

ENV = "gymnax:CartPole-v1"
TARGET = 1.25
"""Most the largest device count's run may cost, relative to one device."""


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for bench_scaling.json and summary.json."""
    total_steps: int = 524_288
    """Env steps of the single run, and of the sweep's seeds together (32 updates by default)."""
    num_envs: int = 128
    """Envs of the single run, and of the sweep's seeds together (4 per seed)."""
    num_seeds: int = 32
    """Seeds of the sweep; must divide num_envs, and each device count must divide it."""
    repeats: int = 3
    """Timed calls per build (median), after one warm-up call."""
    devices: tuple[int, ...] = (1, 2, 4)
    """Device counts to measure; 1 (the baseline of the overhead) must be one."""
    force_cpu_devices: int = 4
    """CPU devices to force before jax starts; 0 for jax's default (on a GPU host)."""


def builds(args: Args, case: str, env, params) -> dict[int, tuple]:
    """Per device count: ``(jitted, inputs, env steps per call)``; configs and device
    counts are checked here, before anything compiles."""
    hp, out = ppo.PPOHParams(), {}
    for d in args.devices:
        if case == "single_run":
            config = ppo.PPOConfig(
                num_envs=args.num_envs, total_steps=args.total_steps, num_devices=d
            )
            runs, jitted = 1, jax.jit(ppo.make_train(config, env, params))
            inputs = (jax.random.key(0), hp)
        else:
            runs, per_seed = args.num_seeds, args.num_envs // args.num_seeds
            config = ppo.PPOConfig(num_envs=per_seed, total_steps=args.total_steps // runs)
            jitted = parallel.shard_runs(ppo.make_train(config, env, params), runs, (0, None), d)
            inputs = (jax.random.split(jax.random.key(0), runs), hp)
        out[d] = (jitted, inputs, runs * config.num_updates * config.batch_size)
    return out


def measure(args: Args, case: str, built: dict[int, tuple]) -> list[dict]:
    rows = []
    compiled, seconds = {}, {d: [] for d in built}
    for d, (jitted, inputs, _) in built.items():
        start = time.perf_counter()
        compiled[d] = jitted.lower(*inputs).compile()
        rows.append({"case": case, "devices": d, "compile_seconds": time.perf_counter() - start})
    outputs = {d: jax.block_until_ready(compiled[d](*built[d][1])) for d in built}  # warm-up
    for _ in range(args.repeats):  # interleaved: 1 2 4 1 2 4 ...
        for d, (_, inputs, _) in built.items():
            start = time.perf_counter()
            jax.block_until_ready(compiled[d](*inputs))
            seconds[d].append(time.perf_counter() - start)
    for row in rows:
        d = row["devices"]
        run_seconds, steps = statistics.median(seconds[d]), built[d][2]
        row |= {
            "total_env_steps": steps,
            "run_seconds": run_seconds,
            "run_seconds_all": seconds[d],
            "env_steps_per_second": steps / run_seconds,
            "overhead": run_seconds / statistics.median(seconds[1]),
            "final_return_mean": float(np.nanmean(experiment.final_returns(outputs[d][1]))),
        }
        print(
            f"{case:<10} {d} device(s)  compile {row['compile_seconds']:5.1f} s  run "
            f"{run_seconds:6.2f} s  {row['env_steps_per_second']:10,.0f} steps/s  overhead "
            f"x{row['overhead']:.2f}  return {row['final_return_mean']:6.1f}",
            flush=True,
        )
    return rows


def main(args: Args) -> dict:
    if args.force_cpu_devices:
        parallel.use_cpu_devices(args.force_cpu_devices)
    if 1 not in args.devices or max(args.devices) > jax.device_count():
        raise ValueError(
            f"--devices {args.devices} is not allowed; it must include 1 and be at most "
            f"jax.device_count()={jax.device_count()} ({jax.default_backend()})"
        )
    if args.num_envs % args.num_seeds:
        raise ValueError(
            f"--num-seeds {args.num_seeds} does not divide --num-envs {args.num_envs} "
            "(each seed of the sweep gets an equal share of the envs)"
        )
    env, params = envs.make(ENV)
    cases = {case: builds(args, case, env, params) for case in ("single_run", "sweep")}
    rows = [row for case, built in cases.items() for row in measure(args, case, built)]
    largest = max(args.devices)
    target_met = {
        r["case"]: r["overhead"] <= TARGET for r in rows if r["devices"] == largest
    }  # fmt: skip
    result = {
        "env": ENV,
        "args": {k: str(v) if k == "out" else v for k, v in dataclasses.asdict(args).items()},
        "rows": rows,
        "target": f"run_seconds({largest} devices) <= {TARGET} x run_seconds(1 device)",
        "target_met": target_met,
        **experiment.machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    experiment.write_json(args.out / "bench_scaling.json", result)
    experiment.write_json(args.out / "summary.json", {"script": "bench_scaling", **result})
    print("target met:", target_met)
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
