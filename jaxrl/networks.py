"""Networks as flax linen modules (pure ``init``/``apply``): torsos, policy and
value heads, Q heads and a GRU core, with initialisation in one place; and the
factories that build an agent's networks for an env's spaces (``actor_critic``,
``q_network``, ``actor_critics``).

Initialisation follows the PPO implementation study (Andrychowicz et al. 2021;
Huang et al. 2022): orthogonal weights with gain sqrt(2) in hidden layers,
0.01 on the policy output and 1.0 on value outputs, zero biases.

Value-based networks can take ``weight_init="lecun_normal"`` instead (flax's
default, the initialisation of PureJaxRL's and CleanRL's DQN): every kernel
LeCun-normal, biases zero.

The orthogonal initialiser is the Q of one QR factorisation per matrix (LAPACK,
as ``flax.linen.initializers.orthogonal``), with R's diagonal made positive so Q
is Haar-distributed. It is wrapped in ``jax.custom_batching.custom_vmap`` whose
batching rule runs the QRs one after another (``lax.map``) rather than as one
batched QR: initialising under ``vmap`` over seeds, a batched QR deadlocks
jaxlib 0.10's CPU thread pool on 2-core machines (``lapack_sorgqr_ffi`` waits in
``ParallelBatchMap`` on the pool it occupies). It replaced a Gram-Schmidt loop in
plain XLA ops (one ``fori_loop`` per layer) that was most of the gap in compile
time to rejax's PPO (PPO on CartPole, 1 seed: trace and compile 4.5 -> 4.0 s).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Environment
from envs.spaces import Box, Discrete
from jaxrl.distributions import Categorical, DiagGaussian, TanhGaussian

Activation = Literal["tanh", "relu", "gelu", "silu"]
WeightInit = Literal["orthogonal", "lecun_normal"]
_ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu}


@jax.custom_batching.custom_vmap
def _orthonormal_columns(a: jax.Array) -> jax.Array:
    """Q of the QR of ``a [n, m]`` (n >= m), with R's diagonal made positive."""
    q, r = jnp.linalg.qr(a)
    return q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(q.dtype)[None, :]


@_orthonormal_columns.def_vmap
def _orthonormal_columns_vmap(axis_size, in_batched, a):
    # One unbatched QR per matrix: a batched one deadlocks (see the module docstring).
    if not in_batched[0]:
        return _orthonormal_columns(a), False
    return jax.lax.map(_orthonormal_columns, a), True


def orthogonal(scale: float = 1.0):
    """Orthogonal initialiser (rows or columns orthonormal, times ``scale``), like
    ``flax.linen.initializers.orthogonal`` but safe under ``vmap`` (see the module docstring)."""

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        cols = shape[-1]
        rows = math.prod(shape) // cols
        n, m = max(rows, cols), min(rows, cols)
        q = _orthonormal_columns(jax.random.normal(key, (n, m), jnp.float32))
        if rows < cols:
            q = q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


def kernel_init(weight_init: WeightInit, scale: float = math.sqrt(2.0)):
    """``orthogonal(scale)``, or LeCun-normal (which has no gain: ``scale`` is unused)."""
    if weight_init == "lecun_normal":
        return nn.initializers.lecun_normal()
    return orthogonal(scale)


def dense(
    features: int,
    scale: float = math.sqrt(2.0),
    name: str | None = None,
    weight_init: WeightInit = "orthogonal",
) -> nn.Dense:
    """A dense layer with orthogonal(scale) (or LeCun-normal) weights and zero bias."""
    return nn.Dense(
        features,
        kernel_init=kernel_init(weight_init, scale),
        bias_init=nn.initializers.zeros,
        name=name,
    )


