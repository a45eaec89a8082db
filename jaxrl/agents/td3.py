"""TD3 (Fujimoto et al. 2018): a deterministic actor with clipped double-Q critics,
target policy smoothing and delayed actor updates; DDPG (Lillicrap et al. 2016) is
the configuration ``num_critics=1, policy_delay=1`` with ``target_noise=0``
(``ddpg()`` builds it).

One update: every env takes ``rollout_len`` steps (uniformly random until
``learning_starts``, then ``mu(s)`` plus Gaussian noise, clipped to the bounds),
the transitions go into the replay buffer, and ``gradient_steps`` minibatches each
update the critics towards ``r + gamma (1 - terminated) min_i Q_target_i(s', a')``
with the smoothed target action ``a' = clip(mu_target(s') + clip(noise))``; every
``policy_delay``-th gradient step also updates the actor (ascending ``Q_0(s,
mu(s))``) and moves both target networks by ``tau``.

Actions live in ``[-1, 1]`` inside the agent (the env is wrapped in
``RescaleAction``), so the noise scales are fractions of the action range. With
``normalize_obs`` the buffer holds raw observations, normalised when sampled with
the newest statistics (``replay.OffPolicyLoop``), as the policy sees them.

Deviation from the papers: targets bootstrap from ``final_obs`` where an episode
was truncated by a time limit, never where it terminated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import config as C
from jaxrl import hparams as H
from jaxrl import replay, rollout
from jaxrl.agents import Agent
from jaxrl.distributions import draw
from jaxrl.exploration import uniform_actions
from jaxrl.networks import ActorCritics, actor_critics
from jaxrl.optim import make_optimizer
from jaxrl.training import Trainer


@dataclasses.dataclass(frozen=True)
class TD3Config(C.ActorCriticReplayConfig):
    policy_delay: int = 2
    """Gradient steps per actor and target update (1: DDPG)."""

    def check(self) -> None:
        super().check()
        owner = type(self).__name__
        C.check_positive(owner, policy_delay=self.policy_delay)


@H.hparams
class TD3HParams(H.LearningRate, H.Discount, H.SoftTargets):
    """Traced hyperparameters: ``vmap`` over them to sweep in one compile."""

    lr: float = 3e-4
    """Adam learning rate of the actor and the critics."""
    tau: float = 0.005
    """Polyak step of the target networks per actor update, in (0, 1]."""
    exploration_noise: float = H.hparam(0.1, H.NON_NEGATIVE)
    """Std of the Gaussian noise on actions while collecting (actions in [-1, 1])."""
    target_noise: float = H.hparam(0.2, H.NON_NEGATIVE)
    """Std of the target policy smoothing noise (0: DDPG)."""
    target_noise_clip: float = H.hparam(0.5, H.NON_NEGATIVE)
    """The smoothing noise is clipped to +-this."""


def ddpg(**config_fields: Any) -> tuple[TD3Config, TD3HParams]:
    """DDPG as a configuration of TD3: one critic, no delay, no target smoothing."""
    config = TD3Config(**{"num_critics": 1, "policy_delay": 1, **config_fields})
    return config, TD3HParams(target_noise=0.0)


class Learner(NamedTuple):
    """What the gradient steps change."""

    params: dict[str, Any]  # {"actor", "critics"}
    target_params: dict[str, Any]
    opt_state: tuple[Any, Any]  # actor, critics


class TD3State(NamedTuple):
    params: dict[str, Any]
    target_params: dict[str, Any]
    opt_state: tuple[Any, Any]
    buffer: Any
    env: rollout.EnvCarry
    key: jax.Array


def td3_targets(
    networks: ActorCritics,
    target_params: dict[str, Any],
    batch: replay.Experience,
    hp: TD3HParams,
    key: jax.Array,
) -> jax.Array:
    """``r + gamma (1 - terminated) min_i Q_target_i(s', a')`` on the pre-reset next
    observation, with ``a' = clip(mu_target(s') + clip(N(0, target_noise)))``."""
    a_next = networks.actor.apply(target_params["actor"], batch.next_obs)
    noise = hp.target_noise * jax.random.normal(key, a_next.shape)
    noise = jnp.clip(noise, -hp.target_noise_clip, hp.target_noise_clip)
    a_next = jnp.clip(a_next + noise, -1.0, 1.0)
    q_next = networks.critics.apply(target_params["critics"], batch.next_obs, a_next).min(0)
    return batch.reward + hp.gamma * (1.0 - batch.terminated) * q_next


def critic_loss(
    critic_params: Any, networks: ActorCritics, batch: replay.Experience, target: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Sum over critics of half the mean squared error to ``target [B]``; returns
    ``(loss, q [num_critics, B])``."""
    q = networks.critics.apply(critic_params, batch.obs, batch.action)
    return 0.5 * jnp.square(q - target[None]).mean(axis=1).sum(), q


def actor_loss(
    actor_params: Any, networks: ActorCritics, critic_params: Any, obs: jax.Array
) -> jax.Array:
    """``-E_s Q_0(s, mu(s))``: the deterministic policy gradient through the first critic."""
    action = networks.actor.apply(actor_params, obs)
    return -networks.critics.apply(critic_params, obs, action)[0].mean()


