"""Rollout collection: ``lax.scan`` over a batch of environments (``envs.vector.VecEnv``),
with optional running observation and reward normalisation carried along.

``collect`` is the only place agents step environments. It records, per step,
the observation the action was taken in, the action, the reward, both episode
flags, the pre-reset next observation (``info["final_obs"]``, to bootstrap on
truncation), whatever the policy returned (log-probs, values) and the episode
statistics for logging. Arrays are time-major: ``[T, num_envs, ...]``.

Normalisation (Andrychowicz et al. 2021, "What matters in on-policy RL"):
observations by running mean and variance over every observation seen (shared
across the batch, so one set of statistics for the agent); rewards divided by
the running standard deviation of the discounted return, which resets at
episode ends. The statistics are ``envs.running_stats`` pytrees in the carry,
so checkpoints and device merges treat them like any other state.

``batched_env`` builds the ``VecEnv`` every agent steps (episode statistics,
continuous actions clipped or rescaled); ``unit_action_env`` and ``env_action``
map the [-1, 1] actions of squashed policies to the env's range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from envs import running_stats, wrappers
from envs.core import Environment, Wrapper
from envs.spaces import Discrete
from envs.vector import VecEnv
from jaxrl.parallel import EnvShards


class Transition(NamedTuple):
    obs: Any  # [T, N, ...] (normalised if enabled, unless collected with raw_obs)
    first: jax.Array  # [T, N] obs is the first of its episode (recurrent policies reset here)
    action: jax.Array  # [T, N, ...]
    reward: jax.Array  # [T, N] (scaled if reward normalisation is on)
    terminated: jax.Array  # [T, N]
    truncated: jax.Array  # [T, N]
    next_obs: Any  # [T, N, ...] pre-reset next observation (normalised like obs)
    extras: Any  # what the policy returned per step
    episode_return: jax.Array  # [T, N] undiscounted, raw rewards (see EpisodeStatistics)
    episode_done: jax.Array  # [T, N]


class Normalizer(NamedTuple):
    """Running statistics; ``None`` fields mean that normalisation is off."""

    obs: running_stats.RunningStats | None
    return_stats: running_stats.RunningStats | None
    discounted_return: jax.Array | None  # [N]


class EnvCarry(NamedTuple):
    env_state: Any
    obs: Any  # raw observation of the current step, [N, ...]
    first: jax.Array  # [N] bool, obs starts an episode
    norm: Normalizer


def init_carry(
    venv: VecEnv,
    env_params: Any,
    key: jax.Array,
    normalize_obs: bool,
    normalize_reward: bool,
    shards: EnvShards | None = None,
) -> EnvCarry:
    """Reset every env (each from its own key); start the running statistics from the
    first observations. ``shards``: ``venv`` holds this device's share of the envs."""
    shards = shards or EnvShards(venv.num_envs)
    env_state, ts = venv.reset(shards.keys(key), env_params)
    obs_stats = None
    if normalize_obs:
        shape = venv.observation_space(env_params).shape
        obs_stats = running_stats.update(running_stats.init(shape), ts.obs, shards.axis_name)
    ret_stats, disc = None, None
    if normalize_reward:
        ret_stats = running_stats.init(())
        disc = jnp.zeros((venv.num_envs,), jnp.float32)
    first = jnp.ones((venv.num_envs,), jnp.bool_)
    return EnvCarry(env_state, ts.obs, first, Normalizer(obs_stats, ret_stats, disc))


def normalize_obs(norm: Normalizer, obs: jax.Array) -> jax.Array:
    """Apply the observation statistics (identity when they are off)."""
    return obs if norm.obs is None else running_stats.normalize(norm.obs, obs)


def feed_forward_policy(network: Any, params: Any, norm: Normalizer, deterministic: bool = True):
    """``act(key, obs [N, ...]) -> action`` of a trained actor-critic, applying the
    (frozen) observation statistics: the mode, or a sample if not ``deterministic``."""

    def act(key: jax.Array, obs: Any) -> jax.Array:
        dist = network.apply(params, normalize_obs(norm, obs))[0]
        return dist.mode() if deterministic else dist.sample(key)

    return act


def feed_forward_value(network: Any, params: Any, norm: Normalizer):
    """``value(obs [N, ...]) -> V [N]`` of a trained actor-critic's critic, applying
    the (frozen) observation statistics."""

    def value(obs: Any) -> jax.Array:
        return network.apply(params, normalize_obs(norm, obs))[1]

    return value


ActFn = Callable[[jax.Array, Any, jax.Array, Any], tuple[jax.Array, Any, Any]]
"""``act_fn(keys [N], obs [N, ...], first [N], policy_carry) -> (action, extras,
policy_carry)``, with one key per env (``jaxrl.distributions`` samples take them)
and actions ``[N, ...]``; ``first`` marks observations that start an episode
(recurrent policies reset their state there)."""


