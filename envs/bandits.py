"""Multi-armed and contextual bandits: Bernoulli, Gaussian and linear/logistic contextual.

=========================  ===============================================================
environment                model
=========================  ===============================================================
``BernoulliBandit``        K arms (default 10), success probabilities ``p_k ~ U[0, 1]``
                           drawn at reset (or fixed by ``params.means``);
                           reward ``r ~ Bernoulli(p_a)``
``GaussianBandit``         K arms (default 10), means ``mu_k ~ N(0, prior_std^2)`` drawn at
                           reset (or fixed by ``params.means``); reward
                           ``r ~ N(mu_a, noise_std^2)``
``ContextualBandit``       K arms (default 5), d-dimensional contexts (default 5)
                           ``x_t ~ N(0, I)``, arm parameters ``theta_k ~ N(0, I * scale^2/d)``
                           drawn at reset (or fixed by ``params.theta``), so that
                           ``x . theta_k`` has standard deviation about ``theta_scale``.
                           ``link="linear"``: ``r ~ N(x . theta_a, noise_std^2)``;
                           ``link="logistic"``: ``r ~ Bernoulli(sigmoid(x . theta_a))``
=========================  ===============================================================

A bandit episode is one problem instance: the arm means (or ``theta``) are drawn
at reset and stay fixed until the next reset, so an agent that learns within an
episode (UCB, Thompson sampling, a recurrent policy) can be compared with one
that cannot. The environments never terminate; ``envs.make`` adds a 1000-step
time limit (truncation).

The multi-armed bandits have nothing to observe: their observation is the
constant ``zeros(1)`` float32. The contextual bandit observes the current
context ``x_t``; the step's reward depends on the context the action was taken
in, and the next context is drawn independently.

Every step reports in ``info``:

- ``regret``: the pseudo-regret of the pull, ``max_k E[r | k] - E[r | a]`` (for
  the contextual bandit, conditional on the context the action was taken in).
  It is ``>= 0``, and exactly 0 for an optimal arm; sum it over an episode for
  the cumulative (pseudo-)regret.
- ``optimal_action``: an optimal arm (int32; for the contextual bandit, the
  optimal arm for the context observed *before* the step, i.e. the one the
  action is judged against).
- ``mean_reward``: ``E[r | a]``, the expected reward of the chosen arm.

After ``reset`` ``regret`` and ``mean_reward`` are 0 and ``optimal_action`` is
the optimal arm of the new instance (for the contextual bandit: for its first
context), so ``info`` has the same structure after reset and step.

The arm means are in the state (``state.means``; ``state.theta`` and
``state.context`` for the contextual bandit) for algorithms and tests that need
the ground truth. Discrete actions outside ``0 .. K - 1`` are clipped into range
(``envs.wrappers.DebugChecks`` reports them).

References: T. Lattimore and C. Szepesvari, *Bandit Algorithms*, Cambridge
University Press, 2020 (chapters 4-8, 19-20); L. Li, W. Chu, J. Langford and
R. E. Schapire, "A contextual-bandit approach to personalized news article
recommendation", WWW 2010 (LinUCB, the linear model used here); the logistic
link follows S. Filippi et al., "Parametric bandits: the generalized linear
case", NeurIPS 2010.

Why hand-written: gymnax's ``BernoulliBandit-misc`` and ``GaussianBandit-misc``
are two-armed meta-RL tasks (arm probabilities ``{p, 1 - p}`` with ``p`` picked
from a fixed pair; one fixed arm and one Gaussian arm), end episodes through a
single ``done`` that mixes the time limit with termination, report no regret,
and have no contextual variant. Here K arms are drawn per episode from the
reset key (so ``vmap`` over keys gives independent problem instances), can be
fixed through params, and every pull reports its regret.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs._validation import apply_overrides, check_range, concrete
from envs.core import Environment, restart, transition
from envs.spaces import Box, Discrete

LINKS = ("linear", "logistic")


def _check_num_arms(owner: str, num_arms: int) -> None:
    if int(num_arms) < 2:
        raise ValueError(f"{owner}.num_arms={num_arms} is not allowed; it must be >= 2")


def _check_shape(owner: str, name: str, value: Any, shape: tuple[int, ...]) -> None:
    # Leading batch dimensions are allowed, so batched params can be built and vmapped;
    # plain ints are ``vmap`` in_axes placeholders (``jax.tree.map(lambda _: 0, params)``).
    if isinstance(value, int):
        return
    array = concrete(value)
    if array is not None and array.shape[array.ndim - len(shape) :] != shape:
        raise ValueError(
            f"{owner}.{name} has shape {array.shape}, which is not allowed; it must have "
            f"shape {shape} (set num_arms / context_dim to match)"
        )


def _clip_action(action: Any, num_arms: int) -> jax.Array:
    return jnp.clip(jnp.asarray(action, jnp.int32), 0, num_arms - 1)


def _regret_info(expected: jax.Array, action: jax.Array) -> dict[str, jax.Array]:
    """``info`` for pulling ``action`` when the arms' expected rewards are ``expected`` (K,)."""
    chosen = expected[action]
    return {
        # max(...) is one of the elements, so the difference is exactly 0 for an optimal arm.
        "regret": jnp.max(expected) - chosen,
        "optimal_action": jnp.argmax(expected).astype(jnp.int32),
        "mean_reward": chosen,
    }


