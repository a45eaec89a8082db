"""Presets against rejax: jaxrl's preset and rejax's shipped config, same env and budget.

For each (algorithm, gymnax env) pair in ``rejax_shim.REJAX`` (rejax 0.1.3's shipped
configs, ``configs/gymnax/<file>`` in its repository, copied field by field), this script
trains:

- jaxrl exactly as a user does: ``jaxrl train ALGO --env ENV --num-seeds N
  --total-steps T`` in a subprocess, T being rejax's budget (so the pair's preset
  applies, or the defaults where there is none, and the run directory is an
  ordinary one under ``DIR/runs``; pairs without a preset add the flags in
  ``MIRRORED``, rejax's config mirrored); its score is the run's greedy
  evaluation, 32 episodes per seed;
- rejax with its config, ``N`` seeds vmapped in this process, at the same number of
  env steps; its score is 32 episodes per seed of rejax's own policy
  (``make_act``: PPO and SAC sample, DQN and PQN act epsilon-greedily with 0.005,
  TD3 acts deterministically), as rejax evaluates.

and writes ``DIR/bench_presets.json`` (per pair: both libraries' per-seed returns,
mean, spread, wall seconds, and jaxrl's preset) and ``DIR/summary.json``, at the end
only. The per-pair target of issue 18 is jaxrl's mean >= rejax's.

rejax needs ``pip install -e ".[bench]"`` and gymnax's old 5-value ``step``
(``rejax_shim.legacy_step``).

    python experiments/bench_presets.py --out runs/bench-presets
    python experiments/bench_presets.py --pairs ppo@gymnax:Pendulum-v1 --out runs/bp
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import rejax_shim
import tyro
from rejax_shim import REJAX, check_libs

import envs
from jaxrl import experiment, presets
from jaxrl.evaluate import episode_limit, evaluate

EVAL_EPISODES = 32
"""Episodes per seed, as ``jaxrl train``'s greedy evaluation."""

