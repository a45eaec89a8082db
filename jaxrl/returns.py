"""Returns and advantages, time-major (leading axis T), with termination and
truncation kept apart.

Every function takes, per step t of a rollout:

* ``r_t``: reward of the transition,
* ``terminated_t``: the transition entered a terminal state (no bootstrap),
* ``truncated_t``: the episode was cut after it (bootstrap, then a new episode starts),
* ``v_next_t``: the value of the observation that followed step t *before any
  reset*, i.e. ``V(info["final_obs"]_t)``. Where the episode continues this is
  just ``V(obs_{t+1})``, so one batched critic call on ``final_obs`` gives all
  of them.

With ``discount_t = gamma * (1 - terminated_t)`` and ``continue_t = 1 - done_t``
the recursions are the standard ones (Sutton & Barto 2018, ch. 7 and 12;
Schulman et al. 2016 for GAE): a truncated step bootstraps from ``v_next_t``
and does not look past the episode end; a terminated step does neither; the
last step of the rollout bootstraps from ``v_next_{T-1}``.

Why not rlax: its functions take a single discount per step, which cannot
express "bootstrap from the pre-reset observation, then stop" on truncation.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def _prepare(r_t, terminated_t, truncated_t, v_next_t, gamma):
    chex.assert_equal_shape([r_t, terminated_t, truncated_t, v_next_t])
    chex.assert_rank(r_t, {1, 2})
    r_t = jnp.asarray(r_t, jnp.float32)
    discount_t = gamma * (1.0 - terminated_t.astype(jnp.float32))
    continue_t = 1.0 - jnp.logical_or(terminated_t, truncated_t).astype(jnp.float32)
    return r_t, discount_t, continue_t, jnp.asarray(v_next_t, jnp.float32)


def lambda_returns(r_t, terminated_t, truncated_t, v_next_t, gamma, lambda_):
    """TD(λ) returns ``G_t = r_t + discount_t * (v_next_t + λ continue_t (G_{t+1} - v_next_t))``.

    λ = 1 gives bootstrapped Monte Carlo returns (``reward_to_go``), λ = 0
    one-step TD targets.

    Args:
        r_t, terminated_t, truncated_t, v_next_t: ``[T]`` or ``[T, B]``.
        gamma, lambda_: scalars (may be traced).
    Returns:
        ``[T]`` or ``[T, B]`` float32 returns.
    """
    r_t, discount_t, continue_t, v_next_t = _prepare(
        r_t, terminated_t, truncated_t, v_next_t, gamma
    )

    def body(g_next, xs):
        r, discount, cont, v_next = xs
        g = r + discount * (v_next + lambda_ * cont * (g_next - v_next))
        return g, g

    _, g_t = jax.lax.scan(body, v_next_t[-1], (r_t, discount_t, continue_t, v_next_t), reverse=True)
    return g_t


def reward_to_go(r_t, terminated_t, truncated_t, v_next_t, gamma):
    """Discounted reward-to-go within each episode, bootstrapped where the episode
    was cut (truncation or rollout end). Pass ``v_next_t = 0`` for pure Monte Carlo."""
    return lambda_returns(r_t, terminated_t, truncated_t, v_next_t, gamma, 1.0)


def gae(r_t, terminated_t, truncated_t, v_t, v_next_t, gamma, lambda_):
    """Generalised advantage estimation.

    ``delta_t = r_t + discount_t v_next_t - v_t``;
    ``A_t = delta_t + discount_t λ continue_t A_{t+1}``.

    Args:
        v_t: value of the observation at step t, same shape as ``r_t``.
    Returns:
        ``(advantages, targets)``, where ``targets = advantages + v_t`` are the
        λ-returns used as value targets.
    """
    chex.assert_equal_shape([r_t, v_t])
    r_t, discount_t, continue_t, v_next_t = _prepare(
        r_t, terminated_t, truncated_t, v_next_t, gamma
    )
    delta_t = r_t + discount_t * v_next_t - v_t

    def body(a_next, xs):
        delta, discount, cont = xs
        a = delta + discount * lambda_ * cont * a_next
        return a, a

    _, adv_t = jax.lax.scan(
        body, jnp.zeros_like(delta_t[-1]), (delta_t, discount_t, continue_t), reverse=True
    )
    return adv_t, adv_t + v_t


def segment_ends(truncated_t, segment: int):
    """``truncated_t [T, ...]`` with every ``segment``-th step marked too, so that
    ``gae`` given it sums TD errors within segments of ``segment`` steps and
    bootstraps from the value at each segment's end, as if each segment were a
    rollout of its own (brax.training's PPO, with ``unroll_length``). ``segment``
    is static; 0 leaves ``truncated_t`` as it is."""
    if not segment:
        return truncated_t
    steps = jnp.arange(truncated_t.shape[0]) % segment
    ends = (steps == segment - 1).reshape((-1,) + (1,) * (truncated_t.ndim - 1))
    return jnp.logical_or(truncated_t, ends)


def n_step_returns(r_t, terminated_t, truncated_t, v_next_t, gamma, n: int):
    """n-step bootstrapped returns
    ``G_t = r_t + γ r_{t+1} + ... + γ^{k-1} r_{t+k-1} + γ^k V(s_{t+k})`` with
    k <= n cut short at episode ends (no bootstrap after termination) and at the
    end of the rollout. ``n`` is static; n = 1 gives one-step TD targets.
    """
    if int(n) < 1:
        raise ValueError(f"n_step_returns: n={n} is not allowed; it must be >= 1")
    r_t, discount_t, continue_t, v_next_t = _prepare(
        r_t, terminated_t, truncated_t, v_next_t, gamma
    )
    g = r_t + discount_t * v_next_t  # 1-step returns
    for _ in range(int(n) - 1):
        # G^m_t = r_t + discount_t * (continue_t ? G^{m-1}_{t+1} : v_next_t); at t = T-1 use v_next.
        g_shifted = jnp.concatenate([g[1:], v_next_t[-1:]], axis=0)
        last = jnp.zeros_like(continue_t).at[-1].set(1.0)
        follow = continue_t * (1.0 - last)
        g = r_t + discount_t * (follow * g_shifted + (1.0 - follow) * v_next_t)
    return g


def standardize(advantages: jax.Array) -> jax.Array:
    """Advantages scaled to zero mean and unit standard deviation (over every element;
    1e-8 guards a constant batch), as PPO, TRPO and REINFORCE normalise them."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)