def _reset_info(expected: jax.Array) -> dict[str, jax.Array]:
    zero = jnp.zeros((), jnp.float32)
    return {
        "regret": zero,
        "optimal_action": jnp.argmax(expected).astype(jnp.int32),
        "mean_reward": zero,
    }


# Multi-armed bandits ----------------------------------------------------------


@struct.dataclass
class BanditState:
    means: jax.Array
    """(K,) float32: the expected reward of each arm in this episode."""


@struct.dataclass
class BernoulliBanditParams:
    num_arms: int = struct.field(pytree_node=False, default=10)
    """Number of arms K (static, >= 2)."""
    means: jax.Array | None = None
    """Fixed success probabilities, shape (K,) in [0, 1]; None draws them U[0, 1] at reset."""

    def __post_init__(self):
        owner = type(self).__name__
        _check_num_arms(owner, self.num_arms)
        if self.means is not None:
            _check_shape(owner, "means", self.means, (self.num_arms,))
            check_range(owner, "means", self.means, 0.0, 1.0)


@struct.dataclass
class GaussianBanditParams:
    num_arms: int = struct.field(pytree_node=False, default=10)
    """Number of arms K (static, >= 2)."""
    noise_std: float = 1.0
    """Standard deviation of the reward around the arm's mean (>= 0)."""
    prior_std: float = 1.0
    """Arm means are drawn N(0, prior_std^2) at reset (>= 0); unused if ``means`` is set."""
    means: jax.Array | None = None
    """Fixed arm means, shape (K,); None draws them at reset."""

    def __post_init__(self):
        owner = type(self).__name__
        _check_num_arms(owner, self.num_arms)
        check_range(owner, "noise_std", self.noise_std, 0.0)
        check_range(owner, "prior_std", self.prior_std, 0.0)
        if self.means is not None:
            _check_shape(owner, "means", self.means, (self.num_arms,))
            check_range(owner, "means", self.means, -np.inf, np.inf)  # rejects NaN


class _MultiArmedBandit(Environment[BanditState, Any]):
    """K-armed bandit with arm means fixed per episode; subclasses say how to draw and sample."""

    def _draw_means(self, key: jax.Array, params: Any) -> jax.Array:
        raise NotImplementedError

    def _sample_reward(self, key: jax.Array, mean: jax.Array, params: Any) -> jax.Array:
        raise NotImplementedError

    def reset(self, key, params):
        if params.means is None:
            means = self._draw_means(key, params)
        else:
            means = jnp.asarray(params.means, jnp.float32)
        return BanditState(means), restart(jnp.zeros((1,), jnp.float32), _reset_info(means))

    def step(self, key, state, action, params):
        action = _clip_action(action, params.num_arms)
        info = _regret_info(state.means, action)
        reward = self._sample_reward(key, info["mean_reward"], params)
        return state, transition(jnp.zeros((1,), jnp.float32), reward, False, info)

    def observation_space(self, params):
        # A degenerate Box(0, 0) is legal but trips Gymnasium's checker; zeros lie inside [0, 1].
        return Box(0.0, 1.0, (1,), jnp.float32)

    def action_space(self, params):
        return Discrete(params.num_arms)


class BernoulliBandit(_MultiArmedBandit):
    """K-armed Bernoulli bandit; success probabilities drawn U[0, 1] per episode.

    ``state.means`` holds the probabilities; actions out of range are clipped.
    """

    description = "Bernoulli K-armed bandit, arm probabilities drawn U[0,1] per episode"

    def default_params(self, **overrides) -> BernoulliBanditParams:
        return apply_overrides(BernoulliBanditParams(), overrides)

    def _draw_means(self, key, params):
        return jax.random.uniform(key, (params.num_arms,), jnp.float32)

    def _sample_reward(self, key, mean, params):
        return jax.random.bernoulli(key, mean).astype(jnp.float32)


class GaussianBandit(_MultiArmedBandit):
    """K-armed Gaussian bandit; means drawn N(0, prior_std^2) per episode.

    ``state.means`` holds the means; actions out of range are clipped.
    """

    description = "Gaussian K-armed bandit, arm means drawn N(0,1) per episode, unit noise"

    def default_params(self, **overrides) -> GaussianBanditParams:
        return apply_overrides(GaussianBanditParams(), overrides)

    def _draw_means(self, key, params):
        return params.prior_std * jax.random.normal(key, (params.num_arms,), jnp.float32)

    def _sample_reward(self, key, mean, params):
        return mean + params.noise_std * jax.random.normal(key, (), jnp.float32)