class MLP(nn.Module):
    """Fully connected torso; flattens everything after the batch axes given by ``obs_ndim``."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: Activation = "tanh"
    layer_norm: bool = False
    obs_ndim: int = 1
    """Number of trailing axes that make up one observation (flattened together)."""
    weight_init: WeightInit = "orthogonal"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)
        if self.obs_ndim != 1:
            x = x.reshape(x.shape[: x.ndim - self.obs_ndim] + (-1,))
        for size in self.hidden_sizes:
            x = dense(size, weight_init=self.weight_init)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = _ACTIVATIONS[self.activation](x)
        return x


class CNN(nn.Module):
    """Small conv torso for grid images (H, W, C), e.g. gridworld images and MinAtar.

    3x3 convolutions with SAME padding keep small grids' resolution; then a dense layer.
    """

    channels: Sequence[int] = (16, 32)
    dense_size: int = 128
    activation: Activation = "relu"
    weight_init: WeightInit = "orthogonal"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)
        act = _ACTIVATIONS[self.activation]
        for c in self.channels:
            x = act(
                nn.Conv(
                    c,
                    (3, 3),
                    padding="SAME",
                    kernel_init=kernel_init(self.weight_init),
                )(x)
            )
        x = x.reshape(x.shape[:-3] + (-1,))
        return act(dense(self.dense_size, weight_init=self.weight_init)(x))


class CategoricalHead(nn.Module):
    num_actions: int

    @nn.compact
    def __call__(self, x: jax.Array) -> Categorical:
        return Categorical(dense(self.num_actions, 0.01)(x))


class GaussianHead(nn.Module):
    """Diagonal Gaussian with a state-independent, learned log-std (PPO/TRPO style);
    with ``squash`` the same Gaussian squashed by ``tanh`` (actions in (-1, 1)).

    ``state_std``: the std is a function of the state instead, ``softplus(dense(x)) +
    0.001`` (brax.training's ``NormalTanhDistribution``; about 0.69 at init)."""

    action_dim: int
    init_log_std: float = 0.0
    squash: bool = False
    state_std: bool = False

    #: brax.training's ``min_std``: the std never falls below it.
    MIN_STD = 1e-3

    @nn.compact
    def __call__(self, x: jax.Array) -> DiagGaussian | TanhGaussian:
        mean = dense(self.action_dim, 0.01)(x)
        if self.state_std:
            std = jax.nn.softplus(dense(self.action_dim, 0.01)(x)) + self.MIN_STD
            log_std = jnp.log(std)
        else:
            log_std = self.param(
                "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
            )
        return (TanhGaussian if self.squash else DiagGaussian)(
            mean, jnp.broadcast_to(log_std, mean.shape)
        )


class TanhGaussianHead(nn.Module):
    """Tanh-squashed Gaussian with state-dependent log-std clipped to [min, max] (SAC style)."""

    action_dim: int
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, x: jax.Array) -> TanhGaussian:
        mean = dense(self.action_dim, 0.01)(x)
        log_std = dense(self.action_dim, 0.01)(x)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (
            jnp.tanh(log_std) + 1
        )
        return TanhGaussian(mean, log_std)


