"""Every gymnax environment (Lange, 2022; gymnax 1.0) through the ``envs`` API.

``GymnaxEnv("CartPole-v1")`` is what ``envs.make("gymnax:CartPole-v1")`` builds.
It calls gymnax's ``reset_env``/``step_env`` directly rather than its
``reset``/``step``, which are jitted and auto-reset, so the adapter stays a raw
environment: no ``jit`` inside and no reset of its own (``envs.wrappers.AutoReset``
does that, with ``info["final_obs"]``).

How the flags map:

- ``terminated`` is gymnax's ``done`` from ``step_env``, which in gymnax 1.0
  covers natural terminal states only;
- ``truncated`` is ``is_truncated(new_state, params) & ~terminated``: gymnax
  truncates itself at ``params.max_steps_in_episode``, so the registry adds no
  ``TimeLimit``, and ``envs.make(..., max_episode_steps=N)`` sets that param.

Params are gymnax's own params (flax struct dataclasses, traced, so ``vmap``
over them works); ``default_params(**overrides)`` rejects unknown fields.

Caveats:

- ``info`` is always ``{}``: gymnax's step info (``discount``, whose dtype
  varies between environments, or FrozenLake's ``p``) has no counterpart after
  reset, and a ``lax.scan`` carry needs one structure. ``discount`` equals
  ``1 - terminated`` anyway.
- Observation dtypes follow what the environment produces, not gymnax's space
  where the two disagree (Catch-bsuite declares int32 and returns float32;
  FourRooms-misc declares float32 and returns int32). MinAtar observations are
  float32 0/1 planes in gymnax 1.0.1.
- gymnax 1.0.1 declares observation bounds that five environments leave
  (MemoryChain-bsuite, UmbrellaChain-bsuite, MetaMaze-misc, BernoulliBandit-misc,
  GaussianBandit-misc; found by random rollouts of every environment); the
  adapter declares the true ranges instead (``_OBS_BOUND_FIXES``).
- Space bounds come from ``params`` when they are concrete and unbatched; for
  traced (e.g. ``jit`` argument) or ``vmap``-stacked params they come from the
  defaults (``Box`` bounds are static NumPy arrays).
- An int override of a float field is stored as a float (gymnax's
  BernoulliBandit breaks when ``max_steps_in_episode`` changes dtype).
- Discrete actions are cast to int32 and clipped to ``[0, n - 1]`` (as every
  built-in environment does); continuous actions are passed as float32 and
  clipped, where at all, by the gymnax environment itself.
- Some gymnax code (Swimmer-misc) broadcasts ranks implicitly, so its calls run
  under ``jax.numpy_rank_promotion("allow")`` whatever the caller's setting.
- ``MNISTBandit-bsuite`` downloads MNIST when built and fails offline.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import sys
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from envs._validation import apply_overrides, check_range, concrete
from envs.core import Environment, TimeStep, restart, transition
from envs.spaces import Box, Discrete, Space


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then imports it
    (in its place in ``sys.modules`` too) and hands over."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def _import_gymnax() -> Any:
    """``gymnax``, with seaborn deferred until something uses it.

    gymnax 1.0.1 imports every environment at once, and its Pong module imports
    seaborn (and with it scipy.stats) at the top, for rendering only: about 0.9 s
    of every start-up on a 2-core CPU (``python -X importtime -c "import gymnax"``).
    A stand-in module imports seaborn when one of its attributes is first used, so
    only a run that draws Pong pays for it. (``importlib.util.LazyLoader`` does not
    do: Python 3.11's import statement reads the module's ``__spec__``, which loads it.)
    """
    first = "gymnax" not in sys.modules and "seaborn" not in sys.modules
    if first and importlib.util.find_spec("seaborn") is not None:
        sys.modules["seaborn"] = _Deferred("seaborn")
    import gymnax

    return gymnax


def _gymnax_numpy():
    """Some gymnax environments (Swimmer-misc) broadcast ranks implicitly; allow it
    even where callers (e.g. our tests) set ``jax_numpy_rank_promotion="raise"``."""
    return jax.numpy_rank_promotion("allow")


def _static_params(params: Any, default: Any) -> Any:
    """``params`` if every leaf is concrete with the default's shape, else ``default``."""
    leaves, default_leaves = jax.tree.leaves(params), jax.tree.leaves(default)
    if len(leaves) != len(default_leaves):
        return default
    for leaf, default_leaf in zip(leaves, default_leaves, strict=True):
        array = concrete(leaf)
        if array is None or array.shape != np.shape(default_leaf):
            return default
    return params


