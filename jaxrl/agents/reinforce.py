"""REINFORCE (Williams 1992): Monte Carlo policy gradient, optionally with a learned
value baseline, for discrete and continuous actions.

Each update collects ``rollout_len`` steps from ``num_envs`` environments and
takes one gradient step on ``-mean(log pi(a_t|s_t) (G - b_t)) - ent_coef H``
(plus ``vf_coef (V(s_t) - G_t)^2 / 2`` with a baseline), where

* ``reward_to_go=True``: ``G = G_t``, the discounted return from step t to the
  episode end (``returns.reward_to_go``);
* ``reward_to_go=False``: ``G = G_s``, Williams' whole-episode return, the same
  for every step of an episode. It is propagated from the episode's first step
  by a forward ``lax.scan`` that carries it (``episode_start_returns``).
  Rewards before step t only add variance, not bias.

Rollouts have fixed length, so episodes are cut at the rollout end and by time
limits. With ``baseline=False`` nothing is bootstrapped (``v_next = 0``), i.e.
pure Monte Carlo over what was observed: choose ``rollout_len`` at least as long
as the episodes. With ``baseline=True`` returns bootstrap from ``V(final_obs)``
at every cut (truncation and rollout end); terminal steps never bootstrap. An
episode that began in an earlier rollout counts as starting at the rollout's
first step for ``reward_to_go=False``.

Deviations from the paper: Adam (``jaxrl.optim.make_optimizer``) with global-norm
clipping, an entropy bonus (0 by default), and optional advantage normalisation
per batch (on by default, as in most modern implementations).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxrl import config as C
from jaxrl import hparams as H
from jaxrl import returns, rollout
from jaxrl.agents import Agent
from jaxrl.networks import ActorCritic, actor_critic
from jaxrl.optim import make_optimizer
from jaxrl.training import Trainer


@dataclasses.dataclass(frozen=True)
class ReinforceConfig(C.AgentConfig):
    reward_to_go: bool = True
    """Weight log pi(a_t|s_t) by the return from t; else by the whole episode's return."""
    baseline: bool = True
    """Learn V and subtract it (and bootstrap from it where episodes are cut)."""
    normalize_advantage: bool = True
    """Standardise the weights (return minus baseline) over each batch."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""

    def check(self) -> None:
        super().check()
        owner = type(self).__name__
        for name in ("reward_to_go", "baseline", "normalize_advantage"):
            C.check_choice(owner, name, getattr(self, name), (True, False))


@H.hparams
class ReinforceHParams(H.LearningRate, H.Discount, H.EntropyBonus, H.ValueLoss, H.GradClip):
    """Traced hyperparameters: ``vmap`` over them to sweep in one compile."""

    lr: float = 3e-3
    """Adam learning rate (decayed linearly to 0 if anneal_lr); 3e-3 tuned on CartPole-v1."""
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    """Weight of the baseline's value loss (unused without a baseline)."""


class ReinforceState(NamedTuple):
    params: Any
    opt_state: Any
    env: rollout.EnvCarry
    key: jax.Array
    update: jax.Array


class Batch(NamedTuple):
    obs: Any  # [T, N, ...]
    action: jax.Array
    ret: jax.Array  # [T, N] the return weighting log pi(a_t|s_t)
    target: jax.Array  # [T, N] value target (reward-to-go)


def episode_start_returns(g_t: jax.Array, first_t: jax.Array) -> jax.Array:
    """Broadcast the return at each episode's first step to all of its steps.

    Args:
        g_t: ``[T, B]`` returns-to-go.
        first_t: ``[T, B]`` bool, step t starts an episode (step 0 always starts a segment).
    Returns:
        ``[T, B]``: ``g_s`` where s is the first step of t's episode within the rollout.
    """
    chex.assert_equal_shape([g_t, first_t])

    def body(g_start, xs):
        g, first = xs
        g_start = jnp.where(first, g, g_start)
        return g_start, g_start

    _, out = jax.lax.scan(body, g_t[0], (g_t, first_t))
    return out


