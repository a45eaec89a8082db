"""Brax locomotion against brax.training: PPO or SAC on the same envs, env-step
budget and machine.

For each env of ``--envs`` and each seed, in one process: ``brax.training``'s
``--algo`` with the settings of ``BRAX_PPO`` or ``BRAX_SAC`` (brax's published
settings for the env; PPO's scaled to a 2-core CPU: 128 envs instead of
thousands), and jaxrl's with the env's preset where there is one, else the same
settings mirrored field by field (``mirrored``). Both are evaluated greedily
(brax: ``deterministic_eval``) on ``--eval-episodes`` episodes at ``--evals``
evenly spaced points; wall seconds count from the start of each library's run,
compilation included, evaluation excluded where the library allows it (jaxrl:
yes; brax.training evaluates inside its loop, so its wall time includes its
evaluations).

Writes ``DIR/bench_locomotion.json`` (every curve, the final returns and the
ratios), ``DIR/summary.json`` and ``DIR/<env>.png`` (evaluation return against env
steps and against wall seconds, both libraries on the same axes).

brax 0.14.2's trainers call ``jax.device_put_replicated``, which jax 0.10
removed; this script (only) restores the name from ``jax._src.api`` and says so
in its output (``shim``).

    python experiments/bench_locomotion.py --out runs/bench-loco
    python experiments/bench_locomotion.py --envs inverted_pendulum --steps 200000 --out runs/ip
    python experiments/bench_locomotion.py --algo sac --envs hopper --steps 100000 --out runs/sac
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import jax
import numpy as np
import tyro

import envs
from jaxrl import experiment, presets
from jaxrl.agents import ppo, sac
from jaxrl.evaluate import evaluate

_SCALED = dict(num_envs=128, num_minibatches=32, learning_rate=3e-4, clipping_epsilon=0.3,
               normalize_observations=True)  # fmt: skip
# brax's current notebook trains hopper and walker2d with SAC only; these are the PPO
# settings brax published for both before, scaled like the others.
_EARLIER = _SCALED | dict(batch_size=64, unroll_length=20, num_updates_per_batch=4,
                          entropy_cost=1e-3, discounting=0.97, reward_scaling=10.0)  # fmt: skip
BRAX_PPO: dict[str, dict[str, Any]] = {
    # brax's published PPO settings (brax/training/learner.py and its notebooks),
    # with num_envs 128 and batch_size scaled so that an update is a CPU-sized
    # 40,960 env steps (20,480 for inverted_pendulum).
    "ant": _SCALED | dict(batch_size=256, unroll_length=5, num_updates_per_batch=4,
                          entropy_cost=1e-2, discounting=0.97, reward_scaling=10.0),
    "halfcheetah": _SCALED | dict(batch_size=64, unroll_length=20, num_updates_per_batch=8,
                                  entropy_cost=1e-3, discounting=0.95, reward_scaling=1.0),
    "hopper": _EARLIER,
    "walker2d": _EARLIER,
    "inverted_pendulum": _SCALED | dict(batch_size=128, unroll_length=5,
                                        num_updates_per_batch=4, entropy_cost=1e-2,
                                        discounting=0.97, reward_scaling=10.0),
}  # fmt: skip
BRAX_SAC: dict[str, dict[str, Any]] = {
    # brax's published SAC settings (its training notebook), already CPU-sized:
    # 128 envs, grad_updates_per_step minibatches after every step of all envs.
    "hopper": dict(
        num_envs=128, batch_size=512, grad_updates_per_step=64, learning_rate=6e-4,
        discounting=0.997, reward_scaling=30.0, min_replay_size=8192,
        max_replay_size=1_048_576, normalize_observations=True,
    ),
    "walker2d": dict(
        num_envs=128, batch_size=128, grad_updates_per_step=32, learning_rate=6e-4,
        discounting=0.997, reward_scaling=5.0, min_replay_size=8192,
        max_replay_size=1_048_576, normalize_observations=True,
    ),
}  # fmt: skip
BRAX_SETTINGS = {"ppo": BRAX_PPO, "sac": BRAX_SAC}
AGENTS: dict[str, tuple[ModuleType, type, type]] = {
    "ppo": (ppo, ppo.PPOConfig, ppo.PPOHParams),
    "sac": (sac, sac.SACConfig, sac.SACHParams),
}
EPISODE_LENGTH = 1000


@dataclasses.dataclass(frozen=True)
class Args:
    out: Path
    """Directory for bench_locomotion.json, summary.json and one figure per env."""
    algo: Literal["ppo", "sac"] = "ppo"
    """The algorithm both libraries run."""
    envs: tuple[str, ...] = ("ant",)
    """Brax env names (without the "brax:" prefix); each needs an entry in BRAX_PPO
    (or BRAX_SAC for --algo sac)."""
    steps: int = 1_228_800
    """Env steps per run (rounded down to whole jaxrl updates)."""
    seeds: int = 3
    """Seeds per library and env (run one after another)."""
    evals: int = 6
    """Evaluation points after the start (evenly spaced; the last at the end)."""
    eval_episodes: int = 16
    """Greedy episodes per evaluation."""
    backend: str = "spring"
    """Brax physics backend for both libraries."""
    libs: tuple[str, ...] = ("jaxrl", "brax")
    """Which libraries to run."""
    jaxrl_set: tuple[str, ...] = ()
    """jaxrl config or hyperparameter fields to change, as name=value (e.g.
    squash=False), to measure one difference to brax.training at a time."""


def mirrored(algo: str, env: str) -> tuple[Any, Any]:
    """jaxrl's ``algo`` with brax's settings for ``env`` mirrored (``mirrored_ppo``,
    ``mirrored_sac``)."""
    return mirrored_ppo(env) if algo == "ppo" else mirrored_sac(env)


def mirrored_sac(env: str) -> tuple[sac.SACConfig, sac.SACHParams]:
    """jaxrl's SAC with ``BRAX_SAC[env]`` mirrored: the same envs, minibatches per env
    step, replay sizes, rates, discount, reward scale, observation normalisation,
    256x256 ReLU networks, Polyak 0.005 and brax's entropy target (-0.5 per action
    dimension). Differences left: brax fills the buffer with its untrained policy
    (jaxrl: uniform actions) and steps the temperature at lr 3e-4 (jaxrl: ``lr``);
    jaxrl's std is bounded tanh(dense(x)) in log space (brax: softplus(dense(x)) +
    0.001), and jaxrl bootstraps truncated transitions from the final observation
    where brax leaves them out of the critic loss."""
    b = BRAX_SAC[env]
    raw, params = envs.make(f"brax:{env}")
    action_dim = raw.action_space(params).shape[0]
    config = sac.SACConfig(
        num_envs=b["num_envs"],
        rollout_len=1,
        gradient_steps=b["grad_updates_per_step"],
        minibatch_size=b["batch_size"],
        learning_starts=b["min_replay_size"],
        buffer_size=b["max_replay_size"],
        hidden_sizes=(256, 256),
        activation="relu",
        normalize_obs=b["normalize_observations"],
        target_entropy=-0.5 * action_dim,
    )
    hp = sac.SACHParams(
        lr=b["learning_rate"], gamma=b["discounting"], tau=0.005,
        reward_scale=b["reward_scaling"],
    )  # fmt: skip
    return config, hp


def mirrored_ppo(env: str) -> tuple[ppo.PPOConfig, ppo.PPOHParams]:
    """jaxrl's PPO with ``BRAX_PPO[env]`` mirrored as far as its config allows: the
    same env steps per update, epochs, minibatches, rates and discount, and brax's
    policy distribution (a tanh-squashed Gaussian whose std is softplus(dense(x)) +
    0.001); rewards unscaled (jaxrl has no fixed reward scale, and on ant reward
    normalisation in its place learned less: the PPO module docstring)."""
    b = BRAX_PPO[env]
    config = ppo.PPOConfig(
        num_envs=b["num_envs"],
        rollout_len=b["batch_size"] * b["num_minibatches"] * b["unroll_length"] // b["num_envs"],
        num_epochs=b["num_updates_per_batch"],
        num_minibatches=b["num_minibatches"],
        hidden_sizes=(256, 256),
        normalize_obs=b["normalize_observations"],
        normalize_reward=False,
        anneal_lr=False,
        clip_value=False,
        squash=True,
        state_std=True,
    )
    hp = ppo.PPOHParams(
        lr=b["learning_rate"], gamma=b["discounting"], ent_coef=b["entropy_cost"],
        clip_eps=b["clipping_epsilon"],
    )  # fmt: skip
    return config, hp


def jaxrl_settings(
    algo: str, env: str, changes: dict[str, Any], backend: str
) -> tuple[Any, Any, str]:
    """The env's preset, else ``mirrored``; then ``changes`` (config or hparams fields).
    Both libraries run on ``backend``; the source says so where the preset's differs."""
    _, config_class, hparams_class = AGENTS[algo]
    preset = presets.get(algo, f"brax:{env}")
    if preset is None:
        (config, hp), source = mirrored(algo, env), f"mirrored from BRAX_{algo.upper()}"
    else:
        config, hp = preset.apply(config_class(), hparams_class())
        source = f"preset {preset.name}"
        preset_backend = preset.env_params.get("backend", backend)
        if preset_backend != backend:
            source += f" on backend {backend} instead of the preset's {preset_backend}"
    config_fields = {k: v for k, v in changes.items() if k in config_class.__dataclass_fields__}
    hp_fields = {k: v for k, v in changes.items() if k in hparams_class.fields()}
    unknown = sorted(set(changes) - set(config_fields) - set(hp_fields))
    if unknown:
        raise SystemExit(
            f"--jaxrl-set {unknown}: not {config_class.__name__} or {hparams_class.__name__} fields"
        )
    if changes:
        source += f", changed {changes}"
    return dataclasses.replace(config, **config_fields), hp.replace(**hp_fields), source


