"""The environment API: pure, unbatched functions of explicit keys, state and params.

An environment is an object with no mutable attributes; everything that changes
lives in ``state`` and everything a user may vary (and ``vmap`` over) lives in
``params``, a flax struct dataclass. Fields that fix shapes (grid size, number
of arms) are static (``struct.field(pytree_node=False)``), so params with
different static fields compile separately, as they must.

Every step reports ``terminated`` (the MDP reached a terminal state: do not
bootstrap) and ``truncated`` (the episode was cut short, e.g. by a time limit:
bootstrap from ``info["final_obs"]``) separately. ``info`` has the same keys,
shapes and dtypes after ``reset`` and after ``step`` so it can be a
``lax.scan`` carry.

This follows gymnax 1.0's split of ``terminated``/``truncated`` and its params
pytree, but keeps auto-reset and time limits out of the environment: they are
wrappers (``envs.wrappers``), so a raw environment never resets itself.
"""

from __future__ import annotations

from typing import Any, Generic, NamedTuple, TypeVar

import jax
import jax.numpy as jnp

from envs.spaces import Space

S = TypeVar("S")
P = TypeVar("P")


class TimeStep(NamedTuple):
    """What the agent sees after ``reset`` or ``step``.

    Attributes:
        obs: the observation (after auto-reset, the first observation of the
            new episode; the last one of the old episode is in ``info["final_obs"]``).
        reward: float32 scalar, the reward of the transition (0 after reset).
        terminated: bool scalar, the transition entered a terminal state.
        truncated: bool scalar, the episode was cut off in a non-terminal state.
        info: dict of arrays, same structure after reset and step.
    """

    obs: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    info: dict[str, Any]

    @property
    def done(self) -> jax.Array:
        """``terminated | truncated``: the episode ended here."""
        return jnp.logical_or(self.terminated, self.truncated)


def restart(obs: Any, info: dict[str, Any] | None = None) -> TimeStep:
    """The timestep returned by ``reset``: zero reward, neither flag set."""
    return TimeStep(
        obs=obs,
        reward=jnp.zeros((), jnp.float32),
        terminated=jnp.zeros((), jnp.bool_),
        truncated=jnp.zeros((), jnp.bool_),
        info={} if info is None else info,
    )


def transition(
    obs: Any,
    reward: Any,
    terminated: Any,
    info: dict[str, Any] | None = None,
    truncated: Any = False,
) -> TimeStep:
    """A step's timestep with dtypes normalised (float32 reward, bool flags)."""
    return TimeStep(
        obs=obs,
        reward=jnp.asarray(reward, jnp.float32),
        terminated=jnp.asarray(terminated, jnp.bool_),
        truncated=jnp.asarray(truncated, jnp.bool_),
        info={} if info is None else info,
    )


class Environment(Generic[S, P]):
    """Base class: subclasses implement the five methods below and nothing stateful.

    No method is jitted here; callers compile whole rollouts or training runs.
    """

    #: Short human-readable description, shown by ``envs.describe`` and the CLI.
    description: str = ""

    @property
    def name(self) -> str:
        return type(self).__name__

    def default_params(self, **overrides: Any) -> P:
        """Validated default params, with ``overrides`` applied (and validated)."""
        raise NotImplementedError

    def reset(self, key: jax.Array, params: P) -> tuple[S, TimeStep]:
        raise NotImplementedError

    def step(self, key: jax.Array, state: S, action: Any, params: P) -> tuple[S, TimeStep]:
        raise NotImplementedError

    def observation_space(self, params: P) -> Space:
        raise NotImplementedError

    def action_space(self, params: P) -> Space:
        raise NotImplementedError

    @property
    def unwrapped(self) -> Environment:
        return self

    def __repr__(self) -> str:
        return f"{self.name}()"


class Wrapper(Environment[S, P]):
    """Delegates everything to ``env``; subclasses override what they change.

    Wrappers share the inner env's params, so ``params.slip`` stays reachable
    and ``vmap`` over params works through any stack of wrappers.
    """

    def __init__(self, env: Environment):
        self.env = env

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def description(self) -> str:  # type: ignore[override]
        return self.env.description

    def default_params(self, **overrides: Any) -> P:
        return self.env.default_params(**overrides)

    def reset(self, key: jax.Array, params: P) -> tuple[S, TimeStep]:
        return self.env.reset(key, params)

    def step(self, key: jax.Array, state: S, action: Any, params: P) -> tuple[S, TimeStep]:
        return self.env.step(key, state, action, params)

    def observation_space(self, params: P) -> Space:
        return self.env.observation_space(params)

    def action_space(self, params: P) -> Space:
        return self.env.action_space(params)

    @property
    def unwrapped(self) -> Environment:
        return self.env.unwrapped

    def find(self, wrapper_type: type) -> Environment | None:
        """The outermost wrapper of ``wrapper_type`` in this stack, or None."""
        env: Environment = self
        while True:
            if isinstance(env, wrapper_type):
                return env
            if not isinstance(env, Wrapper):
                return None
            env = env.env

    def inner_state(self, state: S) -> Any:
        """The wrapped env's state inside this wrapper's state (identity unless
        the wrapper adds a layer to the state)."""
        return state

    #: Env-specific helpers whose first argument is a state; reached through
    #: wrappers with the state unwrapped layer by layer.
    STATE_METHODS = ("render", "state_index")

    def __getattr__(self, name: str) -> Any:
        # Env-specific helpers (``render``, ``tabular_model``) stay reachable
        # through wrappers. Guard ``env`` itself so copying cannot recurse.
        if name == "env" or name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self.env, name)
        if name in self.STATE_METHODS:
            return lambda state, *args, **kwargs: attr(self.inner_state(state), *args, **kwargs)
        return attr

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env!r})"
