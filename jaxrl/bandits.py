"""Bandit algorithms as pairs of pure functions, and ``make_run`` to run one on a
bandit environment (``envs.bandits``), ``vmap``-able over runs and hyperparameters.

=====================  ===================================================================
algorithm              choice at pull ``t`` (``n_k`` pulls and sample mean ``m_k`` of arm k)
=====================  ===================================================================
``EPSILON_GREEDY``     uniform arm with probability
                       ``eps_t = max(eps_end, eps_start * eps_decay^t)``, else argmax ``m_k``
                       (``m_k = 0`` before the first pull); constant eps: ``eps_decay = 1``
``UCB1``               each arm once, then argmax ``m_k + c sqrt(2 ln t / n_k)`` (Auer,
                       Cesa-Bianchi and Fischer 2002; ``c = ucb_scale``, 1 in the paper)
``BETA_THOMPSON``      argmax of ``p_k ~ Beta(a + successes_k, b + failures_k)``; rewards
                       must be 0 or 1 (Thompson 1933; Agrawal and Goyal 2012)
``GAUSSIAN_THOMPSON``  argmax of a draw from the posterior of each arm's mean under a
                       ``N(0, prior_std^2)`` prior and known reward noise ``noise_std``
``LINUCB``             disjoint LinUCB (Li, Chu, Langford and Schapire 2010, Algorithm 1):
                       per arm ``A = ridge I + sum x x^T``, ``b = sum r x``; argmax
                       ``theta^T x + alpha sqrt(x^T A^-1 x)`` with ``theta = A^-1 b``
``LINEAR_THOMPSON``    linear Thompson sampling (Agrawal and Goyal 2013), one Gaussian
                       posterior per arm: argmax of ``x^T theta_k``,
                       ``theta_k ~ N(A_k^-1 b_k, v^2 A_k^-1)`` with ``v = posterior_scale``
=====================  ===================================================================

An algorithm is a ``BanditAlgorithm``: ``init(num_arms, context_dim, hparams)``
gives its state, ``act(key, state, context, hparams)`` an int32 arm and
``update(state, context, action, reward, hparams)`` the next state; every
hyperparameter is traced (a ``jaxrl.hparams.HParams`` per algorithm), so a sweep is a ``vmap``.
Ties between the best scores are broken uniformly at random (the draws of
Beta and Gaussian Thompson sampling are continuous and tie with probability 0).
The multi-armed algorithms ignore the context (the multi-armed bandits observe
``zeros(1)``).

``make_run(algorithm, env, env_params, num_steps)`` returns ``run(key, hparams)``:
one problem instance (one env reset) and ``num_steps`` pulls in a ``lax.scan``,
with the per-pull regret the env reports. There is no ``jit`` in this module;
callers write ``jax.jit(jax.vmap(run, in_axes=(0, None)))(keys, hparams)``.

Two choices that are exact rather than deviations: the contextual algorithms keep
``A^-1`` (never ``A``) and update it by the Sherman-Morrison formula, so no matrix
is inverted or factorised per pull; and linear Thompson sampling draws the scalar
``x^T theta_k ~ N(x^T mu_k, v^2 x^T A_k^-1 x)`` directly instead of the vector
``theta_k`` (which would need a Cholesky factor of ``A_k^-1`` per arm): the arm
chosen depends on ``theta_k`` only through ``x^T theta_k``, and the arms' samples
are independent, so the choice has the same distribution.

Why hand-written: no maintained JAX library provides these. TF-Agents has LinUCB
and linear Thompson sampling agents in TensorFlow; MABWiser is NumPy and
scikit-learn; ``StoneT2000/jax-bandits`` (GitHub only, not on PyPI) has
multi-armed algorithms (epsilon-greedy, UCB1, UCB2, Beta Thompson sampling) on its
own environments and nothing contextual. Each algorithm here is a few lines.

References: P. Auer, N. Cesa-Bianchi and P. Fischer, "Finite-time analysis of the
multiarmed bandit problem", Machine Learning 47, 2002; S. Agrawal and N. Goyal,
"Analysis of Thompson sampling for the multi-armed bandit problem", COLT 2012, and
"Thompson sampling for contextual bandits with linear payoffs", ICML 2013; L. Li
et al., "A contextual-bandit approach to personalized news article
recommendation", WWW 2010; T. Lattimore and C. Szepesvari, *Bandit Algorithms*,
2020 (chapters 6-8, 19, 36).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from envs.bandits import BernoulliBandit, ContextualBandit, GaussianBandit
from envs.core import Environment
from jaxrl import hparams as H
from jaxrl.config import check_positive
from jaxrl.exploration import argmax_random_ties

# State ----------------------------------------------------------------------------


class ArmStats(NamedTuple):
    """State of the multi-armed algorithms: what each arm has paid so far."""

    counts: jax.Array
    """(K,) float32: pulls of each arm."""
    sums: jax.Array
    """(K,) float32: summed rewards of each arm."""


class LinearStats(NamedTuple):
    """State of the contextual algorithms: each arm's ridge-regression statistics."""

    a_inv: jax.Array
    """(K, d, d) float32: ``(ridge I + sum x x^T)^-1`` over the arm's pulls."""
    b: jax.Array
    """(K, d) float32: ``sum r x`` over the arm's pulls."""


