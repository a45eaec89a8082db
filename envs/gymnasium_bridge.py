"""Any ``envs`` environment as a ``gymnasium.Env``, NumPy in and out.

``to_gymnasium(env, params)`` returns an object that Gymnasium code (and
``gymnasium.utils.env_checker.check_env``) accepts. The JAX ``reset`` and
``step`` are jitted once per environment object (bridges made from the same
``env``, e.g. by ``spec.make()``, share the compiled functions), with ``params``
as an argument.

How the API maps:

- ``reset(seed=s)`` starts a new key chain from ``jax.random.key(s)`` (and seeds
  ``np_random``, as Gymnasium expects); ``reset()`` without a seed continues the
  chain, which starts from ``to_gymnasium(..., seed=...)`` or, without one,
  from ``np_random``'s entropy. Every ``reset`` and ``step`` splits one key off.
- ``terminated``/``truncated`` map directly (Python bools); the reward is a
  Python float; ``info`` is converted to NumPy.
- Spaces come from ``envs.spaces.to_gymnasium_space``. Discrete observations
  are returned as Python ints and boolean observations as int8 arrays (the
  ``MultiBinary`` dtype).
- ``render_mode="rgb_array"`` is offered when the environment has a
  ``render(state, params)`` method returning an (H, W, 3) uint8 image.

Caveats:

- Environments that reset themselves are refused: Gymnasium users call
  ``reset``. Build them with ``envs.make(name, autoreset=False)`` (time limit
  and episode statistics kept) or ``envs.make(name, raw=True)``.
- Infinite ``Box`` bounds are replaced by the dtype's largest finite value,
  which contains every finite observation, because ``check_env`` warns on
  infinite bounds (Brax observations, for example, are unbounded).
- Each call copies arrays between device and host; for speed, stay in JAX and
  ``vmap``.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.envs.registration import EnvSpec

from envs.core import Environment, Wrapper
from envs.spaces import Box, Discrete, Space, to_gymnasium_space
from envs.wrappers import AutoReset, TimeLimit

RENDER_FPS = 4

# One pair of compiled functions per environment object, shared by its bridges.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def to_gymnasium(
    env: Environment,
    params: Any,
    *,
    max_episode_steps: int | None = None,
    seed: int | None = None,
    render_mode: str | None = None,
) -> GymnasiumEnv:
    """``env`` with ``params`` as a ``gymnasium.Env``.

    Args:
        env: any environment without ``AutoReset``, e.g. from
            ``envs.make(name, autoreset=False)``.
        params: its params.
        max_episode_steps: if given, add a ``TimeLimit`` (on top of any the env
            already has; the shorter limit wins).
        seed: seeds the key chain of the first ``reset()`` called without a seed.
        render_mode: None or "rgb_array" (needs ``env.render(state, params)``).

    Returns:
        A ``GymnasiumEnv``.
    """
    _refuse_autoreset(env)
    if max_episode_steps is not None:
        env = TimeLimit(env, max_episode_steps)
    return GymnasiumEnv(env, params, seed=seed, render_mode=render_mode)


def _refuse_autoreset(env: Environment) -> None:
    if isinstance(env, Wrapper) and env.find(AutoReset) is not None:
        raise ValueError(
            f"to_gymnasium: {env!r} contains AutoReset, but Gymnasium users call reset "
            "themselves. Build the env with envs.make(name, autoreset=False) (keeps the "
            "time limit and episode statistics) or envs.make(name, raw=True)."
        )


def _finite_space(space: Any) -> Any:
    """A Gymnasium ``Box`` with infinite bounds replaced by the dtype's finite extremes."""
    if not isinstance(space, gymnasium.spaces.Box) or not np.issubdtype(space.dtype, np.floating):
        return space
    if np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
        return space
    big = np.finfo(space.dtype).max
    low = np.nan_to_num(space.low, neginf=-big, posinf=big)
    high = np.nan_to_num(space.high, neginf=-big, posinf=big)
    return gymnasium.spaces.Box(low, high, space.shape, space.dtype)


