"""Exploration written once: epsilon-greedy action choice (and the argmax with
random tie-breaking that tabular learners and bandit algorithms need) and its
linear decay for the value-based agents (DQN, PQN, SARSA, tabular TD), and the
uniform actions that off-policy agents (DQN, SAC, TD3) take while their buffer
fills.

The schedule reads ``eps_start``, ``eps_end`` and ``eps_decay_fraction`` from the
agent's traced hyperparameters, so sweeps over them are a ``vmap``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.distributions import draw


def argmax_random_ties(key: jax.Array, scores: jax.Array) -> jax.Array:
    """int32 argmax of ``scores [..., A]``, uniformly among tied maxima.

    One uniform draw ``u`` per row picks the ``floor(u * n)``-th of its ``n`` tied
    maxima (in index order): uniform among them, with one random number per row
    rather than one per action (random numbers are most of a bandit pull's cost on
    a CPU). Tabular learners and bandit algorithms need it: a fresh table is all
    ties, and ``jnp.argmax`` would always pick the first.
    """
    best = scores == jnp.max(scores, axis=-1, keepdims=True)
    rank = jnp.cumsum(best.astype(jnp.int32), axis=-1)  # 1-based rank among the maxima
    u = jax.random.uniform(key, scores.shape[:-1])
    pick = jnp.floor(u * rank[..., -1]).astype(jnp.int32) + 1
    return jnp.argmax(best & (rank == pick[..., None]), axis=-1).astype(jnp.int32)


def epsilon_greedy(
    key: jax.Array, q: jax.Array, eps: jax.Array | float, random_ties: bool = False
) -> jax.Array:
    """Argmax of ``q [..., A]``, replaced by a uniform action with probability ``eps``;
    ``random_ties`` breaks ties at random (``argmax_random_ties``) rather than by index.
    ``key`` is one key, or one per row of ``q`` (``[N]`` for ``q [N, A]``)."""
    if jnp.ndim(key):
        return jax.vmap(lambda k, row: epsilon_greedy(k, row, eps, random_ties))(key, q)
    if random_ties:
        key, tie_key = jax.random.split(key)
        greedy = argmax_random_ties(tie_key, q)
    else:
        greedy = jnp.argmax(q, axis=-1)
    explore_key, action_key = jax.random.split(key)
    uniform = jax.random.randint(action_key, greedy.shape, 0, q.shape[-1])
    return jnp.where(jax.random.uniform(explore_key, greedy.shape) < eps, uniform, greedy)


def linear_epsilon(hp: Any, env_steps: jax.Array, total_steps: int) -> jax.Array:
    """Linear decay from ``hp.eps_start`` to ``hp.eps_end`` over the first
    ``hp.eps_decay_fraction * total_steps`` env steps, then constant."""
    frac = jnp.clip(env_steps / (hp.eps_decay_fraction * total_steps), 0.0, 1.0)
    return hp.eps_start + frac * (hp.eps_end - hp.eps_start)


def uniform_actions(key: jax.Array, num: int, num_actions: int | None, dim: int) -> jax.Array:
    """``num`` uniformly random actions: ints in ``[0, num_actions)``, or (``num_actions``
    None) vectors in ``[-1, 1]^dim``; what off-policy agents take before learning starts.
    ``key`` is one key or one per action (``[num]``)."""
    if num_actions is not None:
        return draw(jax.random.randint, key, (num,), 0, num_actions)
    return draw(jax.random.uniform, key, (num, dim), jnp.float32, -1.0, 1.0)


def q_values(network: Any, params: Any):
    """``value(obs [N, ...]) -> Q [N, num_actions]`` of a trained Q-network."""
    return lambda obs: network.apply(params, obs)


def q_policy(network: Any, params: Any, eps: float):
    """``act(key, obs [N, ...]) -> action`` of a trained Q-network, epsilon-greedy
    (``eps = 0``: greedy)."""

    def act(key: jax.Array, obs: jax.Array) -> jax.Array:
        return epsilon_greedy(key, network.apply(params, obs), eps)

    return act
