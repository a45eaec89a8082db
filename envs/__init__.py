"""envs: pure-JAX environments for reinforcement learning.

Unbatched, pure functions of explicit keys, state and params::

    env, params = envs.make("GridWorld-FourRooms")
    state, ts = env.reset(key, params)
    state, ts = env.step(key, state, action, params)   # ts.obs, ts.reward, ts.terminated, ...

Batch with ``jax.vmap``; compile whole rollouts with ``jax.jit``. This package
never imports ``jaxrl``.
"""

from envs import spaces, wrappers
from envs.core import Environment, TimeStep, Wrapper
from envs.registry import builtin_names, describe, make, make_raw, registered


def to_gymnasium(env, params, **kwargs):
    """A ``gymnasium.Env`` (NumPy in and out) for ``env``; see ``envs.gymnasium_bridge``."""
    from envs.gymnasium_bridge import to_gymnasium as _to_gymnasium

    return _to_gymnasium(env, params, **kwargs)


__all__ = [
    "Environment",
    "TimeStep",
    "Wrapper",
    "builtin_names",
    "describe",
    "make",
    "make_raw",
    "registered",
    "spaces",
    "to_gymnasium",
    "wrappers",
]