def _bounds(value: Any, dtype: np.dtype) -> np.ndarray:
    """A gymnax bound as a NumPy array of ``dtype`` (integer infinities become iinfo limits)."""
    array = np.asarray(value, np.float64)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = np.clip(np.nan_to_num(array, posinf=info.max, neginf=info.min), info.min, info.max)
    return array.astype(dtype)


def _time_bounds(params: Any, t_max: float = 100.0, lo: float = -1.0, hi: float = 1.0):
    """Range of gymnax's time feature: ``t`` in [0, T], or ``(hi - lo) * t / t_max + lo``."""
    steps = float(params.max_steps_in_episode)
    if bool(params.normalize_time):
        return lo, max(hi, (hi - lo) * steps / t_max + lo)
    return 0.0, steps


def _fix_memory_chain(params, low, high):
    low[:] = -1.0  # context bits are +-1; "time remaining" goes below 0 at the end
    return low, high


def _fix_umbrella_chain(params, low, high):
    low[2] = -1e-6  # 1 - t / L rounds to -1.5e-8 at t = L (XLA computes t * (1 / L))
    return low, high


def _fix_meta_maze(params, low, high):
    rewards = [0.0, params.reward, params.punishment, params.reward + params.punishment]
    low[-2], high[-2] = min(map(float, rewards)), max(map(float, rewards))
    low[-1], high[-1] = _time_bounds(params)
    return low, high


def _fix_bernoulli_bandit(params, low, high):
    low[-1], high[-1] = _time_bounds(params, params.t_max, params.min_lim, params.max_lim)
    return low, high


def _fix_gaussian_bandit(params, low, high):
    low[0], high[0] = -np.inf, np.inf  # the last reward is Gaussian
    low[-1], high[-1] = _time_bounds(params)
    return low, high


# gymnax 1.0.1 declares observation bounds that its observations leave (found by
# random rollouts over every environment); these give the true ranges.
_OBS_BOUND_FIXES = {
    "MemoryChain-bsuite": _fix_memory_chain,
    "UmbrellaChain-bsuite": _fix_umbrella_chain,
    "MetaMaze-misc": _fix_meta_maze,
    "BernoulliBandit-misc": _fix_bernoulli_bandit,
    "GaussianBandit-misc": _fix_gaussian_bandit,
}


def _convert_space(space: Any, dtype: Any, fix: Any = None, params: Any = None) -> Space:
    """A gymnax ``Discrete``/``Box`` as ours, with element type ``dtype``.

    ``fix(params, low, high) -> (low, high)`` corrects the bounds (float64 arrays).
    """
    kind = type(space).__name__
    if kind == "Discrete":
        return Discrete(int(space.n), dtype)
    if kind != "Box":
        raise TypeError(f"gymnax space {space!r} has no envs.spaces equivalent")
    dtype = np.dtype(dtype)
    low = np.array(np.broadcast_to(np.asarray(space.low, np.float64), space.shape))
    high = np.array(np.broadcast_to(np.asarray(space.high, np.float64), space.shape))
    if fix is not None:
        low, high = fix(params, low, high)
    return Box(_bounds(low, dtype), _bounds(high, dtype), space.shape, dtype)