def _has_render(env: Environment) -> bool:
    return callable(getattr(env, "render", None))


def _compiled(env: Environment) -> dict[str, Any]:
    if env not in _COMPILED:
        # A weak reference, so the cache entry does not keep its own key alive.
        env_ref = weakref.ref(env)

        def reset(key, params):
            key, reset_key = jax.random.split(key)
            state, ts = env_ref().reset(reset_key, params)
            return key, state, ts

        def step(key, state, action, params):
            key, step_key = jax.random.split(key)
            state, ts = env_ref().step(step_key, state, action, params)
            return key, state, ts

        _COMPILED[env] = {"reset": jax.jit(reset), "step": jax.jit(step)}
    return _COMPILED[env]


def _key(seed: int) -> jax.Array:
    # jax.random.key takes seeds below 2**63; Gymnasium allows any non-negative int.
    return jax.random.key(int(seed) % 2**63)


def _to_numpy(tree: Any) -> Any:
    return jax.tree.map(np.asarray, jax.device_get(tree))


class GymnasiumEnv(gymnasium.Env):
    """A ``gymnasium.Env`` driving a JAX environment; see the module docstring.

    Use ``to_gymnasium`` rather than this constructor (it also adds time limits).
    """

    def __init__(
        self,
        env: Environment,
        params: Any,
        *,
        seed: int | None = None,
        render_mode: str | None = None,
    ):
        _refuse_autoreset(env)
        self.env, self.params = env, params
        self._jax_obs_space: Space = env.observation_space(params)
        self._jax_action_space: Space = env.action_space(params)
        self.observation_space = _finite_space(to_gymnasium_space(self._jax_obs_space))
        self.action_space = _finite_space(to_gymnasium_space(self._jax_action_space))
        render_modes = ["rgb_array"] if _has_render(env) else []
        self.metadata = {"render_modes": render_modes, "render_fps": RENDER_FPS}
        if render_mode is not None and render_mode not in render_modes:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported by {env.name}; "
                f"allowed: {render_modes or 'none (the env has no render method)'}"
            )
        self.render_mode = render_mode
        self._render = jax.jit(env.render) if render_mode else None
        self._seed = seed
        self._key: jax.Array | None = None
        self._state: Any = None
        self._fns = _compiled(env)
        self.spec = EnvSpec(
            id=env.name,
            entry_point=functools.partial(GymnasiumEnv, env, params, seed=seed),
        )

    def _obs(self, obs: Any) -> Any:
        if isinstance(self._jax_obs_space, Discrete):
            return int(obs)
        obs = np.asarray(obs)
        if isinstance(self.observation_space, gymnasium.spaces.MultiBinary):
            return obs.astype(self.observation_space.dtype)
        return obs

    def _action(self, action: Any) -> jax.Array:
        space = self._jax_action_space
        if isinstance(space, (Discrete, Box)):
            return jnp.asarray(np.asarray(action).astype(space.dtype))
        return jnp.asarray(action)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._key = _key(seed)
        elif self._key is None:
            first = self._seed if self._seed is not None else self.np_random.integers(2**63)
            self._key = _key(first)
        self._key, self._state, ts = self._fns["reset"](self._key, self.params)
        return self._obs(ts.obs), _to_numpy(ts.info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("GymnasiumEnv.step called before reset")
        self._key, self._state, ts = self._fns["step"](
            self._key, self._state, self._action(action), self.params
        )
        reward, terminated, truncated = jax.device_get((ts.reward, ts.terminated, ts.truncated))
        return (
            self._obs(ts.obs),
            float(reward),
            bool(terminated),
            bool(truncated),
            _to_numpy(ts.info),
        )

    def render(self) -> np.ndarray | None:
        if self._render is None or self._state is None:
            return None
        return np.asarray(self._render(self._state, self.params))
