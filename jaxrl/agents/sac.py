"""Soft actor-critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and
Applications") with automatic temperature, for continuous actions (a tanh-Gaussian
policy) and, with the same code, for discrete actions (Christodoulou 2019).

One update: every env takes ``rollout_len`` steps (uniformly random until
``learning_starts``, then sampled from the policy), the transitions go into the
replay buffer, and ``gradient_steps`` minibatches each update, in order, the
critics (towards ``r + gamma (1 - terminated) V_soft(s')`` from the target critics),
the actor (towards ``min_i Q_i - alpha log pi``), the temperature (towards the
entropy target) and the target critics (Polyak, ``tau``).

Continuous actions live in ``[-1, 1]`` inside the agent (the env is wrapped in
``RescaleAction``); their log-probability is the stable pre-squash form of
``distributions.TanhGaussian``, finite at the bounds. For discrete actions the
expectations over the policy are exact sums (Christodoulou 2019) instead of
samples, and the critics output ``Q(s, .)`` for every action.

Observation normalisation (``normalize_obs``, as brax.training's SAC): the buffer
holds raw observations and every sampled minibatch is normalised with the newest
running statistics (``replay.OffPolicyLoop``), which the policy also applies.
``reward_scale`` multiplies the rewards in the critics' targets (brax's
``reward_scaling``); with a fixed entropy target it sets the balance between
return and entropy, so it is part of a locomotion preset.

Deviation from the papers: targets bootstrap from ``final_obs`` where an episode
was truncated by a time limit, never where it terminated.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import config as C
from jaxrl import hparams as H
from jaxrl import replay, rollout
from jaxrl.agents import Agent
from jaxrl.exploration import uniform_actions
from jaxrl.networks import ActorCritics, actor_critics
from jaxrl.optim import make_optimizer
from jaxrl.training import Trainer


@dataclasses.dataclass(frozen=True)
class SACConfig(C.ActorCriticReplayConfig):
    autotune: bool = True
    """Learn the temperature towards the entropy target; False keeps it at ``alpha``."""
    target_entropy: float | None = None
    """Entropy target; None: -action_dim (continuous) or 0.7 log(num_actions) (discrete)."""


@H.hparams
class SACHParams(H.LearningRate, H.Discount, H.SoftTargets):
    """Traced hyperparameters: ``vmap`` over them to sweep in one compile."""

    lr: float = 3e-4
    """Adam learning rate of the actor, the critics and the temperature."""
    tau: float = 0.005
    """Polyak step of the target critics per gradient step, in (0, 1]."""
    alpha: float = H.hparam(1.0, H.POSITIVE)
    """Initial temperature (the fixed one if not ``autotune``), > 0."""
    reward_scale: float = H.hparam(1.0, H.POSITIVE)
    """Factor on the rewards in the critics' targets (brax.training's
    ``reward_scaling``), > 0: against a fixed entropy target it sets how much the
    rewards weigh against the entropy bonus. Logged returns stay unscaled."""


class Learner(NamedTuple):
    """What the gradient steps change."""

    params: dict[str, Any]  # {"actor", "critics"}
    target_critics: Any
    log_alpha: jax.Array
    opt_state: tuple[Any, Any, Any]  # actor, critics, temperature


class SACState(NamedTuple):
    params: dict[str, Any]  # {"actor", "critics"}
    target_critics: Any
    log_alpha: jax.Array
    opt_state: tuple[Any, Any, Any]
    buffer: Any
    env: rollout.EnvCarry
    key: jax.Array


def target_entropy(config: SACConfig, networks: ActorCritics) -> float:
    if config.target_entropy is not None:
        return config.target_entropy
    if networks.actor.kind == "categorical":
        return 0.7 * math.log(networks.actor.action_dim)
    return -float(networks.actor.action_dim)


def soft_targets(
    networks: ActorCritics,
    actor_params: Any,
    target_critics: Any,
    alpha: jax.Array,
    batch: replay.Experience,
    gamma: jax.Array,
    key: jax.Array,
    reward_scale: jax.Array | float = 1.0,
) -> jax.Array:
    """``reward_scale r + gamma (1 - terminated) V(s')`` with the soft value
    ``V(s') = E_{a'~pi}[min_i Q_target_i(s', a') - alpha log pi(a'|s')]`` of the
    pre-reset next observation: exact over discrete actions, one sample otherwise."""
    dist = networks.actor.apply(actor_params, batch.next_obs)
    if networks.critics.num_actions is not None:
        q_next = networks.critics.apply(target_critics, batch.next_obs).min(0)  # [B, A]
        log_p = jax.nn.log_softmax(dist.logits)
        v_next = jnp.sum(jnp.exp(log_p) * (q_next - alpha * log_p), axis=-1)
    else:
        a_next, log_p = dist.sample_and_log_prob(key)
        v_next = networks.critics.apply(target_critics, batch.next_obs, a_next).min(0)
        v_next = v_next - alpha * log_p
    return reward_scale * batch.reward + gamma * (1.0 - batch.terminated) * v_next


def critic_values(networks: ActorCritics, critic_params: Any, obs, action) -> jax.Array:
    """``Q_i(s, a)`` of every critic, ``[num_critics, B]``."""
    if networks.critics.num_actions is None:
        return networks.critics.apply(critic_params, obs, action)
    q = networks.critics.apply(critic_params, obs)  # [K, B, A]
    return jnp.take_along_axis(q, action[None, :, None], axis=-1)[..., 0]


def critic_loss(
    critic_params: Any, networks: ActorCritics, batch: replay.Experience, target: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Sum over critics of half the mean squared error to ``target [B]``; returns
    ``(loss, q [num_critics, B])``."""
    q = critic_values(networks, critic_params, batch.obs, batch.action)
    return 0.5 * jnp.square(q - target[None]).mean(axis=1).sum(), q


def actor_loss(
    actor_params: Any,
    networks: ActorCritics,
    critic_params: Any,
    obs: jax.Array,
    alpha: jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """``E_s E_{a~pi}[alpha log pi(a|s) - min_i Q_i(s, a)]`` (reparameterised sample for
    continuous actions, exact sum for discrete); returns ``(loss, entropy [B])``."""
    dist = networks.actor.apply(actor_params, obs)
    if networks.critics.num_actions is not None:
        q = networks.critics.apply(critic_params, obs).min(0)  # [B, A]
        log_p = jax.nn.log_softmax(dist.logits)
        p = jnp.exp(log_p)
        return jnp.sum(p * (alpha * log_p - q), axis=-1).mean(), -jnp.sum(p * log_p, axis=-1)
    action, log_p = dist.sample_and_log_prob(key)
    q = networks.critics.apply(critic_params, obs, action).min(0)
    return (alpha * log_p - q).mean(), -log_p


def temperature_loss(log_alpha: jax.Array, entropy: jax.Array, target: float) -> jax.Array:
    """``E[log_alpha (H - target)]`` for entropies (or their estimates) ``H [B]``: its
    gradient lowers the temperature while the policy is more random than the target."""
    return (log_alpha * (jax.lax.stop_gradient(entropy) - target)).mean()


def learner_step(
    networks: ActorCritics,
    tx: optax.GradientTransformation,
    config: SACConfig,
    entropy_target: float,
    hp: SACHParams,
    learner: Learner,
    batch: replay.Experience,
    key: jax.Array,
) -> tuple[Learner, dict[str, jax.Array]]:
    """One gradient step on a minibatch ``[B, ...]``: the critics, then the actor
    against the new critics, then the temperature, then the target critics."""
    params, target_critics, log_alpha, (actor_opt, critic_opt, alpha_opt) = learner
    target_key, actor_key = jax.random.split(key)
    alpha = jnp.exp(log_alpha)
    target = soft_targets(
        networks, params["actor"], target_critics, alpha, batch, hp.gamma, target_key,
        hp.reward_scale,
    )  # fmt: skip
    grads, q = jax.grad(critic_loss, has_aux=True)(params["critics"], networks, batch, target)
    updates, critic_opt = tx.update(grads, critic_opt, params["critics"])
    critics = optax.apply_updates(params["critics"], updates)
    grads, entropy = jax.grad(actor_loss, has_aux=True)(
        params["actor"], networks, critics, batch.obs, alpha, actor_key
    )
    updates, actor_opt = tx.update(grads, actor_opt, params["actor"])
    actor = optax.apply_updates(params["actor"], updates)
    if config.autotune:
        grad = jax.grad(temperature_loss)(log_alpha, entropy, entropy_target)
        updates, alpha_opt = tx.update(grad, alpha_opt, log_alpha)
        log_alpha = optax.apply_updates(log_alpha, updates)
    target_critics = optax.incremental_update(critics, target_critics, hp.tau)
    stats = {"q_mean": q.mean(), "entropy": entropy.mean(), "alpha": alpha}
    params = {"actor": actor, "critics": critics}
    return Learner(params, target_critics, log_alpha, (actor_opt, critic_opt, alpha_opt)), stats


def make_network(config: SACConfig, env: Any, env_params: Any) -> ActorCritics:
    return actor_critics("SAC", config, env, env_params, "tanh_gaussian", allow_discrete=True)


def make_train(config: SACConfig, env: Any, env_params: Any) -> Trainer:
    """``train(key, hparams) -> (SACState, metrics)``, metrics with a leading update
    axis; a ``jaxrl.training.Trainer``, so it also runs in chunks from ``train.start``."""
    networks = make_network(config, env, env_params)
    discrete = networks.critics.num_actions is not None
    venv = rollout.batched_env(
        rollout.unit_action_env(env, env_params), config.num_envs, config.max_resets, not discrete
    )
    obs_space = venv.observation_space(env_params)
    buffer = replay.Replay(config.num_envs, config.buffer_size, config.minibatch_size)
    loop = replay.OffPolicyLoop(venv, env_params, buffer, config)
    entropy_target = target_entropy(config, networks)

    def optimizer(hp: SACHParams) -> optax.GradientTransformation:
        return make_optimizer(hp.lr)

    def init(key: jax.Array, hp: SACHParams) -> SACState:
        tx = optimizer(hp)
        key, init_key, env_key = jax.random.split(key, 3)
        params = networks.init(init_key, jnp.zeros((1, *obs_space.shape), jnp.float32))
        log_alpha = jnp.log(jnp.asarray(hp.alpha, jnp.float32))
        opt_state = (tx.init(params["actor"]), tx.init(params["critics"]), tx.init(log_alpha))
        return SACState(
            params,
            params["critics"],
            log_alpha,
            opt_state,
            buffer.init(replay.example_step(venv, env_params)),
            rollout.init_carry(venv, env_params, env_key, config.normalize_obs, False),
            key,
        )

    def update_step(state: SACState, hp: SACHParams, update: jax.Array):
        tx = optimizer(hp)
        key, step_key = jax.random.split(state.key)

        def act(key, obs, first, carry):  # uniformly random until learning starts
            policy_key, random_key = jax.vmap(jax.random.split, out_axes=1)(key)
            action = networks.actor.apply(state.params["actor"], obs).sample(policy_key)
            random = uniform_actions(
                random_key, config.num_envs, networks.critics.num_actions,
                networks.actor.action_dim,
            )  # fmt: skip
            return jnp.where(loop.started(update), action, random), None, carry

        def learn_step(learner, batch, key, step):
            return learner_step(networks, tx, config, entropy_target, hp, learner, batch, key)

        learner, env_carry, buffer_state, metrics = loop.update(
            act, learn_step, Learner(*state[:4]), state.env, state.buffer, step_key, update
        )
        return SACState(*learner, buffer_state, env_carry, key), metrics

    return Trainer(init, update_step, config.num_updates)


def make_policy(
    config: SACConfig, env: Any, env_params: Any, state: SACState, deterministic: bool = True
):
    """``act(key, obs [N, ...]) -> action`` in ``env``'s own action range: the policy's
    mode (``tanh`` of the mean; the most likely action) or a sample."""
    networks = make_network(config, env, env_params)
    to_env = rollout.env_action(env, env_params)

    def act(key: jax.Array, obs: jax.Array) -> jax.Array:
        dist = networks.actor.apply(
            state.params["actor"], rollout.normalize_obs(state.env.norm, obs)
        )
        return to_env(dist.mode() if deterministic else dist.sample(key))

    return act


AGENT = Agent(
    name="sac",
    description="soft actor-critic",
    Config=SACConfig,
    HParams=SACHParams,
    make_train=make_train,
    make_policy=make_policy,
    default_env="gymnax:Pendulum-v1",
)
