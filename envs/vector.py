"""A batch of environments stepped together, with an auto-reset that computes only
as many resets as episodes actually end.

``jax.vmap`` over ``AutoReset`` evaluates every environment's reset on every
step and selects it where an episode ended: fine when reset is cheap, costly
when it is not (``GridWorld-Maze`` draws a new maze per reset, which costs
more than three steps). ``VecEnv`` instead steps the batch, finds the (at most
``max_resets``) environments whose episode ended, resets only those and
scatters the fresh states in. If more episodes end in one step than
``max_resets``, a ``lax.cond`` falls back to resetting the whole batch, so the
result is always exact: every finished episode gets its own fresh reset.

This is the exact variant of the "optimistic reset" of Craftax (Matthews et
al., 2024), which shares reset states when too many episodes end at once.

``info["final_obs"]`` holds the pre-reset observation as with ``AutoReset``.

Every env draws from its own keys (a step key and a reset key per step), so an
env's trajectory does not depend on which other envs share its batch: a batch
split over devices (``jaxrl.parallel.EnvShards``) steps exactly like the whole
batch on one device, given each device its rows of the same keys.
An env that already contains ``AutoReset`` (``envs.make``'s default) is simply
stepped under ``vmap``: it resets itself, and ``max_resets`` must be None.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from envs.core import Environment, TimeStep, Wrapper
from envs.wrappers import AutoReset


class VecEnv:
    """``num_envs`` copies of ``env`` with shared params and batched auto-reset.

    Args:
        env: an unbatched env, best without ``AutoReset``
            (``envs.make(name, autoreset=False)``); with it, ``vmap`` semantics.
        num_envs: batch size (static).
        max_resets: resets computed per step when few episodes end; None resets
            every env every step (``vmap(AutoReset)`` behaviour). A few percent
            of ``num_envs`` suits long episodes with costly resets.
    """

    def __init__(self, env: Environment, num_envs: int, max_resets: int | None = None):
        self.self_resetting = isinstance(env, Wrapper) and env.find(AutoReset) is not None
        if self.self_resetting and max_resets is not None:
            raise ValueError(
                f"VecEnv: max_resets={max_resets} needs an env without AutoReset (it resets "
                "itself); use envs.make(name, autoreset=False) or max_resets=None"
            )
        if int(num_envs) < 1:
            raise ValueError(f"VecEnv: num_envs={num_envs} is not allowed; it must be >= 1")
        if max_resets is not None and not 1 <= int(max_resets) <= int(num_envs):
            raise ValueError(
                f"VecEnv: max_resets={max_resets} is not allowed; "
                f"it must be in [1, num_envs={num_envs}]"
            )
        self.env = env
        self.num_envs = int(num_envs)
        self.max_resets = None if max_resets is None else int(max_resets)

    def observation_space(self, params):
        return self.env.observation_space(params)

    def action_space(self, params):
        return self.env.action_space(params)

    def reset(self, key: jax.Array, params: Any) -> tuple[Any, TimeStep]:
        """Batched reset from one key, or from ``num_envs`` keys (one per env);
        ``info["final_obs"]`` equals ``obs``."""
        keys = key if key.shape else jax.random.split(key, self.num_envs)
        state, ts = jax.vmap(self.env.reset, in_axes=(0, None))(keys, params)
        if self.self_resetting:
            return state, ts
        return state, ts._replace(info={**ts.info, "final_obs": ts.obs})

    def step(self, key: jax.Array, state: Any, action: Any, params: Any) -> tuple[Any, TimeStep]:
        """Step every env with its action (leading axis ``num_envs``) and reset finished ones.

        ``key`` is one key, or keys ``[num_envs, 2]`` (per env: its step key and the
        key of its reset, used if its episode ends) split in bulk beforehand, e.g.
        for a whole rollout at once."""
        keys = key if key.shape else jax.random.split(key, (self.num_envs, 2))
        step_keys, reset_keys = keys[:, 0], keys[:, 1]
        state, ts = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(
            step_keys, state, action, params
        )
        if self.self_resetting:
            return state, ts
        done = ts.done
        carry = (state, ts.obs)
        if self.max_resets is None or self.max_resets == self.num_envs:
            # Skipped outright when no episode ended (a select under an outer vmap).
            state, obs = jax.lax.cond(
                done.any(), self._reset_all, lambda *args: args[2], reset_keys, done, carry, params
            )
        else:
            state, obs = jax.lax.cond(
                done.sum() > self.max_resets,
                self._reset_all,
                self._reset_some,
                reset_keys,
                done,
                carry,
                params,
            )
        return state, ts._replace(obs=obs, info={**ts.info, "final_obs": ts.obs})

    def _reset_all(self, keys, done, carry, params):
        fresh = jax.vmap(self.env.reset, in_axes=(0, None))(keys, params)
        fresh = (fresh[0], fresh[1].obs)
        return jax.tree.map(lambda new, old: _where_batch(done, new, old), fresh, carry)

    def _reset_some(self, keys, done, carry, params):
        (index,) = jnp.nonzero(done, size=self.max_resets, fill_value=self.num_envs)
        # Each finished env resets from its own key, as in _reset_all: the branch
        # taken never changes the result. Unused slots read a clamped key.
        state, ts = jax.vmap(self.env.reset, in_axes=(0, None))(
            keys[jnp.minimum(index, self.num_envs - 1)], params
        )
        # Index num_envs is out of bounds: those rows (unused slots) are dropped.
        return jax.tree.map(
            lambda old, new: old.at[index].set(new, mode="drop"), carry, (state, ts.obs)
        )


def _where_batch(mask: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)