def eval_points(num_updates: int, evals: int) -> list[int]:
    """Update counts after which to evaluate: ``evals`` evenly spaced, the last at the end."""
    return sorted({max(1, round(num_updates * (i + 1) / evals)) for i in range(evals)})


def parse_changes(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--jaxrl-set`` pairs -> ``{field: value}`` (Python literals)."""
    if any("=" not in pair for pair in pairs):
        raise SystemExit(f"--jaxrl-set {list(pairs)} not allowed; each must be name=value")
    return experiment.parse_env_params(pairs)


def run_jaxrl(env_name: str, args: Args, seed: int, settings: tuple) -> dict[str, Any]:
    """One seed of jaxrl's ``args.algo`` with ``settings`` (``jaxrl_settings``'s result)."""
    agent = AGENTS[args.algo][0]
    config, hp, source = settings
    per_update = config.num_envs * config.rollout_len
    config = dataclasses.replace(config, total_steps=(args.steps // per_update) * per_update)
    env, params = envs.make(f"brax:{env_name}", backend=args.backend)
    eval_env, _ = envs.make(f"brax:{env_name}", backend=args.backend, autoreset=False)
    trainer = agent.make_train(config, env, params)
    points = eval_points(trainer.num_updates, args.evals)

    @functools.partial(jax.jit, static_argnums=2)
    def chunk(state, start, n):
        return trainer.chunk(n)(state, hp, start)

    @jax.jit
    def greedy(state, key):
        act = agent.make_policy(config, env, params, state)
        return evaluate(eval_env, params, act, key, args.eval_episodes, EPISODE_LENGTH).mean()

    t0 = time.perf_counter()
    state = jax.block_until_ready(jax.jit(trainer.start)(jax.random.key(seed), hp))
    curve, done, eval_seconds = [], 0, 0.0
    for point in points:
        state, _ = chunk(state, np.int32(done), point - done)
        state = jax.block_until_ready(state)
        done = point
        t_eval = time.perf_counter()
        value = float(greedy(state, jax.random.key(10_000 + seed)))
        eval_seconds += time.perf_counter() - t_eval
        wall = time.perf_counter() - t0 - eval_seconds
        curve.append({"env_steps": done * per_update, "eval_return": value, "wall_seconds": wall})
        print(f"  jaxrl {env_name} seed {seed}: {done * per_update:,} steps, eval {value:.1f}, "
              f"{wall:.0f} s", flush=True)  # fmt: skip
    return {"curve": curve, "settings": source, "config": dataclasses.asdict(config),
            "hparams": hp.asdict()}  # fmt: skip


def brax_shim() -> str:
    """Restore ``jax.device_put_replicated`` for brax.training (removed in jax 0.10)."""
    if hasattr(jax, "device_put_replicated"):
        return "none needed"
    from jax._src import api

    jax.device_put_replicated = api.device_put_replicated
    return "jax.device_put_replicated restored from jax._src.api for brax.training"


def run_brax(env_name: str, args: Args, seed: int) -> dict[str, Any]:
    """One seed of brax.training's ``args.algo`` with ``BRAX_PPO`` or ``BRAX_SAC``."""
    from brax import envs as brax_envs
    from brax.training.agents.ppo import train as brax_ppo
    from brax.training.agents.sac import train as brax_sac

    settings = BRAX_SETTINGS[args.algo][env_name]
    train = brax_ppo.train if args.algo == "ppo" else brax_sac.train
    env = brax_envs.get_environment(env_name, backend=args.backend)
    curve, t0 = [], time.perf_counter()

    def progress(step, metrics):
        if step == 0:  # brax evaluates the untrained policy first
            return
        value = float(metrics["eval/episode_reward"])
        wall = time.perf_counter() - t0
        curve.append({"env_steps": int(step), "eval_return": value, "wall_seconds": wall})
        print(f"  brax  {env_name} seed {seed}: {int(step):,} steps, eval {value:.1f}, "
              f"{wall:.0f} s", flush=True)  # fmt: skip

    train(
        environment=env, num_timesteps=args.steps, num_evals=args.evals + 1,
        episode_length=EPISODE_LENGTH, num_eval_envs=args.eval_episodes,
        deterministic_eval=True, seed=seed, progress_fn=progress, **settings,
    )  # fmt: skip
    return {"curve": curve, "settings": f"BRAX_{args.algo.upper()}", "config": settings}


