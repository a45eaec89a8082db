"""Shared pieces of the agent contract: config validation and the env plumbing
every agent needs (action-space kind, batched env with episode statistics).

Configs are frozen dataclasses of static values, validated in ``__post_init__``
so that a bad value raises a ``ValueError`` naming the field, the value and
what is allowed before anything is traced or compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from envs import wrappers
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


@dataclasses.dataclass(frozen=True)
class StepsConfig:
    """The loop fields of every learner that steps a batch of envs, and their checks.

    Subclasses (frozen dataclasses too) add their own fields, redeclare a field to
    change its default, and extend ``check`` with the checks of their fields, calling
    ``super().check()`` first (a cooperative chain: each level checks its own fields,
    the most basic first); a bad value raises a ``ValueError`` naming the config, the
    field and what is allowed when the config is built, before anything compiles.
    """

    num_envs: int = 8
    """Parallel environments per seed."""
    rollout_len: int = 128
    """Steps per environment between updates."""
    total_steps: int = 500_000
    """Environment steps per seed (rounded down to whole updates)."""
    max_resets: int | None = None
    """Resets computed per step when few episodes end (see envs.vector.VecEnv); None: all."""

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """The checks of the fields above; subclasses extend it (see the class)."""
        owner = type(self).__name__
        sizes = {"num_envs": self.num_envs, "rollout_len": self.rollout_len}
        check_positive(owner, **sizes, total_steps=self.total_steps)
        if self.total_steps < self.batch_size:
            raise ValueError(
                f"{owner}.total_steps={self.total_steps} is less than one rollout "
                f"(num_envs * rollout_len = {self.batch_size})"
            )

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


@dataclasses.dataclass(frozen=True)
class SplitEnvs(StepsConfig):
    """The field of agents that can split each run's envs over devices (data
    parallel, ``jaxrl.parallel.EnvShards``); a second base of their config, e.g.
    ``PPOConfig(AgentConfig, SplitEnvs)``."""

    num_devices: int = 1
    """Devices each run's envs are split over (data parallel); must divide num_envs."""

    def check(self) -> None:
        super().check()
        owner = type(self).__name__
        check_positive(owner, num_devices=self.num_devices)
        if self.num_envs % self.num_devices:
            raise ValueError(
                f"{owner}.num_devices={self.num_devices} does not divide "
                f"num_envs={self.num_envs}; each device steps an equal share of the envs"
            )
        share = self.num_envs // self.num_devices
        if self.max_resets is not None and self.max_resets > share:
            raise ValueError(
                f"{owner}.max_resets={self.max_resets} is not allowed with "
                f"num_devices={self.num_devices}; it applies per device and must be in "
                f"[1, num_envs / num_devices = {share}]"
            )

    def check_minibatch_split(self, minibatch_samples: int, what: str) -> None:
        """Each device computes an equal part of every minibatch: ``num_devices``
        must divide its ``minibatch_samples`` (described as ``what``)."""
        if minibatch_samples % self.num_devices:
            raise ValueError(
                f"{type(self).__name__}.num_devices={self.num_devices} does not divide the "
                f"{minibatch_samples} {what} of a minibatch; each device takes an equal part"
            )


PLACEMENT_FIELDS = ("num_devices",)
"""Config fields that say where a run trains, not what it computes: a checkpoint
restores across them (``jaxrl.checkpoint.run_identity`` leaves them out)."""


@dataclasses.dataclass(frozen=True)
class AgentConfig(StepsConfig):
    """``StepsConfig`` plus the network and observation fields of the neural agents."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Torso layer sizes (actor and critic each have one)."""
    activation: Literal["tanh", "relu", "gelu", "silu"] = "tanh"
    """Hidden-layer nonlinearity."""
    torso: Literal["mlp", "cnn"] = "mlp"
    """"cnn" for image observations (H, W, C)."""
    normalize_obs: bool = False
    """Running mean/variance observation normalisation."""

    def check(self) -> None:
        super().check()
        owner = type(self).__name__
        check_choice(owner, "activation", self.activation, ("tanh", "relu", "gelu", "silu"))
        check_choice(owner, "torso", self.torso, ("mlp", "cnn"))
        sizes = tuple(self.hidden_sizes)
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(
                f"{owner}.hidden_sizes={sizes!r} is not allowed; every layer size must be "
                "an int >= 1"
            )


