"""The agents' config base classes and their checks.

Configs are frozen dataclasses of static values, validated in ``__post_init__``
(one cooperative ``check`` chain) so that a bad value raises a ``ValueError``
naming the field, the value and what is allowed before anything is traced or
compiled. The networks an env's spaces need are built in ``jaxrl.networks``, the
batched env in ``jaxrl.rollout``; hyperparameters are in ``jaxrl.hparams``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal


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
