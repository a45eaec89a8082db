"""Derivative-free policy search over a policy network's flattened parameters: the
cross-entropy method (CEM; Rubinstein 1999) with the decreasing extra noise of
Szita & Lőrincz (2006, "Learning Tetris using the noisy cross-entropy method"),
and pure random search as the baseline below it.

One generation (``method="cem"``):

1. sample ``population_size`` parameter vectors ``theta_i ~ N(mu, diag(sigma^2))``;
2. run each for ``episodes_per_candidate`` episodes with its deterministic policy
   (argmax of logits for discrete actions; ``tanh`` in ``[-1, 1]``, rescaled to the
   action bounds, for continuous ones) and score it by its mean return;
3. refit the Gaussian to the ``num_elites`` best (``cem_update``):
   ``mu <- a mean(elites) + (1 - a) mu``,
   ``sigma^2 <- a var(elites) + (1 - a) sigma^2 + Z_t``, with ``a`` the ``smoothing``
   and ``Z_t = extra_std^2 max(0, 1 - t / (extra_decay_fraction * num_generations))``
   the extra noise that keeps the distribution from collapsing onto early elites
   (Szita & Lőrincz's ``Z_t = max(5 - t / 10, 0)`` is this linear decay).

``method="random_search"`` draws every generation from the fixed initial distribution
``N(mu_0, init_std^2)`` and keeps the best candidate seen. This is pure random
sampling, not the augmented random search of Mania et al. (2018), which takes
finite-difference gradient steps; it is the floor any search should clear.

The population is evaluated as one ``vmap`` over candidates of
``jaxrl.evaluate.evaluate`` (episodes stepped to the env's time limit, rewards after
an episode's end masked). Every candidate of a generation sees the same episode keys
(common random numbers), so candidates are ranked on the same start states. A
generation therefore computes ``population_size * episodes_per_candidate *
time_limit`` env steps whatever the episodes' lengths: that is the step count
reported (``CEMConfig.steps_per_update``).

Defaults, measured on gymnax CartPole-v1: a linear policy (``hidden_sizes=()``: 10
parameters), 64 candidates, 13 elites, 20 generations; all of 256 seeds then reach
500 on 32 greedy episodes (pure random search with that budget: 61% of 128 seeds).
Linear because a diagonal Gaussian needs more candidates as the dimension grows: with
32 candidates and 15 generations, 95% of 64 seeds solved CartPole with the linear
policy and 83% with ``hidden_sizes=(16,)`` (114 parameters), which also ran 3x slower.

Deviations: the mean starts at the network's initialisation (``jaxrl.networks``)
rather than at zero, so seeds start from different points; the elite variance is the
maximum-likelihood (``ddof=0``) one.

Hand-written rather than taken from evosax (a well-kept JAX library of 30+ evolution
strategies whose Gaussian strategies with elite selection are close to CEM): evosax
is not one of the project's dependencies, the refit itself is ten lines
(``cem_update``), and this way it keeps the agent contract (traced hyperparameters,
``episode_return_sum`` metrics, ``make_policy``) with no adapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from envs.core import Environment
from jaxrl import config as C
from jaxrl import hparams as H
from jaxrl import rollout
from jaxrl.agents import Agent
from jaxrl.evaluate import episode_limit, evaluate
from jaxrl.networks import Actor, action_spec, check_finite_bounds, obs_ndim
from jaxrl.training import Trainer


@dataclasses.dataclass(frozen=True)
class CEMConfig:
    """Static settings of CEM and random search: sizes and loop lengths."""

    population_size: int = 64
    """Candidate parameter vectors evaluated per generation."""
    num_generations: int = 20
    """Generations per seed (the unit of ``num_updates``)."""
    elite_fraction: float = 0.2
    """Fraction of the population refitted to, in (0, 1]; ``num_elites`` rounds it (>= 1)."""
    episodes_per_candidate: int = 1
    """Episodes each candidate is scored on (its mean return)."""
    hidden_sizes: tuple[int, ...] = ()
    """Policy torso layer sizes; () is a linear policy (why: see the module docstring)."""
    activation: Literal["tanh", "relu", "gelu", "silu"] = "tanh"
    """Hidden-layer nonlinearity."""
    method: Literal["cem", "random_search"] = "cem"
    """"cem" refits the sampling distribution to the elites; "random_search" keeps the
    initial one and the best candidate seen."""

    def __post_init__(self):
        owner = "CEMConfig"
        C.check_positive(
            owner,
            population_size=self.population_size,
            num_generations=self.num_generations,
            episodes_per_candidate=self.episodes_per_candidate,
        )
        fraction = self.elite_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            fraction = float("nan")  # a non-number fails the range check below
        if not 0.0 < fraction <= 1.0:
            raise ValueError(
                f"{owner}.elite_fraction={self.elite_fraction!r} is not allowed; "
                "it must be a float in (0, 1]"
            )
        if not isinstance(self.hidden_sizes, tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in self.hidden_sizes
        ):
            raise ValueError(
                f"{owner}.hidden_sizes={self.hidden_sizes!r} is not allowed; "
                "it must be a tuple of ints >= 1 (() for a linear policy)"
            )
        C.check_choice(owner, "activation", self.activation, ("tanh", "relu", "gelu", "silu"))
        C.check_choice(owner, "method", self.method, ("cem", "random_search"))

    @property
    def num_elites(self) -> int:
        """``elite_fraction * population_size`` rounded to the nearest int, at least 1."""
        return max(1, round(self.elite_fraction * self.population_size))

    @property
    def num_updates(self) -> int:
        return self.num_generations

    def steps_per_update(self, env: Environment, env_params: Any) -> int:
        """Env steps one generation computes: every candidate episode runs to the time limit."""
        return self.population_size * self.episodes_per_candidate * episode_limit(env, env_params)


@H.hparams
class CEMHParams(H.HParams):
    """Traced hyperparameters: ``vmap`` over them to sweep in one compile."""

    init_std: float = H.hparam(0.25, H.POSITIVE)
    """Standard deviation of the initial sampling distribution (every parameter)."""
    extra_std: float = H.hparam(0.3, H.NON_NEGATIVE)
    """Std of the extra noise added to the elites' (Szita & Lőrincz's sqrt(Z_0)); CEM only."""
    extra_decay_fraction: float = H.hparam(0.5, H.POSITIVE)
    """The extra noise variance decays linearly to 0 over this fraction of the generations
    (> 1: it never reaches 0); CEM only."""
    smoothing: float = H.hparam(1.0, H.Range(0, 1, low_open=True))
    """Weight of the elites' statistics against the previous ones, in (0, 1]; CEM only."""