@dataclasses.dataclass(frozen=True)
class ReplayConfig(AgentConfig):
    """The fields and checks of agents that learn from a replay buffer (DQN, SAC, TD3)."""

    num_envs: int = 1
    """Parallel environments per seed."""
    rollout_len: int = 1
    """Steps per environment between gradient updates."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (all envs together)."""
    minibatch_size: int = 256
    """Transitions (or sequences) sampled per gradient step."""
    learning_starts: int = 5_000
    """Env steps per seed (all envs together) before the first gradient step."""
    gradient_steps: int = 1
    """Gradient steps per update."""

    def check(self) -> None:
        super().check()
        owner = type(self).__name__
        check_positive(
            owner,
            buffer_size=self.buffer_size,
            minibatch_size=self.minibatch_size,
            gradient_steps=self.gradient_steps,
        )
        if self.buffer_size < self.minibatch_size:
            raise ValueError(
                f"{owner}.buffer_size={self.buffer_size} is smaller than "
                f"minibatch_size={self.minibatch_size}; the buffer must hold a whole minibatch"
            )
        if self.learning_starts < 0 or self.first_learning_update >= self.num_updates:
            raise ValueError(
                f"{owner}.learning_starts={self.learning_starts} is not allowed; it must be "
                f">= 0 and leave at least one update of num_envs * rollout_len = "
                f"{self.batch_size} steps before total_steps={self.total_steps}"
            )

    @property
    def first_learning_update(self) -> int:
        """Index of the first update with gradient steps."""
        return -(-self.learning_starts // self.batch_size)


@dataclasses.dataclass(frozen=True)
class ActorCriticReplayConfig(ReplayConfig):
    """``ReplayConfig`` with the fields and defaults the off-policy actor-critics (SAC,
    TD3) share: an actor and ``num_critics`` critics, 256x256 ReLU MLPs each."""

    total_steps: int = 100_000
    """Environment steps per seed (rounded down to whole updates)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Layer sizes of the actor's and of each critic's torso."""
    activation: Literal["tanh", "relu", "gelu", "silu"] = "relu"
    """Hidden-layer nonlinearity."""
    num_critics: int = 2
    """Critics whose minimum is the value estimate (2: clipped double Q; 1: one critic,
    as in DDPG)."""

    def check(self) -> None:
        super().check()
        check_positive(type(self).__name__, num_critics=self.num_critics)


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


def actor_critic(
    owner: str,
    config: Any,
    env: Environment,
    env_params: Any,
    gru_size: int = 0,
    squash: bool = False,
    value_hidden_sizes: tuple[int, ...] | None = None,
    state_std: bool = False,
):
    """The ``ActorCritic`` for ``env``'s spaces from a config's ``hidden_sizes``,
    ``activation`` and ``torso`` fields (shared by every actor-critic agent); with
    ``squash`` a continuous policy is a tanh-squashed Gaussian acting in [-1, 1];
    ``value_hidden_sizes`` (None: ``hidden_sizes``) sizes the critic's torso;
    ``state_std`` makes a continuous policy's std a function of the state."""
    from jaxrl.networks import ActorCritic

    spec = action_spec(owner, env, env_params)
    if squash and spec.discrete:
        raise ValueError(
            f"{owner}Config.squash=True is not allowed for discrete actions; it squashes "
            "a continuous (Box) policy into the action bounds"
        )
    if squash:
        check_finite_bounds(owner, env, env_params)
    if state_std and spec.discrete:
        raise ValueError(
            f"{owner}Config.state_std=True is not allowed for discrete actions; it "
            "parametrises a continuous (Box) policy's std"
        )
    return ActorCritic(
        action_dim=spec.dim,
        discrete=spec.discrete,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        torso_kind=config.torso,
        obs_ndim=obs_ndim(env, env_params),
        gru_size=gru_size,
        squash=squash,
        value_hidden_sizes=value_hidden_sizes,
        state_std=state_std,
    )


def q_network(
    owner: str,
    config: Any,
    env: Environment,
    env_params: Any,
    dueling: bool = False,
    layer_norm: bool = False,
    weight_init: str = "orthogonal",
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
        weight_init=weight_init,
    )


def actor_critics(
    owner: str,
    config: Any,
    env: Environment,
    env_params: Any,
    continuous_actor: Literal["tanh_gaussian", "deterministic"],
    allow_discrete: bool,
):
    """The ``ActorCritics`` of an off-policy actor-critic (SAC, TD3) for ``env``'s
    actions from a config's ``hidden_sizes``, ``activation``, ``torso`` and
    ``num_critics``: ``continuous_actor`` with ``Q(s, a)`` critics for a float Box,
    or (if ``allow_discrete``) a categorical actor with ``Q(s, .)`` critics."""
    from jaxrl.networks import Actor, ActorCritics, Critics

    spec = action_spec(owner, env, env_params)
    if spec.discrete and not allow_discrete:
        raise ValueError(
            f"{owner} needs a continuous (float Box) action space; use DQN, PQN or "
            "discrete SAC for discrete actions"
        )
    if not spec.discrete:
        check_finite_bounds(owner, env, env_params)
    common = dict(
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        torso_kind=config.torso,
        obs_ndim=obs_ndim(env, env_params),
    )
    kind = "categorical" if spec.discrete else continuous_actor
    return ActorCritics(
        Actor(spec.dim, kind, **common),
        Critics(config.num_critics, spec.dim if spec.discrete else None, **common),
    )


def check_finite_bounds(owner: str, env: Environment, env_params: Any) -> None:
    """A float Box action space must have finite bounds, for policies that act in
    ``[-1, 1]`` and rescale to them (SAC, TD3, CEM)."""
    space = env.action_space(env_params)
    bounds = (space.low, space.high)
    # Bounds that depend on traced env params (a vmap over params) cannot be checked here.
    concrete = not any(isinstance(b, jax.core.Tracer) for b in bounds)
    if concrete and not all(np.isfinite(np.asarray(b)).all() for b in bounds):
        raise ValueError(
            f"{owner} needs finite action bounds (its policy acts in [-1, 1], rescaled "
            f"to them), got low={space.low}, high={space.high}"
        )


def unit_action_env(env: Environment, env_params: Any) -> Environment:
    """``env`` with continuous actions rescaled from ``[-1, 1]`` (``RescaleAction``),
    the range of tanh-squashed policies; discrete envs are returned as they are."""
    if isinstance(env.action_space(env_params), Discrete):
        return env
    return wrappers.RescaleAction(env)


def env_action(env: Environment, env_params: Any) -> Callable[[jax.Array], jax.Array]:
    """``actions [N, ...]`` of a policy acting in [-1, 1] -> ``env``'s own range (the
    identity for discrete actions)."""
    unit_env = unit_action_env(env, env_params)
    if unit_env is env:
        return lambda action: action
    return lambda action: jax.vmap(unit_env.inner_action, in_axes=(0, None))(action, env_params)


def batched_env(
    env: Environment,
    num_envs: int,
    max_resets: int | None,
    continuous: bool,
    squashed: bool = False,
) -> VecEnv:
    """``VecEnv`` over ``env`` with episode statistics (added if missing) and, for
    continuous actions, ``ClipAction`` (policies sample unbounded Gaussians; the
    log-probability is of the unclipped sample) or, for ``squashed`` policies acting
    in [-1, 1], ``RescaleAction``."""
    if not (isinstance(env, Wrapper) and env.find(wrappers.EpisodeStatistics) is not None):
        env = wrappers.EpisodeStatistics(env)
    if continuous:
        env = wrappers.RescaleAction(env) if squashed else wrappers.ClipAction(env)
    return VecEnv(env, num_envs, max_resets)
