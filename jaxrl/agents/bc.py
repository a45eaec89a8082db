"""Behaviour cloning (Pomerleau 1991) and DAgger (Ross, Gordon & Bagnell 2011):
fit a policy to an expert's actions by maximum likelihood.

Iteration 0 collects ``num_envs * rollout_len`` steps with the expert acting
(``expert(key, obs [N, ...]) -> actions [N, ...]``: the value-iteration policy of
a tabular env, ``tabular.table_policy``, or any agent's ``make_policy``) and takes
``num_sgd_steps`` minibatch steps on the negative log-likelihood of the expert's
actions: categorical for discrete actions, a diagonal Gaussian with a learned,
state-independent log-std for continuous ones (its mode, the mean, acts). Each of
the ``dagger_iterations`` that follow rolls out the *learner* instead, labels the
states it visits with the expert's actions, adds them to the dataset and trains
on all of it (DAgger with ``beta_i = 0`` for ``i >= 1``, the variant the paper
recommends in practice). The dataset is a fixed-size array for all iterations,
so the whole loop is one ``lax.scan``.

Every iteration ends with an evaluation of the learner (greedy, ``eval_episodes``
episodes); its returns are the ``episode_return_sum`` / ``episodes`` metrics
that the experiment scripts summarise.

Hand-written because it is a supervised loop over the shared pieces (rollout
collection, networks, optimizer, evaluation); imitation libraries
(``imitation``) are PyTorch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from envs import wrappers
from jaxrl import config as C
from jaxrl import hparams as H
from jaxrl import rollout
from jaxrl.evaluate import episode_limit, evaluate
from jaxrl.networks import Actor, action_spec, obs_ndim
from jaxrl.optim import make_optimizer
from jaxrl.training import Trainer

Expert = Callable[[jax.Array, Any], jax.Array]
"""``expert(key, obs [N, ...]) -> actions [N, ...]``, traceable."""


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """Static settings of behaviour cloning and DAgger."""

    num_envs: int = 16
    """Environments stepped in parallel when collecting (expert or learner) data."""
    rollout_len: int = 200
    """Steps per environment per collection."""
    dagger_iterations: int = 0
    """DAgger rounds after the initial fit (0: plain behaviour cloning)."""
    num_sgd_steps: int = 1_000
    """Minibatch gradient steps after each collection."""
    minibatch_size: int = 256
    """Samples per gradient step, drawn uniformly from the dataset so far."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Policy torso layer sizes."""
    activation: Literal["tanh", "relu", "gelu", "silu"] = "relu"
    """Hidden-layer nonlinearity."""
    torso: Literal["mlp", "cnn"] = "mlp"
    """"cnn" for image observations (H, W, C)."""
    eval_episodes: int = 16
    """Greedy evaluation episodes of the learner after each iteration."""

    def __post_init__(self):
        owner = "BCConfig"
        C.check_positive(
            owner,
            num_envs=self.num_envs,
            rollout_len=self.rollout_len,
            num_sgd_steps=self.num_sgd_steps,
            minibatch_size=self.minibatch_size,
            eval_episodes=self.eval_episodes,
        )
        if isinstance(self.dagger_iterations, bool) or not isinstance(
            self.dagger_iterations, int
        ) or self.dagger_iterations < 0:  # fmt: skip
            raise ValueError(
                f"{owner}.dagger_iterations={self.dagger_iterations!r} is not allowed; "
                "it must be an int >= 0"
            )
        C.check_choice(owner, "activation", self.activation, ("tanh", "relu", "gelu", "silu"))
        C.check_choice(owner, "torso", self.torso, ("mlp", "cnn"))

    @property
    def batch_size(self) -> int:
        """Steps collected per iteration."""
        return self.num_envs * self.rollout_len

    @property
    def num_updates(self) -> int:
        """Iterations: the initial fit and the DAgger rounds."""
        return 1 + self.dagger_iterations

    @property
    def total_steps(self) -> int:
        """Environment steps collected over all iterations."""
        return self.num_updates * self.batch_size


@H.hparams
class BCHParams(H.LearningRate, H.GradClip):
    """Traced hyperparameters: ``vmap`` over them to sweep in one compile."""

    lr: float = 1e-3
    max_grad_norm: float = 1.0


class Dataset(NamedTuple):
    obs: Any  # [capacity, ...]
    action: jax.Array  # [capacity, ...] the expert's labels
    size: jax.Array  # int32, filled entries (a prefix)


class BCState(NamedTuple):
    params: Any
    opt_state: Any
    data: Dataset
    env: rollout.EnvCarry
    key: jax.Array


def bc_loss(params: Any, apply_fn: Callable, obs: Any, action: jax.Array):
    """Mean negative log-likelihood of the expert's ``action`` under the policy; also
    the accuracy of the policy's mode (exact match for discrete actions)."""
    dist = apply_fn(params, obs)
    loss = -dist.log_prob(action).mean()
    mode = dist.mode()
    if jnp.issubdtype(action.dtype, jnp.integer):
        accuracy = (mode == action).mean()
    else:
        accuracy = -jnp.square(mode - action).sum(-1).mean()  # negative squared error
    return loss, {"loss": loss, "accuracy": accuracy}


