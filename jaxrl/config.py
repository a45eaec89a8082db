"""Shared pieces of the agent contract: config validation and the env plumbing
every agent needs (action-space kind, batched env with episode statistics).

Configs are frozen dataclasses of static values, validated in ``__post_init__``
so that a bad value raises a ``ValueError`` naming the field, the value and
what is allowed before anything is traced or compiled.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


def check_hparams(owner: str, hparams: NamedTuple, ranges: dict[str, tuple]) -> None:
    """Check concrete hyperparameter values (tracers are skipped) against
    ``ranges[name] = (low, high, low_open, high_open)``."""
    for name, (low, high, low_open, high_open) in ranges.items():
        check_range(
            owner, name, getattr(hparams, name), low, high, low_open=low_open, high_open=high_open
        )


class RolloutSizes:
    """Mixin for configs with ``num_envs``, ``rollout_len`` and ``total_steps``:
    the derived sizes and their check, written once for every on-policy agent."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.rollout_len

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    def check_rollout_sizes(self) -> None:
        if self.total_steps < self.batch_size:
            raise ValueError(
                f"{type(self).__name__}.total_steps={self.total_steps} is less than one rollout "
                f"(num_envs * rollout_len = {self.batch_size})"
            )


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