class CEMState(NamedTuple):
    params: jax.Array  # [P] mean of the sampling distribution (flat network parameters)
    std: jax.Array  # [P] its standard deviation
    best_params: jax.Array  # [P] the best candidate seen
    best_return: jax.Array  # [] its mean return (-inf before the first generation)
    key: jax.Array


def cem_update(
    population: jax.Array,
    fitness: jax.Array,
    mean: jax.Array,
    std: jax.Array,
    num_elites: int,
    extra_var: jax.Array | float,
    smoothing: jax.Array | float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Refit a diagonal Gaussian to the ``num_elites`` fittest candidates.

    Args:
        population: ``[N, P]`` candidates; ``fitness``: ``[N]`` their scores (higher is
            better; ties go to the lower index).
        mean, std: ``[P]`` the distribution they were drawn from.
        extra_var: variance added to every parameter (the noise floor ``Z_t``).
        smoothing: weight ``a`` of the elites' statistics against ``mean`` and ``std^2``.
    Returns:
        ``(mean [P], std [P], elites [num_elites])``: the new distribution,
        ``a mean(elites) + (1 - a) mean`` and ``sqrt(a var(elites) + (1 - a) std^2 +
        extra_var)``, and the elites' indices, fittest first.
    """
    chex.assert_rank([population, fitness, mean, std], [2, 1, 1, 1])
    chex.assert_equal_shape([mean, std, population[0]])
    _, elites = jax.lax.top_k(fitness, num_elites)
    chosen = population[elites]
    new_mean = smoothing * chosen.mean(0) + (1.0 - smoothing) * mean
    new_var = smoothing * chosen.var(0) + (1.0 - smoothing) * jnp.square(std) + extra_var
    return new_mean, jnp.sqrt(new_var), elites


def make_network(config: CEMConfig, env: Environment, env_params: Any) -> Actor:
    """The policy: ``Actor`` with a categorical head (acted on by its argmax) for
    Discrete actions, the deterministic ``tanh`` head for a float Box."""
    spec = action_spec("CEM", env, env_params)
    if not spec.discrete:
        check_finite_bounds("CEM", env, env_params)
    return Actor(
        spec.dim,
        "categorical" if spec.discrete else "deterministic",
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        obs_ndim=obs_ndim(env, env_params),
    )


def flat_policy(network: Actor, unravel: Callable) -> Callable:
    """``policy(theta [P]) -> act(key, obs [N, ...]) -> action [N, ...]`` (greedy; actions
    of a Box in ``[-1, 1]``)."""

    def policy(theta: jax.Array) -> Callable:
        def act(key: jax.Array, obs: jax.Array) -> jax.Array:
            out = network.apply(unravel(theta), obs)
            return out.mode() if network.kind == "categorical" else out

        return act

    return policy


def _unravel(network: Actor, env: Environment, env_params: Any) -> Callable:
    """The map from flat ``[P]`` vectors to ``network``'s parameter pytree."""
    dummy = jnp.zeros((1, *env.observation_space(env_params).shape), jnp.float32)
    shapes = jax.eval_shape(network.init, jax.random.key(0), dummy)
    return ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))[1]


