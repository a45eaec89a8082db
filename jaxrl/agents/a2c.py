"""Advantage actor-critic, A2C: the synchronous variant of A3C (Mnih et al. 2016),
for discrete and continuous actions.

Each update collects ``rollout_len`` steps from ``num_envs`` environments and
takes one gradient step on the whole batch of
``-log pi(a|s) A + vf_coef (V(s) - target)^2 / 2 - ent_coef H(pi(.|s))``.

Advantages are either GAE (``advantage="gae"``; Schulman et al. 2016) or the
paper's n-step returns (``advantage="nstep"``), where every step bootstraps from
the value at the end of the rollout: that is the lambda = 1 return cut at the
rollout end, computed with ``returns.reward_to_go`` in O(T) rather than with
``returns.n_step_returns(n=rollout_len)`` in O(T^2) (the two are equal).

Deviations from the paper: Adam (``jaxrl.optim.make_optimizer``) instead of
shared RMSprop, separate actor and critic torsos (``networks.ActorCritic``), and
truncated episodes bootstrap from ``V(final_obs)`` instead of being treated as
terminal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import config as C
from jaxrl import hparams as H
from jaxrl import parallel, returns, rollout
from jaxrl.agents import Agent
from jaxrl.networks import ActorCritic, actor_critic
from jaxrl.optim import make_optimizer
from jaxrl.training import Trainer


@dataclasses.dataclass(frozen=True)
class A2CConfig(C.AgentConfig, C.SplitEnvs):
    num_envs: int = 16
    """Parallel environments per seed."""
    rollout_len: int = 8
    """Steps per environment between updates (the n of the n-step returns)."""
    advantage: Literal["gae", "nstep"] = "gae"
    """"gae": GAE(gamma, gae_lambda); "nstep": returns bootstrapped at the rollout end."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""

    def check(self) -> None:
        super().check()
        owner = type(self).__name__
        C.check_choice(owner, "advantage", self.advantage, ("gae", "nstep"))


@H.hparams
class A2CHParams(H.LearningRate, H.Discount, H.GAE, H.EntropyBonus, H.ValueLoss, H.GradClip):
    """Traced hyperparameters: ``vmap`` over them to sweep in one compile."""

    lr: float = 2e-3
    """Adam learning rate (decayed linearly to 0 if anneal_lr); 2e-3 tuned on CartPole-v1."""
    gae_lambda: float = 0.95
    """GAE lambda, in [0, 1] (only with advantage="gae")."""


class A2CState(NamedTuple):
    params: Any
    opt_state: Any
    env: rollout.EnvCarry
    key: jax.Array
    update: jax.Array


class Batch(NamedTuple):
    obs: Any  # [T, N, ...] (or any leading batch shape)
    action: jax.Array
    advantage: jax.Array  # [T, N], treated as a constant
    target: jax.Array  # [T, N] value targets


def a2c_loss(
    params: Any, apply_fn: Callable, batch: Batch, hp: A2CHParams
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``-mean(log pi(a|s) A) + vf_coef mean((V - target)^2) / 2 - ent_coef mean(H)``.

    Advantages and targets are constants (no gradient flows through them).
    """
    dist, value = apply_fn(params, batch.obs)
    adv = jax.lax.stop_gradient(batch.advantage)
    policy_loss = -(dist.log_prob(batch.action) * adv).mean()
    value_loss = 0.5 * jnp.square(value - jax.lax.stop_gradient(batch.target)).mean()
    entropy = dist.entropy().mean()
    loss = policy_loss + hp.vf_coef * value_loss - hp.ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


def make_network(config: A2CConfig, env: Any, env_params: Any) -> ActorCritic:
    return actor_critic("A2C", config, env, env_params)


def make_train(config: A2CConfig, env: Any, env_params: Any) -> Trainer:
    """``train(key, hparams) -> (A2CState, metrics)``, metrics with a leading update
    axis; a ``jaxrl.training.Trainer``, so it also runs in chunks from ``train.start``."""
    network = make_network(config, env, env_params)
    shards = parallel.EnvShards(config.num_envs, config.num_devices)
    venv = rollout.batched_env(env, shards.local_envs, config.max_resets, not network.discrete)
    obs_shape = venv.observation_space(env_params).shape

    def optimizer(hp: A2CHParams) -> optax.GradientTransformation:
        return make_optimizer(
            hp.lr, hp.max_grad_norm, decay_steps=config.num_updates if config.anneal_lr else None
        )

    def init(key: jax.Array, hp: A2CHParams) -> A2CState:
        key, init_key, env_key = jax.random.split(key, 3)
        params = network.init(init_key, jnp.zeros((1, *obs_shape), jnp.float32))
        env_carry = rollout.init_carry(
            venv, env_params, env_key, config.normalize_obs, False, shards
        )
        return A2CState(
            params, optimizer(hp).init(params), env_carry, key, jnp.zeros((), jnp.int32)
        )

    def update_step(state: A2CState, hp: A2CHParams, update: jax.Array):
        tx = optimizer(hp)
        key, rollout_key = jax.random.split(state.key)

        def act(key, obs, first, carry):
            dist, value = network.apply(state.params, obs)
            return dist.sample(key), value, carry

        # 1. collect rollout
        env_carry, _, traj = rollout.collect(
            venv,
            env_params,
            act,
            rollout_key,
            state.env,
            config.rollout_len,
            hp.gamma,
            shards=shards,
        )
        value = traj.extras
        # 2. bootstrap values on final_obs (pre-reset)
        v_next = network.apply(state.params, traj.next_obs)[1]
        # 3. advantages
        flags = (traj.reward, traj.terminated, traj.truncated)
        if config.advantage == "gae":
            adv, target = returns.gae(*flags, value, v_next, hp.gamma, hp.gae_lambda)
        else:
            target = returns.reward_to_go(*flags, v_next, hp.gamma)
            adv = target - value
        # 4. one gradient step on the whole batch
        batch = Batch(traj.obs, traj.action, adv, target)
        grads, stats = jax.grad(a2c_loss, has_aux=True)(state.params, network.apply, batch, hp)
        grads, stats = shards.mean((grads, stats))  # equal shares: the whole batch's mean
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = stats | rollout.episode_metrics(traj, shards)
        return A2CState(params, opt_state, env_carry, key, state.update + 1), metrics

    split, shared = parallel.SPLIT, parallel.SHARED
    spec = A2CState(shared, shared, rollout.carry_spec(split, shared), shared, shared)
    return Trainer(init, update_step, config.num_updates, shards=shards, state_spec=spec)


def make_policy(
    config: A2CConfig, env: Any, env_params: Any, state: A2CState, deterministic: bool = True
):
    """``act(key, obs [N, ...]) -> action`` with the trained parameters and (frozen)
    observation statistics."""
    network = make_network(config, env, env_params)
    return rollout.feed_forward_policy(network, state.params, state.env.norm, deterministic)


def make_value(config: A2CConfig, env: Any, env_params: Any, state: A2CState):
    """``value(obs [N, ...]) -> V [N]``: the trained critic, with the (frozen)
    observation statistics applied."""
    network = make_network(config, env, env_params)
    return rollout.feed_forward_value(network, state.params, state.env.norm)


AGENT = Agent(
    name="a2c",
    description="advantage actor-critic",
    Config=A2CConfig,
    HParams=A2CHParams,
    make_train=make_train,
    make_policy=make_policy,
    make_value=make_value,
)