def plot(algo: str, env_name: str, runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for (lib, seeds), color in zip(runs.items(), ("C0", "C1"), strict=False):
        for i, run in enumerate(seeds):
            curve = run["curve"]
            for ax, x in zip(axes, ("env_steps", "wall_seconds"), strict=True):
                ax.plot([p[x] for p in curve], [p["eval_return"] for p in curve], color=color,
                        marker="o", ms=3, alpha=0.8, label=lib if i == 0 else None)  # fmt: skip
    axes[0].set_xlabel("env steps")
    axes[1].set_xlabel("wall seconds (compile included)")
    axes[0].set_ylabel("greedy evaluation return")
    axes[0].legend()
    fig.suptitle(f"{algo.upper()} on brax:{env_name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def final(run: dict[str, Any]) -> float:
    return run["curve"][-1]["eval_return"] if run["curve"] else float("nan")


def main(args: Args) -> None:
    brax_settings = BRAX_SETTINGS[args.algo]
    unknown = sorted(set(args.envs) - set(brax_settings))
    if unknown:
        raise SystemExit(
            f"--envs {unknown} not allowed with --algo {args.algo}; choose from "
            f"{sorted(brax_settings)}"
        )
    bad_libs = sorted(set(args.libs) - {"jaxrl", "brax"})
    if bad_libs or not args.libs:
        raise SystemExit(f"--libs {list(args.libs)} not allowed; choose from ['brax', 'jaxrl']")
    counts = {"steps": args.steps, "seeds": args.seeds, "evals": args.evals,
              "eval-episodes": args.eval_episodes}  # fmt: skip
    for name, value in counts.items():
        if value < 1:
            raise SystemExit(f"--{name}={value} not allowed; it must be >= 1")
    changes = parse_changes(args.jaxrl_set)
    # jaxrl's settings per env, built (and bad --jaxrl-set values refused) before any run
    settings = {name: jaxrl_settings(args.algo, name, changes, args.backend) for name in args.envs}
    for env_name, (config, _, _) in settings.items():
        per_update = config.num_envs * config.rollout_len
        if "jaxrl" in args.libs and args.steps < per_update:
            raise SystemExit(
                f"--steps={args.steps} not allowed for {env_name}; jaxrl's {args.algo} takes "
                f"{per_update} env steps per update, so it must be >= {per_update}"
            )
    shim = brax_shim() if "brax" in args.libs else "not used"
    print(f"shim: {shim}")
    results: dict[str, Any] = {}
    for env_name in args.envs:
        runs = {lib: [] for lib in args.libs}
        for seed in range(args.seeds):
            for lib in args.libs:
                runs[lib].append(
                    run_jaxrl(env_name, args, seed, settings[env_name])
                    if lib == "jaxrl"
                    else run_brax(env_name, args, seed)
                )
        entry: dict[str, Any] = {"runs": runs}
        for lib in args.libs:
            finals = [final(r) for r in runs[lib]]
            entry[lib] = {
                "final_eval_mean": float(np.mean(finals)), "final_eval_per_seed": finals,
                "wall_seconds_mean": float(np.mean([r["curve"][-1]["wall_seconds"]
                                                    for r in runs[lib]])),
            }  # fmt: skip
        if set(args.libs) == {"jaxrl", "brax"}:
            entry["ratios"] = {
                "final_eval_jaxrl_over_brax": entry["jaxrl"]["final_eval_mean"]
                / entry["brax"]["final_eval_mean"],
                "wall_brax_over_jaxrl": entry["brax"]["wall_seconds_mean"]
                / entry["jaxrl"]["wall_seconds_mean"],
            }
        print(f"{env_name}: " + "  ".join(
            f"{lib} final {entry[lib]['final_eval_mean']:.1f} in "
            f"{entry[lib]['wall_seconds_mean']:.0f} s" for lib in args.libs))  # fmt: skip
        results[env_name] = entry
    # Written at the end only: an interrupted benchmark leaves no partial results.
    args.out.mkdir(parents=True, exist_ok=True)
    for env_name in args.envs:
        plot(args.algo, env_name, results[env_name]["runs"], args.out / f"{env_name}.png")
    meta = experiment.machine()
    summary = {
        "script": "bench_locomotion", "algo": args.algo, "envs": list(args.envs),
        "steps": args.steps,
        "seeds": args.seeds, "backend": args.backend, "shim": shim,
        "jaxrl_settings": {e: results[e]["runs"]["jaxrl"][0]["settings"]
                           for e in args.envs if "jaxrl" in args.libs},
        "final": {e: {lib: results[e][lib] for lib in args.libs} for e in args.envs},
        "ratios": {e: results[e].get("ratios") for e in args.envs}, **meta,
    }  # fmt: skip
    experiment.write_json(args.out / "bench_locomotion.json", {"results": results, **summary})
    experiment.write_json(args.out / "summary.json", summary)


if __name__ == "__main__":
    main(tyro.cli(Args))
