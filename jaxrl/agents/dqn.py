"""Deep Q-networks (Mnih et al. 2015) with the usual options: Double DQN (van
Hasselt et al. 2016), a dueling head (Wang et al. 2016), n-step returns and
prioritised replay (Schaul et al. 2016), hard or Polyak target updates.

One update: every env takes ``rollout_len`` epsilon-greedy steps (``rollout.collect``),
the transitions go into a flashbax replay buffer (``jaxrl.replay``), and, once
``learning_starts`` env steps have been taken, ``gradient_steps`` minibatches of
``n_step``-long sequences are sampled and regressed on ``returns.n_step_returns``
targets from the target network.

The default loss is the squared TD error, as in CleanRL and PureJaxRL; the
Huber loss of the Nature paper is ``loss="huber"`` (on CartPole it diverged here:
it caps the pull of the few terminal transitions, whose large errors are what
hold the estimates down). Weights start LeCun-normal (flax's default), as in
PureJaxRL's and CleanRL's DQN; ``weight_init="orthogonal"`` gives the other
agents' orthogonal init.

On CartPole the defaults are not robust (the mean Q-value overshoots the largest
value there is and some seeds stall or fall back), and the
``dqn@gymnax:CartPole-v1`` preset adds LayerNorm, a decayed learning rate and
3-step returns to them; ``docs/agents.md`` has the per-update measurements of
each option.

With ``num_devices > 1`` each device steps its share of the envs into its own
replay buffer (the env rows of one buffer, split) and samples
``minibatch_size / num_devices`` sequences from it; gradients and metrics are
averaged over devices, so parameters stay identical everywhere. Prioritised
replay is one device only (its sum tree spans the whole buffer).

Deviation from the papers: the target bootstraps from ``Q(final_obs)`` where an
episode was truncated (time limit) and never where it terminated; the papers
treat time-outs as terminal.
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
from jaxrl import parallel, replay, returns, rollout
from jaxrl.agents import Agent
from jaxrl.exploration import epsilon_greedy, linear_epsilon, q_policy, q_values
from jaxrl.networks import q_network
from jaxrl.optim import make_optimizer
from jaxrl.training import Trainer


@dataclasses.dataclass(frozen=True)
class DQNConfig(C.ReplayConfig, C.SplitEnvs):
    num_envs: int = 10
    """Parallel environments per seed."""
    rollout_len: int = 1
    """Steps per environment between gradient updates."""
    activation: Literal["tanh", "relu", "gelu", "silu"] = "relu"
    """Hidden-layer nonlinearity."""
    buffer_size: int = 10_000
    """Replay capacity in transitions (all envs together)."""
    minibatch_size: int = 128
    """Sequences sampled per gradient step."""
    learning_starts: int = 10_000
    """Env steps per seed (all envs together) before the first gradient step."""
    target_update_every: int = 50
    """Updates between target-network updates (each moves it by tau towards the online one)."""
    double: bool = True
    """Double DQN: the online network picks the next action, the target network values it."""
    dueling: bool = False
    """Dueling head: V + A - mean(A)."""
    n_step: int = 1
    """Steps of the bootstrapped return (cut short at episode ends)."""
    prioritised: bool = False
    """Sample transitions in proportion to |TD error|^priority_exponent."""
    priority_exponent: float = 0.6
    """Alpha of prioritised replay (static: the buffer's sum tree is built with it)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the gradient steps."""
    loss: Literal["mse", "huber"] = "mse"
    """Regression loss of the TD error: squared, or Huber with threshold huber_delta."""
    layer_norm: bool = False
    """LayerNorm after each hidden layer of the Q-network (as PQN)."""
    weight_init: Literal["lecun_normal", "orthogonal"] = "lecun_normal"
    """Initial weights: LeCun-normal (flax's default, as in PureJaxRL's and CleanRL's
    DQN) or orthogonal with gain sqrt(2) (1 on the Q head), as the other agents."""

    def check(self) -> None:
        super().check()
        owner = type(self).__name__
        C.check_positive(owner, target_update_every=self.target_update_every, n_step=self.n_step)
        if self.buffer_size // self.num_envs < self.n_step + 1:
            raise ValueError(
                f"{owner}.buffer_size={self.buffer_size} holds fewer than n_step + 1 = "
                f"{self.n_step + 1} steps per env (num_envs={self.num_envs})"
            )
        if self.normalize_obs:
            raise ValueError(
                f"{owner}.normalize_obs=True is not supported: its n-step replay stores "
                "observations as collected, which would mix normaliser statistics of "
                "different ages (SAC and TD3 store raw observations and normalise them "
                "when sampled)"
            )
        C.check_choice(owner, "loss", self.loss, ("mse", "huber"))
        C.check_choice(owner, "weight_init", self.weight_init, ("lecun_normal", "orthogonal"))
        if self.num_devices > 1:
            if self.prioritised:
                raise ValueError(
                    f"{owner}.prioritised=True is not allowed with num_devices="
                    f"{self.num_devices}; prioritised replay runs on one device"
                )
            self.check_divides("num_devices", self.minibatch_size, "minibatch_size")
            self.check_divides("num_devices", self.buffer_size, "buffer_size")
        if not 0.0 <= self.priority_exponent <= 1.0:
            raise ValueError(
                f"{owner}.priority_exponent={self.priority_exponent} is not allowed; "
                "it must be in [0, 1]"
            )


@H.hparams
class DQNHParams(H.LearningRate, H.Discount, H.SoftTargets, H.EpsilonSchedule, H.GradClip):
    """Traced hyperparameters: ``vmap`` over them to sweep in one compile."""

    lr: float = 2.5e-4
    tau: float = 1.0
    """Target update step, in (0, 1]: 1 copies the online network (hard update)."""
    huber_delta: float = H.hparam(1.0, H.POSITIVE)
    """Huber loss threshold (quadratic below it, linear above); with loss="huber" only."""
    max_grad_norm: float = 10.0
    priority_beta: float = H.hparam(0.4, H.UNIT)
    """Importance-sampling exponent of prioritised replay, in [0, 1]."""


class DQNState(NamedTuple):
    params: Any
    target_params: Any
    opt_state: Any
    buffer: Any
    env: rollout.EnvCarry
    key: jax.Array


def q_targets(
    q_next_online: jax.Array,
    q_next_target: jax.Array,
    seq: replay.Experience,
    gamma: jax.Array,
    n_step: int,
    double: bool,
) -> jax.Array:
    """n-step targets ``[B]`` for the first step of time-major sequences ``[n, B]``.

    ``q_next_*`` are Q-values ``[n, B, A]`` of each step's pre-reset next
    observation; the bootstrap value is ``max_a Q_target`` or, if ``double``,
    ``Q_target`` at the online network's argmax.
    """
    if double:
        best = jnp.argmax(q_next_online, axis=-1)
        v_next = jnp.take_along_axis(q_next_target, best[..., None], axis=-1)[..., 0]
    else:
        v_next = q_next_target.max(axis=-1)
    g = returns.n_step_returns(seq.reward, seq.terminated, seq.truncated, v_next, gamma, n_step)
    return g[0]


def dqn_loss(
    params: Any,
    target_params: Any,
    apply_fn: Callable,
    sample: Any,
    hp: DQNHParams,
    config: DQNConfig,
    buffer: replay.Replay,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Squared (or Huber) error of ``Q(s_0, a_0)`` against the n-step target of each
    sampled sequence, importance-weighted under prioritised replay; returns
    ``(loss, (td [B], q [B, A]))``."""
    seq = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), sample.experience)  # [n, B, ...]
    q_next_target = apply_fn(target_params, seq.next_obs)
    q_next_online = apply_fn(params, seq.next_obs) if config.double else None
    target = q_targets(q_next_online, q_next_target, seq, hp.gamma, config.n_step, config.double)
    q = apply_fn(params, seq.obs[0])
    q_taken = jnp.take_along_axis(q, seq.action[0][:, None], axis=-1)[:, 0]
    td = q_taken - jax.lax.stop_gradient(target)
    weights = buffer.importance_weights(sample, hp.priority_beta)
    if config.loss == "huber":
        per_sample = optax.huber_loss(td, delta=hp.huber_delta)
    else:
        per_sample = 0.5 * jnp.square(td)
    loss = (weights * per_sample).mean()
    return loss, (td, q)


def make_network(config: DQNConfig, env: Any, env_params: Any):
    return q_network(
        "DQN",
        config,
        env,
        env_params,
        dueling=config.dueling,
        layer_norm=config.layer_norm,
        weight_init=config.weight_init,
    )


def make_train(config: DQNConfig, env: Any, env_params: Any) -> Trainer:
    """``train(key, hparams) -> (DQNState, metrics)``, metrics with a leading update
    axis; a ``jaxrl.training.Trainer``, so it also runs in chunks from ``train.start``."""
    network = make_network(config, env, env_params)
    shards = parallel.EnvShards(config.num_envs, config.num_devices)
    venv = rollout.batched_env(env, shards.local_envs, config.max_resets, continuous=False)
    obs_space = venv.observation_space(env_params)
    buffer = replay.Replay(  # this device's rows of the buffer
        shards.local_envs,
        config.buffer_size // shards.num_devices,
        config.minibatch_size // shards.num_devices,
        config.n_step,
        config.prioritised,
        config.priority_exponent,
    )
    first_learning_update = config.first_learning_update
    decay = (config.num_updates - first_learning_update) * config.gradient_steps

    def optimizer(hp: DQNHParams) -> optax.GradientTransformation:
        return make_optimizer(
            hp.lr, hp.max_grad_norm, decay_steps=decay if config.anneal_lr else None
        )

    def init(key: jax.Array, hp: DQNHParams) -> DQNState:
        key, init_key, env_key = jax.random.split(key, 3)
        params = network.init(init_key, jnp.zeros((1, *obs_space.shape), jnp.float32))
        env_carry = rollout.init_carry(venv, env_params, env_key, False, False, shards)
        return DQNState(
            params,
            params,
            optimizer(hp).init(params),
            buffer.init(replay.example_step(venv, env_params)),
            env_carry,
            key,
        )

    def update_step(state: DQNState, hp: DQNHParams, update: jax.Array):
        tx = optimizer(hp)
        key, rollout_key, sample_key = jax.random.split(state.key, 3)
        eps = linear_epsilon(hp, update * config.batch_size, config.total_steps)

        def act(key, obs, first, carry):
            q = network.apply(state.params, obs)
            return epsilon_greedy(key, q, eps), None, carry

        # 1. collect epsilon-greedy steps and add them to the replay buffer
        env_carry, _, traj = rollout.collect(
            venv, env_params, act, rollout_key, state.env, config.rollout_len, shards=shards
        )
        buffer_state = buffer.add(state.buffer, traj)
        sample_key = shards.device_key(sample_key)  # each device samples its own rows

        # 2. gradient steps on replayed sequences, once learning has started
        def gradient_step(carry, key, step):
            params, opt_state, buffer_state = carry
            sample = buffer.sample(buffer_state, key)
            grads, (td, q) = jax.grad(dqn_loss, has_aux=True)(
                params, state.target_params, network.apply, sample, hp, config, buffer
            )
            grads = shards.mean(grads)
            updates, opt_state = tx.update(grads, opt_state, params)
            buffer_state = buffer.update_priorities(buffer_state, sample, td)
            stats = shards.mean({"td_abs": jnp.abs(td).mean(), "q_mean": q.mean()})
            return (optax.apply_updates(params, updates), opt_state, buffer_state), stats

        started = update >= first_learning_update
        carry = (state.params, state.opt_state, buffer_state)
        carry, stats = replay.gradient_steps(
            started, gradient_step, carry, sample_key, config.gradient_steps, update
        )
        params, opt_state, buffer_state = carry
        # 3. target network: every target_update_every updates, tau of the way
        move = (update + 1) % config.target_update_every == 0
        step = jnp.where(move, hp.tau, 0.0)
        target_params = optax.incremental_update(params, state.target_params, step)

        metrics = stats | {"epsilon": eps} | rollout.episode_metrics(traj, shards)
        new_state = DQNState(params, target_params, opt_state, buffer_state, env_carry, key)
        return new_state, metrics

    split, shared = parallel.SPLIT, parallel.SHARED
    spec = DQNState(
        shared,
        shared,
        shared,
        buffer.state_spec(replay.example_step(venv, env_params), split, shared),
        rollout.carry_spec(split, shared),
        shared,
    )
    return Trainer(init, update_step, config.num_updates, shards=shards, state_spec=spec)


def make_policy(
    config: DQNConfig, env: Any, env_params: Any, state: DQNState, deterministic: bool = True
):
    """``act(key, obs [N, ...]) -> action``: greedy in Q, or epsilon-greedy with
    ``eps_end`` of the defaults when not ``deterministic``."""
    network = make_network(config, env, env_params)
    return q_policy(network, state.params, 0.0 if deterministic else DQNHParams().eps_end)


def make_value(config: DQNConfig, env: Any, env_params: Any, state: DQNState):
    """``value(obs [N, ...]) -> Q [N, num_actions]``: the trained Q-network."""
    return q_values(make_network(config, env, env_params), state.params)


AGENT = Agent(
    name="dqn",
    description="deep Q-network (double, ...)",
    Config=DQNConfig,
    HParams=DQNHParams,
    make_train=make_train,
    make_policy=make_policy,
    make_value=make_value,
    continuous=False,
)