def collect(
    venv: VecEnv,
    env_params: Any,
    act_fn: ActFn,
    key: jax.Array,
    carry: EnvCarry,
    num_steps: int,
    gamma: jax.Array | float = 0.99,
    policy_carry: Any = None,
    shards: EnvShards | None = None,
    raw_obs: bool = False,
) -> tuple[EnvCarry, Any, Transition]:
    """Step ``venv`` ``num_steps`` times with ``act_fn``.

    Args:
        gamma: discount of the return whose scale normalises rewards (only used
            when reward normalisation is on).
        policy_carry: recurrent state threaded through ``act_fn`` (or None).
        shards: ``venv`` holds this device's share of the run's envs: it gets
            their keys, and the normaliser statistics are merged over devices.
        raw_obs: record ``obs`` and ``next_obs`` as the env returned them (the
            policy still sees them normalised): for replay, which normalises what
            it samples with the statistics of that time (``normalize_obs``).

    Returns:
        ``(carry, policy_carry, transitions)`` with transitions ``[num_steps, N, ...]``.
    """

    shards = shards or EnvShards(venv.num_envs)
    axis = shards.axis_name

    def step(state, keys):
        carry, policy_carry = state
        norm = carry.norm
        obs = normalize_obs(norm, carry.obs)
        action, extras, policy_carry = act_fn(keys[:, 0], obs, carry.first, policy_carry)
        env_state, ts = venv.step(keys[:, 1:], carry.env_state, action, env_params)
        next_obs = ts.info["final_obs"] if raw_obs else normalize_obs(norm, ts.info["final_obs"])
        reward = ts.reward
        if norm.obs is not None:
            norm = norm._replace(obs=running_stats.update(norm.obs, ts.obs, axis))
        if norm.return_stats is not None:
            disc = norm.discounted_return * gamma + ts.reward
            stats = running_stats.update(norm.return_stats, disc, axis)
            reward = reward / jnp.sqrt(stats.var + 1e-8)
            norm = Normalizer(norm.obs, stats, jnp.where(ts.done, 0.0, disc))
        transition = Transition(
            obs=carry.obs if raw_obs else obs,
            first=carry.first,
            action=action,
            reward=reward,
            terminated=ts.terminated,
            truncated=ts.truncated,
            next_obs=next_obs,
            extras=extras,
            episode_return=ts.info["episode_return"],
            episode_done=ts.info["episode_done"],
        )
        return (EnvCarry(env_state, ts.obs, ts.done, norm), policy_carry), transition

    # Every key of the rollout in one bulk split: per step and env, the policy's
    # key, the env's step key and its reset key.
    keys = shards.keys(key, (num_steps,), (3,))
    (carry, policy_carry), transitions = jax.lax.scan(step, (carry, policy_carry), keys)
    return carry, policy_carry, transitions


def episode_metrics(
    transitions: Transition, shards: EnvShards | None = None
) -> dict[str, jax.Array]:
    """Sum and count of returns of episodes that finished in this rollout (for logging;
    means over many updates are ``sum / count``, robust to updates with no episode),
    over every device's envs."""
    done = transitions.episode_done
    metrics = {
        "episode_return_sum": jnp.where(done, transitions.episode_return, 0.0).sum(),
        "episodes": done.sum().astype(jnp.float32),
    }
    return metrics if shards is None else shards.sum(metrics)


def carry_spec(split, shared) -> EnvCarry:
    """Partition specs of an ``EnvCarry`` split over devices: per-env arrays ``split``,
    the merged normaliser statistics ``shared``."""
    return EnvCarry(split, split, split, Normalizer(shared, shared, split))


def unit_action_env(env: Environment, env_params: Any) -> Environment:
    """``env`` with continuous actions rescaled from ``[-1, 1]`` (``RescaleAction``),
    the range of tanh-squashed policies; discrete envs are returned as they are."""
    if isinstance(env.action_space(env_params), Discrete):
        return env
    return wrappers.RescaleAction(env)


def env_action(env: Environment, env_params: Any) -> Callable[[jax.Array], jax.Array]:
    """``actions [N, ...]`` of a policy acting in [-1, 1] -> ``env``'s own range (the
    identity for discrete actions)."""
    unit_env = unit_action_env(env, env_params)
    if unit_env is env:
        return lambda action: action
    return lambda action: jax.vmap(unit_env.inner_action, in_axes=(0, None))(action, env_params)


def batched_env(
    env: Environment,
    num_envs: int,
    max_resets: int | None,
    continuous: bool,
    squashed: bool = False,
) -> VecEnv:
    """``VecEnv`` over ``env`` with episode statistics (added if missing) and, for
    continuous actions, ``ClipAction`` (policies sample unbounded Gaussians; the
    log-probability is of the unclipped sample) or, for ``squashed`` policies acting
    in [-1, 1], ``RescaleAction``."""
    if not (isinstance(env, Wrapper) and env.find(wrappers.EpisodeStatistics) is not None):
        env = wrappers.EpisodeStatistics(env)
    if continuous:
        env = wrappers.RescaleAction(env) if squashed else wrappers.ClipAction(env)
    return VecEnv(env, num_envs, max_resets)
