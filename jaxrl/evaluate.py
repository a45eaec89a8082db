"""Evaluation of a trained policy: ``num_episodes`` vmapped episodes, one each, in
one compiled call.

The env is stepped without auto-reset (``envs.make(name, autoreset=False)``,
time limit included); rewards after an episode's first end are masked out, so
every episode counts exactly once whatever its length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def evaluate(
    env: Any,
    env_params: Any,
    act: Callable[[jax.Array, jax.Array], jax.Array],
    key: jax.Array,
    num_episodes: int,
    max_steps: int,
) -> jax.Array:
    """Undiscounted returns ``[num_episodes]``.

    Args:
        env: an unbatched env without auto-reset whose episodes end within ``max_steps``.
        act: ``act(key, obs [num_episodes, ...]) -> actions``, batched.
        max_steps: static loop length (the env's time limit).
    """
    reset_key, key = jax.random.split(key)
    state, ts = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), env_params
    )

    def body(carry, key):
        state, obs, ret, done = carry
        act_key, step_key = jax.random.split(key)
        action = act(act_key, obs)
        state, ts = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(step_key, num_episodes), state, action, env_params
        )
        ret = ret + jnp.where(done, 0.0, ts.reward)
        return (state, ts.obs, ret, done | ts.done), None

    carry = (state, ts.obs, jnp.zeros(num_episodes), jnp.zeros(num_episodes, bool))
    (_, _, ret, _), _ = jax.lax.scan(body, carry, jax.random.split(key, max_steps))
    return ret
