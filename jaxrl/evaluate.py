"""Evaluation of a trained policy: ``num_episodes`` vmapped episodes, one each, in
one compiled call.

The env is stepped without auto-reset (``envs.make(name, autoreset=False)``,
time limit included); rewards after an episode's first end are masked out, so
every episode counts exactly once whatever its length. Recurrent policies
get their state threaded through (``policy_carry``), with ``first`` true on each
episode's first observation only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from envs.core import Wrapper
from envs.wrappers import TimeLimit


def episode_limit(env: Any, env_params: Any) -> int:
    """The longest episode of ``env``: its ``TimeLimit``, or gymnax's own limit param."""
    limit = env.find(TimeLimit) if isinstance(env, Wrapper) else None
    if limit is not None:
        return limit.max_episode_steps
    return int(env_params.max_steps_in_episode)


def evaluate(
    env: Any,
    env_params: Any,
    act: Callable[..., Any],
    key: jax.Array,
    num_episodes: int,
    max_steps: int,
    policy_carry: Any = None,
) -> jax.Array:
    """Undiscounted returns ``[num_episodes]``.

    Args:
        env: an unbatched env without auto-reset whose episodes end within ``max_steps``.
        act: ``act(key, obs [num_episodes, ...]) -> actions``, batched; with
            ``policy_carry``, ``act(key, obs, first [num_episodes], carry) -> (actions, carry)``.
        max_steps: static loop length (the env's time limit).
        policy_carry: a recurrent policy's initial state for ``num_episodes`` episodes.
    """
    reset_key, key = jax.random.split(key)
    state, ts = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), env_params
    )

    def body(carry, xs):
        key, t = xs
        state, obs, ret, done, policy_carry = carry
        act_key, step_key = jax.random.split(key)
        if policy_carry is None:
            action = act(act_key, obs)
        else:
            first = jnp.full(done.shape, t == 0)
            action, policy_carry = act(act_key, obs, first, policy_carry)
        state, ts = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(step_key, num_episodes), state, action, env_params
        )
        ret = ret + jnp.where(done, 0.0, ts.reward)
        return (state, ts.obs, ret, done | ts.done, policy_carry), None

    carry = (state, ts.obs, jnp.zeros(num_episodes), jnp.zeros(num_episodes, bool), policy_carry)
    (_, _, ret, _, _), _ = jax.lax.scan(
        body, carry, (jax.random.split(key, max_steps), jnp.arange(max_steps))
    )
    return ret
