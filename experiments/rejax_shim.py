"""rejax 0.1.3 on today's stack, for the benchmarks: gymnax's old step API and
rejax's shipped configs. Imports nothing of jaxrl (a rejax process started by
``bench_startup`` pays for rejax's imports only).

- rejax unpacks gymnax's old 5-value ``step``; gymnax 1.0 returns 6 values, so
  rejax gets ``gymnax.wrappers.LegacyStepAPIWrapper`` (``legacy_step``),
  subclassed so that rejax's ``deepcopy`` of its config does not recurse forever.
- ``REJAX``: rejax's shipped configs (``configs/gymnax/<file>`` in its
  repository), copied field by field, per ``"algo@gymnax:Env"`` pair.
"""

import importlib.util
from typing import Any


def check_libs(libs: tuple[str, ...], count_flag: str, count: int) -> None:
    """Refuse (``SystemExit``, before anything runs) ``--libs`` other than jaxrl and
    rejax, a ``count_flag`` below 1, and rejax where it is not installed."""
    if sorted(set(libs) - {"jaxrl", "rejax"}) or count < 1:
        raise SystemExit(
            f"--libs {list(libs)} / {count_flag} {count} not allowed; libs from "
            f"['jaxrl', 'rejax'], {count_flag.removeprefix('--')} >= 1"
        )
    if "rejax" in libs and importlib.util.find_spec("rejax") is None:
        raise SystemExit(
            "--libs includes rejax, which is not installed: pip install -e '.[bench]', "
            "or pass --libs jaxrl"
        )


def create(
    algo: str,
    env_name: str,
    fields: dict[str, Any],
    eval_freq: int | None = None,
    eval_callback: Any = None,
) -> Any:
    """rejax's ``algo`` on gymnax's ``env_name`` (through ``legacy_step``) with config
    ``fields`` (``total_timesteps`` among them), evaluated by ``eval_callback(algo, ts,
    rng)`` every ``eval_freq`` env steps; by default only once, at the end, and by
    nothing (the callback returns 0), so that a timing is the training alone."""
    import gymnax
    import jax
    import rejax

    env, params = gymnax.make(env_name.removeprefix("gymnax:"))
    algorithm = rejax.get_algo(algo).create(
        env=legacy_step(env), env_params=params,
        eval_freq=eval_freq or fields["total_timesteps"], skip_initial_evaluation=True,
        **fields,
    )  # fmt: skip
    if eval_callback is None:
        eval_callback = lambda algo, ts, rng: jax.numpy.zeros(())
    return algorithm.replace(eval_callback=eval_callback)


def legacy_step(env: Any) -> Any:
    """``env`` with gymnax's old 5-value ``step``, safe to ``deepcopy``. (gymnax is imported
    here, not at the top: importing it starts jax, after which --cpu-devices cannot apply.)"""
    from gymnax.wrappers.compat import LegacyStepAPIWrapper

    class LegacyStep(LegacyStepAPIWrapper):
        def __getattr__(self, name):
            if name == "_env" or name.startswith("__"):
                raise AttributeError(name)
            return super().__getattr__(name)

    return LegacyStep(env)


_PPO = dict(num_epochs=5, num_minibatches=5, learning_rate=7.5e-4, max_grad_norm=0.5,
            gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5)  # fmt: skip
_PQN = dict(num_envs=16, num_steps=128, num_minibatches=16, max_grad_norm=10,
            learning_rate=3e-4, num_epochs=5, total_timesteps=524_288, eps_start=1,
            eps_end=0.05, exploration_fraction=0.5, gamma=0.99, td_lambda=0.9,
            normalize_observations=False)  # fmt: skip
_DQN = dict(agent="DuelingQNetwork", agent_kwargs={"activation": "swish"}, num_envs=10,
            buffer_size=10_000, fill_buffer=1_000, batch_size=100, max_grad_norm=10,
            learning_rate=1e-3, num_epochs=5, total_timesteps=100_000, eps_start=1,
            eps_end=0.05, exploration_fraction=0.5, gamma=0.99, ddqn=True,
            normalize_observations=False)  # fmt: skip
_SAC = dict(agent_kwargs={"activation": "tanh"}, num_envs=5, buffer_size=10_000,
            fill_buffer=1_000, batch_size=256, learning_rate=1e-3, num_epochs=2,
            total_timesteps=50_000, gamma=0.99, polyak=0.95)  # fmt: skip