def reinforce_loss(
    params: Any,
    apply_fn: Callable,
    batch: Batch,
    hp: ReinforceHParams,
    baseline: bool,
    normalize_advantage: bool,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``-mean(log pi(a|s) A) - ent_coef mean(H)`` [+ ``vf_coef mean((V - target)^2) / 2``]
    with ``A = ret - V(s)`` (baseline) or ``ret``, standardised if asked; A is a constant."""
    dist, value = apply_fn(params, batch.obs)
    adv = batch.ret - value if baseline else batch.ret
    adv = jax.lax.stop_gradient(adv)
    if normalize_advantage:
        adv = returns.standardize(adv)
    policy_loss = -(dist.log_prob(batch.action) * adv).mean()
    value_loss = 0.5 * jnp.square(value - batch.target).mean()
    entropy = dist.entropy().mean()
    loss = policy_loss - hp.ent_coef * entropy
    if baseline:
        loss = loss + hp.vf_coef * value_loss
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


def make_network(config: ReinforceConfig, env: Any, env_params: Any) -> ActorCritic:
    """An actor-critic; without a baseline the critic is trained by nothing (its loss
    is only logged), which keeps one network shape for both modes."""
    return actor_critic("REINFORCE", config, env, env_params)


def make_train(config: ReinforceConfig, env: Any, env_params: Any) -> Trainer:
    """``train(key, hparams) -> (ReinforceState, metrics)``, metrics with a leading update
    axis; a ``jaxrl.training.Trainer``, so it also runs in chunks from ``train.start``."""
    network = make_network(config, env, env_params)
    venv = rollout.batched_env(env, config.num_envs, config.max_resets, not network.discrete)
    obs_shape = venv.observation_space(env_params).shape

    def optimizer(hp: ReinforceHParams) -> optax.GradientTransformation:
        return make_optimizer(
            hp.lr, hp.max_grad_norm, decay_steps=config.num_updates if config.anneal_lr else None
        )

    def init(key: jax.Array, hp: ReinforceHParams) -> ReinforceState:
        key, init_key, env_key = jax.random.split(key, 3)
        params = network.init(init_key, jnp.zeros((1, *obs_shape), jnp.float32))
        env_carry = rollout.init_carry(venv, env_params, env_key, config.normalize_obs, False)
        return ReinforceState(
            params, optimizer(hp).init(params), env_carry, key, jnp.zeros((), jnp.int32)
        )

    def update_step(state: ReinforceState, hp: ReinforceHParams, update: jax.Array):
        tx = optimizer(hp)
        key, rollout_key = jax.random.split(state.key)

        def act(key, obs, first, carry):
            dist, _ = network.apply(state.params, obs)
            return dist.sample(key), None, carry

        # 1. collect rollout
        env_carry, _, traj = rollout.collect(
            venv, env_params, act, rollout_key, state.env, config.rollout_len, hp.gamma
        )
        # 2. bootstrap on final_obs at cuts with a baseline; pure Monte Carlo without
        if config.baseline:
            v_next = network.apply(state.params, traj.next_obs)[1]
        else:
            v_next = jnp.zeros_like(traj.reward)
        # 3. returns: to go, or from the episode's first step
        g_t = returns.reward_to_go(traj.reward, traj.terminated, traj.truncated, v_next, hp.gamma)
        ret = g_t if config.reward_to_go else episode_start_returns(g_t, traj.first)
        # 4. one gradient step on the whole batch
        batch = Batch(traj.obs, traj.action, ret, g_t)
        grads, stats = jax.grad(reinforce_loss, has_aux=True)(
            state.params,
            network.apply,
            batch,
            hp,
            config.baseline,
            config.normalize_advantage,
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = stats | rollout.episode_metrics(traj)
        return ReinforceState(params, opt_state, env_carry, key, state.update + 1), metrics

    return Trainer(init, update_step, config.num_updates)


def make_policy(
    config: ReinforceConfig,
    env: Any,
    env_params: Any,
    state: ReinforceState,
    deterministic: bool = True,
):
    """``act(key, obs [N, ...]) -> action`` with the trained parameters and (frozen)
    observation statistics."""
    network = make_network(config, env, env_params)
    return rollout.feed_forward_policy(network, state.params, state.env.norm, deterministic)


def make_value(config: ReinforceConfig, env: Any, env_params: Any, state: ReinforceState):
    """``value(obs [N, ...]) -> V [N]``: the trained critic, with the (frozen)
    observation statistics applied."""
    if not config.baseline:
        raise ValueError(
            "ReinforceConfig.baseline=False trains no value function, so there is none to return"
        )
    network = make_network(config, env, env_params)
    return rollout.feed_forward_value(network, state.params, state.env.norm)


AGENT = Agent(
    name="reinforce",
    description="vanilla policy gradient",
    Config=ReinforceConfig,
    HParams=ReinforceHParams,
    make_train=make_train,
    make_policy=make_policy,
    make_value=make_value,
)
