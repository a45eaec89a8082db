"""Shared pieces of the agent contract: config validation and the env plumbing
every agent needs (action-space kind, batched env with episode statistics).

Configs are frozen dataclasses of static values, validated in ``__post_init__``
so that a bad value raises a ``ValueError`` naming the field, the value and
what is allowed before anything is traced or compiled.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple

import jax.numpy as jnp

from envs import wrappers
from envs._validation import check_range
from envs.core import Environment, Wrapper
from envs.spaces import Box, Discrete
from envs.vector import VecEnv


def check_positive(owner: str, **values: int) -> None:
    """Each value must be an int >= 1."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}.{name}={value!r} is not allowed; it must be an int >= 1")


def check_choice(owner: str, name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name}={value!r} is not allowed; it must be one of {allowed}")


HPARAM_RANGES: dict[str, tuple[float, float | None, bool, bool]] = {
    # name: (low, high, low_open, high_open); None means unbounded
    "lr": (0, None, True, False),
    "vf_lr": (0, None, True, False),
    "gamma": (0, 1, False, False),
    "gae_lambda": (0, 1, False, False),
    "clip_eps": (0, None, True, False),
    "ent_coef": (0, None, False, False),
    "vf_coef": (0, None, False, False),
    "max_grad_norm": (0, None, True, False),
    "max_kl": (0, None, True, False),
    "damping": (0, None, False, False),
    "tau": (0, 1, True, False),
    "td_lambda": (0, 1, False, False),
    "eps_start": (0, 1, False, False),
    "eps_end": (0, 1, False, False),
    "eps_decay_fraction": (0, 1, True, False),
    "huber_delta": (0, None, True, False),
    "priority_beta": (0, 1, False, False),
}
"""The allowed range of every hyperparameter name any agent uses, written once."""


def check_hparams(hparams: NamedTuple) -> NamedTuple:
    """Check concrete hyperparameter values (tracers are skipped) against
    ``HPARAM_RANGES``; returns ``hparams``. A field without a range is a bug in
    the agent, reported as such."""
    owner = type(hparams).__name__
    for name, value in hparams._asdict().items():
        if name not in HPARAM_RANGES:
            raise TypeError(f"{owner}.{name} has no range in jaxrl.config.HPARAM_RANGES")
        low, high, low_open, high_open = HPARAM_RANGES[name]
        check_range(owner, name, value, low, high, low_open=low_open, high_open=high_open)
    return hparams


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """The static fields every agent that steps a batch of envs shares, and their checks.

    Agents subclass it (frozen dataclasses too), add their own fields, redeclare
    a field to change its default, and put their own checks in ``check``; a bad
    value raises a ``ValueError`` naming the config, the field and what is
    allowed when the config is built, before anything compiles.
    """

    num_envs: int = 8
    """Parallel environments per seed."""
    rollout_len: int = 128
    """Steps per environment between updates."""
    total_steps: int = 500_000
    """Environment steps per seed (rounded down to whole updates)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Torso layer sizes (actor and critic each have one)."""
    activation: Literal["tanh", "relu", "gelu", "silu"] = "tanh"
    """Hidden-layer nonlinearity."""
    torso: Literal["mlp", "cnn"] = "mlp"
    """"cnn" for image observations (H, W, C)."""
    normalize_obs: bool = False
    """Running mean/variance observation normalisation."""
    max_resets: int | None = None
    """Resets computed per step when few episodes end (see envs.vector.VecEnv); None: all."""

    def __post_init__(self):
        owner = type(self).__name__
        sizes = {"num_envs": self.num_envs, "rollout_len": self.rollout_len}
        check_positive(owner, **sizes, total_steps=self.total_steps)
        check_choice(owner, "activation", self.activation, ("tanh", "relu", "gelu", "silu"))
        check_choice(owner, "torso", self.torso, ("mlp", "cnn"))
        if self.total_steps < self.batch_size:
            raise ValueError(
                f"{owner}.total_steps={self.total_steps} is less than one rollout "
                f"(num_envs * rollout_len = {self.batch_size})"
            )
        self.check()

    def check(self) -> None:
        """The agent's own checks (override)."""

    def check_divides(self, name: str, samples: int, what: str) -> None:
        """``getattr(self, name)`` must divide ``samples`` (described as ``what``)."""
        value = getattr(self, name)
        if samples % value:
            raise ValueError(
                f"{type(self).__name__}.{name}={value} does not divide {what}={samples}; "
                f"choose a divisor of {samples}"
            )

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.rollout_len

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size


class ActionSpec(NamedTuple):
    discrete: bool
    dim: int  # number of actions (discrete) or action dimensions (continuous)


def action_spec(owner: str, env: Environment, env_params: Any) -> ActionSpec:
    space = env.action_space(env_params)
    if isinstance(space, Discrete):
        return ActionSpec(True, space.n)
    if (
        isinstance(space, Box)
        and jnp.issubdtype(space.dtype, jnp.floating)
        and len(space.shape) == 1
    ):
        return ActionSpec(False, space.shape[0])
    raise ValueError(f"{owner} supports Discrete and 1-D float Box action spaces, not {space!r}")


def obs_ndim(env: Environment, env_params: Any) -> int:
    return max(1, len(env.observation_space(env_params).shape))


def actor_critic(owner: str, config: Any, env: Environment, env_params: Any, gru_size: int = 0):
    """The ``ActorCritic`` for ``env``'s spaces from a config's ``hidden_sizes``,
    ``activation`` and ``torso`` fields (shared by every actor-critic agent)."""
    from jaxrl.networks import ActorCritic

    spec = action_spec(owner, env, env_params)
    return ActorCritic(
        action_dim=spec.dim,
        discrete=spec.discrete,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        torso_kind=config.torso,
        obs_ndim=obs_ndim(env, env_params),
        gru_size=gru_size,
    )


def q_network(
    owner: str,
    config: Any,
    env: Environment,
    env_params: Any,
    dueling: bool = False,
    layer_norm: bool = False,
):
    """The ``QNetwork`` for ``env``'s discrete actions from a config's ``hidden_sizes``,
    ``activation`` and ``torso`` fields (shared by every value-based agent)."""
    from jaxrl.networks import QNetwork

    spec = action_spec(owner, env, env_params)
    if not spec.discrete:
        raise ValueError(
            f"{owner} needs a Discrete action space; use SAC or TD3 for continuous actions"
        )
    return QNetwork(
        num_actions=spec.dim,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        torso_kind=config.torso,
        obs_ndim=obs_ndim(env, env_params),
        dueling=dueling,
        layer_norm=layer_norm,
    )


def batched_env(
    env: Environment, num_envs: int, max_resets: int | None, continuous: bool
) -> VecEnv:
    """``VecEnv`` over ``env`` with episode statistics (added if missing) and, for
    continuous actions, ``ClipAction`` (policies sample unbounded Gaussians; the
    log-probability is of the unclipped sample)."""
    if not (isinstance(env, Wrapper) and env.find(wrappers.EpisodeStatistics) is not None):
        env = wrappers.EpisodeStatistics(env)
    if continuous:
        env = wrappers.ClipAction(env)
    return VecEnv(env, num_envs, max_resets)