REJAX: dict[str, tuple[str, dict[str, Any]]] = {
    # "algo@env": (rejax's config file, its fields without env and eval_freq)
    "ppo@gymnax:CartPole-v1": ("cartpole.yaml", _PPO | dict(
        agent_kwargs={"activation": "tanh"}, num_envs=5, num_steps=100,
        total_timesteps=100_000)),
    "dqn@gymnax:CartPole-v1": ("cartpole.yaml", _DQN | dict(
        buffer_size=50_000, fill_buffer=5_000, polyak=0.98)),
    "pqn@gymnax:CartPole-v1": ("cartpole.yaml", _PQN),
    "sac@gymnax:CartPole-v1": ("cartpole.yaml", _SAC | dict(target_entropy_ratio=0.7)),
    "ppo@gymnax:Acrobot-v1": ("acrobot.yaml", _PPO | dict(
        agent_kwargs={"activation": "tanh"}, num_envs=5, num_steps=100,
        total_timesteps=100_000, normalize_observations=True)),
    "dqn@gymnax:Acrobot-v1": ("acrobot.yaml", _DQN | dict(target_update_freq=200)),
    "pqn@gymnax:Acrobot-v1": ("acrobot.yaml", _PQN),
    "sac@gymnax:Acrobot-v1": ("acrobot.yaml", _SAC | dict(
        target_entropy_ratio=0.1, normalize_observations=False)),
    "ppo@gymnax:MountainCar-v0": ("mountaincar.yaml", dict(
        agent_kwargs={"activation": "tanh"}, num_envs=10, num_steps=20, num_epochs=5,
        num_minibatches=5, learning_rate=2.5e-4, max_grad_norm=0.5, total_timesteps=100_000,
        gamma=0.99, gae_lambda=0.98, clip_eps=0.2, ent_coef=0.0, vf_coef=0.5)),
    "dqn@gymnax:MountainCar-v0": ("mountaincar.yaml", _DQN | dict(
        agent_kwargs={"activation": "tanh"}, num_envs=5, learning_rate=5e-3,
        target_update_freq=200, gamma=1.0)),
    "pqn@gymnax:MountainCar-v0": ("mountaincar.yaml", _PQN),
    "sac@gymnax:MountainCar-v0": ("mountaincar.yaml", _SAC | dict(
        batch_size=100, learning_rate=5e-3, num_epochs=5, gamma=1.0, polyak=0.8,
        target_entropy_ratio=0.5)),
    "ppo@gymnax:MountainCarContinuous-v0": ("continuous_mountaincar.yaml", dict(
        agent_kwargs={"activation": "relu"}, num_envs=5, num_steps=100, num_epochs=10,
        num_minibatches=10, learning_rate=3e-4, max_grad_norm=10, total_timesteps=200_000,
        gamma=0.9, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0, vf_coef=0.5)),
    "sac@gymnax:MountainCarContinuous-v0": ("continuous_mountaincar.yaml", dict(
        agent_kwargs={"activation": "swish"}, num_envs=32, buffer_size=10_000,
        fill_buffer=256, batch_size=256, learning_rate=5e-3, num_epochs=32,
        total_timesteps=50_000, gamma=0.99, polyak=0.99, target_entropy_ratio=None)),
    "td3@gymnax:MountainCarContinuous-v0": ("continuous_mountaincar.yaml", dict(
        actor_kwargs={"activation": "relu"}, critic_kwargs={"activation": "relu"},
        buffer_size=10_000, fill_buffer=1_000, batch_size=100, learning_rate=2e-3,
        total_timesteps=10_000, gamma=0.98, polyak=0.995, max_grad_norm=10,
        exploration_noise=0.2, target_noise=0.2, target_noise_clip=0.5, policy_delay=2)),
    "ppo@gymnax:Pendulum-v1": ("pendulum.yaml", dict(
        agent_kwargs={"activation": "swish"}, num_envs=100, num_steps=100, num_epochs=10,
        num_minibatches=10, learning_rate=1e-3, max_grad_norm=10, total_timesteps=150_000,
        gamma=0.995, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0, vf_coef=0.5,
        normalize_observations=True)),
    "sac@gymnax:Pendulum-v1": ("pendulum.yaml", dict(
        agent_kwargs={"activation": "swish"}, num_envs=1, buffer_size=10_000,
        fill_buffer=256, batch_size=256, learning_rate=0.01, num_epochs=1,
        total_timesteps=10_000, gamma=0.99, polyak=0.98, target_entropy_ratio=None,
        normalize_observations=True)),
    "td3@gymnax:Pendulum-v1": ("pendulum.yaml", dict(
        actor_kwargs={"activation": "swish"}, critic_kwargs={"activation": "swish"},
        num_envs=1, buffer_size=10_000, fill_buffer=1_000, batch_size=100,
        learning_rate=1e-3, num_epochs=1, total_timesteps=10_000, gamma=0.99, polyak=0.95,
        max_grad_norm=100, exploration_noise=0.3, target_noise=0.2, target_noise_clip=0.5,
        policy_delay=2, normalize_observations=True)),
}  # fmt: skip