def _init_arm_stats(num_arms: int, context_dim: int, hp: Any) -> ArmStats:
    return ArmStats(jnp.zeros((num_arms,), jnp.float32), jnp.zeros((num_arms,), jnp.float32))


def _update_arm_stats(
    stats: ArmStats, context: jax.Array, action: jax.Array, reward: jax.Array, hp: Any
) -> ArmStats:
    return ArmStats(stats.counts.at[action].add(1.0), stats.sums.at[action].add(reward))


def _init_linear_stats(num_arms: int, context_dim: int, hp: Any) -> LinearStats:
    eye = jnp.eye(context_dim, dtype=jnp.float32) / hp.ridge
    a_inv = jnp.broadcast_to(eye, (num_arms, context_dim, context_dim))
    return LinearStats(a_inv, jnp.zeros((num_arms, context_dim), jnp.float32))


def sherman_morrison(a_inv: jax.Array, x: jax.Array) -> jax.Array:
    """``(A + x x^T)^-1`` from ``A^-1`` (d, d), symmetric, and ``x`` (d,), in O(d^2).

    ``(A + x x^T)^-1 = A^-1 - (A^-1 x)(A^-1 x)^T / (1 + x^T A^-1 x)``; the
    correction is an outer product of one vector, so the result stays symmetric.
    """
    chex.assert_rank([a_inv, x], [2, 1])
    chex.assert_equal_shape_prefix([a_inv, x], 1)
    u = a_inv @ x
    return a_inv - jnp.outer(u, u) / (1.0 + x @ u)


def _update_linear_stats(
    stats: LinearStats, context: jax.Array, action: jax.Array, reward: jax.Array, hp: Any
) -> LinearStats:
    a_inv = stats.a_inv.at[action].set(sherman_morrison(stats.a_inv[action], context))
    return LinearStats(a_inv, stats.b.at[action].add(reward * context))


# Shared math ----------------------------------------------------------------------


def sample_means(stats: ArmStats) -> jax.Array:
    """(K,) mean reward of each arm; 0 for arms never pulled."""
    return stats.sums / jnp.maximum(stats.counts, 1.0)