# Contextual bandit ------------------------------------------------------------


@struct.dataclass
class ContextualBanditState:
    theta: jax.Array
    """(K, d) float32: arm parameters of this episode."""
    context: jax.Array
    """(d,) float32: the context the next action is taken in (the observation)."""


@struct.dataclass
class ContextualBanditParams:
    num_arms: int = struct.field(pytree_node=False, default=5)
    """Number of arms K (static, >= 2)."""
    context_dim: int = struct.field(pytree_node=False, default=5)
    """Context dimension d (static, >= 1)."""
    link: str = struct.field(pytree_node=False, default="linear")
    """``"linear"``: Gaussian reward with mean ``x . theta_a``; ``"logistic"``: Bernoulli
    reward with probability ``sigmoid(x . theta_a)`` (static)."""
    noise_std: float = 0.5
    """Reward noise standard deviation for the linear link (>= 0; unused for logistic)."""
    theta_scale: float = 1.0
    """theta_k ~ N(0, I * theta_scale^2 / d), so x . theta_k has std ~theta_scale (>= 0)."""
    theta: jax.Array | None = None
    """Fixed arm parameters, shape (K, d); None draws them at reset."""

    def __post_init__(self):
        owner = type(self).__name__
        _check_num_arms(owner, self.num_arms)
        if int(self.context_dim) < 1:
            raise ValueError(
                f"{owner}.context_dim={self.context_dim} is not allowed; it must be >= 1"
            )
        if self.link not in LINKS:
            raise ValueError(
                f"{owner}.link={self.link!r} is not allowed; it must be one of {', '.join(LINKS)}"
            )
        check_range(owner, "noise_std", self.noise_std, 0.0)
        check_range(owner, "theta_scale", self.theta_scale, 0.0)
        if self.theta is not None:
            _check_shape(owner, "theta", self.theta, (self.num_arms, self.context_dim))
            check_range(owner, "theta", self.theta, -np.inf, np.inf)  # rejects NaN


def expected_rewards(
    theta: jax.Array, context: jax.Array, params: ContextualBanditParams
) -> jax.Array:
    """``E[r | x, k]`` for every arm.

    Args:
        theta: (K, d) arm parameters.
        context: (d,) context.
        params: for the link function.

    Returns:
        (K,) float32: ``theta @ x`` (linear) or ``sigmoid(theta @ x)`` (logistic).
    """
    logits = theta @ context
    return jax.nn.sigmoid(logits) if params.link == "logistic" else logits


class ContextualBandit(Environment[ContextualBanditState, ContextualBanditParams]):
    """Linear (or logistic) contextual bandit with ``x_t ~ N(0, I)``; see the module docstring.

    The observation is the current context, float32 (d,); actions out of range are clipped.
    """

    description = "Linear contextual bandit (LinUCB setting), 5 arms, 5-dim Gaussian contexts"

    def default_params(self, **overrides) -> ContextualBanditParams:
        return apply_overrides(ContextualBanditParams(), overrides)

    def reset(self, key, params):
        k, d = params.num_arms, params.context_dim
        if params.theta is None:
            # One draw for theta and the first context: fewer kernels under vmapped auto-reset.
            normals = jax.random.normal(key, (k + 1, d), jnp.float32)
            theta = (params.theta_scale / np.sqrt(d)) * normals[:k]
            context = normals[k]
        else:
            theta = jnp.asarray(params.theta, jnp.float32)
            context = jax.random.normal(key, (d,), jnp.float32)
        info = _reset_info(expected_rewards(theta, context, params))
        return ContextualBanditState(theta, context), restart(context, info)

    def step(self, key, state, action, params):
        action = _clip_action(action, params.num_arms)
        info = _regret_info(expected_rewards(state.theta, state.context, params), action)
        mean = info["mean_reward"]
        if params.link == "logistic":
            reward_key, context_key = jax.random.split(key)
            reward = jax.random.bernoulli(reward_key, mean).astype(jnp.float32)
            context = jax.random.normal(context_key, (params.context_dim,), jnp.float32)
        else:
            # One draw for the reward noise and the next context.
            normals = jax.random.normal(key, (params.context_dim + 1,), jnp.float32)
            reward = mean + params.noise_std * normals[0]
            context = normals[1:]
        return state.replace(context=context), transition(context, reward, False, info)

    def observation_space(self, params):
        return Box(-jnp.inf, jnp.inf, (params.context_dim,), jnp.float32)

    def action_space(self, params):
        return Discrete(params.num_arms)
