"""Proximal policy optimisation (Schulman et al. 2017) for discrete and continuous
actions, optionally recurrent (a GRU reset at episode starts).

Implementation details follow "The 37 implementation details of PPO" (Huang et
al. 2022): GAE, advantage normalisation per minibatch, clipped value loss
(optional), entropy bonus, global-norm gradient clipping, linear learning-rate
annealing, optional observation and reward normalisation, orthogonal init.
Deviation: truncated episodes bootstrap from ``V(final_obs)`` (the pre-reset
observation) instead of being treated as terminal.

Continuous actions: by default a Gaussian with a state-independent log-std whose
samples are clipped to the env's bounds (CleanRL's); ``squash=True`` gives a
tanh-squashed Gaussian acting in [-1, 1], rescaled to the bounds (brax.training's
PPO squashes too), with ``-mean(log_prob)`` of the rollout's actions as its
entropy; ``state_std=True`` makes the std a function of the state (brax.training's
``softplus(dense(x)) + 0.001``). A squashed policy's rollout keeps the pre-squash
sample ``u`` (the env gets ``tanh(u)``), so its log-probs are exact however far
``tanh`` saturates (``TanhGaussian.log_prob_pre_squash``).

On Brax locomotion the choices that matter are brax.training's: a squashed
policy with a state-dependent std (``squash=True, state_std=True``) and no reward
normalisation; the ``ppo@brax:*`` presets have them. What was tried, one change
at a time, and what each gave is in ``docs/agents.md`` (figures go stale in a
docstring; the reasons stay here).

Recurrent PPO (``gru_size > 0``) minibatches whole environment sequences and
replays them from the hidden state stored at the start of the rollout.

With ``num_devices > 1`` each device steps its share of the envs; the rollout
is gathered (one ``all_gather`` per update) so that every device shuffles the
same minibatches as one device would, and each computes the gradient of its
part of every minibatch, averaged with ``lax.pmean``: the same run as on one
device up to float rounding, with parameters identical on every device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import config as C
from jaxrl import hparams as H
from jaxrl import minibatch, parallel, returns, rollout
from jaxrl.agents import Agent
from jaxrl.distributions import TanhGaussian
from jaxrl.networks import ActorCritic, actor_critic
from jaxrl.optim import make_optimizer
from jaxrl.training import Trainer


@dataclasses.dataclass(frozen=True)
class PPOConfig(C.AgentConfig, C.SplitEnvs):
    num_envs: int = 4
    """Parallel environments per seed."""
    num_epochs: int = 4
    """Passes over each rollout."""
    num_minibatches: int = 4
    """Minibatches per epoch; must divide num_envs * rollout_len (num_envs if recurrent)."""
    gru_size: int = 0
    """Hidden size of a GRU for partially observable envs; 0 for feed-forward."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""
    clip_value: bool = True
    """Clip the value loss around the rollout's value predictions."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return."""
    gae_segment: int = 0
    """Cut each env's rollout into segments of this many steps and sum GAE's
    lambda-weighted TD errors within a segment only, bootstrapping from the value at
    its end (brax.training's PPO does this with unroll_length, 5 by default); 0: the
    whole rollout is one segment."""
    squash: bool = False
    """Continuous actions: a tanh-squashed Gaussian acting in [-1, 1], rescaled to the
    env's (finite) bounds, as brax.training's PPO; False: a Gaussian whose samples are
    clipped to the bounds (CleanRL's)."""
    value_hidden_sizes: tuple[int, ...] | None = None
    """Layer sizes of the critic's torso when they differ from the actor's
    (brax.training: a 4x32 policy and a 5x256 value network); None: ``hidden_sizes``."""
    state_std: bool = False
    """Continuous actions: the policy's std is a function of the state,
    ``softplus(dense(features)) + 0.001`` (brax.training's ``NormalTanhDistribution``);
    False: a learned log-std that does not depend on the state."""

    def check(self) -> None:
        super().check()
        owner = type(self).__name__
        C.check_positive(owner, num_epochs=self.num_epochs, num_minibatches=self.num_minibatches)
        if self.gru_size < 0:
            raise ValueError(f"{owner}.gru_size={self.gru_size} is not allowed; it must be >= 0")
        if self.gae_segment < 0:
            raise ValueError(
                f"{owner}.gae_segment={self.gae_segment} is not allowed; it must be >= 0 "
                "(0: the whole rollout)"
            )
        if self.value_hidden_sizes is not None and (
            not self.value_hidden_sizes or min(self.value_hidden_sizes) < 1
        ):
            raise ValueError(
                f"{owner}.value_hidden_sizes={self.value_hidden_sizes} is not allowed; it "
                "must be None (the actor's hidden_sizes) or one or more sizes >= 1"
            )
        if self.gru_size:
            self.check_divides("num_minibatches", self.num_envs, "num_envs")
            self.check_minibatch_split(self.num_envs // self.num_minibatches, "env sequences")
        else:
            self.check_divides("num_minibatches", self.batch_size, "num_envs * rollout_len")
            self.check_minibatch_split(self.batch_size // self.num_minibatches, "samples")


@H.hparams
class PPOHParams(H.LearningRate, H.Discount, H.GAE, H.EntropyBonus, H.ValueLoss, H.GradClip):
    """Traced hyperparameters: ``vmap`` over them to sweep in one compile."""

    lr: float = 2.5e-4
    """Adam learning rate (decayed linearly to 0 if anneal_lr)."""
    clip_eps: float = H.hparam(0.2, H.POSITIVE)
    """Clip range of the probability ratio (and of the value loss if clip_value)."""


class PPOState(NamedTuple):
    params: Any
    opt_state: Any
    env: rollout.EnvCarry
    rnn: jax.Array  # [num_envs, gru_size] ([num_envs, 0] when feed-forward)
    key: jax.Array
    update: jax.Array


class Batch(NamedTuple):
    obs: Any
    first: jax.Array
    action: jax.Array  # a squashed policy's pre-squash sample u (the env got tanh(u))
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array


def clipped_surrogate_loss(
    ratio: jax.Array, advantage: jax.Array, clip_eps: jax.Array
) -> jax.Array:
    """``-mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A))``."""
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -jnp.minimum(ratio * advantage, clipped * advantage).mean()


def value_loss_fn(value, old_value, target, clip_eps, clip: bool) -> jax.Array:
    """``0.5 * mean((V - target)^2)``, or with ``clip`` the max of that and the loss of
    ``old_value + clip(V - old_value, -eps, eps)`` (PPO2's value clipping)."""
    loss = jnp.square(value - target)
    if clip:
        clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
        loss = jnp.maximum(loss, jnp.square(clipped - target))
    return 0.5 * loss.mean()


def ppo_loss(
    params: Any,
    apply_fn: Callable,
    batch: Batch,
    hp: PPOHParams,
    clip_value: bool,
    rnn0: Any = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped surrogate + (clipped) value loss - entropy bonus, on a batch whose
    advantages are already normalised (``normalize_advantages``, per minibatch).

    Feed-forward batches are ``[B, ...]``; recurrent ones ``[T, B, ...]`` with the
    GRU state ``rnn0 [B, H]`` at their start.
    """
    if rnn0 is None:
        dist, value = apply_fn(params, batch.obs)
    else:
        dist, value, _ = apply_fn(params, batch.obs, batch.first, rnn0)
    new_log_prob = stored_log_prob(dist, batch.action)
    log_ratio = new_log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    policy_loss = clipped_surrogate_loss(ratio, batch.advantage, hp.clip_eps)
    value_loss = value_loss_fn(value, batch.value, batch.target, hp.clip_eps, clip_value)
    entropy = policy_entropy(dist, new_log_prob)
    loss = policy_loss + hp.vf_coef * value_loss - hp.ent_coef * entropy
    return loss, {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
        "clip_fraction": (jnp.abs(ratio - 1.0) > hp.clip_eps).mean(),
    }


def stored_log_prob(dist: Any, action: jax.Array) -> jax.Array:
    """Log-probability of a batch's action: for a tanh-squashed Gaussian the batch
    holds the pre-squash sample (``TanhGaussian.log_prob_pre_squash``)."""
    if isinstance(dist, TanhGaussian):
        return dist.log_prob_pre_squash(action)
    return dist.log_prob(action)


def policy_entropy(dist: Any, log_prob: jax.Array) -> jax.Array:
    """Mean entropy of the policy: exact where it has a closed form; for a
    tanh-squashed Gaussian ``-mean(log_prob)`` of the rollout's actions under the
    current policy, a sample estimate that needs no extra draw (as Stable-Baselines3's
    PPO does for squashed policies)."""
    if isinstance(dist, TanhGaussian):
        return -log_prob.mean()
    return dist.entropy().mean()


def normalize_advantages(batch: Batch) -> Batch:
    """Advantages of a minibatch scaled to zero mean and unit standard deviation."""
    return batch._replace(advantage=returns.standardize(batch.advantage))


def make_network(config: PPOConfig, env: Any, env_params: Any) -> ActorCritic:
    return actor_critic(
        "PPO", config, env, env_params, config.gru_size, config.squash,
        config.value_hidden_sizes, config.state_std,
    )  # fmt: skip


def make_train(config: PPOConfig, env: Any, env_params: Any) -> Trainer:
    """``train(key, hparams) -> (PPOState, metrics)``, metrics with a leading update
    axis; a ``jaxrl.training.Trainer``, so it also runs in chunks from ``train.start``."""
    network = make_network(config, env, env_params)
    shards = parallel.EnvShards(config.num_envs, config.num_devices)
    venv = rollout.batched_env(
        env, shards.local_envs, config.max_resets, not network.discrete, config.squash
    )
    recurrent = config.gru_size > 0
    obs_shape = venv.observation_space(env_params).shape
    decay = config.num_updates * config.num_epochs * config.num_minibatches

    def apply_step(params, obs, first, rnn):
        """One step of the policy for a batch of envs: ``(dist, value, rnn)``."""
        if not recurrent:
            return *network.apply(params, obs), rnn
        dist, value, rnn = network.apply(params, obs[None], first[None], rnn)
        return jax.tree.map(lambda x: x[0], dist), value[0], rnn

    def optimizer(hp: PPOHParams) -> optax.GradientTransformation:
        return make_optimizer(
            hp.lr, hp.max_grad_norm, decay_steps=decay if config.anneal_lr else None
        )

    def init(key: jax.Array, hp: PPOHParams) -> PPOState:
        key, init_key, env_key = jax.random.split(key, 3)
        dummy = jnp.zeros((1, *obs_shape), jnp.float32)
        rnn = jnp.zeros((shards.local_envs, config.gru_size), jnp.float32)
        init_args = (dummy[None], jnp.ones((1, 1), bool), rnn[:1]) if recurrent else (dummy,)
        params = network.init(init_key, *init_args)
        env_carry = rollout.init_carry(
            venv, env_params, env_key, config.normalize_obs, config.normalize_reward, shards
        )
        return PPOState(
            params, optimizer(hp).init(params), env_carry, rnn, key, jnp.zeros((), jnp.int32)
        )

    def update_step(state: PPOState, hp: PPOHParams, update: jax.Array):
        tx = optimizer(hp)
        key, rollout_key, epoch_key = jax.random.split(state.key, 3)

        def act(key, obs, first, rnn):
            dist, value, rnn_next = apply_step(state.params, obs, first, rnn)
            if config.squash:  # the env gets tanh(u); the batch keeps u (exact log-probs)
                u = dist.sample_pre_squash(key)
                extras = (dist.log_prob_pre_squash(u), value, rnn_next, u)
                return jnp.tanh(u), extras, rnn_next
            action = dist.sample(key)
            return action, (dist.log_prob(action), value, rnn_next, None), rnn_next

        # 1. collect rollout
        env_carry, rnn_end, traj = rollout.collect(
            venv,
            env_params,
            act,
            rollout_key,
            state.env,
            config.rollout_len,
            hp.gamma,
            state.rnn,
            shards,
        )
        log_prob, value, rnn_after, pre_squash = traj.extras
        # 2. bootstrap values on final_obs (pre-reset), with the state after each step
        if recurrent:
            flat = lambda x: x.reshape((-1, *x.shape[2:]))
            no_reset = jnp.zeros((1, flat(traj.reward).shape[0]), bool)
            _, v_next, _ = network.apply(
                state.params, flat(traj.next_obs)[None], no_reset, flat(rnn_after)
            )
            v_next = v_next.reshape(traj.reward.shape)
        else:
            v_next = network.apply(state.params, traj.next_obs)[1]
        # 3. advantages
        cut = returns.segment_ends(traj.truncated, config.gae_segment)
        adv, target = returns.gae(
            traj.reward, traj.terminated, cut, value, v_next, hp.gamma, hp.gae_lambda
        )
        action = traj.action if pre_squash is None else pre_squash
        batch = Batch(traj.obs, traj.first, action, log_prob, value, adv, target)
        # every device holds the whole rollout (identity on one device)
        batch, rnn_start = shards.gather(batch, axis=1), shards.gather(state.rnn)

        # 4. epochs of minibatch updates; on several devices each takes its part of
        # every minibatch (the batch axis: 1 for recurrent [T, B], else 0)
        def sgd_step(carry, mb):
            params, opt_state = carry
            mb_batch, mb_rnn = mb
            mb_batch = shards.part(normalize_advantages(mb_batch), 1 if recurrent else 0)
            mb_rnn = None if mb_rnn is None else shards.part(mb_rnn)
            grads, stats = jax.grad(ppo_loss, has_aux=True)(
                params, network.apply, mb_batch, hp, config.clip_value, mb_rnn
            )
            grads, stats = shards.mean((grads, stats))
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), stats

        def epoch(carry, key):
            if recurrent:  # shuffle whole env sequences: batch is [T, N] -> [N, T]
                seqs = (jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch), rnn_start)
                mbs = minibatch.shuffle_minibatches(key, seqs, config.num_minibatches)
                mbs = (jax.tree.map(lambda x: jnp.swapaxes(x, 1, 2), mbs[0]), mbs[1])
            else:
                mbs = (
                    minibatch.shuffle_minibatches(key, batch, config.num_minibatches, 2),
                    None,
                )
            return jax.lax.scan(sgd_step, carry, mbs)

        (params, opt_state), stats = jax.lax.scan(
            epoch,
            (state.params, state.opt_state),
            jax.random.split(epoch_key, config.num_epochs),
        )
        metrics = jax.tree.map(jnp.mean, stats) | rollout.episode_metrics(traj, shards)
        new_state = PPOState(params, opt_state, env_carry, rnn_end, key, state.update + 1)
        return new_state, metrics

    split, shared = parallel.SPLIT, parallel.SHARED
    spec = PPOState(shared, shared, rollout.carry_spec(split, shared), split, shared, shared)
    return Trainer(init, update_step, config.num_updates, shards=shards, state_spec=spec)


def make_policy(
    config: PPOConfig, env: Any, env_params: Any, state: PPOState, deterministic: bool = True
):
    """The trained policy with (frozen) observation statistics: ``act(key, obs [N, ...])
    -> action``, or with a GRU ``act(key, obs, first [N], rnn [N, H]) -> (action, rnn)``
    (``first`` marks episode starts; start from ``rnn = zeros``). Actions are in the
    env's own range (a ``squash`` policy's are rescaled from [-1, 1])."""
    network = make_network(config, env, env_params)
    norm = state.env.norm
    to_env = rollout.env_action(env, env_params) if config.squash else lambda a: a
    if not config.gru_size:
        policy = rollout.feed_forward_policy(network, state.params, norm, deterministic)
        return lambda key, obs: to_env(policy(key, obs))

    def act(key, obs, first, rnn):
        obs = rollout.normalize_obs(norm, obs)
        dist, _, rnn = network.apply(state.params, obs[None], first[None], rnn)
        dist = jax.tree.map(lambda x: x[0], dist)
        return to_env(dist.mode() if deterministic else dist.sample(key)), rnn

    return act


def make_value(config: PPOConfig, env: Any, env_params: Any, state: PPOState):
    """``value(obs [N, ...]) -> V [N]``: the trained critic, with the (frozen)
    observation statistics applied."""
    if config.gru_size:
        raise ValueError(
            f"make_value of a recurrent policy (gru_size={config.gru_size}) is not "
            "supported yet; its value needs the GRU's state"
        )
    network = make_network(config, env, env_params)
    return rollout.feed_forward_value(network, state.params, state.env.norm)


AGENT = Agent(
    name="ppo",
    description="proximal policy optimisation",
    Config=PPOConfig,
    HParams=PPOHParams,
    make_train=make_train,
    make_policy=make_policy,
    make_value=make_value,
)