def linear_posterior(stats: LinearStats, context: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each arm's ridge estimate and its variance factor at ``context`` (d,).

    Returns:
        ``(mean, var)``, both (K,): ``x^T A_k^-1 b_k`` and ``x^T A_k^-1 x`` (clipped
        at 0 against round-off).
    """
    chex.assert_rank([stats.a_inv, stats.b, context], [3, 2, 1])
    a_inv_x = stats.a_inv @ context  # (K, d); A^-1 is symmetric
    mean = jnp.einsum("kd,kd->k", a_inv_x, stats.b)
    var = jnp.maximum(a_inv_x @ context, 0.0)
    return mean, var


# Epsilon-greedy ---------------------------------------------------------------------


@H.hparams
class EpsilonGreedyHParams(H.Epsilon):
    """Traced hyperparameters of epsilon-greedy: ``vmap`` over them to sweep."""

    eps_start: float = 1.0
    """Exploration rate of the first pull, in [0, 1]."""
    eps_end: float = 0.01
    """Floor of the exploration rate, in [0, 1]."""
    eps_decay: float = H.hparam(0.99, H.Range(0, 1, low_open=True))
    """Factor per pull, in (0, 1]: ``eps_t = max(eps_end, eps_start * eps_decay^t)``;
    1 keeps eps constant at ``max(eps_start, eps_end)``."""


def epsilon_schedule(t: jax.Array, hp: EpsilonGreedyHParams) -> jax.Array:
    """Exploration rate at pull ``t`` (0 for the first pull)."""
    return jnp.maximum(hp.eps_end, hp.eps_start * hp.eps_decay**t)


def _epsilon_greedy_act(
    key: jax.Array, stats: ArmStats, context: jax.Array, hp: EpsilonGreedyHParams
) -> jax.Array:
    explore_key, uniform_key, tie_key = jax.random.split(key, 3)
    eps = epsilon_schedule(stats.counts.sum(), hp)
    uniform = jax.random.randint(uniform_key, (), 0, stats.counts.shape[0], jnp.int32)
    greedy = argmax_random_ties(tie_key, sample_means(stats))
    return jnp.where(jax.random.uniform(explore_key) < eps, uniform, greedy)


# UCB1 -------------------------------------------------------------------------------


@H.hparams
class UCB1HParams(H.HParams):
    """Traced hyperparameters of UCB1."""

    ucb_scale: float = H.hparam(1.0, H.NON_NEGATIVE)
    """Scale c of the bonus ``c sqrt(2 ln t / n_k)``, >= 0 (1: Auer et al.; 0: greedy)."""


def ucb1_scores(stats: ArmStats, hp: UCB1HParams) -> jax.Array:
    """(K,) upper confidence bounds; ``inf`` for arms never pulled, so each is pulled once."""
    chex.assert_rank([stats.counts, stats.sums], 1)
    t = jnp.maximum(stats.counts.sum(), 1.0)
    bonus = hp.ucb_scale * jnp.sqrt(2.0 * jnp.log(t) / jnp.maximum(stats.counts, 1.0))
    return jnp.where(stats.counts > 0, sample_means(stats) + bonus, jnp.inf)


def _ucb1_act(key: jax.Array, stats: ArmStats, context: jax.Array, hp: UCB1HParams):
    return argmax_random_ties(key, ucb1_scores(stats, hp))


# Thompson sampling ------------------------------------------------------------------


@H.hparams
class BetaThompsonHParams(H.HParams):
    """Traced hyperparameters of Beta-Bernoulli Thompson sampling."""

    prior_alpha: float = H.hparam(1.0, H.POSITIVE)
    """a of each arm's Beta(a, b) prior, > 0 (1, 1: uniform)."""
    prior_beta: float = H.hparam(1.0, H.POSITIVE)
    """b of each arm's Beta(a, b) prior, > 0."""


def beta_posterior(stats: ArmStats, hp: BetaThompsonHParams) -> tuple[jax.Array, jax.Array]:
    """(K,) parameters ``(a + successes, b + failures)`` of each arm's Beta posterior."""
    chex.assert_rank([stats.counts, stats.sums], 1)
    return hp.prior_alpha + stats.sums, hp.prior_beta + stats.counts - stats.sums


def log_gamma_sample(key: jax.Array, shape: jax.Array) -> jax.Array:
    """``log X`` with ``X ~ Gamma(shape, 1)`` elementwise for ``shape`` (n,) > 0, float32.

    Marsaglia and Tsang's rejection sampler ("A simple method for generating gamma
    variables", ACM TOMS 2000), all elements in one loop that redraws the rejected
    ones; for ``shape < 1``, ``X = Gamma(shape + 1) * U^(1/shape)`` (their boost).
    Written out because ``jax.random.beta`` (one loop and key split per element) was
    about 4x slower here under ``vmap`` on CPU; logs keep tiny shapes from underflowing.
    """
    chex.assert_rank(shape, 1)
    boosted = shape < 1.0
    d = jnp.where(boosted, shape + 1.0, shape) - 1.0 / 3.0
    c = jax.lax.rsqrt(9.0 * d)
    tiny = jnp.finfo(jnp.float32).tiny  # uniforms in [tiny, 1): finite logs

    def propose(u: jax.Array) -> tuple[jax.Array, jax.Array]:
        # Two uniforms (2, n) per element: a standard normal x by inversion, and the test.
        x = jnp.sqrt(2.0) * jax.lax.erf_inv(2.0 * u[0] - 1.0)
        v = (1.0 + c * x) ** 3
        safe_v = jnp.where(v > 0, v, 1.0)
        log_ratio = 0.5 * x**2 + d - d * safe_v + d * jnp.log(safe_v)
        return jnp.log(d * safe_v), (v > 0) & (jnp.log(u[1]) < log_ratio)

    def redraw(carry):
        key, sample, accepted = carry
        key, draw_key = jax.random.split(key)
        proposal, accept = propose(jax.random.uniform(draw_key, (2, *shape.shape), minval=tiny))
        return key, jnp.where(accepted, sample, proposal), accepted | accept

    key, draw_key = jax.random.split(key)
    u = jax.random.uniform(draw_key, (3, *shape.shape), minval=tiny)  # row 2: the boost
    sample, accepted = propose(u[:2])
    _, sample, _ = jax.lax.while_loop(
        lambda carry: ~jnp.all(carry[2]), redraw, (key, sample, accepted)
    )
    return sample + jnp.where(boosted, jnp.log(u[2]) / shape, 0.0)


def sample_beta_logit(key: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """(n,) logits of draws of ``Beta(a, b)`` for ``a``, ``b`` (n,) > 0.

    The draw is ``X / (X + Y)`` with ``X ~ Gamma(a)``, ``Y ~ Gamma(b)``, so its logit
    is ``log X - log Y``: the Beta draw is its ``sigmoid``. Thompson sampling takes the
    argmax of the logits, which in float32 never saturate (draws near 1 would round to
    1.0 and tie).
    """
    chex.assert_rank([a, b], 1)
    chex.assert_equal_shape([a, b])
    log_gammas = log_gamma_sample(key, jnp.concatenate([a, b]))
    return log_gammas[: a.shape[0]] - log_gammas[a.shape[0] :]


def _beta_thompson_act(key, stats: ArmStats, context: jax.Array, hp: BetaThompsonHParams):
    # Continuous draws tie with probability 0: no random tie-break needed.
    a, b = beta_posterior(stats, hp)
    return jnp.argmax(sample_beta_logit(key, a, b)).astype(jnp.int32)


@H.hparams
class GaussianThompsonHParams(H.HParams):
    """Traced hyperparameters of Gaussian Thompson sampling."""

    prior_std: float = H.hparam(1.0, H.POSITIVE)
    """Standard deviation of the N(0, prior_std^2) prior on each arm's mean, > 0."""
    noise_std: float = H.hparam(1.0, H.POSITIVE)
    """Known standard deviation of the reward around the arm's mean, > 0."""


def gaussian_posterior(stats: ArmStats, hp: GaussianThompsonHParams) -> tuple[jax.Array, jax.Array]:
    """(K,) mean and standard deviation of each arm's Normal posterior on its mean.

    Precision ``1/prior_std^2 + n_k/noise_std^2``; mean ``(sum_k/noise_std^2) / precision``.
    """
    chex.assert_rank([stats.counts, stats.sums], 1)
    noise_var = hp.noise_std**2
    precision = 1.0 / hp.prior_std**2 + stats.counts / noise_var
    return stats.sums / noise_var / precision, jax.lax.rsqrt(precision)


def _gaussian_thompson_act(key, stats: ArmStats, context, hp: GaussianThompsonHParams):
    # std > 0, so the draws tie with probability 0: no random tie-break needed.
    mean, std = gaussian_posterior(stats, hp)
    return jnp.argmax(mean + std * jax.random.normal(key, mean.shape)).astype(jnp.int32)


# Contextual -------------------------------------------------------------------------


@H.hparams
class Ridge(H.HParams):
    """The regulariser of the linear algorithms' per-arm least squares."""

    ridge: float = H.hparam(1.0, H.POSITIVE)
    """Ridge regulariser lambda: each arm's ``A`` starts at ``lambda I``, > 0."""


@H.hparams
class LinUCBHParams(Ridge):
    """Traced hyperparameters of disjoint LinUCB."""

    alpha: float = H.hparam(1.0, H.POSITIVE)
    """Width of the confidence bonus ``alpha sqrt(x^T A^-1 x)``, > 0."""


def _linucb_act(key, stats: LinearStats, context: jax.Array, hp: LinUCBHParams):
    mean, var = linear_posterior(stats, context)
    return argmax_random_ties(key, mean + hp.alpha * jnp.sqrt(var))


@H.hparams
class LinearThompsonHParams(Ridge):
    """Traced hyperparameters of linear Thompson sampling."""

    posterior_scale: float = H.hparam(1.0, H.NON_NEGATIVE)
    """v of the posterior ``N(A^-1 b, v^2 A^-1)``, >= 0: the reward noise std for the
    exact Bayesian posterior under a ``N(0, v^2/ridge I)`` prior (0: greedy)."""


def _linear_thompson_act(key, stats: LinearStats, context, hp: LinearThompsonHParams):
    sample_key, tie_key = jax.random.split(key)
    mean, var = linear_posterior(stats, context)
    noise = jax.random.normal(sample_key, mean.shape)
    return argmax_random_ties(tie_key, mean + hp.posterior_scale * jnp.sqrt(var) * noise)


# Algorithms -------------------------------------------------------------------------


class BanditAlgorithm(NamedTuple):
    """A bandit algorithm as pure functions (optax-style); state is a pytree."""

    name: str
    init: Callable[[int, int, Any], Any]
    """``(num_arms, context_dim, hparams) -> state``."""
    act: Callable[[jax.Array, Any, jax.Array, Any], jax.Array]
    """``(key, state, context (d,), hparams) -> action``, int32 scalar."""
    update: Callable[[Any, jax.Array, jax.Array, jax.Array, Any], Any]
    """``(state, context (d,), action, reward, hparams) -> state``."""
    hparams: H.HParams
    """The default hyperparameters; their type is the one ``run`` accepts."""
    contextual: bool = False
    """Needs ``ContextualBandit`` (it models rewards as linear in the context)."""
    binary_rewards: bool = False
    """Needs rewards in {0, 1}."""


_arms = dict(init=_init_arm_stats, update=_update_arm_stats)
_linear = dict(init=_init_linear_stats, update=_update_linear_stats, contextual=True)
EPSILON_GREEDY = BanditAlgorithm(
    "eps-greedy", act=_epsilon_greedy_act, hparams=EpsilonGreedyHParams(), **_arms
)
UCB1 = BanditAlgorithm("ucb1", act=_ucb1_act, hparams=UCB1HParams(), **_arms)
BETA_THOMPSON = BanditAlgorithm(
    "beta-thompson",
    act=_beta_thompson_act,
    hparams=BetaThompsonHParams(),
    binary_rewards=True,
    **_arms,
)
GAUSSIAN_THOMPSON = BanditAlgorithm(
    "gaussian-thompson", act=_gaussian_thompson_act, hparams=GaussianThompsonHParams(), **_arms
)
LINUCB = BanditAlgorithm("linucb", act=_linucb_act, hparams=LinUCBHParams(), **_linear)
LINEAR_THOMPSON = BanditAlgorithm(
    "linear-thompson", act=_linear_thompson_act, hparams=LinearThompsonHParams(), **_linear
)
ALGORITHMS: tuple[BanditAlgorithm, ...] = (
    EPSILON_GREEDY, UCB1, BETA_THOMPSON, GAUSSIAN_THOMPSON, LINUCB, LINEAR_THOMPSON,
)  # fmt: skip


# Running ----------------------------------------------------------------------------


def unsupported_reason(algorithm: BanditAlgorithm, env: Environment, env_params: Any) -> str | None:
    """Why ``algorithm`` cannot run on ``env`` (wrappers are looked through), or None."""
    bare = env.unwrapped
    kinds = (BernoulliBandit, GaussianBandit, ContextualBandit)
    if not isinstance(bare, kinds):
        return (
            f"env={bare!r} is not allowed; it must be one of "
            f"{', '.join(k.__name__ for k in kinds)} (envs.bandits)"
        )
    if algorithm.contextual and not isinstance(bare, ContextualBandit):
        return (
            f"env={bare!r} is not allowed for {algorithm.name}; it models rewards linear "
            "in a context and needs a ContextualBandit"
        )
    binary = isinstance(bare, BernoulliBandit) or (
        isinstance(bare, ContextualBandit) and env_params.link == "logistic"
    )
    if algorithm.binary_rewards and not binary:
        return (
            f"env={bare!r} is not allowed for {algorithm.name}; it needs rewards in {{0, 1}}: "
            'a BernoulliBandit or a ContextualBandit with link="logistic"'
        )
    return None


def make_run(
    algorithm: BanditAlgorithm, env: Environment, env_params: Any, num_steps: int
) -> Callable[[jax.Array, H.HParams], tuple[Any, dict[str, jax.Array]]]:
    """``run(key, hparams) -> (final_state, metrics)``: one problem instance, ``num_steps`` pulls.

    ``env`` may be wrapped; the bare env (``env.unwrapped``) is stepped, so a time
    limit never resets the instance mid-run. Raises ``ValueError`` before anything
    is traced if ``num_steps < 1`` or ``algorithm`` cannot run on ``env``. ``run``
    checks concrete hyperparameters when it is called or traced (``TypeError`` for
    another algorithm's, ``ValueError`` out of range); under ``jit`` they are
    tracers, so call ``hparams.validate()`` first.

    Returns:
        ``run``; its metrics hold per-pull arrays of shape (num_steps,): ``regret``
        (float32, the env's pseudo-regret), ``reward`` (float32), ``action`` (int32)
        and ``optimal`` (bool, the action was an optimal arm).
    """
    check_positive("make_run", num_steps=num_steps)
    reason = unsupported_reason(algorithm, env, env_params)
    if reason is not None:
        raise ValueError(reason)
    bare = env.unwrapped
    num_arms = bare.action_space(env_params).n
    context_dim = bare.observation_space(env_params).shape[0]
    hparams_cls = type(algorithm.hparams)

    def run(key: jax.Array, hparams: H.HParams) -> tuple[Any, dict[str, jax.Array]]:
        if not isinstance(hparams, hparams_cls):
            raise TypeError(
                f"{algorithm.name} takes {hparams_cls.__name__}, not {type(hparams).__name__}"
            )
        hparams.validate()
        reset_key, key = jax.random.split(key)
        env_state, timestep = bare.reset(reset_key, env_params)
        state = algorithm.init(num_arms, context_dim, hparams)

        def pull(carry, key):
            state, env_state, context = carry
            act_key, step_key = key
            action = algorithm.act(act_key, state, context, hparams)
            env_state, timestep = bare.step(step_key, env_state, action, env_params)
            state = algorithm.update(state, context, action, timestep.reward, hparams)
            metrics = {
                "regret": timestep.info["regret"],
                "reward": timestep.reward,
                "action": action,
                "optimal": action == timestep.info["optimal_action"],
            }
            return (state, env_state, timestep.obs), metrics

        carry = (state, env_state, timestep.obs)
        # Every pull's two keys in one bulk split.
        keys = jax.random.split(key, (num_steps, 2))
        (state, _, _), metrics = jax.lax.scan(pull, carry, keys)
        return state, metrics

    return run