def make_network(config: BCConfig, env: Any, env_params: Any) -> Actor:
    spec = action_spec("BCConfig", env, env_params)
    return Actor(
        spec.dim,
        "categorical" if spec.discrete else "gaussian",
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        torso_kind=config.torso,
        obs_ndim=obs_ndim(env, env_params),
    )


def make_train(config: BCConfig, env: Any, env_params: Any, expert: Expert) -> Trainer:
    """``train(key, hparams) -> (BCState, metrics)``; metrics have a leading iteration
    axis. ``env`` is a training env (auto-reset), e.g. from ``envs.make``. A
    ``jaxrl.training.Trainer`` (one update per iteration), so it also runs in chunks
    from ``train.start``."""

    network = make_network(config, env, env_params)
    spec = action_spec("BCConfig", env, env_params)
    venv = rollout.batched_env(env, config.num_envs, None, continuous=not spec.discrete)
    obs_space = venv.observation_space(env_params)
    action_shape = () if spec.discrete else (spec.dim,)
    action_dtype = jnp.int32 if spec.discrete else jnp.float32
    capacity = config.num_updates * config.batch_size
    max_steps = episode_limit(env, env_params)
    eval_env = env if spec.discrete else wrappers.ClipAction(env)

    def optimizer(hp: BCHParams) -> optax.GradientTransformation:
        return make_optimizer(hp.lr, hp.max_grad_norm)

    def learner(params):
        return lambda key, obs: network.apply(params, obs).mode()

    def init(key: jax.Array, hp: BCHParams) -> BCState:
        key, init_key, env_key = jax.random.split(key, 3)
        params = network.init(init_key, jnp.zeros((1, *obs_space.shape), jnp.float32))
        data = Dataset(
            jnp.zeros((capacity, *obs_space.shape), obs_space.dtype),
            jnp.zeros((capacity, *action_shape), action_dtype),
            jnp.int32(0),
        )
        env_carry = rollout.init_carry(venv, env_params, env_key, False, False)
        return BCState(params, optimizer(hp).init(params), data, env_carry, key)

    def update_step(state: BCState, hp: BCHParams, iteration: jax.Array):
        """Iteration ``iteration`` (0: behaviour cloning on the expert's rollout)."""
        tx = optimizer(hp)
        key, rollout_key, label_key, sgd_key, eval_key = jax.random.split(state.key, 5)

        # 1. collect: the expert acts first, then the learner (DAgger)
        def act(keys, obs, first, carry):
            # Both policies take one key for the batch (the make_policy contract).
            key = jax.random.fold_in(keys[0], 1)
            action = jax.lax.cond(iteration == 0, expert, learner(state.params), key, obs)
            return action.astype(action_dtype), None, carry

        env_carry, _, traj = rollout.collect(
            venv, env_params, act, rollout_key, state.env, config.rollout_len
        )
        # 2. label every visited state with the expert's action
        obs = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), traj.obs)
        labels = expert(label_key, obs).astype(action_dtype)
        start = iteration * config.batch_size
        data = Dataset(
            jax.lax.dynamic_update_slice_in_dim(state.data.obs, obs, start, 0),
            jax.lax.dynamic_update_slice_in_dim(state.data.action, labels, start, 0),
            (iteration + 1) * config.batch_size,
        )

        # 3. minibatch steps on everything collected so far
        def sgd_step(carry, key):
            params, opt_state = carry
            index = jax.random.randint(key, (config.minibatch_size,), 0, data.size)
            grads, stats = jax.grad(bc_loss, has_aux=True)(
                params, network.apply, data.obs[index], data.action[index]
            )
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), stats

        (params, opt_state), stats = jax.lax.scan(
            sgd_step,
            (state.params, state.opt_state),
            jax.random.split(sgd_key, config.num_sgd_steps),
        )
        # 4. evaluate the learner greedily
        returns = evaluate(
            eval_env, env_params, learner(params), eval_key, config.eval_episodes, max_steps
        )
        metrics = {
            "loss": stats["loss"][-1],
            "accuracy": stats["accuracy"][-1],
            "episode_return_sum": returns.sum(),
            "episodes": jnp.float32(config.eval_episodes),
        }
        return BCState(params, opt_state, data, env_carry, key), metrics

    return Trainer(init, update_step, config.num_updates)


def make_policy(config: BCConfig, env: Any, env_params: Any, state: BCState, deterministic=True):
    """``act(key, obs [N, ...]) -> action``: the policy's mode, or a sample when not
    ``deterministic``."""
    network = make_network(config, env, env_params)

    def act(key: jax.Array, obs: Any) -> jax.Array:
        dist = network.apply(state.params, obs)
        return dist.mode() if deterministic else dist.sample(key)

    return act
