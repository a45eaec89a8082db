"""Dynamic programming on exact finite MDPs: policy evaluation, value iteration and
policy iteration (Bellman 1957; Howard 1960; Sutton & Barto 2018, chapter 4).

Every function takes the model as arrays, ``P [S, A, S]`` (``P[s, a, s']``) and
expected rewards ``R [S, A]``, with the discount ``gamma`` as a (traceable)
argument, so ``vmap`` over models, rewards or discounts solves many MDPs in one
call (e.g. an inventory problem under 1,024 cost settings). Loops to a tolerance
are ``lax.while_loop``\\s; under ``vmap`` each problem keeps its own result (XLA
runs the batch until the slowest one stops, leaving finished ones unchanged).

Value iteration and iterative policy evaluation are the same fixed-point loop
(``_fixed_point``) with different backups; policy iteration evaluates each policy
with ``policy_evaluation``. Tolerances are on the sup-norm change of ``V`` between
sweeps; after a sweep that changes ``V`` by at most ``tol``, ``V`` is within
``gamma * tol / (1 - gamma)`` of the fixed point. In float32 the sweeps of a
contraction settle on a fixed point of the rounded backup (the change reaches
exactly 0, e.g. after ~1,500 sweeps on ``Inventory-LeadTime`` at gamma 0.99, within
3e-4 of the float64 values of magnitude 575); ``max_iterations`` bounds the loop
should rounding make it cycle instead, and ``residual`` then reports it. Pass
float64 arrays (under ``jax.enable_x64()``) for accuracy beyond float32's.

Models come from envs: ``tabular_model(env, params)`` returns one for any env
that has one (``GridWorld`` layouts, ``Inventory``) and a clear error otherwise.

Hand-written because no maintained JAX library has these: rlax and mctx work on
sampled transitions and search trees, not on explicit ``(P, R)`` models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

STOCHASTIC_ATOL = 1e-4
"""How far the rows of ``P`` may be from summing to 1 (float32 models built by summing
probabilities are off by a few ulps)."""


class Evaluation(NamedTuple):
    """The value of one policy.

    Attributes:
        V: [S] state values.
        iterations: int32, sweeps used (0 for the exact solve).
        residual: max |T_pi V - V|, the Bellman residual of ``V``.
    """

    V: jax.Array
    iterations: jax.Array
    residual: jax.Array


class Solution(NamedTuple):
    """An optimal value function and a greedy policy.

    Attributes:
        V: [S] state values.
        Q: [S, A] action values ``R + gamma * P V``.
        policy: [S] int32 greedy actions: value iteration's ``argmax Q`` (lowest
            index on ties); policy iteration's final policy (greedy within ``tol``).
        iterations: int32, sweeps (value iteration) or improvements (policy iteration).
        residual: max |T V - V|, the Bellman optimality residual of ``V``.
    """

    V: jax.Array
    Q: jax.Array
    policy: jax.Array
    iterations: jax.Array
    residual: jax.Array


def _concrete(x: Any) -> np.ndarray | None:
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def check_mdp(P: Any, R: Any, gamma: Any, owner: str = "planning") -> None:
    """Raise a ``ValueError`` unless ``P [..., S, A, S]`` is a stochastic tensor,
    ``R [..., S, A]`` matches it and ``0 <= gamma < 1``. Leading batch axes are
    allowed; traced values are skipped (check before ``vmap``)."""
    P_np, R_np, gamma_np = _concrete(P), _concrete(R), _concrete(gamma)
    shape = np.shape(P)
    if len(shape) < 3 or shape[-1] != shape[-3]:
        raise ValueError(f"{owner}: P has shape {shape}; it must be (S, A, S)")
    if np.shape(R)[-2:] != shape[-3:-1]:
        raise ValueError(
            f"{owner}: R has shape {np.shape(R)}; it must be (S, A) = {shape[-3:-1]} to match P"
        )
    if gamma_np is not None and not np.all((gamma_np >= 0) & (gamma_np < 1)):
        raise ValueError(
            f"{owner}: gamma={gamma_np.tolist()} is not allowed; it must be in [0, 1) "
            "(an undiscounted infinite sum may diverge)"
        )
    if P_np is not None:
        sums = P_np.sum(axis=-1)
        worst = np.unravel_index(np.argmax(np.abs(sums - 1)), sums.shape)
        if np.any(P_np < 0) or np.abs(sums[worst] - 1) > STOCHASTIC_ATOL:
            raise ValueError(
                f"{owner}: P is not stochastic: entries must be >= 0 and every row "
                f"P[s, a, :] must sum to 1; the row at {tuple(int(i) for i in worst)} sums "
                f"to {float(sums[worst]):.6g} (min entry {float(P_np.min()):.3g})"
            )
    if R_np is not None and not np.all(np.isfinite(R_np)):
        raise ValueError(f"{owner}: R has non-finite entries")


def tabular_model(env: Any, env_params: Any) -> Any:
    """``env.tabular_model(env_params)`` (through any wrappers), or a ``ValueError``
    naming the env when it has none."""
    try:
        build = env.tabular_model
    except AttributeError:
        build = None
    if build is None:
        name = getattr(env, "name", type(env).__name__)
        raise ValueError(
            f"{name} has no tabular model; tabular methods need an env with "
            "tabular_model(params), e.g. GridWorld-Empty-8x8, GridWorld-FourRooms or Inventory"
        )
    return build(env_params)


def bellman_q(P: jax.Array, R: jax.Array, gamma: jax.Array | float, V: jax.Array) -> jax.Array:
    """``Q [S, A] = R + gamma * P V``."""
    chex.assert_rank([P, R, V], [3, 2, 1])
    return R + gamma * jnp.einsum("sat,t->sa", P, V)


def _policy_probs(policy: jax.Array, num_actions: int) -> jax.Array:
    """[S, A] action probabilities of a deterministic [S] int or stochastic [S, A] policy."""
    if jnp.issubdtype(policy.dtype, jnp.integer):
        return jax.nn.one_hot(policy, num_actions, dtype=jnp.result_type(float))
    return policy


def _fixed_point(
    backup: Callable[[jax.Array], jax.Array], V: jax.Array, tol: float, max_iterations: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Iterate ``V <- backup(V)`` until a sweep changes ``V`` by at most ``tol`` (sup
    norm) or ``max_iterations`` sweeps. Returns ``(V, iterations, last change)``."""

    def cond(carry):
        _, k, change = carry
        return (change > tol) & (k < max_iterations)

    def body(carry):
        V, k, _ = carry
        new_V = backup(V)
        return new_V, k + 1, jnp.max(jnp.abs(new_V - V))

    inf = jnp.asarray(jnp.inf, V.dtype)
    return jax.lax.while_loop(cond, body, (V, jnp.int32(0), inf))