class ValueHead(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return dense(1, 1.0)(x)[..., 0]


class QHead(nn.Module):
    """Q-values for every discrete action; ``dueling`` splits value and advantage streams
    (Wang et al. 2016) and recombines them as ``V + A - mean(A)``."""

    num_actions: int
    dueling: bool = False
    weight_init: WeightInit = "orthogonal"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = self.weight_init
        if not self.dueling:
            return dense(self.num_actions, 1.0, weight_init=init)(x)
        value = dense(1, 1.0, weight_init=init)(x)
        advantage = dense(self.num_actions, 1.0, weight_init=init)(x)
        return value + advantage - advantage.mean(axis=-1, keepdims=True)


class QNetwork(nn.Module):
    """Q-values of every discrete action: a torso (optionally with LayerNorm, as
    PQN needs) and a ``QHead``. ``apply(params, obs [..., *obs_shape]) -> q [..., A]``."""

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Activation = "relu"
    torso_kind: str = "mlp"
    obs_ndim: int = 1
    dueling: bool = False
    layer_norm: bool = False
    weight_init: WeightInit = "orthogonal"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        init = self.weight_init
        kind, sizes, act = self.torso_kind, self.hidden_sizes, self.activation
        x = torso(kind, sizes, act, self.obs_ndim, self.layer_norm, init)(obs)
        return QHead(self.num_actions, self.dueling, init)(x)


class ResettingGRU(nn.Module):
    """A GRU over a time-major sequence that restarts its hidden state where ``reset`` is true.

    ``reset_t`` marks the first step of a new episode (the step after ``done``),
    so hidden state never leaks across episode boundaries.

    Call with ``carry [B, H]``, ``x [T, B, D]``, ``reset [T, B]``; returns
    ``(carry, y [T, B, H])``. A single step is ``T = 1``.
    """

    hidden_size: int = 128

    @nn.compact
    def __call__(
        self, carry: jax.Array, x: jax.Array, reset: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        cell = nn.scan(
            _ResetCell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=0,
            out_axes=0,
        )(self.hidden_size)
        return cell(carry, (x, reset))

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> jax.Array:
        return jnp.zeros(batch_shape + (self.hidden_size,), jnp.float32)


class _ResetCell(nn.Module):
    hidden_size: int

    @nn.compact
    def __call__(self, carry, inputs):
        x, reset = inputs
        carry = jnp.where(reset[..., None], jnp.zeros_like(carry), carry)
        # Our orthogonal init (flax's default deadlocks when batched, see above).
        cell = nn.GRUCell(self.hidden_size, recurrent_kernel_init=orthogonal())
        carry, y = cell(carry, x)
        return carry, y


def torso(
    kind: str,
    hidden_sizes: Sequence[int],
    activation: Activation,
    obs_ndim: int,
    layer_norm: bool = False,
    weight_init: WeightInit = "orthogonal",
) -> nn.Module:
    """``"mlp"`` (flattens ``obs_ndim`` trailing axes; optional LayerNorm after each
    hidden layer) or ``"cnn"`` (for (H, W, C) images)."""
    if kind == "cnn":
        dense_size = hidden_sizes[-1] if hidden_sizes else 128
        return CNN(dense_size=dense_size, weight_init=weight_init)
    return MLP(hidden_sizes, activation, layer_norm, obs_ndim, weight_init)


class ActorCritic(nn.Module):
    """Policy and value in one call, each with its own torso (no shared features,
    as in the PPO implementation studies); optionally recurrent.

    Feed-forward: ``apply(params, obs [..., *obs_shape]) -> (dist, value [...])``.
    Recurrent (``gru_size > 0``): a GRU on top of a shared torso, called with
    ``(obs [T, B, ...], reset [T, B], carry [B, H])`` and returning
    ``(dist, value [T, B], carry)``.
    """

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Activation = "tanh"
    torso_kind: str = "mlp"
    obs_ndim: int = 1
    gru_size: int = 0
    squash: bool = False
    value_hidden_sizes: Sequence[int] | None = None  # None: hidden_sizes
    state_std: bool = False  # GaussianHead's

    def setup(self):
        make = lambda sizes: torso(self.torso_kind, sizes, self.activation, self.obs_ndim)
        self.actor_torso = make(self.hidden_sizes)
        self.critic_torso = make(self.value_hidden_sizes or self.hidden_sizes)
        if self.discrete:
            self.policy_head = CategoricalHead(self.action_dim)
        else:
            self.policy_head = GaussianHead(
                self.action_dim, squash=self.squash, state_std=self.state_std
            )
        self.value_head = ValueHead()
        if self.gru_size:
            self.gru = ResettingGRU(self.gru_size)

    def __call__(self, obs, reset=None, carry=None):
        if not self.gru_size:
            return self.policy_head(self.actor_torso(obs)), self.value_head(self.critic_torso(obs))
        carry, features = self.gru(carry, self.actor_torso(obs), reset)
        value = self.value_head(jnp.concatenate([self.critic_torso(obs), features], axis=-1))
        return self.policy_head(features), value, carry

    def initial_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.gru_size), jnp.float32)


class Actor(nn.Module):
    """A policy on its own torso: ``"tanh_gaussian"`` (SAC), ``"categorical"``
    (discrete SAC, behaviour cloning), ``"gaussian"`` (unbounded, state-independent
    log-std; behaviour cloning) or ``"deterministic"`` (TD3/DDPG: actions
    ``tanh(dense(x))`` in ``(-1, 1)``). ``apply(params, obs [..., *obs_shape])``."""

    action_dim: int
    kind: Literal["tanh_gaussian", "categorical", "gaussian", "deterministic"]
    hidden_sizes: Sequence[int] = (256, 256)
    activation: Activation = "relu"
    torso_kind: str = "mlp"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array):
        x = torso(self.torso_kind, self.hidden_sizes, self.activation, self.obs_ndim)(obs)
        if self.kind == "categorical":
            return CategoricalHead(self.action_dim)(x)
        if self.kind == "tanh_gaussian":
            return TanhGaussianHead(self.action_dim)(x)
        if self.kind == "gaussian":
            return GaussianHead(self.action_dim)(x)
        return jnp.tanh(dense(self.action_dim, 0.01)(x))