def make_train(config: CEMConfig, env: Environment, env_params: Any) -> Trainer:
    """``train(key, hparams) -> (CEMState, metrics)``; metrics have a leading generation
    axis: ``episode_return_sum`` and ``episodes`` (all candidate episodes), ``return_mean``,
    ``elite_return`` and ``best_return`` (of candidates' mean returns) and ``std_mean``.
    A ``jaxrl.training.Trainer`` (one update per generation), so it also runs in chunks
    from ``train.start``."""
    network = make_network(config, env, env_params)
    unit_env = rollout.unit_action_env(env, env_params)
    limit = episode_limit(env, env_params)
    obs_shape = env.observation_space(env_params).shape
    n, episodes, generations = (
        config.population_size,
        config.episodes_per_candidate,
        config.num_generations,
    )
    # the flat parameters' layout depends only on the network's shapes: static
    policy = flat_policy(network, _unravel(network, env, env_params))

    def fitness(theta: jax.Array, key: jax.Array) -> jax.Array:
        return evaluate(unit_env, env_params, policy(theta), key, episodes, limit)

    def init(key: jax.Array, hp: CEMHParams) -> CEMState:
        key, init_key = jax.random.split(key)
        mean0, _ = ravel_pytree(network.init(init_key, jnp.zeros((1, *obs_shape))))
        std0 = jnp.full_like(mean0, hp.init_std)
        return CEMState(mean0, std0, mean0, jnp.asarray(-jnp.inf, jnp.float32), key)

    def generation(state: CEMState, hp: CEMHParams, t: jax.Array) -> tuple[CEMState, dict]:
        """One generation; ``t`` is its 0-based index over the whole run."""
        key, sample_key, eval_key = jax.random.split(state.key, 3)
        # 1. sample candidates around the mean (random search: the fixed initial one)
        noise = jax.random.normal(sample_key, (n, state.params.size))
        population = state.params[None] + state.std[None] * noise
        # 2. evaluate them on the same episode keys: returns [n, episodes]
        returns = jax.vmap(fitness, in_axes=(0, None))(population, eval_key)
        score = returns.mean(-1)
        # 3. refit to the elites, with the decaying extra noise
        decay = jnp.maximum(0.0, 1.0 - t / (hp.extra_decay_fraction * generations))
        mean, std, elites = cem_update(
            population,
            score,
            state.params,
            state.std,
            config.num_elites,
            jnp.square(hp.extra_std) * decay,
            hp.smoothing,
        )
        if config.method == "random_search":  # the initial distribution, always
            mean, std = state.params, state.std
        # 4. keep the best candidate seen
        better = score[elites[0]] > state.best_return
        best_params = jnp.where(better, population[elites[0]], state.best_params)
        best_return = jnp.where(better, score[elites[0]], state.best_return)
        metrics = {
            "episode_return_sum": returns.sum(),
            "episodes": jnp.asarray(returns.size, jnp.float32),
            "return_mean": score.mean(),
            "elite_return": score[elites].mean(),
            "best_return": score[elites[0]],
            "std_mean": std.mean(),
        }
        return CEMState(mean, std, best_params, best_return, key), metrics

    return Trainer(init, generation, generations)


def make_policy(
    config: CEMConfig,
    env: Environment,
    env_params: Any,
    state: CEMState,
    deterministic: bool = True,
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(key, obs [N, ...]) -> action [N, ...]`` in ``env``'s own action range, with
    the mean parameters (CEM) or the best candidate (random search). The policies are
    deterministic functions of the observation, so ``deterministic`` changes nothing."""
    del deterministic
    network = make_network(config, env, env_params)
    theta = state.best_params if config.method == "random_search" else state.params
    act_unit = flat_policy(network, _unravel(network, env, env_params))(theta)
    if network.kind == "categorical":
        return act_unit
    to_env = rollout.env_action(env, env_params)
    return lambda key, obs: to_env(act_unit(key, obs))


AGENT = Agent(
    name="cem",
    description="cross-entropy method",
    Config=CEMConfig,
    HParams=CEMHParams,
    make_train=make_train,
    make_policy=make_policy,
)