def policy_evaluation(
    P: jax.Array,
    R: jax.Array,
    gamma: jax.Array | float,
    policy: jax.Array,
    method: Literal["exact", "iterative"] = "exact",
    tol: float = 1e-6,
    max_iterations: int = 100_000,
) -> Evaluation:
    """The value ``V_pi [S]`` of ``policy``: deterministic ``[S]`` int actions or
    stochastic ``[S, A]`` probabilities.

    ``"exact"`` solves ``(I - gamma P_pi) V = R_pi`` (LU); ``"iterative"`` sweeps
    ``V <- R_pi + gamma P_pi V`` from 0 to ``tol`` (see the module docstring).
    """
    chex.assert_rank([P, R], [3, 2])
    if method not in ("exact", "iterative"):
        raise ValueError(f"method={method!r} is not allowed; it must be 'exact' or 'iterative'")
    probs = _policy_probs(policy, R.shape[1]).astype(R.dtype)
    P_pi = jnp.einsum("sa,sat->st", probs, P)
    R_pi = (probs * R).sum(axis=1)

    def backup(V):
        return R_pi + gamma * P_pi @ V

    if method == "exact":
        system = jnp.eye(P.shape[0], dtype=R.dtype) - gamma * P_pi
        V = jnp.linalg.solve(system, R_pi)
        iterations = jnp.int32(0)
    else:
        V, iterations, _ = _fixed_point(backup, jnp.zeros_like(R_pi), tol, max_iterations)
    return Evaluation(V, iterations, jnp.max(jnp.abs(backup(V) - V)))