MIRRORED: dict[str, tuple[str, ...]] = {
    # jaxrl train flags mirroring REJAX's config for the pairs without a preset (each
    # measured below rejax's result, or with neither library learning, on 2026-12-07;
    # README). With a preset, jaxrl runs the preset instead.
    "dqn@gymnax:Acrobot-v1": (
        "--num-envs", "10", "--activation", "silu", "--dueling", "--double",
        "--buffer-size", "10000", "--learning-starts", "1000", "--minibatch-size", "100",
        "--gradient-steps", "5", "--target-update-every", "20", "--lr", "1e-3",
        "--tau", "0.01", "--max-grad-norm", "10", "--eps-decay-fraction", "0.5"),
    "sac@gymnax:Acrobot-v1": (
        "--num-envs", "5", "--hidden-sizes", "64", "64", "--activation", "tanh",
        "--buffer-size", "10000", "--learning-starts", "1000", "--minibatch-size", "256",
        "--gradient-steps", "2", "--target-entropy", "0.10986", "--lr", "1e-3",
        "--tau", "0.05"),
    "ppo@gymnax:MountainCar-v0": (
        "--num-envs", "10", "--rollout-len", "20", "--num-epochs", "5",
        "--num-minibatches", "5", "--no-anneal-lr", "--lr", "2.5e-4", "--gae-lambda", "0.98",
        "--ent-coef", "0.0"),
    "dqn@gymnax:MountainCar-v0": (
        "--num-envs", "5", "--activation", "tanh", "--dueling", "--double",
        "--buffer-size", "10000", "--learning-starts", "1000", "--minibatch-size", "100",
        "--gradient-steps", "5", "--target-update-every", "40", "--lr", "5e-3",
        "--gamma", "1.0", "--tau", "0.01", "--max-grad-norm", "10",
        "--eps-decay-fraction", "0.5"),
    "pqn@gymnax:MountainCar-v0": (
        "--num-envs", "16", "--rollout-len", "128", "--num-epochs", "5",
        "--num-minibatches", "16", "--no-anneal-lr", "--lr", "3e-4", "--td-lambda", "0.9",
        "--eps-decay-fraction", "0.5"),
    "sac@gymnax:MountainCar-v0": (
        "--num-envs", "5", "--hidden-sizes", "64", "64", "--activation", "tanh",
        "--buffer-size", "10000", "--learning-starts", "1000", "--minibatch-size", "100",
        "--gradient-steps", "5", "--target-entropy", "0.54931", "--lr", "5e-3",
        "--gamma", "1.0", "--tau", "0.2"),
    "ppo@gymnax:MountainCarContinuous-v0": (
        "--num-envs", "5", "--rollout-len", "100", "--num-epochs", "10",
        "--num-minibatches", "10", "--activation", "relu", "--no-anneal-lr", "--lr", "3e-4",
        "--max-grad-norm", "10", "--gamma", "0.9", "--ent-coef", "0.0"),
    "sac@gymnax:MountainCarContinuous-v0": (
        "--num-envs", "32", "--hidden-sizes", "64", "64", "--activation", "silu",
        "--buffer-size", "10000", "--learning-starts", "256", "--minibatch-size", "256",
        "--gradient-steps", "32", "--lr", "5e-3", "--tau", "0.01"),
    "td3@gymnax:MountainCarContinuous-v0": (
        "--hidden-sizes", "64", "64", "--activation", "relu", "--buffer-size", "10000",
        "--learning-starts", "1000", "--minibatch-size", "100", "--lr", "2e-3",
        "--gamma", "0.98", "--exploration-noise", "0.2"),
    "ppo@gymnax:Pendulum-v1": (
        "--num-envs", "100", "--rollout-len", "100", "--num-epochs", "10",
        "--num-minibatches", "10", "--activation", "silu", "--normalize-obs",
        "--no-anneal-lr", "--lr", "1e-3", "--max-grad-norm", "10", "--gamma", "0.995",
        "--ent-coef", "0.0"),
    "sac@gymnax:Pendulum-v1": (
        "--hidden-sizes", "64", "64", "--activation", "silu", "--buffer-size", "10000",
        "--learning-starts", "256", "--minibatch-size", "256", "--lr", "0.01",
        "--tau", "0.02"),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for bench_presets.json, summary.json and the jaxrl runs (DIR/runs)."""
    pairs: tuple[str, ...] = tuple(REJAX)
    """ALGO@ENV pairs to compare (each needs an entry in REJAX)."""
    seeds: int = 8
    """Seeds per library and pair."""
    libs: tuple[str, ...] = ("jaxrl", "rejax")
    """Which libraries to run."""


def run_jaxrl(pair: str, seeds: int, out: Path) -> dict[str, Any]:
    """``jaxrl train`` for the pair at rejax's budget, as a user runs it; its summary's
    greedy evaluation."""
    algo, env = pair.split("@")
    run_dir = out / "runs" / pair.replace("@", "-").replace(":", "-")
    total = REJAX[pair][1]["total_timesteps"]
    cmd = ["jaxrl", "train", algo, "--env", env, "--num-seeds", str(seeds), "--total-steps",
           str(total), "--out", str(run_dir)]  # fmt: skip
    if presets.get(algo, env) is None:
        cmd += MIRRORED.get(pair, ())
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "jaxrl.cli", *cmd[1:]], capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "command": " ".join(cmd),
        "per_seed": summary["eval_return_per_seed"],
        "env_steps": summary["total_env_steps"],
        "wall_seconds": wall,
        "run_seconds": summary["run_seconds"],
        "preset": summary["preset"],
    }


def run_rejax(pair: str, seeds: int) -> dict[str, Any]:
    """rejax's shipped config for the pair, ``seeds`` seeds vmapped; rejax's own policy."""
    algo, env_name = pair.split("@")
    file, fields = REJAX[pair]
    total = fields["total_timesteps"]
    algorithm = rejax_shim.create(algo, env_name, fields)
    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    ts, _ = jax.block_until_ready(jax.jit(jax.vmap(algorithm.train))(keys))
    wall = time.perf_counter() - start
    episode_env, episode_params = envs.make(env_name, autoreset=False)
    limit = episode_limit(episode_env, episode_params)

    shape = episode_env.action_space(episode_params).shape  # rejax squeezes actions

    def eval_seed(ts, key):
        act = jax.vmap(algorithm.make_act(ts))

        def policy(key, obs):
            return act(obs, jax.random.split(key, obs.shape[0])).reshape(obs.shape[0], *shape)

        return evaluate(episode_env, episode_params, policy, key, EVAL_EPISODES, limit).mean()

    eval_keys = jax.random.split(jax.random.key(1), seeds)
    per_seed = np.asarray(jax.jit(jax.vmap(eval_seed))(ts, eval_keys))
    return {
        "config": f"rejax 0.1.3 configs/gymnax/{file}",
        "fields": fields,
        "per_seed": per_seed.tolist(),
        "env_steps": total,
        "wall_seconds": wall,
    }


def describe(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the mean and the spread (lowest, highest seed) of its returns."""
    per_seed = np.asarray(result["per_seed"], dtype=np.float64)
    return result | {"mean": float(per_seed.mean()),
                     "spread": [float(per_seed.min()), float(per_seed.max())]}  # fmt: skip


def main(args: Args) -> None:
    unknown = sorted(set(args.pairs) - set(REJAX))
    if unknown:
        raise SystemExit(f"--pairs {unknown} not allowed; choose from {sorted(REJAX)}")
    bare = [p for p in args.pairs if presets.get(*p.split("@")) is None and p not in MIRRORED]
    if bare:
        raise SystemExit(f"{bare}: neither a preset nor a MIRRORED entry; add one of them")
    check_libs(args.libs, "--seeds", args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for pair in args.pairs:
        results[pair] = {}
        if "jaxrl" in args.libs:
            results[pair]["jaxrl"] = describe(run_jaxrl(pair, args.seeds, args.out))
        if "rejax" in args.libs:
            results[pair]["rejax"] = describe(run_rejax(pair, args.seeds))
        line = "  ".join(
            f"{lib} {r['mean']:8.1f} [{r['spread'][0]:.1f}, {r['spread'][1]:.1f}] "
            f"{r['wall_seconds']:5.0f} s"
            for lib, r in results[pair].items()
        )
        print(f"{pair:<38} {line}", flush=True)
    comparison = {
        pair: {"jaxrl_minus_rejax": r["jaxrl"]["mean"] - r["rejax"]["mean"],
               "jaxrl_at_least_rejax": r["jaxrl"]["mean"] >= r["rejax"]["mean"]}
        for pair, r in results.items() if {"jaxrl", "rejax"} <= set(r)
    }  # fmt: skip
    meta = experiment.machine()
    summary = {
        "script": "bench_presets", "seeds": args.seeds, "eval_episodes": EVAL_EPISODES,
        "means": {pair: {lib: r["mean"] for lib, r in rs.items()} for pair, rs in results.items()},
        "comparison": comparison, **meta,
    }  # fmt: skip
    # Written at the end only: an interrupted benchmark leaves no partial results.
    experiment.write_json(args.out / "bench_presets.json", {"results": results, **meta})
    experiment.write_json(args.out / "summary.json", summary)
    print(f"wrote {args.out}/bench_presets.json and summary.json")


if __name__ == "__main__":
    main(tyro.cli(Args))