class GymnaxEnv(Environment[Any, Any]):
    """The gymnax environment ``env_id`` (see ``GymnaxEnv.available()``) as a raw env.

    Args:
        env_id: a gymnax id such as ``"CartPole-v1"`` or ``"Breakout-MinAtar"``.
    """

    def __init__(self, env_id: str):
        gymnax = _import_gymnax()
        if env_id not in self.available():
            close = difflib.get_close_matches(env_id, self.available(), n=5, cutoff=0.4)
            hint = f" Closest gymnax ids: {', '.join(close)}." if close else ""
            raise ValueError(f"Unknown gymnax environment {env_id!r}.{hint}")
        self.env_id = env_id
        self._env, self._default_params = gymnax.make(env_id)
        doc = (sys.modules[type(self._env).__module__].__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else type(self._env).__name__
        self.description = f"gymnax {env_id}: {summary}"

    @staticmethod
    def available() -> list[str]:
        """Every id registered with gymnax."""
        return list(_import_gymnax().registered_envs)

    @property
    def name(self) -> str:
        return f"gymnax:{self.env_id}"

    @property
    def gymnax_env(self) -> Any:
        """The wrapped gymnax environment (for rendering or gymnax-specific helpers)."""
        return self._env

    def default_params(self, **overrides: Any) -> Any:
        defaults = self._default_params
        # An int where gymnax has a float (BernoulliBandit's max_steps_in_episode)
        # would change the field's dtype and break gymnax's lax.select calls.
        overrides = {
            name: float(value)
            if isinstance(getattr(defaults, name, None), float)
            and isinstance(value, int)
            and not isinstance(value, bool)
            else value
            for name, value in overrides.items()
        }
        params = apply_overrides(defaults, overrides)
        check_range(type(params).__name__, "max_steps_in_episode", params.max_steps_in_episode, 1)
        return params

    @functools.cached_property
    def _obs_dtype(self) -> np.dtype:
        """The dtype ``reset_env`` really returns (it can differ from gymnax's space)."""
        with _gymnax_numpy():
            obs, _ = jax.eval_shape(self._env.reset_env, jax.random.key(0), self._default_params)
        return np.dtype(obs.dtype)

    def _obs(self, obs: jax.Array) -> jax.Array:
        return jnp.asarray(obs, self._obs_dtype)

    def reset(self, key: jax.Array, params: Any) -> tuple[Any, TimeStep]:
        with _gymnax_numpy():
            obs, state = self._env.reset_env(key, params)
        return state, restart(self._obs(obs))

    def step(self, key: jax.Array, state: Any, action: Any, params: Any) -> tuple[Any, TimeStep]:
        space = self.action_space(params)
        if isinstance(space, Discrete):
            action = jnp.clip(jnp.asarray(action, jnp.int32), 0, space.n - 1)
        else:
            action = jnp.asarray(action, space.dtype)
        with _gymnax_numpy():
            obs, new_state, reward, terminated, _ = self._env.step_env(key, state, action, params)
            truncated = self._env.is_truncated(new_state, params)
        terminated = jnp.asarray(terminated, jnp.bool_)
        truncated = jnp.asarray(truncated, jnp.bool_) & ~terminated
        return new_state, transition(self._obs(obs), reward, terminated, truncated=truncated)

    def observation_space(self, params: Any) -> Space:
        params = _static_params(params, self._default_params)
        # gymnax builds bounds with jnp; evaluate them now even inside a trace.
        with jax.ensure_compile_time_eval():
            space = self._env.observation_space(params)
            fix = _OBS_BOUND_FIXES.get(self.env_id)
            return _convert_space(space, self._obs_dtype, fix, params)

    def action_space(self, params: Any) -> Space:
        with jax.ensure_compile_time_eval():
            space = self._env.action_space(_static_params(params, self._default_params))
            return _convert_space(space, space.dtype)

    def __repr__(self) -> str:
        return f"GymnaxEnv({self.env_id!r})"
