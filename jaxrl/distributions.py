"""Action distributions as small pytrees: categorical, diagonal Gaussian, tanh-Gaussian.

Each has ``sample(key)``, ``log_prob(x)``, ``entropy()`` and ``mode()``; batch
dimensions broadcast as in ``jax.numpy``, the event dimension of the Gaussians
is the last axis (log-probs and entropies sum over it). ``sample`` takes one key,
or a key per batch row (``keys [N]`` for a batch ``[N, ...]``, as rollouts pass
one per env): then each row's sample depends on its own key only, whatever the
rest of the batch (see ``draw``).

Why not distrax: it pulls TensorFlow Probability (``tfp-nightly``) into every
install, and the tanh-Gaussian needs a log-probability that stays finite at the
action bounds, which we control here (``TanhGaussian.sample_and_log_prob``
computes it from the pre-squash sample, the stable form from Haarnoja et al.
2018, appendix C).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2 * math.pi)


def draw(sampler: Callable[..., jax.Array], key: jax.Array, shape: tuple[int, ...], *args):
    """``sampler(key, shape, *args)`` (e.g. ``jax.random.normal``) with one key, or with
    keys ``[*lead]`` whose shape leads ``shape``: each row ``i`` is then
    ``sampler(key[i], shape[len(lead):], *args)``."""
    lead = jnp.shape(key)
    if not lead:
        return sampler(key, shape, *args)
    if tuple(shape[: len(lead)]) != lead:
        raise ValueError(f"draw: keys of shape {lead} do not lead the sample shape {shape}")
    flat = jnp.reshape(key, (-1,))
    rows = jax.vmap(lambda k: sampler(k, tuple(shape[len(lead) :]), *args))(flat)
    return rows.reshape(shape)


class Categorical(NamedTuple):
    logits: jax.Array  # [..., num_actions]

    def sample(self, key: jax.Array) -> jax.Array:
        # jax.random.categorical's Gumbel-max, with per-row keys allowed
        noise = draw(jax.random.gumbel, key, jnp.shape(self.logits), jnp.result_type(self.logits))
        return jnp.argmax(self.logits + noise, axis=-1).astype(jnp.int32)

    def log_prob(self, action: jax.Array) -> jax.Array:
        log_p = jax.nn.log_softmax(self.logits)
        return jnp.take_along_axis(log_p, jnp.asarray(action, jnp.int32)[..., None], axis=-1)[
            ..., 0
        ]

    def entropy(self) -> jax.Array:
        log_p = jax.nn.log_softmax(self.logits)
        return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def probs(self) -> jax.Array:
        return jax.nn.softmax(self.logits)

    def kl(self, other: Categorical) -> jax.Array:
        log_p, log_q = jax.nn.log_softmax(self.logits), jax.nn.log_softmax(other.logits)
        return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


class DiagGaussian(NamedTuple):
    mean: jax.Array  # [..., action_dim]
    log_std: jax.Array  # broadcastable to mean

    def sample(self, key: jax.Array) -> jax.Array:
        noise = draw(jax.random.normal, key, jnp.shape(self.mean), jnp.result_type(self.mean))
        return self.mean + jnp.exp(self.log_std) * noise

    def log_prob(self, x: jax.Array) -> jax.Array:
        z = (x - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * jnp.square(z) - self.log_std - 0.5 * _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        log_std = jnp.broadcast_to(self.log_std, jnp.shape(self.mean))
        return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    def mode(self) -> jax.Array:
        return self.mean

    def kl(self, other: DiagGaussian) -> jax.Array:
        var_ratio = jnp.exp(2 * (self.log_std - other.log_std))
        mean_term = jnp.square((self.mean - other.mean) * jnp.exp(-other.log_std))
        return 0.5 * jnp.sum(
            var_ratio + mean_term - 1.0 - 2 * (self.log_std - other.log_std), axis=-1
        )


def _log_one_minus_tanh_sq(u: jax.Array) -> jax.Array:
    """``log(1 - tanh(u)^2)`` without overflow: ``2 (log 2 - u - softplus(-2u))``."""
    return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


class TanhGaussian(NamedTuple):
    """``tanh(u)`` with ``u ~ N(mean, exp(log_std))``: actions in ``(-1, 1)``.

    Rescale to other bounds with ``envs.wrappers.RescaleAction``. The entropy
    has no closed form: ``entropy_estimate(key)`` gives the single-sample
    unbiased estimate ``-log_prob(sample)`` that SAC uses.
    """

    mean: jax.Array
    log_std: jax.Array

    #: Actions are clipped this far inside the bounds before ``atanh`` in ``log_prob``.
    EPS = 1e-6

    def _base(self) -> DiagGaussian:
        return DiagGaussian(self.mean, self.log_std)

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A sample and its log-probability, computed from the pre-squash value (stable)."""
        u = self.sample_pre_squash(key)
        return jnp.tanh(u), self.log_prob_pre_squash(u)

    def sample_pre_squash(self, key: jax.Array) -> jax.Array:
        """``u ~ N(mean, std)``, whose ``tanh`` is a sample of this distribution."""
        return self._base().sample(key)

    def log_prob_pre_squash(self, u: jax.Array) -> jax.Array:
        """Log-density of the action ``tanh(u)``, exact for every ``u``: ``log_prob``
        must recover ``u`` with ``atanh``, which saturates in float32 (``tanh(u)``
        rounds to 1 from about ``u = 9``, and ``log_prob`` clips at ``atanh(1 - EPS)``
        = 7.25), so keep ``u`` where the sample is stored (PPO's rollouts do)."""
        return self._base().log_prob(u) - jnp.sum(_log_one_minus_tanh_sq(u), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return jnp.tanh(self.sample_pre_squash(key))

    def log_prob(self, action: jax.Array) -> jax.Array:
        """Log-density of ``action``; finite at the bounds (clipped by ``EPS``)."""
        a = jnp.clip(action, -1.0 + self.EPS, 1.0 - self.EPS)
        return self.log_prob_pre_squash(jnp.arctanh(a))

    def entropy_estimate(self, key: jax.Array) -> jax.Array:
        """Single-sample unbiased estimate of the entropy."""
        return -self.sample_and_log_prob(key)[1]

    def mode(self) -> jax.Array:
        return jnp.tanh(self.mean)