class ContinuousQ(nn.Module):
    """``Q(s, a)`` for continuous actions: an MLP on the observation's features
    (flattened, or a CNN's for images) concatenated with the action.
    ``apply(params, obs [..., *obs_shape], action [..., action_dim]) -> q [...]``."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: Activation = "relu"
    torso_kind: str = "mlp"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.asarray(obs, jnp.float32)
        if self.torso_kind == "cnn":
            x = CNN()(x)
        elif self.obs_ndim != 1:
            x = x.reshape(x.shape[: x.ndim - self.obs_ndim] + (-1,))
        x = jnp.concatenate([x, jnp.asarray(action, jnp.float32)], axis=-1)
        x = MLP(self.hidden_sizes, self.activation)(x)
        return dense(1, 1.0)(x)[..., 0]


class Critics(nn.Module):
    """``num_critics`` independently initialised Q-functions evaluated together
    (``nn.vmap`` over their parameters: one batched matmul per layer, not one per
    critic). Discrete: ``apply(params, obs) -> q [num_critics, ..., A]``; continuous:
    ``apply(params, obs, action) -> q [num_critics, ...]``."""

    num_critics: int
    num_actions: int | None  # None: continuous actions, Q(s, a)
    hidden_sizes: Sequence[int] = (256, 256)
    activation: Activation = "relu"
    torso_kind: str = "mlp"
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array | None = None) -> jax.Array:
        common = dict(
            hidden_sizes=self.hidden_sizes,
            activation=self.activation,
            torso_kind=self.torso_kind,
            obs_ndim=self.obs_ndim,
        )
        if self.num_actions is None:
            module, args = ContinuousQ, (obs, action)
        else:
            module, args = functools.partial(QNetwork, self.num_actions), (obs,)
        ensemble = nn.vmap(
            module,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        return ensemble(**common)(*args)


class ActorCritics(NamedTuple):
    """The networks of an off-policy actor-critic (SAC, TD3): an ``Actor`` and its
    ``Critics``, with separate parameters (each has its own optimizer)."""

    actor: Actor
    critics: Critics

    def init(self, key: jax.Array, obs: jax.Array) -> dict[str, Any]:
        """``{"actor": ..., "critics": ...}`` for a batch of observations ``obs [B, ...]``."""
        actor_key, critic_key = jax.random.split(key)
        actor = self.actor.init(actor_key, obs)
        if self.critics.num_actions is None:
            action = jnp.zeros((obs.shape[0], self.actor.action_dim), jnp.float32)
            return {"actor": actor, "critics": self.critics.init(critic_key, obs, action)}
        return {"actor": actor, "critics": self.critics.init(critic_key, obs)}


# Networks for an env's spaces, from a config's hidden_sizes, activation and torso
# fields (shared by the agents; the checks name the agent, ``owner``).


class ActionSpec(NamedTuple):
    discrete: bool
    dim: int  # number of actions (discrete) or action dimensions (continuous)


def action_spec(owner: str, env: Environment, env_params: Any) -> ActionSpec:
    space = env.action_space(env_params)
    if isinstance(space, Discrete):
        return ActionSpec(True, space.n)
    if (
        isinstance(space, Box)
        and jnp.issubdtype(space.dtype, jnp.floating)
        and len(space.shape) == 1
    ):
        return ActionSpec(False, space.shape[0])
    raise ValueError(f"{owner} supports Discrete and 1-D float Box action spaces, not {space!r}")


def obs_ndim(env: Environment, env_params: Any) -> int:
    return max(1, len(env.observation_space(env_params).shape))


def actor_critic(
    owner: str,
    config: Any,
    env: Environment,
    env_params: Any,
    gru_size: int = 0,
    squash: bool = False,
    value_hidden_sizes: tuple[int, ...] | None = None,
    state_std: bool = False,
):
    """The ``ActorCritic`` for ``env``'s spaces from a config's ``hidden_sizes``,
    ``activation`` and ``torso`` fields (shared by every actor-critic agent); with
    ``squash`` a continuous policy is a tanh-squashed Gaussian acting in [-1, 1];
    ``value_hidden_sizes`` (None: ``hidden_sizes``) sizes the critic's torso;
    ``state_std`` makes a continuous policy's std a function of the state."""
    spec = action_spec(owner, env, env_params)
    if squash and spec.discrete:
        raise ValueError(
            f"{owner}Config.squash=True is not allowed for discrete actions; it squashes "
            "a continuous (Box) policy into the action bounds"
        )
    if squash:
        check_finite_bounds(owner, env, env_params)
    if state_std and spec.discrete:
        raise ValueError(
            f"{owner}Config.state_std=True is not allowed for discrete actions; it "
            "parametrises a continuous (Box) policy's std"
        )
    return ActorCritic(
        action_dim=spec.dim,
        discrete=spec.discrete,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        torso_kind=config.torso,
        obs_ndim=obs_ndim(env, env_params),
        gru_size=gru_size,
        squash=squash,
        value_hidden_sizes=value_hidden_sizes,
        state_std=state_std,
    )