def learner_step(
    networks: ActorCritics,
    tx: optax.GradientTransformation,
    config: TD3Config,
    hp: TD3HParams,
    learner: Learner,
    batch: replay.Experience,
    key: jax.Array,
    step: jax.Array,
) -> tuple[Learner, dict[str, jax.Array]]:
    """One gradient step on a minibatch ``[B, ...]``: the critics; on every
    ``policy_delay``-th ``step`` also the actor and then both target networks."""
    params, target_params, (actor_opt, critic_opt) = learner
    target = td3_targets(networks, target_params, batch, hp, key)
    grads, q = jax.grad(critic_loss, has_aux=True)(params["critics"], networks, batch, target)
    updates, critic_opt = tx.update(grads, critic_opt, params["critics"])
    params = {"actor": params["actor"], "critics": optax.apply_updates(params["critics"], updates)}

    def update_actor():
        loss, grads = jax.value_and_grad(actor_loss)(
            params["actor"], networks, params["critics"], batch.obs
        )
        updates, opt = tx.update(grads, actor_opt, params["actor"])
        new = {"actor": optax.apply_updates(params["actor"], updates), "critics": params["critics"]}
        return new, optax.incremental_update(new, target_params, hp.tau), opt, loss

    def keep_actor():
        return params, target_params, actor_opt, jnp.float32(0.0)

    # `step` comes from the unbatched update index: a real branch under vmap.
    params, target_params, actor_opt, loss = jax.lax.cond(
        step % config.policy_delay == 0, update_actor, keep_actor
    )
    stats = {"q_mean": q.mean(), "actor_loss": loss}
    return Learner(params, target_params, (actor_opt, critic_opt)), stats


def make_network(config: TD3Config, env: Any, env_params: Any) -> ActorCritics:
    return actor_critics("TD3", config, env, env_params, "deterministic", allow_discrete=False)


def make_train(config: TD3Config, env: Any, env_params: Any) -> Trainer:
    """``train(key, hparams) -> (TD3State, metrics)``, metrics with a leading update
    axis; a ``jaxrl.training.Trainer``, so it also runs in chunks from ``train.start``."""
    networks = make_network(config, env, env_params)
    venv = rollout.batched_env(
        rollout.unit_action_env(env, env_params), config.num_envs, config.max_resets, True
    )
    obs_space = venv.observation_space(env_params)
    buffer = replay.Replay(config.num_envs, config.buffer_size, config.minibatch_size)
    loop = replay.OffPolicyLoop(venv, env_params, buffer, config)
    action_dim = networks.actor.action_dim

    def optimizer(hp: TD3HParams) -> optax.GradientTransformation:
        return make_optimizer(hp.lr)

    def init(key: jax.Array, hp: TD3HParams) -> TD3State:
        tx = optimizer(hp)
        key, init_key, env_key = jax.random.split(key, 3)
        params = networks.init(init_key, jnp.zeros((1, *obs_space.shape), jnp.float32))
        return TD3State(
            params,
            params,
            (tx.init(params["actor"]), tx.init(params["critics"])),
            buffer.init(replay.example_step(venv, env_params)),
            rollout.init_carry(venv, env_params, env_key, config.normalize_obs, False),
            key,
        )

    def update_step(state: TD3State, hp: TD3HParams, update: jax.Array):
        tx = optimizer(hp)
        key, step_key = jax.random.split(state.key)

        def act(key, obs, first, carry):  # uniformly random until learning starts
            noise_key, random_key = jax.vmap(jax.random.split, out_axes=1)(key)
            action = networks.actor.apply(state.params["actor"], obs)
            noise = hp.exploration_noise * draw(jax.random.normal, noise_key, action.shape)
            action = jnp.clip(action + noise, -1.0, 1.0)
            random = uniform_actions(random_key, config.num_envs, None, action_dim)
            return jnp.where(loop.started(update), action, random), None, carry

        def learn_step(learner, batch, key, step):
            return learner_step(networks, tx, config, hp, learner, batch, key, step)

        learner, env_carry, buffer_state, metrics = loop.update(
            act, learn_step, Learner(*state[:3]), state.env, state.buffer, step_key, update
        )
        return TD3State(*learner, buffer_state, env_carry, key), metrics

    return Trainer(init, update_step, config.num_updates)


def make_policy(
    config: TD3Config, env: Any, env_params: Any, state: TD3State, deterministic: bool = True
):
    """``act(key, obs [N, ...]) -> action`` in ``env``'s own action range: ``mu(s)``, plus
    the default exploration noise when not ``deterministic``."""
    networks = make_network(config, env, env_params)
    to_env = rollout.env_action(env, env_params)
    noise = 0.0 if deterministic else TD3HParams().exploration_noise

    def act(key: jax.Array, obs: jax.Array) -> jax.Array:
        action = networks.actor.apply(
            state.params["actor"], rollout.normalize_obs(state.env.norm, obs)
        )
        return to_env(jnp.clip(action + noise * jax.random.normal(key, action.shape), -1.0, 1.0))

    return act


AGENT = Agent(
    name="td3",
    description="TD3 / DDPG",
    Config=TD3Config,
    HParams=TD3HParams,
    make_train=make_train,
    make_policy=make_policy,
    discrete=False,
    default_env="gymnax:Pendulum-v1",
)
