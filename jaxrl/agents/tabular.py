"""Tabular TD control: Q-learning (Watkins 1989), SARSA (Rummery & Niranjan 1994)
and Expected SARSA (van Seijen et al. 2009), Sutton & Barto 2018, chapter 6.

A Q-table ``[S, A]`` updated after every step,
``Q(s, a) += lr * (r + gamma * (1 - terminated) * v(s') - Q(s, a))`` with ``v(s')``
``max_a Q(s', a)`` (Q-learning), ``E_{a ~ pi}[Q(s', a)]`` under the epsilon-greedy
``pi`` (Expected SARSA) or ``Q(s', a')`` of the next action (SARSA). ``s'`` is the
pre-reset next observation, so truncated episodes bootstrap and terminated ones
do not. Behaviour is epsilon-greedy with the shared linear schedule
(``exploration.linear_epsilon``), ties broken at random.

The table is indexed by the env's ``observation_index(obs, params)`` (an int in
``0 .. num_states(params) - 1``): ``GridWorld`` layouts (onehot or image
observations) and ``Inventory`` have one, in the order of their
``tabular_model``, so a learned table compares entry by entry with
``planning.value_iteration``'s ``Q*``.

With ``num_envs > 1`` the envs step together and each step's updates to one
``(s, a)`` are averaged (a minibatch of TD errors); ``num_envs = 1`` is the
textbook single stream. Independent learners are a ``vmap`` over seeds (and
hyperparameters).

Hand-written because the update is three lines on top of the shared env
plumbing; rlax has the TD errors but not the tabular loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl import config as C
from jaxrl import hparams as H
from jaxrl import rollout
from jaxrl.agents import Agent
from jaxrl.exploration import epsilon_greedy, linear_epsilon
from jaxrl.networks import action_spec
from jaxrl.training import Trainer

RULES = ("q_learning", "sarsa", "expected_sarsa")


@dataclasses.dataclass(frozen=True)
class TabularConfig(C.StepsConfig):
    """Static settings of tabular TD control."""

    num_envs: int = 1
    """Parallel environments per learner, all updating its one table."""
    rollout_len: int = 100
    """Steps per environment between metric records (the table updates every step)."""
    total_steps: int = 100_000
    """Environment steps per learner (rounded down to whole records)."""
    rule: Literal["q_learning", "sarsa", "expected_sarsa"] = "q_learning"
    """Value of the next state: max (Q-learning), the next action's (SARSA) or the
    epsilon-greedy expectation (Expected SARSA)."""

    def check(self) -> None:
        super().check()
        owner = type(self).__name__
        C.check_choice(owner, "rule", self.rule, RULES)


@H.hparams
class TabularHParams(H.LearningRate, H.Discount, H.EpsilonSchedule):
    """Traced hyperparameters: ``vmap`` over them to sweep in one compile."""

    lr: float = 0.1
    """Step size of the table update, > 0 (above 1 it overshoots the target)."""


class TabularState(NamedTuple):
    q: jax.Array  # [S, A]
    env: rollout.EnvCarry
    action: jax.Array  # [N] SARSA's next action, chosen with the step's target
    key: jax.Array


def state_indexer(owner: str, env: Any, env_params: Any) -> tuple[int, Any]:
    """``(num_states, index(obs) -> int32)`` of an env with a discrete state index,
    or a ``ValueError`` naming the env."""
    index = getattr(env, "observation_index", None)
    count = getattr(env, "num_states", None)
    if index is None or count is None:
        name = getattr(env, "name", type(env).__name__)
        raise ValueError(
            f"{owner}: {name} has no discrete state index (observation_index and "
            "num_states); tabular methods need one, e.g. GridWorld-Empty-8x8, "
            "GridWorld-FourRooms or Inventory"
        )
    if getattr(env_params, "obs_mode", None) == "egocentric":
        raise ValueError(
            f"{owner}: obs_mode='egocentric' does not determine the state; "
            "use obs_mode='onehot' or 'image'"
        )
    return count(env_params), lambda obs: index(obs, env_params)


def next_value(q_next: jax.Array, next_action: jax.Array, eps: jax.Array, rule: str) -> jax.Array:
    """``v(s') [N]`` from ``q_next = Q(s', .) [N, A]`` under ``rule``; the epsilon-greedy
    expectation spreads the greedy mass evenly over tied maxima."""
    if rule == "q_learning":
        return q_next.max(axis=-1)
    if rule == "sarsa":
        return jnp.take_along_axis(q_next, next_action[:, None], axis=-1)[:, 0]
    best = (q_next >= q_next.max(axis=-1, keepdims=True)).astype(q_next.dtype)
    probs = (1 - eps) * best / best.sum(-1, keepdims=True) + eps / q_next.shape[-1]
    return (probs * q_next).sum(axis=-1)


def td_update(
    q: jax.Array,
    s: jax.Array,
    a: jax.Array,
    target: jax.Array,
    lr: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """``Q [S, A]`` moved by ``lr`` towards ``target [N]`` at ``(s [N], a [N])``, the
    TD errors of one ``(s, a)`` averaged over the batch. Returns ``(Q, td_errors)``."""
    td = target - q[s, a]
    total = jnp.zeros_like(q).at[s, a].add(td)
    count = jnp.zeros_like(q).at[s, a].add(1.0)
    return q + lr * total / jnp.maximum(count, 1.0), td


def make_train(config: TabularConfig, env: Any, env_params: Any) -> Trainer:
    """``train(key, hparams) -> (TabularState, metrics)``; metrics have a leading
    record axis (``num_updates`` of them); a ``jaxrl.training.Trainer``, so it also
    runs in chunks from ``train.start``."""
    num_states, index = state_indexer("TabularConfig", env, env_params)
    spec = action_spec("TabularConfig", env, env_params)
    if not spec.discrete:
        raise ValueError("TabularConfig needs a Discrete action space")
    venv = rollout.batched_env(env, config.num_envs, config.max_resets, continuous=False)
    index_batch = jax.vmap(index)
    rule = config.rule

    def init(key: jax.Array, hp: TabularHParams) -> TabularState:
        key, env_key = jax.random.split(key)
        env_carry = rollout.init_carry(venv, env_params, env_key, False, False)
        q = jnp.zeros((num_states, spec.dim), jnp.float32)
        action = jnp.zeros(config.num_envs, jnp.int32)
        return TabularState(q, env_carry, action, key)

    def update_step(state: TabularState, hp: TabularHParams, update: jax.Array):
        def env_step(carry, xs):
            q, env_carry, sarsa_action = carry
            (act_key, next_key, step_key), step = xs
            eps = linear_epsilon(hp, step * config.num_envs, config.total_steps)
            s = index_batch(env_carry.obs)
            # SARSA acts with the action its last target used, except at episode starts.
            a = epsilon_greedy(act_key, q[s], eps, random_ties=True)
            if rule == "sarsa":
                a = jnp.where(env_carry.first, a, sarsa_action)
            env_state, ts = venv.step(step_key, env_carry.env_state, a, env_params)
            s_next = index_batch(ts.info["final_obs"])
            next_action = epsilon_greedy(next_key, q[s_next], eps, random_ties=True)
            v_next = next_value(q[s_next], next_action, eps, rule)
            target = ts.reward + hp.gamma * jnp.where(ts.terminated, 0.0, v_next)
            q, td = td_update(q, s, a, target, hp.lr)
            env_carry = env_carry._replace(env_state=env_state, obs=ts.obs, first=ts.done)
            done = ts.info["episode_done"]
            stats = {
                "episode_return_sum": jnp.where(done, ts.info["episode_return"], 0.0).sum(),
                "episodes": done.sum().astype(jnp.float32),
                "td_abs": jnp.abs(td).mean(),
            }
            return (q, env_carry, next_action.astype(jnp.int32)), stats

        key, rollout_key = jax.random.split(state.key)
        keys = jax.random.split(rollout_key, (config.rollout_len, 3))
        steps = update * config.rollout_len + jnp.arange(config.rollout_len)
        carry = (state.q, state.env, state.action)
        (q, env_carry, action), stats = jax.lax.scan(env_step, carry, (keys, steps))
        metrics = {
            "episode_return_sum": stats["episode_return_sum"].sum(),
            "episodes": stats["episodes"].sum(),
            "td_abs": stats["td_abs"].mean(),
            "epsilon": linear_epsilon(hp, steps[-1] * config.num_envs, config.total_steps),
        }
        return TabularState(q, env_carry, action, key), metrics

    return Trainer(init, update_step, config.num_updates)


def table_policy(env: Any, env_params: Any, actions: jax.Array):
    """``act(key, obs [N, ...]) -> actions [N]`` of a policy given as a table of
    actions ``[S]`` over the env's state index, e.g. ``planning.value_iteration``'s."""
    num_states, index = state_indexer("table_policy", env, env_params)
    if actions.shape != (num_states,):
        raise ValueError(
            f"table_policy: actions has shape {actions.shape}; it must be ({num_states},), "
            "one action per state of the env"
        )

    def act(key: jax.Array, obs: jax.Array) -> jax.Array:
        return actions[jax.vmap(index)(obs)]

    return act


def make_policy(
    config: TabularConfig, env: Any, env_params: Any, state: TabularState, deterministic=True
):
    """``act(key, obs [N, ...]) -> action``: greedy in the table (random tie-breaks), or
    epsilon-greedy with the default ``eps_end`` when not ``deterministic``."""
    _, index = state_indexer("TabularConfig", env, env_params)
    eps = 0.0 if deterministic else TabularHParams().eps_end

    def act(key: jax.Array, obs: jax.Array) -> jax.Array:
        return epsilon_greedy(key, state.q[jax.vmap(index)(obs)], eps, random_ties=True)

    return act


AGENT = Agent(
    name="q_learning",
    description="tabular Q-learning / SARSA / Expected SARSA",
    Config=TabularConfig,
    HParams=TabularHParams,
    make_train=make_train,
    make_policy=make_policy,
    continuous=False,
    default_env="GridWorld-FourRooms",
)