def q_network(
    owner: str,
    config: Any,
    env: Environment,
    env_params: Any,
    dueling: bool = False,
    layer_norm: bool = False,
    weight_init: str = "orthogonal",
):
    """The ``QNetwork`` for ``env``'s discrete actions from a config's ``hidden_sizes``,
    ``activation`` and ``torso`` fields (shared by every value-based agent)."""
    spec = action_spec(owner, env, env_params)
    if not spec.discrete:
        raise ValueError(
            f"{owner} needs a Discrete action space; use SAC or TD3 for continuous actions"
        )
    return QNetwork(
        num_actions=spec.dim,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        torso_kind=config.torso,
        obs_ndim=obs_ndim(env, env_params),
        dueling=dueling,
        layer_norm=layer_norm,
        weight_init=weight_init,
    )


def actor_critics(
    owner: str,
    config: Any,
    env: Environment,
    env_params: Any,
    continuous_actor: Literal["tanh_gaussian", "deterministic"],
    allow_discrete: bool,
):
    """The ``ActorCritics`` of an off-policy actor-critic (SAC, TD3) for ``env``'s
    actions from a config's ``hidden_sizes``, ``activation``, ``torso`` and
    ``num_critics``: ``continuous_actor`` with ``Q(s, a)`` critics for a float Box,
    or (if ``allow_discrete``) a categorical actor with ``Q(s, .)`` critics."""
    spec = action_spec(owner, env, env_params)
    if spec.discrete and not allow_discrete:
        raise ValueError(
            f"{owner} needs a continuous (float Box) action space; use DQN, PQN or "
            "discrete SAC for discrete actions"
        )
    if not spec.discrete:
        check_finite_bounds(owner, env, env_params)
    common = dict(
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        torso_kind=config.torso,
        obs_ndim=obs_ndim(env, env_params),
    )
    kind = "categorical" if spec.discrete else continuous_actor
    return ActorCritics(
        Actor(spec.dim, kind, **common),
        Critics(config.num_critics, spec.dim if spec.discrete else None, **common),
    )


def check_finite_bounds(owner: str, env: Environment, env_params: Any) -> None:
    """A float Box action space must have finite bounds, for policies that act in
    ``[-1, 1]`` and rescale to them (SAC, TD3, CEM)."""
    space = env.action_space(env_params)
    bounds = (space.low, space.high)
    # Bounds that depend on traced env params (a vmap over params) cannot be checked here.
    concrete = not any(isinstance(b, jax.core.Tracer) for b in bounds)
    if concrete and not all(np.isfinite(np.asarray(b)).all() for b in bounds):
        raise ValueError(
            f"{owner} needs finite action bounds (its policy acts in [-1, 1], rescaled "
            f"to them), got low={space.low}, high={space.high}"
        )