def _solution(P, R, gamma, V, iterations) -> Solution:
    Q = bellman_q(P, R, gamma, V)
    residual = jnp.max(jnp.abs(Q.max(axis=1) - V))
    return Solution(V, Q, jnp.argmax(Q, axis=1).astype(jnp.int32), iterations, residual)


def value_iteration(
    P: jax.Array,
    R: jax.Array,
    gamma: jax.Array | float,
    tol: float = 1e-6,
    max_iterations: int = 100_000,
) -> Solution:
    """Optimal values by ``V <- max_a (R + gamma P V)`` sweeps from ``V = 0`` until a
    sweep changes ``V`` by at most ``tol`` (see the module docstring).

    Args:
        P: [S, A, S] transition probabilities; R: [S, A] expected rewards.
        gamma: discount in [0, 1) (traceable).
        tol: stopping tolerance on the sup-norm change of ``V``.
        max_iterations: most sweeps.

    Returns:
        ``Solution``; ``V`` is within ``gamma * tol / (1 - gamma)`` of ``V*`` when
        ``residual <= tol``.
    """
    check_mdp(P, R, gamma, "value_iteration")
    chex.assert_rank([P, R], [3, 2])

    def backup(V):
        return bellman_q(P, R, gamma, V).max(axis=1)

    V, iterations, _ = _fixed_point(backup, jnp.zeros(R.shape[0], R.dtype), tol, max_iterations)
    return _solution(P, R, gamma, V, iterations)


def policy_iteration(
    P: jax.Array,
    R: jax.Array,
    gamma: jax.Array | float,
    method: Literal["exact", "iterative"] = "exact",
    tol: float = 1e-6,
    max_iterations: int = 1_000,
) -> Solution:
    """Howard's policy iteration: evaluate the policy (``policy_evaluation`` with
    ``method``), make it greedy, until it no longer changes.

    The improvement keeps a state's action unless another is better by more than
    ``tol`` (with float rounding, ties would otherwise make it cycle), so it stops
    at a policy whose values satisfy the optimality equation to ``tol``. Starts from
    the policy greedy in ``R`` (one-step lookahead).

    Returns:
        ``Solution`` with ``iterations`` the number of evaluations.
    """
    check_mdp(P, R, gamma, "policy_iteration")
    chex.assert_rank([P, R], [3, 2])

    def evaluate(policy):
        return policy_evaluation(P, R, gamma, policy, method, tol * (1 - gamma) / 2).V

    def cond(carry):
        _, _, stable, k = carry
        return ~stable & (k < max_iterations)

    def body(carry):
        policy, _, _, k = carry
        V = evaluate(policy)
        Q = bellman_q(P, R, gamma, V)
        kept = jnp.take_along_axis(Q, policy[:, None], axis=1)[:, 0]
        improve = Q.max(axis=1) > kept + tol
        new_policy = jnp.where(improve, jnp.argmax(Q, axis=1), policy).astype(jnp.int32)
        return new_policy, V, ~jnp.any(improve), k + 1

    policy = jnp.argmax(R, axis=1).astype(jnp.int32)
    init = (policy, jnp.zeros(R.shape[0], R.dtype), jnp.bool_(False), jnp.int32(0))
    policy, V, _, iterations = jax.lax.while_loop(cond, body, init)
    Q = bellman_q(P, R, gamma, V)
    residual = jnp.max(jnp.abs(Q.max(axis=1) - V))
    return Solution(V, Q, policy, iterations, residual)
